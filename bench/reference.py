"""The same cases in PyTorch (CPU): the yardstick. Only the benchmarks import torch, never the tool.

The models are PyTorch's own modules, as a user would write them: nn.Embedding, nn.LSTM or
nn.GRU over all layers and steps, nn.Linear, cross-entropy summed over time and averaged over
the batch, clip_grad_norm_, and torch.optim's SGD or Adam.
"""

import itertools

import numpy as np
import torch
from torch import nn

from lm.data import Batches


class Net(nn.Module):
    def __init__(self, case, vocab):
        super().__init__()
        s = case.setup
        self.embed = nn.Embedding(vocab, s["embed"])
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[case.cell]
        self.rnn = rnn(s["embed"], s["hidden"], s["layers"])
        self.out = nn.Linear(s["hidden"], vocab)

    def forward(self, x, state):
        a, state = self.rnn(self.embed(x), state)
        return self.out(a), state


def _tensor(ids):
    return torch.from_numpy(np.maximum(ids, 0).astype(np.int64))  # -1 (the zero input) as id 0: same cost


def train(case, ids, tokenizer, clock):
    s = case.setup
    torch.manual_seed(0)
    net = Net(case, len(tokenizer))
    opt = (torch.optim.SGD if s["optimizer"] == "sgd" else torch.optim.Adam)(net.parameters(), lr=s["lr"])
    windows = itertools.cycle(Batches(ids, tokenizer.start_id, s["batch_size"], s["seq_len"]))
    state = None

    def step():
        nonlocal state
        x, y = next(windows)
        logits, state = net(_tensor(x), state)
        state = tuple(h.detach() for h in state) if isinstance(state, tuple) else state.detach()
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), _tensor(y).reshape(-1),
                                           reduction="sum") / s["batch_size"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), s["clip"])
        opt.step()
        loss.item()
        return y.size

    for _ in range(case.warmup):
        step()
    clock.start()
    return sum(step() for _ in range(case.steps))


@torch.no_grad()
def draw(case, ids, tokenizer, clock):
    torch.manual_seed(0)
    net = Net(case, len(tokenizer))

    def run(n):
        x = torch.zeros(1, case.batch, dtype=torch.long)
        state = None
        for _ in range(n):
            logits, state = net(x, state)
            x = torch.multinomial(torch.softmax(logits[0], dim=-1), 1).T

    run(case.warmup)
    clock.start()
    run(case.steps)
    return case.steps * case.batch


@torch.no_grad()
def score(case, ids, tokenizer, clock):
    torch.manual_seed(0)
    net = Net(case, len(tokenizer))
    ids = ids[: case.steps or None]
    x = np.empty(len(ids), dtype=np.int64)
    x[0], x[1:] = max(tokenizer.start_id, 0), ids[:-1]
    clock.start()
    state, nats = None, 0.0
    for i in range(0, len(ids), 256):
        logits, state = net(torch.from_numpy(x[i : i + 256, None]), state)
        logp = torch.log_softmax(logits[:, 0], dim=-1)
        nats -= float(logp.gather(1, torch.from_numpy(ids[i : i + 256, None].astype(np.int64))).sum())
    return len(ids)

"""The cases run through lm's own code paths: the Trainer `lm train` uses, `lm.sample`, `stream_nats`."""

import itertools

import numpy as np

from lm.config import ModelConfig, TrainConfig
from lm.data import Batches
from lm.model import Model
from lm.sample import sample, sample_many
from lm.score import stream_nats
from lm.train import Trainer


def _model(case, vocab):
    s = case.setup
    config = ModelConfig(vocab=vocab, cell=case.cell, layers=s["layers"], hidden=s["hidden"], embed=s["embed"])
    return Model.init(config, np.random.default_rng(0))


def make_trainer(case, vocab) -> tuple[Trainer, TrainConfig]:
    """The Trainer `lm train` would make for the case, and its settings."""
    s = case.setup
    cfg = TrainConfig(seq_len=s["seq_len"], batch_size=s["batch_size"], optimizer=s["optimizer"], lr=s["lr"],
                      clip=s["clip"])
    return Trainer(_model(case, vocab), cfg), cfg


def train(case, ids, tokenizer, clock):
    trainer, cfg = make_trainer(case, len(tokenizer))
    windows = itertools.cycle(Batches(ids, tokenizer.start_id, cfg.batch_size, cfg.seq_len))
    for _ in range(case.warmup):
        trainer.step(*next(windows), cfg.lr)
    clock.start()
    tokens = 0
    for _ in range(case.steps):
        x, y = next(windows)
        trainer.step(x, y, cfg.lr)
        tokens += y.size
    clock.stop()
    trainer.close()  # its worker process ends, and its peak memory counts (worker.py)
    return tokens


def draw(case, ids, tokenizer, clock):
    model = _model(case, len(tokenizer))
    if case.batch == 1:
        run = lambda n: "".join(sample(model, tokenizer, tokens=n, seed=0))  # noqa: E731
    else:
        run = lambda n: sample_many(model, tokenizer, case.batch, tokens=n, seed=0)  # noqa: E731
    run(case.warmup)
    clock.start()
    run(case.steps)
    return case.steps * case.batch


def score(case, ids, tokenizer, clock):
    model = _model(case, len(tokenizer))
    ids = ids[: case.steps or None]
    clock.start()
    stream_nats(model, ids, tokenizer.start_id)
    return len(ids)

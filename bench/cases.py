"""The benchmark cases, defined once for both implementations: same model, same data, same sizes."""

from dataclasses import dataclass

WORD = dict(corpus="ptb.train.txt", tokenizer="whitespace", layers=2, hidden=200, embed=200,
            batch_size=20, seq_len=20, optimizer="sgd", lr=1.0, clip=5.0)
CHAR = dict(corpus="tinyshakespeare.txt", tokenizer="char", layers=2, hidden=128, embed=128,
            batch_size=50, seq_len=50, optimizer="adam", lr=2e-3, clip=5.0)
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # train, sample or score
    setup: dict
    cell: str = "lstm"
    warmup: int = 3  # steps (tokens when sampling) before the clock starts
    steps: int = 30  # timed steps; sampling: tokens per sequence; scoring: tokens scored (0: all)
    batch: int = 1  # sampling: sequences drawn at once
    share: bool = False  # the case whose share of the matmul peak and memory are reported (one case)

    def flops_per_token(self, vocab: int) -> int:
        """Forward FLOPs of one token (2 per multiply-add): every layer's stacked W[a<t-1>, x<t>]
        and the softmax layer. Training costs 3x this (forward, and two products backward)."""
        H, E, L = self.setup["hidden"], self.setup["embed"], self.setup["layers"]
        cells = sum((H + (E if layer == 0 else H)) * GATES[self.cell] * H for layer in range(L))
        return 2 * (cells + H * vocab)


CASES = {case.name: case for case in [
    Case("word training, LSTM", "train", WORD, steps=40, share=True),
    Case("word training, GRU", "train", WORD, cell="gru", steps=40),
    Case("char training, LSTM", "train", CHAR),
    Case("char training, GRU", "train", CHAR, cell="gru"),
    Case("sampling, 1 sequence", "sample", CHAR, warmup=50, steps=2000, batch=1),
    Case("sampling, 64 sequences", "sample", CHAR, warmup=20, steps=500, batch=64),
    Case("scoring, lm eval", "score", {**WORD, "corpus": "ptb.valid.txt"}, warmup=0, steps=0),
]}

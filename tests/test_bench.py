"""The benchmark's lm side runs through the same API as the tool, on tiny cases: `make bench`
cannot silently drift from the code it measures. (PyTorch's side needs the bench extra.)"""

import sys
from pathlib import Path

import numpy as np
import pytest

from lm.config import TokenizerConfig
from lm.tokenizer import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import ours  # noqa: E402
from cases import CASES, Case  # noqa: E402
from worker import Clock  # noqa: E402

TINY = dict(corpus="-", tokenizer="char", layers=2, hidden=8, embed=4, batch_size=3, seq_len=5,
            optimizer="adam", lr=2e-3, clip=5.0)


@pytest.mark.parametrize("kind,run", [("train", ours.train), ("sample", ours.draw), ("score", ours.score)])
@pytest.mark.parametrize("batch", [1, 4])
def test_every_kind_of_case_runs_and_counts_its_tokens(kind, run, batch):
    tokenizer = Tokenizer.fit("abc abd\n", TokenizerConfig(tokenizer="char"))
    ids = tokenizer.encode("abc abd\n" * 10)[0][:75]  # 3 streams of 25: whole windows of 5
    case = Case("tiny", kind, TINY, warmup=2, steps=6, batch=batch)
    clock = Clock()
    tokens = run(case, ids, tokenizer, clock)
    assert clock.t0
    expected = {"train": 6 * 5 * 3, "sample": 6 * batch, "score": 6}[kind]
    assert tokens == expected


def test_flops_per_token_counts_every_multiply():
    case = CASES["word training, LSTM"]
    H, E, V = 200, 200, 10_000
    assert case.flops_per_token(V) == 2 * ((H + E) * 4 * H + (H + H) * 4 * H + H * V)
    assert np.isclose(CASES["char training, GRU"].flops_per_token(65) / 2, (256 * 384) * 2 + 128 * 65)

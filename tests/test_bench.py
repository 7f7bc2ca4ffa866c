"""The benchmark's lm side runs through the same API as the tool, on tiny cases: `make bench`
cannot silently drift from the code it measures. (PyTorch's side needs the bench extra.)"""

import shutil
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


def test_the_report_gives_medians_their_ratio_the_rounds_spread_and_whether_targets_are_met():
    import run

    def runs(*rates, vocab=10_000, rss=(400.0, 100.0), gflops=(1.0, 1.0, 1.0)):
        return [{"rate": r, "vocab": vocab, "peak_rss_mib": rss[0], "base_rss_mib": rss[1], "gflops": g}
                for r, g in zip(rates, gflops)]

    flops = 3 * CASES["word training, LSTM"].flops_per_token(10_000) / 1e9  # per token/s
    # lm's runs reach 60%, 45% and 40% of the peaks measured beside them; 5000 tokens/s is 40%
    # of the peak at the run's start.
    beside = (4000 * flops / 0.6, 5000 * flops / 0.45, 6000 * flops / 0.4)
    results = {
        "char training, LSTM": {"ours": runs(90, 100, 130), "torch": runs(100, 100, 100)},
        "word training, LSTM": {"ours": runs(4000, 5000, 6000, gflops=beside),
                                "torch": runs(3000, 3000, 3000, rss=(300.0, 100.0), gflops=[3000 * flops / 0.3] * 3)},
    }
    table = run.report(results, 5000 * flops / 0.4, 2, 60.0, "2.13.0").splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table if line.startswith("| ")]
    row = {c[0]: c[1:] for c in cells}
    assert all(len(c) == 7 for c in cells)
    assert row["char training, LSTM (tokens/s)"] == ["100", "100", "1.00x", "0.90-1.30x", "1.0x", "yes"]
    assert row["word training, LSTM (tokens/s)"][2:4] == ["1.67x", "1.33-2.00x"]
    assert row["word training, LSTM: lm's share of the matmul peak beside it"][2:] == ["45.0%", "40.0%-60.0%", "50%", "NO"]
    assert row["word training, LSTM: lm's share of the run's best peak"][2] == "40.0%"
    assert row["word training, LSTM: PyTorch's share of the matmul peak beside it"][2:4] == ["30.0%", "30.0%-30.0%"]
    assert row["word training, LSTM: peak resident memory (MiB)"][2:] == ["1.33x", "", "at most 1.5x", "yes"]
    assert "(1.0 minutes)" in table


def test_the_share_case_takes_the_higher_of_the_peaks_measured_just_before_and_after_its_run(monkeypatch):
    import run

    calls = []
    peaks = iter([150.0, 120.0, 110.0, 140.0])  # before and after lm's run, then PyTorch's

    def worker(impl, case, data, env):
        calls.append(impl)
        return {"gflops": next(peaks)} if impl == "peak" else {"rate": 1.0}

    monkeypatch.setattr(run, "worker", worker)
    assert run.measured("ours", run.SHARE, Path("."), {}) == {"rate": 1.0, "gflops": 150.0}
    assert run.measured("torch", run.SHARE, Path("."), {}) == {"rate": 1.0, "gflops": 140.0}
    assert calls == ["peak", "ours", "peak", "peak", "torch", "peak"]
    assert run.measured("torch", "char training, LSTM", Path("."), {}) == {"rate": 1.0}


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) to build bench/softmax_in_c.py's function")
def test_the_c_softmax_experiment_computes_what_lm_does(tmp_path):
    import softmax_in_c

    fast = softmax_in_c.in_c(softmax_in_c.build(tmp_path))
    loss_diff, grad_diff = softmax_in_c.agreement(fast)
    assert loss_diff < 1e-6 and grad_diff < 2e-6  # a wrong polynomial term (1/72 for 1/720) gives 4e-6
    logits = np.array([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]], np.float32)
    loss, grad = fast(logits, np.array([2, 0]), 0.5)
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    assert np.isclose(loss, -np.log(p[2]) + np.log(3), rtol=1e-6)
    np.testing.assert_allclose(grad, 0.5 * (np.array([p, [1 / 3] * 3]) - [[0, 0, 1], [1, 0, 0]]), atol=1e-6)

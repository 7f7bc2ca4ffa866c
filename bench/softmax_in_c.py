"""An experiment for issue 3's open question, not part of lm: what the word LSTM case would gain
from lm's one function that NumPy cannot make fast, the softmax + cross-entropy, written in C.

In a word training step each process's softmax runs over 200 x 10,000 logits: four NumPy passes,
one of them NumPy's float32 `exp` at 2.3-2.5 ns a value (bench/HISTORY.md). This builds the same
function (lm.ops.softmax_cross_entropy's contract: the summed loss, and the logits overwritten
with scale * (ŷ - onehot(y))) in C: per row, one pass for the maximum, one for exp and the row
sum, one to scale. Its exp is 2^n times a polynomial, which the compiler turns into vector code.

One Trainer runs the bench's word LSTM case, as `make bench` does, with a switch in shared memory
in place of lm.model.softmax_cross_entropy, so that both training processes use lm's softmax or
the C one: blocks of steps of each, alternated, and the matmul peak measured between them.
Runs in separate processes (the bench's way) differ from each other by more than this change.

    python bench/softmax_in_c.py [--rounds 20]

Needs a C compiler (`cc`) and ../shared/corpora (or --corpora). lm itself never uses this code:
whether lm may carry compiled code is the team's decision (bench/HISTORY.md).
"""

import argparse
import ctypes
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ours  # noqa: E402
import run  # noqa: E402
from cases import CASES  # noqa: E402

import lm.model  # noqa: E402
from lm.data import Batches  # noqa: E402
from lm.ops import softmax_cross_entropy  # noqa: E402
from lm.parallel import shared_zeros  # noqa: E402
from lm.tokenizer import Tokenizer  # noqa: E402

STEPS = 10  # a block of steps with one softmax

C_SOURCE = r"""
#include <math.h>
#include <stdint.h>

/* e^x for x <= 0: 2^n p(f), n = round(x / ln 2), f = x - n ln 2 in [-ln2/2, ln2/2], p the
   degree-6 Taylor polynomial (relative error about 1e-7); below -87 it is held at e^-87, which
   beside the row's largest term, e^0, is nothing. */
static inline float exp_nonpositive(float x) {
    x = x < -87.f ? -87.f : x;
    float n = floorf(x * 1.44269504f + 0.5f);
    float f = x - n * 0.69314718f;
    float p = 1.f + f * (1.f + f * (0.5f + f * (1.f / 6 + f * (1.f / 24 + f * (1.f / 120 + f * (1.f / 720))))));
    union { int32_t i; float f; } two_n = { ((int32_t)n + 127) << 23 };
    return p * two_n.f;
}

double softmax_cross_entropy(float *logits, long n, long v, const int64_t *y, float scale) {
    double loss = 0.0;
    for (long i = 0; i < n; i++) {
        float *row = logits + i * v;
        float top = row[0];
        for (long j = 0; j < v; j++) top = row[j] > top ? row[j] : top;
        float total = 0.f;
        for (long j = 0; j < v; j++) { row[j] = exp_nonpositive(row[j] - top); total += row[j]; }
        loss += log((double)total) - log((double)row[y[i]]);
        float r = scale / total;
        for (long j = 0; j < v; j++) row[j] *= r;
        row[y[i]] -= scale;
    }
    return loss;
}
"""


def build(folder: Path) -> Path:
    """The C function compiled for this machine's CPU, as a shared library in folder."""
    source, library = folder / "softmax.c", folder / "softmax.so"
    source.write_text(C_SOURCE)
    try:
        subprocess.run(["cc", "-O3", "-march=native", "-ffast-math", "-fPIC", "-shared", "-o", str(library),
                        str(source)], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"softmax_in_c: no C compiler could build it: {getattr(e, 'stderr', '') or e}")
    return library


def in_c(library: Path):
    """The compiled function with lm.ops.softmax_cross_entropy's signature (float32 only)."""
    call = ctypes.CDLL(str(library)).softmax_cross_entropy
    call.restype = ctypes.c_double
    call.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_float]

    def softmax_in_c(logits: np.ndarray, y: np.ndarray, scale: float = 1.0):
        if logits.dtype != np.float32 or not logits.flags.c_contiguous:
            raise TypeError("the C softmax takes C-ordered float32 logits only")
        y = np.ascontiguousarray(y, dtype=np.int64)
        return float(call(logits.ctypes.data, logits.shape[0], logits.shape[1], y.ctypes.data, scale)), logits

    return softmax_in_c


def agreement(fast) -> tuple[float, float]:
    """The largest relative differences of loss and gradient from lm's own, on word-sized logits."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((200, 10_000), dtype=np.float32) * 3
    y = rng.integers(0, 10_000, 200)
    loss, grad = softmax_cross_entropy(logits.copy(), y, 0.5)
    c_loss, c_grad = fast(logits.copy(), y, 0.5)
    return abs(c_loss - loss) / abs(loss), float(np.abs(c_grad - grad).max() / np.abs(grad).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=HERE.parent.parent / "shared" / "corpora")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if not (args.corpora / "ptb.train.txt").exists():
        sys.exit(f"softmax_in_c: no corpora in {args.corpora} (see ../shared/corpora/README.md)")
    case = CASES[run.SHARE]
    with tempfile.TemporaryDirectory() as tmp:
        fast = in_c(build(Path(tmp)))
        loss_diff, grad_diff = agreement(fast)
        run.prepare(args.corpora, Path(tmp))
        tokenizer = Tokenizer.from_dict(json.loads((Path(tmp) / "whitespace.json").read_text()))
        ids = np.load(Path(tmp) / "ptb.train.txt.npy")
    use_c = shared_zeros(1, np.int8)  # read by both training processes: the worker is forked below
    lm.model.softmax_cross_entropy = lambda *a: (fast if use_c[0] else softmax_cross_entropy)(*a)
    trainer, cfg = ours.make_trainer(case, len(tokenizer))
    windows = itertools.cycle(Batches(ids, tokenizer.start_id, cfg.batch_size, cfg.seq_len))
    for _ in range(case.warmup):
        trainer.step(*next(windows), cfg.lr)
    seconds, peaks = {0: [], 1: []}, []
    for r in range(args.rounds):
        # In a fresh process: this one's BLAS threads would spin on after it, slowing the steps.
        peaks.append(run.worker("peak", "-", Path(os.devnull), dict(os.environ))["gflops"])
        for side in (0, 1) if r % 2 == 0 else (1, 0):
            use_c[0] = side
            for _ in range(STEPS):
                started = time.perf_counter()
                trainer.step(*next(windows), cfg.lr)
                seconds[side].append(time.perf_counter() - started)
    trainer.close()
    tokens, peak = cfg.batch_size * cfg.seq_len, statistics.median(peaks)
    rate = {side: tokens / statistics.median(seconds[side]) for side in (0, 1)}
    share = {side: 3 * case.flops_per_token(len(tokenizer)) * rate[side] / 1e9 / peak for side in (0, 1)}
    print(f"{run.SHARE}: {args.rounds} rounds of {STEPS} steps a side, alternated in one Trainer, "
          f"{os.cpu_count()} cores; matmul peak {peak:.0f} GFLOP/s (median between blocks, "
          f"{min(peaks):.0f}-{max(peaks):.0f}); the C softmax's loss and gradient within {loss_diff:.1e} "
          f"and {grad_diff:.1e} (relative) of lm's\n\n"
          "| softmax | median step (ms) | tokens/s | share of the peak |\n| --- | ---: | ---: | ---: |\n"
          + "".join(f"| {label} | {1e3 * statistics.median(seconds[side]):.1f} | {rate[side]:,.0f} | "
                    f"{share[side]:.1%} |\n" for side, label in ((0, "lm's (NumPy)"), (1, "in C")))
          + f"\nC over NumPy: {rate[1] / rate[0]:.3f}x tokens/s")


if __name__ == "__main__":
    main()

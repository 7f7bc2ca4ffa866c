"""Run one case once, in a fresh process, and print one JSON line of what it measured.

    python bench/worker.py {ours,torch} CASE DATA_DIR      a case from cases.py
    python bench/worker.py peak - -                        NumPy's float32 matmul GFLOP/s

The thread count comes from the environment run.py sets (OMP/OPENBLAS/MKL_NUM_THREADS).
"""

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Clock:
    """Started after the warm-up; stopped by a runner with clean-up to do, else when it returns."""

    def start(self):
        self.t0, self.t1 = time.perf_counter(), None

    def stop(self):
        self.t1 = time.perf_counter()


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    a, b = np.ones((n, n), np.float32), np.ones((n, n), np.float32)
    c = a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return sum(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"
               and "numpy" in pool["filepath"]) or None


def main(impl: str, case_name: str, data: str) -> dict:
    if impl == "peak":
        return {"gflops": matmul_peak(), "blas_threads": blas_threads()}
    from lm.tokenizer import Tokenizer

    if impl == "torch":
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        import reference as runner
    else:
        import ours as runner
    case = CASES[case_name]
    data_dir = Path(data)
    tokenizer = Tokenizer.from_dict(json.loads((data_dir / f"{case.setup['tokenizer']}.json").read_text()))
    ids = np.load(data_dir / f"{case.setup['corpus']}.npy")
    base = rss_mib()
    clock = Clock()
    run = {"train": runner.train, "sample": runner.draw, "score": runner.score}[case.kind]
    tokens = run(case, ids, tokenizer, clock)
    seconds = (clock.t1 or time.perf_counter()) - clock.t0
    # A worker process's peak (lm's training, parallel.Team) is added whole, though the two
    # share the weights and the libraries' pages: the sum overstates the memory used.
    peak = sum(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    return {"tokens": tokens, "seconds": seconds, "rate": tokens / seconds, "peak_rss_mib": peak,
            "base_rss_mib": base, "vocab": len(tokenizer), "blas_threads": blas_threads()}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))

"""Row-separable element-wise work on large arrays, split over the cores.

NumPy's matrix multiplies already use every core (through BLAS), but its element-wise
functions use one. The softmax over a word model's vocabulary is the largest of them (the exp
of T x B x V logits every step), and its rows are independent, so its halves run at once: NumPy
releases the GIL inside a function on a large array, and a thread is enough.

The thread count follows BLAS's own settings (OMP_NUM_THREADS or OPENBLAS_NUM_THREADS when
set), within the cores this process may run on; one thread means no worker at all.
"""

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

MIN_ELEMENTS = 1 << 20  # below this a thread's start-up costs more than it saves


def threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return min(cores, int(value))
    return cores


@functools.cache
def _pool() -> tuple[ThreadPoolExecutor | None, int]:
    n = threads()
    return (ThreadPoolExecutor(n - 1, thread_name_prefix="lm-rows") if n > 1 else None), n


def by_rows(f: Callable, rows: np.ndarray, *per_row: np.ndarray) -> list:
    """[f(rows[part], *(a[part] for a in per_row)) for each part]: the rows cut into one part per
    thread when the array is large enough, else one part; the first part runs here."""
    pool, n = _pool()
    if pool is None or rows.size < MIN_ELEMENTS:
        return [f(rows, *per_row)]
    cuts = np.linspace(0, len(rows), n + 1).astype(int)
    parts = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
    futures = [pool.submit(f, rows[s], *(a[s] for a in per_row)) for s in parts[1:]]
    return [f(rows[parts[0]], *(a[parts[0]] for a in per_row)), *(future.result() for future in futures)]

"""Work split over the cores, for what BLAS does not already spread over them.

NumPy's matrix multiplies use every core (through BLAS), but its element-wise functions use
one, and the time loop of a recurrent layer is mostly element-wise calls and multiplies too
small to gain from BLAS threads. NumPy releases the GIL inside its functions, so Python threads
are enough to use the other cores:

- `by_rows`: a row-separable function on a large array (the softmax over a word model's
  vocabulary, T x B x V logits) done a part of the rows per thread.
- `concurrently`: independent calls (the batch's sequences cut into parts, model.py) one per
  thread, BLAS on one thread meanwhile, so that together they use the cores BLAS would have
  used, without asking for twice as many.
- `in_background`: one call in a worker while this thread goes on (the scorer's softmax of
  one window while the next window's time loop runs, score.py).

Holding BLAS to one thread needs OpenBLAS's run-time setting (`openblas_set_num_threads_local`,
OpenBLAS 0.3.27 and later, which NumPy 2's wheels carry); without it `blas_per_thread()` is
False, and batches are not cut nor scoring windows overlapped.

The thread count follows BLAS's own settings (OMP_NUM_THREADS or OPENBLAS_NUM_THREADS when
set), within the cores this process may run on; one thread means no worker at all.
"""

import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

MIN_ELEMENTS = 1 << 20  # by_rows: below this a thread's start-up costs more than it saves
R = TypeVar("R")


def threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return min(cores, int(value))
    return cores


@functools.cache
def _blas_threads_setter() -> Callable[[int], int] | None:
    """OpenBLAS's openblas_set_num_threads_local (returns the previous count), or None.

    The library is the one NumPy loaded, found among the process's mapped files (Linux)."""
    try:
        maps = Path("/proc/self/maps").read_text().split("\n")
    except OSError:
        return None
    libraries = {line.split()[-1] for line in maps if "openblas" in line.lower() and line.split()[-1].startswith("/")}
    for path in sorted(libraries):
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
        return setter
    return None


def blas_per_thread() -> bool:
    """Whether BLAS can be held to one thread while work is handed out."""
    return _blas_threads_setter() is not None


_inside = threading.local()  # in a worker, or a call `concurrently` runs: no splitting again in there


@contextlib.contextmanager
def one_blas_thread():
    """BLAS on one thread while inside, then as it was. Only the thread that hands out work
    calls this: the setting behaves as process-wide here (a worker's setting also slows this
    thread's multiplies, measured), so workers must not restore it behind this thread's back."""
    setter = _blas_threads_setter()
    before = setter(1) if setter is not None else None
    try:
        yield
    finally:
        if setter is not None:
            setter(before)


def _busy(call: Callable[[], R]) -> R:
    _inside.busy = True
    try:
        return call()
    finally:
        _inside.busy = False


def _start_worker() -> None:
    _inside.worker = True
    setter = _blas_threads_setter()
    if setter is not None:  # where the setting is truly per thread, this worker keeps to one
        setter(1)


@functools.cache
def _pool() -> tuple[ThreadPoolExecutor | None, int]:
    n = threads()
    if n == 1:
        return None, 1
    return ThreadPoolExecutor(n - 1, thread_name_prefix="lm", initializer=_start_worker), n


def parts() -> int:
    """How many threads work can be cut over here: 1 in a worker or a call `concurrently` runs."""
    inside = getattr(_inside, "busy", False) or getattr(_inside, "worker", False)
    return 1 if inside else _pool()[1]


def concurrently(calls: list[Callable[[], R]]) -> list[R]:
    """[call() for call in calls], at most `parts()` of them, at once: the first here, the
    others in worker threads, BLAS on one thread meanwhile."""
    pool, _ = _pool()
    if len(calls) == 1 or pool is None or parts() == 1:
        return [call() for call in calls]
    with one_blas_thread():
        futures = [pool.submit(_busy, call) for call in calls[1:]]
        first = _busy(calls[0])
        return [first, *(future.result() for future in futures)]


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def in_background(call: Callable[[], R]):
    """call() started in a worker thread while this thread goes on; `.result()` waits for it.
    The caller holds `one_blas_thread()` until it has every result. Done here and now when
    there is no worker, or no way to hold BLAS to one thread (two BLAS thread pools would
    fight over the cores)."""
    pool, _ = _pool()
    if pool is None or parts() == 1 or not blas_per_thread():
        return _Done(call())
    return pool.submit(_busy, call)


def cuts(n: int, k: int) -> list[slice]:
    """range(n) cut into k consecutive parts as equal as can be."""
    bounds = np.linspace(0, n, k + 1).astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def by_rows(f: Callable[..., R], rows: np.ndarray, *per_row: np.ndarray) -> list[R]:
    """[f(rows[part], *(a[part] for a in per_row)) for each part]: the rows cut into one part per
    thread when the array is large enough, else one part."""
    k = parts() if rows.size >= MIN_ELEMENTS else 1
    return concurrently([functools.partial(f, rows[s], *(a[s] for a in per_row)) for s in cuts(len(rows), k)])

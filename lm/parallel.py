"""One call at a time run in a worker thread while this thread goes on: the scorer's softmax of
one window while the next window's time loop runs (score.py).

NumPy's matrix multiplies use every core (through BLAS), but a recurrent layer's time loop is
element-wise calls and multiplies too small to gain from BLAS threads, and it cannot be split:
each step needs the one before. NumPy releases the GIL inside its functions, so a Python thread
is enough to keep a second core busy with work that does not depend on the loop.

BLAS is held to one thread meanwhile, so that the two threads together use the cores BLAS would
have used, without asking for twice as many. That needs OpenBLAS's run-time setting
(`openblas_set_num_threads_local`, OpenBLAS 0.3.27 and later, which NumPy 2's wheels carry);
without it, or with one core, the call is made here and now. In the build measured here the
setting acts process-wide, whatever its name says: only the thread that hands out work sets it.

The thread count follows BLAS's own settings (OMP_NUM_THREADS or OPENBLAS_NUM_THREADS when
set), within the cores this process may run on; one thread means no worker at all.

Also tried and measured without gain, so not here: cutting a training batch into parts run in
threads, splitting the softmax's rows over the cores, and running a training window's layers as
a pipeline over the two threads (README, Speed).
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


@contextlib.contextmanager
def one_blas_thread():
    """BLAS on one thread while inside, then as it was; the caller of `in_background` holds it
    until it has every result."""
    setter = _blas_threads_setter()
    before = setter(1) if setter is not None else None
    try:
        yield
    finally:
        if setter is not None:
            setter(before)


_worker = threading.local()


def _start_worker() -> None:
    _worker.busy = True  # in_background from in here runs in place: the worker would wait on itself
    setter = _blas_threads_setter()
    if setter is not None:  # where the setting is truly per thread, the worker keeps to one
        setter(1)


@functools.cache
def _pool() -> ThreadPoolExecutor | None:
    if threads() == 1 or _blas_threads_setter() is None:
        return None
    return ThreadPoolExecutor(1, thread_name_prefix="lm", initializer=_start_worker)


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def in_background(call: Callable[[], R]):
    """call() started in the worker thread while this thread goes on; `.result()` waits for it.
    Made here and now when there is no worker (see above)."""
    pool = _pool()
    if pool is None or getattr(_worker, "busy", False):
        return _Done(call())
    return pool.submit(call)

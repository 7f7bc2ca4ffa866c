"""How lm uses more than one core beyond BLAS's own threads.

NumPy's matrix multiplies use every core (through BLAS), but a recurrent layer's time loop is
element-wise calls and multiplies too small to gain from BLAS threads, and it cannot be split:
each step needs the one before. So the second core would wait while one core runs them.

- Scoring (score.py): one call at a time in a worker thread (`in_background`) while this thread
  goes on: one window's softmax while the next window's time loop runs. NumPy releases the GIL
  inside its functions, so a thread is enough to keep a second core busy with work that does
  not depend on the loop.
- Training (`Team`): the batch split between two processes, each running forward and backward
  for half of the sequences. Threads do not do here: a step is thousands of short NumPy calls,
  and two threads handing the GIL back and forth between them ran no faster than one (also
  tried without gain: splitting the softmax's rows over threads, and a training window's
  layers as a pipeline over two threads; README, Speed). Two processes have a GIL each.

BLAS is held to one thread meanwhile, so that the two threads or processes together use the
cores BLAS would have used, without asking for twice as many (two processes each running two
BLAS threads on two cores ran 15 times slower, their idle BLAS threads spinning). That needs
OpenBLAS's run-time setting (`openblas_set_num_threads_local`, OpenBLAS 0.3.27 and later, which
NumPy 2's wheels carry); without it, or with one core, everything runs here and now. In the
build measured here the setting acts process-wide, whatever its name says: only the thread that
hands out work sets it.

The thread count follows BLAS's own settings (OMP_NUM_THREADS or OPENBLAS_NUM_THREADS when
set), within the cores this process may run on; one thread means no worker at all.
"""

import contextlib
import ctypes
import functools
import mmap
import multiprocessing
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from .errors import LMError

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


def _shared(n: int, dtype) -> np.ndarray:
    """n zeros in memory that a forked child shares with this process, not a copy of it."""
    dtype = np.dtype(dtype)
    return np.frombuffer(mmap.mmap(-1, max(n, 1) * dtype.itemsize), dtype, n)


def run_sequences(model, x: np.ndarray, y: np.ndarray, state: list, scale: float) -> float:
    """The summed loss of inputs x and targets y (T, B), the gradients of scale * L in
    model.grads, and the carried state (a list of per-layer tuples of (B, H)) moved on in place."""
    loss, _, moved = model.loss_and_grads(np.ascontiguousarray(x), np.ascontiguousarray(y), list(state), scale)
    for parts, new in zip(state, moved):
        for part, value in zip(parts, new):
            part[:] = value
    return loss


class Team:
    """A training step's batch split between this process and a forked worker process.

    Sequences [:split] run here, [split:] in the worker; the summed gradient is the whole
    batch's. The parameters, the worker's gradients and the carried state live in shared memory
    (anonymous mmap, inherited through fork): the worker reads the weights this process's
    optimizer writes, and this process adds the worker's gradients to its own. A step sends the
    worker its sequences and gets back its loss: one small message each way.

    `state` is the whole batch's carried state, a list of per-layer tuples of (B, H) arrays in
    shared memory: write it in place, and the worker sees it.
    """

    # A step costs the team about half a millisecond more in messages and wake-ups; below about
    # this many positions x hidden units x layers a step takes under 5 ms, and the split lost
    # (measured on the README's 2-core machine: 2x the time at 3 x 5 x 8 x 2, 1.1x at 16 x 20 x 64,
    # 0.9x at 4 x 50 x 128 and 32 x 50 x 32, 0.86x at 32 x 50 x 128 x 2).
    MIN_WORK = 25_000

    @staticmethod
    def worth_it(model, batch: int, seq_len: int) -> bool:
        """A step big enough, two cores, fork (Linux), and BLAS held to one thread per process."""
        work = batch * seq_len * model.config.hidden * model.config.layers
        return (batch >= 2 and work >= Team.MIN_WORK and threads() >= 2 and sys.platform.startswith("linux")
                and "fork" in multiprocessing.get_all_start_methods() and _blas_threads_setter() is not None)

    def __init__(self, model, batch: int):
        self.model, self.split = model, (batch + 1) // 2
        layers, parts, H = model.config.layers, model.cell.state_size, model.config.hidden
        model.place(_shared(model.num_params(), model.dtype), model.grad)
        store = _shared(layers * parts * batch * H, model.dtype).reshape(layers, parts, batch, H)
        self.state = [tuple(layer) for layer in store]
        self._own = [tuple(part[: self.split] for part in layer) for layer in store]
        grad = _shared(model.num_params(), model.dtype)  # the worker's
        context = multiprocessing.get_context("fork")
        self._conn, theirs = context.Pipe()
        worker = context.Process(target=_serve, name="lm-train", daemon=True,
                                 args=(model, grad, [tuple(part[self.split :] for part in layer) for layer in store],
                                       theirs))
        worker.start()
        theirs.close()
        self._grad, self._worker = grad, worker
        self._stop = weakref.finalize(self, _stop, self._conn, worker)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, scale: float) -> float:
        """As run_sequences over the whole batch, with the state in self.state. Call with BLAS
        held to one thread (one_blas_thread): the worker runs on the other core meanwhile."""
        s = self.split
        self._talk(self._conn.send, (x[:, s:], y[:, s:], scale))
        loss = run_sequences(self.model, x[:, :s], y[:, :s], self._own, scale)
        theirs = self._talk(self._conn.recv)
        if isinstance(theirs, str):
            raise LMError(f"the training worker process failed: {theirs}")
        self.model.grad += self._grad
        return loss + theirs

    def _talk(self, call, *args):
        try:
            return call(*args)
        except (EOFError, OSError):
            self._worker.join(timeout=1)
            raise LMError(f"the training worker process stopped (exit code {self._worker.exitcode}); "
                          f"set OMP_NUM_THREADS=1 to train in one process") from None

    def close(self) -> None:
        self._stop()


def _serve(model, grad: np.ndarray, state: list, conn) -> None:
    """The worker: steps on its sequences until told to stop or this end of the pipe closes."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # a terminal's Ctrl-C, or systemd, signals every
        signal.signal(sig, signal.SIG_IGN)  # process of the run: the parent stops it, at a step's end
    model.place(model.flat, grad)
    with one_blas_thread():
        while True:
            try:
                job = conn.recv()
                if job is None:
                    return
                try:
                    reply = run_sequences(model, *job[:2], state, job[2])
                except Exception as e:  # handed to the parent, which ends the run with it
                    reply = f"{type(e).__name__}: {e}"
                conn.send(reply)
            except (EOFError, OSError):  # the parent is gone
                return


def _stop(conn, worker) -> None:
    try:
        conn.send(None)
    except OSError:
        pass
    conn.close()
    worker.join(timeout=5)
    if worker.is_alive():
        worker.terminate()
        worker.join()

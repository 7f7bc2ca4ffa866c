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
  layers as a pipeline over two threads; bench/HISTORY.md). Two processes have a GIL each.

BLAS is held to one thread meanwhile, so that the two threads or processes together use the
cores BLAS would have used, without asking for twice as many (two processes each running two
BLAS threads on two cores ran 15 times slower, their idle BLAS threads spinning). That needs
OpenBLAS's run-time setting (`openblas_set_num_threads_local`, OpenBLAS 0.3.27 and later, which
NumPy 2's wheels carry); without it, or with one core, everything runs here and now. In the
build measured here the setting acts process-wide, whatever its name says: only the thread that
hands out work sets it.

The thread count follows BLAS's own settings, read as OpenBLAS reads them (OPENBLAS_NUM_THREADS,
then GOTO_NUM_THREADS, then OMP_NUM_THREADS), within the cores this process may run on; one
thread means no worker at all.
"""

import contextlib
import copy
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

from . import optim
from .errors import LMError

R = TypeVar("R")


def threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for var in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
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


def shared_zeros(n: int, dtype) -> np.ndarray:
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


class Solo:
    """A training step's work, all in this process: what the Trainer runs without a Team.

    A step is loss_and_grads, then sum_of_squares of the gradient (clipping by value on the
    way), then update with the optimizer; `state` is the carried state, a list of per-layer
    tuples of (B, H) arrays, to be written in place.

    With SGD the last two skip the embedding rows of tokens not in the window: their gradient
    is 0 and the step would leave them as they are. In a word model they are most of the
    parameters (2 of 4.7 million in the Penn Treebank case), and both passes are bound by memory.
    """

    zeros = staticmethod(np.zeros)  # what the optimizer's arrays are made with

    def __init__(self, model, batch: int, opt: optim.SGD, state: list | None = None):
        """state: the carried state's arrays, when they must live elsewhere (Team's shared memory)."""
        self.model, self.opt = model, opt
        self.state = state if state is not None else model.zero_state(batch)
        self._rest = slice(0 if opt.every_parameter else model.params["Wax"].size, None)

    def _parts(self, x: np.ndarray) -> list:
        """What this process sums and updates: the rows of x's tokens, then `_rest`."""
        return [self._rest] if self.opt.every_parameter else [self.model.embedding_rows(x), self._rest]

    @contextlib.contextmanager
    def cores(self):
        """The context a step runs in."""
        yield

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, scale: float) -> float:
        self._live = self._parts(x)
        return run_sequences(self.model, x, y, self.state, scale)

    def sum_of_squares(self, max_value: float | None) -> tuple[float, bool]:
        return _sum_parts(self.model.grad, None, self._live, max_value)

    def update(self, lr: float, scale: float) -> None:
        _apply(self.opt, self.opt.advance(lr), self.model.flat, self.model.grad, scale, self._live)

    def close(self) -> None:
        pass


class Team(Solo):
    """A training step split between this process and a forked worker process.

    The batch's sequences [:split] run here, [split:] in the worker, each process's gradients
    in its own array. Then each process sums the two arrays over its half of the parameters,
    with the sums of squares for clipping, and updates its half of the parameters. The
    parameters, both gradient arrays, the optimizer's moments and the carried state live in
    shared memory (anonymous mmap, inherited through fork). Each of the three phases is one small
    message to the worker and one back.
    """

    # A step costs the team about half a millisecond more in messages and wake-ups; below about
    # this many positions x hidden units x layers a step takes under 5 ms, and the split lost
    # (measured on the README's 2-core machine: 2x the time at 3 x 5 x 8 x 2, 1.1x at 16 x 20 x 64,
    # 0.9x at 4 x 50 x 128 and 32 x 50 x 32, 0.86x at 32 x 50 x 128 x 2).
    MIN_WORK = 25_000
    zeros = staticmethod(shared_zeros)

    @staticmethod
    def worth_it(model, batch: int, seq_len: int) -> bool:
        """A step big enough, two cores, fork (Linux), and BLAS held to one thread per process."""
        work = batch * seq_len * model.config.hidden * model.config.layers
        return (batch >= 2 and work >= Team.MIN_WORK and threads() >= 2 and sys.platform.startswith("linux")
                and "fork" in multiprocessing.get_all_start_methods() and _blas_threads_setter() is not None)

    def __init__(self, model, batch: int, opt: optim.SGD):
        """opt: the optimizer, its arrays made by Team.zeros."""
        layers, parts, H = model.config.layers, model.cell.state_size, model.config.hidden
        store = shared_zeros(layers * parts * batch * H, model.dtype).reshape(layers, parts, batch, H)
        super().__init__(model, batch, opt, [tuple(layer) for layer in store])
        self.split = (batch + 1) // 2
        n = model.num_params()
        model.place(shared_zeros(n, model.dtype), shared_zeros(n, model.dtype))
        self._own = [tuple(part[: self.split] for part in layer) for layer in store]
        middle = (self._rest.start + n) // 2  # the rest of the parameters split in two
        self._rest, theirs = slice(self._rest.start, middle), slice(middle, None)
        self._grad = shared_zeros(n, model.dtype)  # the worker's gradients
        context = multiprocessing.get_context("fork")
        self._conn, end = context.Pipe()
        worker = context.Process(
            target=_serve, name="lm-train", daemon=True,
            args=(model, self._grad, [tuple(part[self.split :] for part in layer) for layer in store], opt,
                  [theirs], end, self._conn))
        worker.start()
        end.close()
        self._worker = worker
        self._stop = weakref.finalize(self, _stop, self._conn, worker)

    def cores(self):
        """BLAS on one thread here while the worker runs on the other core (it keeps to one)."""
        return one_blas_thread()

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, scale: float) -> float:
        """The whole batch's loss; its gradients are in model.grad and the worker's array, to be
        summed by sum_of_squares."""
        s = self.split
        self._talk(("run", x[:, s:], y[:, s:], scale))
        self._live = self._parts(x)
        loss = run_sequences(self.model, x[:, :s], y[:, :s], self._own, scale)
        return loss + self._answer()

    def sum_of_squares(self, max_value: float | None) -> tuple[float, bool]:
        """Sums the two gradient arrays into model.grad, each process over its parts."""
        self._talk(("sum", max_value))
        squares, clipped = _sum_parts(self.model.grad, self._grad, self._live, max_value)
        theirs, their_clipped = self._answer()
        return squares + theirs, clipped or their_clipped

    def update(self, lr: float, scale: float) -> None:
        rate = self.opt.advance(lr)
        self._talk(("update", rate, scale))
        _apply(self.opt, rate, self.model.flat, self.model.grad, scale, self._live)
        self._answer()  # the next step reads the worker's part of the weights

    def _talk(self, job: tuple) -> None:
        self._exchange(self._conn.send, job)

    def _answer(self):
        answer = self._exchange(self._conn.recv)
        if isinstance(answer, str):
            raise LMError(f"the training worker process failed: {answer}")
        return answer

    def _exchange(self, call, *args):
        try:
            return call(*args)
        except (EOFError, OSError):
            self._worker.join(timeout=1)
            raise LMError(f"the training worker process stopped (exit code {self._worker.exitcode}); "
                          f"set OPENBLAS_NUM_THREADS=1 to train in one process") from None

    def close(self) -> None:
        self._stop()


def _sum_parts(grad: np.ndarray, other: np.ndarray | None, parts: list, max_value: float | None
               ) -> tuple[float, bool]:
    """grad[part] += other[part] for each part (slices, or arrays of offsets), clipped by value;
    their Σ g² and whether anything was clipped."""
    squares, clipped = 0.0, False
    for part in parts:
        g = grad[part]
        if other is not None:
            g += other[part]
        more, by_value = optim.sum_of_squares(g, max_value)
        if not isinstance(part, slice):
            grad[part] = g  # gathered: a copy
        squares, clipped = squares + more, clipped or by_value
    return squares, clipped


def _apply(opt: optim.SGD, rate: float, theta: np.ndarray, grad: np.ndarray, scale: float, parts: list) -> None:
    for part in parts:
        opt.apply(rate, theta, grad, scale, part)


def _serve(model, grad: np.ndarray, state: list, opt: optim.SGD, parts: list, conn, parents_end) -> None:
    """The worker: does as told until told to stop or the parent is gone. Its own gradients go
    to `grad`; the parent's are model.grad, as the parent placed them."""
    # Forked, this process holds a copy of the parent's end of the pipe: while it is open, a
    # parent killed outright (SIGKILL, the OOM killer) never shows here as the pipe's end, and
    # this process would live on, holding the model's lock file that the fork also handed it.
    parents_end.close()
    for sig in (signal.SIGINT, signal.SIGTERM):  # a terminal's Ctrl-C, or systemd, signals every
        signal.signal(sig, signal.SIG_IGN)  # process of the run: the parent stops it, at a step's end
    theirs = model.grad
    mine = copy.copy(model)
    mine.place(model.flat, grad)
    with one_blas_thread(), np.errstate(all="ignore"):  # as Trainer.step: non-finite results are reported
        while True:
            try:
                job = conn.recv()
                if job is None:
                    return
                kind, *args = job
                try:
                    if kind == "run":
                        x, y, scale = args
                        reply = run_sequences(mine, x, y, state, scale)
                    elif kind == "sum":
                        reply = _sum_parts(theirs, grad, parts, *args)
                    else:
                        rate, scale = args
                        reply = _apply(opt, rate, model.flat, theirs, scale, parts)
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
        worker.kill()  # it ignores SIGTERM (see _serve)
        worker.join()

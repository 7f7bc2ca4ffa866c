"""The worker thread of parallel.py: results as if made in place, BLAS's threads left as they were."""

import numpy as np
import pytest

from lm import parallel


def _blas_threads() -> int:
    setter = parallel._blas_threads_setter()
    current = setter(1)
    setter(current)
    return current


def test_blas_threads_are_as_they_were_after_work_is_handed_out():
    """OpenBLAS's thread setting acts process-wide here: a worker that changed it behind this
    thread's back left this thread's multiplies on one core (seen: the output layer twice as slow)."""
    if parallel._pool() is None:
        pytest.skip("one core, or no BLAS thread setting: no worker")
    before = _blas_threads()
    m = np.ones((64, 64), dtype=np.float32)
    for _ in range(3):
        with parallel.one_blas_thread():
            assert _blas_threads() == 1
            pending = parallel.in_background(lambda: m @ m)
            assert pending.result().shape == (64, 64)
        assert _blas_threads() == before


def test_work_handed_out_from_the_worker_is_done_in_place():
    if parallel._pool() is None:
        pytest.skip("no worker")
    nested = parallel.in_background(lambda: parallel.in_background(lambda: 7))
    assert nested.result().result() == 7  # would wait on itself forever if it were queued


def test_blas_thread_settings_are_followed(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert parallel.threads() == 1

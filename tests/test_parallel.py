"""Row-separable work split over the cores (parallel.py) gives what one part gives."""

import numpy as np
import pytest

from lm import parallel
from lm.ops import softmax, softmax_cross_entropy, target_logprobs


@pytest.fixture
def split_everything(monkeypatch):
    if parallel.threads() < 2:
        pytest.skip("one core: nothing is split")
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)


def test_the_split_softmax_cross_entropy_is_the_softmax_cross_entropy(split_everything):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (7, 11))
    y = rng.integers(0, 11, 7)
    p = softmax(logits)
    loss, grad = softmax_cross_entropy(logits.copy(), y, scale=0.5)
    assert loss == pytest.approx(-np.log(p[np.arange(7), y]).sum(), rel=1e-12)
    expected = p.copy()
    expected[np.arange(7), y] -= 1.0
    np.testing.assert_allclose(grad, 0.5 * expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(target_logprobs(logits.copy(), y), np.log(p[np.arange(7), y]), rtol=1e-12)


def test_every_row_is_done_once_in_order(split_everything):
    rows = np.arange(10.0)[:, None]
    parts = parallel.by_rows(lambda r, k: r[:, 0] * 10 + k, rows, np.arange(10))
    assert len(parts) == parallel.threads()
    np.testing.assert_array_equal(np.concatenate(parts), np.arange(10) * 11)


def test_blas_thread_settings_are_followed(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert parallel.threads() == 1


def _blas_threads() -> int:
    setter = parallel._blas_threads_setter()
    current = setter(1)
    setter(current)
    return current


def test_blas_threads_are_as_they_were_after_work_is_handed_out():
    """OpenBLAS's thread setting acts process-wide here: a worker that changed it would leave
    this thread's multiplies on one core (seen: the output layer twice as slow)."""
    if parallel.parts() < 2 or not parallel.blas_per_thread():
        pytest.skip("one core, or no BLAS thread setting")
    before = _blas_threads()
    m = np.ones((64, 64), dtype=np.float32)
    for _ in range(3):
        parallel.concurrently([lambda: m @ m, lambda: m @ m])
        with parallel.one_blas_thread():
            assert parallel.in_background(lambda: m @ m).result().shape == (64, 64)
            assert _blas_threads() == 1
        assert _blas_threads() == before

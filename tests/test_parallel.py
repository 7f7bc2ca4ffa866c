"""parallel.py: the scorer's worker thread (results as if made in place, BLAS's threads left as
they were) and the training team of two processes (the same training as one process's)."""

import os
import signal
import sys

import numpy as np
import pytest

from lm import optim, parallel
from lm.config import ModelConfig, TrainConfig
from lm.errors import LMError
from lm.model import Model
from lm.train import Trainer


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
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("GOTO_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert parallel.threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # OpenBLAS reads it before OMP_NUM_THREADS
    assert parallel.threads() == 1


# ----- training split between two processes (parallel.Team) -----

needs_fork = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the team forks, on Linux only")


def _trainer(monkeypatch, team: bool, cell="lstm", **settings):
    monkeypatch.setattr(parallel.Team, "MIN_WORK", 0)
    monkeypatch.setattr(parallel, "threads", lambda: 2 if team else 1)
    config = ModelConfig(vocab=11, cell=cell, layers=2, hidden=12, embed=6)
    trainer = Trainer(Model.init(config, np.random.default_rng(0)), TrainConfig(seq_len=7, batch_size=5, **settings))
    assert isinstance(trainer.team, parallel.Team) == team
    return trainer


@needs_fork
@pytest.mark.parametrize("cell, settings", [
    ("rnn", dict(optimizer="adam")),
    ("gru", dict(optimizer="sgd", lr=0.5, clip=0.5)),  # clipped by norm
    ("lstm", dict(optimizer="adam", clip_value=0.01)),  # and by value
])
def test_a_team_trains_as_one_process_does(monkeypatch, cell, settings):
    """Same losses, norms, gradients, carried state and weights, step after step, with an odd
    batch (3 sequences here, 2 in the worker) and a reset of the state between."""
    alone, team = _trainer(monkeypatch, False, cell, **settings), _trainer(monkeypatch, True, cell, **settings)
    ids = np.random.default_rng(1).integers(0, 11, (4, 8, 5))
    try:
        for k in range(3):
            if k == 2:
                alone.reset_state()
                team.reset_state()
            one, two = alone.step(ids[k, :7], ids[k, 1:], 0.01), team.step(ids[k, :7], ids[k, 1:], 0.01)
            np.testing.assert_allclose(two[:2], one[:2], rtol=1e-5)
            assert two[2] == one[2] == ("clip" in str(settings))
            np.testing.assert_allclose(team.model.grad, alone.model.grad, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(team.model.flat, alone.model.flat, rtol=1e-5, atol=1e-6)
            for a, b in zip(alone.state, team.state):
                np.testing.assert_allclose(np.concatenate(b), np.concatenate(a), rtol=1e-5, atol=1e-6)
            assert np.abs(np.concatenate(team.state[0])[:, 3:]).sum() > 0  # the worker's rows moved on
    finally:
        team.close()


@pytest.fixture
def team_trainer(monkeypatch):
    trainer = _trainer(monkeypatch, True)
    yield trainer
    trainer.close()


@needs_fork
def test_a_failure_in_the_worker_ends_the_step_with_one_clear_error(team_trainer):
    x = np.zeros((7, 5), dtype=np.int64)
    x[:, 4] = 99  # not in the vocabulary: only the worker's sequences fail
    with pytest.raises(LMError, match="training worker process failed: IndexError"):
        team_trainer.step(x, x, 0.01)


@needs_fork
def test_a_worker_that_dies_ends_the_step_with_one_clear_error_and_close_ends_it(monkeypatch, team_trainer):
    x = np.zeros((7, 5), dtype=np.int64)
    team_trainer.step(x, x, 0.01)
    worker = team_trainer.team._worker
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    with pytest.raises(LMError, match="worker process stopped"):
        team_trainer.step(x, x, 0.01)
    team_trainer.close()
    healthy = _trainer(monkeypatch, True)
    healthy.close()
    assert not healthy.team._worker.is_alive()


@pytest.mark.parametrize("team", [False, pytest.param(True, marks=needs_fork)])
def test_sgd_steps_skip_only_embedding_rows_whose_gradient_is_zero(monkeypatch, team):
    """A step that sums, clips and updates only the rows of the window's tokens (and the other
    parameters) moves the weights exactly as the step over every parameter: rows of tokens not
    in the window, here 6 to 10, stay as they were, and the others move."""
    trainer = _trainer(monkeypatch, team, "lstm", optimizer="sgd", lr=0.5, clip=0.5)
    reference = Model.init(trainer.model.config, np.random.default_rng(0))
    x = np.random.default_rng(2).integers(0, 6, (7, 5))
    x[0, :] = -1  # the zero vector, no row
    y = np.random.default_rng(3).integers(0, 11, (7, 5))
    try:
        trainer.step(x, y, 0.5)
    finally:
        trainer.close()
    state = reference.zero_state(5)
    parallel.run_sequences(reference, x, y, state, 1 / 5)
    squares, _ = optim.sum_of_squares(reference.grad, 0)
    _, scale, clipped = optim.clip_factor(squares, 0.5)
    optim.SGD().step(reference.flat, reference.grad, 0.5, scale)
    assert clipped
    np.testing.assert_allclose(trainer.model.flat, reference.flat, rtol=1e-5, atol=1e-7)
    before = Model.init(trainer.model.config, np.random.default_rng(0)).params["Wax"]
    assert np.array_equal(trainer.model.params["Wax"][6:], before[6:])
    assert not np.allclose(trainer.model.params["Wax"][:6], before[:6])

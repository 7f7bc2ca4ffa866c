"""Nothing lost, nothing crashes: interrupted and resumed training, failed writes, non-finite
losses, and every bad input of the "What happens when..." list in the README."""

import errno
import math
import os
import shlex
import signal
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_utils import TINY_FLAGS, assert_ok, assert_one_line_error, run_lm, run_main
from conftest import CORPUS_TEXT, TINY, write_corpus

import lm
from lm import checkpoint, cli, parallel
from lm.model import Model
from lm.train import Notice, StepInfo

# ----- interrupted and resumed training -----


def _signal_at(steps: int, sig=signal.SIGINT):
    """A progress callback that sends `sig` to this process after the given number of steps."""
    seen = 0

    def report(info):
        nonlocal seen
        if isinstance(info, StepInfo):
            seen += 1
            if seen == steps:
                os.kill(os.getpid(), sig)

    return report


def _assert_same_run(a, b):
    for name in a.model.params:
        np.testing.assert_array_equal(a.model.params[name], b.model.params[name], err_msg=name)
    for key in ("train_loss", "valid_loss", "lr"):
        assert [h[key] for h in a.meta["history"]] == [h[key] for h in b.meta["history"]], key
    assert a.meta.get("grad_stats") == b.meta.get("grad_stats")


@pytest.mark.parametrize(
    "settings, stops",
    [
        (dict(cell="lstm", layers=2), (7, 20)),  # Adam; stopped mid-epoch twice
        (dict(cell="gru", optimizer="sgd", lr=0.5, lr_decay=0.5), (18,)),  # at the end of epoch 1's steps
        (dict(cell="rnn", lr_schedule="plateau", lr_decay=0.5), (30,)),
    ],
    ids=["lstm-adam-twice", "gru-sgd-decay", "rnn-plateau"],
)
def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, corpus, settings, stops):
    kw = {**TINY, "epochs": 3, "grad_stats": True, **settings}
    lm.train(corpus, tmp_path / "whole.npz", **kw)
    path = tmp_path / "parts.npz"
    first = lm.train(corpus, path, on_progress=_signal_at(stops[0]), **kw)
    assert first.stopped == "SIGINT" and first.resume_path == checkpoint.resume_path(path)
    for more in stops[1:]:
        assert lm.train(corpus, path, resume=True, on_progress=_signal_at(more)).stopped == "SIGINT"
    last = lm.train(corpus, path, resume=True)
    assert last.stopped is None and last.resume_path is None
    assert not checkpoint.resume_path(path).exists()
    _assert_same_run(lm.load(tmp_path / "whole.npz"), lm.load(path))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the team forks, on Linux only")
def test_a_run_split_between_two_processes_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, corpus,
                                                                                         monkeypatch):
    teams = []
    monkeypatch.setattr(parallel.Team, "MIN_WORK", 0)
    monkeypatch.setattr(parallel, "threads", lambda: 2)
    monkeypatch.setattr(parallel.Team, "close", lambda team, close=parallel.Team.close: (teams.append(team), close(team)))
    test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, corpus, dict(layers=2), (7, 20))
    assert len(teams) == 4 and not any(team._worker.is_alive() for team in teams)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the team forks, on Linux only")
def test_a_damaged_resume_file_ends_its_team_too(tmp_path, corpus, monkeypatch):
    teams = []
    monkeypatch.setattr(parallel.Team, "MIN_WORK", 0)
    monkeypatch.setattr(parallel, "threads", lambda: 2)
    monkeypatch.setattr(parallel.Team, "close", lambda team, close=parallel.Team.close: (teams.append(team), close(team)))
    result = lm.train(corpus, tmp_path / "m.npz", on_progress=_signal_at(3), **TINY)
    ckpt = lm.load(result.resume_path)
    ckpt.extra["state.0.0"] = ckpt.extra["state.0.0"][:1]
    checkpoint.save(result.resume_path, ckpt)
    with pytest.raises(lm.LMError, match="training arrays do not fit"):
        lm.train(corpus, tmp_path / "m.npz", resume=True)
    assert len(teams) == 2 and not any(team._worker.is_alive() for team in teams)


@pytest.mark.parametrize("change", [{"step": -5}, {"step": 10**6}, {"lr": "x"}, {"epoch": "x"}, {"epoch": 0},
                                    {"total_steps": 2.5}, {"step": None}, {"history": "abc"}, {"history": {}},
                                    {"corpus": None}, {"corpus": {"name": "c.txt"}}, {"valid": "x"}],
                         ids=["step-negative", "step-past-the-epoch", "lr-text", "epoch-text", "epoch-0",
                              "fractional-steps", "step-null", "history-text", "history-object", "corpus-null",
                              "corpus-without-checksum", "valid-text"])
def test_a_resume_file_with_damaged_run_state_is_one_error_and_stays(tmp_path, corpus, change):
    """Each failed with a traceback (IndexError, TypeError, AttributeError), or went on at a
    step past the epoch's end."""
    result = lm.train(corpus, tmp_path / "m.npz", on_progress=_signal_at(3), **TINY)
    ckpt = lm.load(result.resume_path)
    if {"history", "corpus", "valid"} & set(change):
        ckpt.meta.update(change)
    else:
        ckpt.meta["resume"].update(change)
    checkpoint.save(result.resume_path, ckpt)
    with pytest.raises(lm.LMError, match="damaged") as caught:
        lm.train(corpus, tmp_path / "m.npz", resume=True)
    assert result.resume_path.exists()
    assert "--" not in str(caught.value)  # a run's step is no flag: "--step must be ..." named one
    if {"history", "corpus", "valid"} & set(change):
        assert f"its {next(iter(change))} " in str(caught.value)
    elif "must be" in str(caught.value):  # a field's own check, not the step against the epoch's length
        assert f"the run's {next(iter(change)).replace('_', ' ')} must be" in str(caught.value)


def test_a_resume_file_with_an_infinite_step_count_is_damaged(tmp_path, corpus):
    """Adam's step count as inf: an OverflowError traceback."""
    result = lm.train(corpus, tmp_path / "m.npz", on_progress=_signal_at(3), **TINY)
    ckpt = lm.load(result.resume_path)
    ckpt.extra["opt.t"] = np.array(np.inf)
    checkpoint.save(result.resume_path, ckpt)
    with pytest.raises(lm.LMError, match="damaged: its training arrays"):
        lm.train(corpus, tmp_path / "m.npz", resume=True)


def test_a_run_begun_when_lm_kept_a_byte_order_mark_says_why_it_cannot_resume(tmp_path, corpus):
    """Its corpus hash included the mark, which lm now drops: "not the text this run was trained
    on" was wrong about the file."""
    import hashlib
    (tmp_path / "bom.txt").write_text("\ufeff" + corpus.read_text())
    result = lm.train(tmp_path / "bom.txt", tmp_path / "m.npz", on_progress=_signal_at(3), **TINY)
    ckpt = lm.load(result.resume_path)
    ckpt.meta["corpus"]["sha256"] = hashlib.sha256(("\ufeff" + corpus.read_text()).encode()).hexdigest()
    checkpoint.save(result.resume_path, ckpt)
    with pytest.raises(lm.LMError, match="read the byte-order mark .* as text, which lm now drops"):
        lm.train(tmp_path / "bom.txt", tmp_path / "m.npz", resume=True)


@pytest.mark.skipif(not hasattr(signal, "SIGPIPE"), reason="no SIGPIPE here")
def test_sigpipe_stops_a_run_only_where_asked_as_lm_train_asks(tmp_path, corpus):
    """A SIGPIPE may come from any pipe or socket of a program that trains through the API, so by
    default it does not stop the run; `lm train` names it, its own output being the one pipe."""
    kept_on = lm.train(corpus, tmp_path / "a.npz", on_progress=_signal_at(3, signal.SIGPIPE), **TINY)
    assert kept_on.stopped is None and kept_on.resume_path is None
    stopped = lm.train(corpus, tmp_path / "b.npz", on_progress=_signal_at(3, signal.SIGPIPE),
                       stop_signals=("SIGINT", "SIGTERM", "SIGPIPE"), **TINY)
    assert stopped.stopped == "SIGPIPE" and stopped.resume_path.exists()


def test_the_resume_file_is_a_model_you_can_sample_from(tmp_path, corpus):
    result = lm.train(corpus, tmp_path / "m.npz", on_progress=_signal_at(3), **TINY)
    ckpt = lm.load(result.resume_path)
    assert {"opt.m", "opt.v", "opt.t", "state.0.0", "state.0.1"} <= set(ckpt.extra)
    assert "".join(lm.sample(ckpt.model, ckpt.tokenizer, chars=20, seed=1))


def test_checkpoint_every_writes_the_resume_file_while_training(tmp_path, corpus, monkeypatch):
    saved = []
    original = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, ckpt: (saved.append(path.name), original(path, ckpt)))
    lm.train(corpus, tmp_path / "m.npz", checkpoint_every=5, **TINY)
    assert saved.count("m.resume.npz") == (2 * 18) // 5
    assert not (tmp_path / "m.resume.npz").exists()  # the finished run removed it


def test_resume_refuses_other_settings_another_corpus_or_nothing_to_resume(tmp_path, corpus):
    with pytest.raises(lm.LMError, match="nothing to resume"):
        lm.train(corpus, tmp_path / "m.npz", resume=True)
    lm.train(corpus, tmp_path / "m.npz", on_progress=_signal_at(3), **TINY)
    with pytest.raises(lm.ConfigError, match="--hidden cannot change"):
        lm.train(corpus, tmp_path / "m.npz", resume=True, hidden=32)
    other = tmp_path / "other.txt"
    other.write_text(CORPUS_TEXT.upper())
    with pytest.raises(lm.LMError, match="not the text this run was trained on"):
        lm.train(other, tmp_path / "m.npz", resume=True)
    with pytest.raises(lm.LMError, match="holds an unfinished run"):
        lm.train(corpus, tmp_path / "m.npz", **TINY)
    assert lm.train(corpus, tmp_path / "m.npz", resume=True, epochs=3).history[-1].epoch == 3


def _start_training(tmp_path, *flags):
    """`lm train` on a corpus long enough to run for a minute, once it has printed `wait_for`."""
    (tmp_path / "long.txt").write_text(CORPUS_TEXT * 200)
    return subprocess.Popen(
        [sys.executable, "-m", "lm", "train", "long.txt", *TINY_FLAGS, "--epochs", "50", *flags],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


def _wait_for(proc, text):
    for line in proc.stderr:
        if text in line:
            return
    pytest.fail(f"`lm train` ended without printing {text!r}")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_the_state_and_resume_finishes_the_run(tmp_path, sig, code):
    proc = _start_training(tmp_path)
    _wait_for(proc, "recipe:")
    time.sleep(0.5)
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == code, rest
    assert "Traceback" not in rest
    assert "continue with: lm train long.txt -m model.npz --resume" in rest
    assert (tmp_path / "model.resume.npz").exists()
    done = run_lm("train", "long.txt", "--resume", "--epochs", "1", cwd=tmp_path)
    assert_ok(done)
    assert "resuming at epoch 1, step" in done.stderr
    assert lm.load(tmp_path / "model.npz").meta["history"][-1]["epoch"] == 1
    assert not (tmp_path / "model.resume.npz").exists()


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="needs Linux's /proc/PID/task/PID/children")
def test_ctrl_c_in_a_terminal_reaches_the_training_worker_too_and_the_run_still_saves(tmp_path):
    """A terminal's Ctrl-C signals the whole process group: the worker of a team (parallel.Team)
    must leave the stopping to the parent, which ends the step and writes the resume file."""
    (tmp_path / "long.txt").write_text(CORPUS_TEXT * 200)
    big_enough = ["--hidden", "64", "--embed", "8", "--seq-len", "50", "--batch-size", "8"]  # for a team
    proc = subprocess.Popen([sys.executable, "-m", "lm", "train", "long.txt", *big_enough, "--epochs", "50"],
                            cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2"}, start_new_session=True)
    _wait_for(proc, "recipe:")
    time.sleep(0.5)
    workers = _children(proc.pid)
    assert workers, "no worker process: the run did not split its batch"
    os.killpg(proc.pid, signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 130, rest
    assert "Traceback" not in rest
    assert "continue with: lm train long.txt -m model.npz --resume" in rest
    assert (tmp_path / "model.resume.npz").exists()
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's new parent may never reap it; a zombie holds no files)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="needs Linux's /proc/PID/task/PID/children")
def test_a_run_killed_outright_leaves_no_worker_behind_holding_the_model(tmp_path):
    """SIGKILL (the OOM killer, kill -9) gives the parent no chance to stop its team's worker:
    the worker must see the parent gone and end, or it would hold the model's lock for ever."""
    (tmp_path / "long.txt").write_text(CORPUS_TEXT * 200)
    big_enough = ["--hidden", "64", "--embed", "8", "--seq-len", "50", "--batch-size", "8"]
    proc = subprocess.Popen([sys.executable, "-m", "lm", "train", "long.txt", *big_enough, "--epochs", "50"],
                            cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"})
    _wait_for(proc, "recipe:")
    time.sleep(0.5)
    workers = _children(proc.pid)
    assert workers, "no worker process: the run did not split its batch"
    proc.kill()
    proc.wait(timeout=30)
    proc.stderr.close()
    proc.stdout.close()
    deadline = time.monotonic() + 20
    while True:  # a process's files close a moment after it shows as a zombie: wait for the lock itself
        try:
            with checkpoint.Lock(tmp_path / "model.npz"):  # free for the next run
                break
        except lm.LMError:
            assert time.monotonic() < deadline, "the worker outlived its parent, holding the model's lock"
            time.sleep(0.1)
    assert not any(map(_running, workers))


def test_a_second_ctrl_c_quits_at_once_and_keeps_the_saved_model(tmp_path):
    proc = _start_training(tmp_path)
    _wait_for(proc, "epoch 1:")  # the model of epoch 1 is saved
    saved = (tmp_path / "model.npz").read_bytes()
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 130, rest
    assert "Traceback" not in rest
    assert lm.load(tmp_path / "model.npz").model.num_params() > 0
    assert (tmp_path / "model.npz").read_bytes() == saved or "epoch 2:" in rest
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_training_never_overwrites_a_file_that_is_not_a_model(tmp_path, corpus):
    """-m naming the corpus (or any other file) by mistake must not replace it with the model."""
    text = corpus.read_bytes()
    (tmp_path / "data.npz").write_bytes(b"PK\x03\x04 not a model")
    np.savez(tmp_path / "arrays.npz", x=np.arange(3))
    for other in (corpus, tmp_path / "data.npz", tmp_path / "arrays.npz"):
        before = other.read_bytes()
        with pytest.raises(lm.LMError, match="exists and is not an lm model"):
            lm.train(corpus, other, **TINY)
        assert other.read_bytes() == before
    assert corpus.read_bytes() == text
    lm.train(corpus, tmp_path / "m.npz", **TINY)
    lm.train(corpus, tmp_path / "m.npz", **TINY)  # a model may be replaced by a new one


def test_a_symlinked_model_path_writes_the_model_it_points_to(tmp_path, corpus):
    (tmp_path / "models").mkdir()
    (tmp_path / "current.npz").symlink_to(tmp_path / "models" / "v1.npz")
    lm.train(corpus, tmp_path / "current.npz", **TINY)
    assert (tmp_path / "current.npz").is_symlink() and lm.load(tmp_path / "models" / "v1.npz")
    (tmp_path / "a.npz").symlink_to(tmp_path / "b.npz")
    (tmp_path / "b.npz").symlink_to(tmp_path / "a.npz")  # a loop: Path.resolve raises on it
    lm.train(corpus, tmp_path / "a.npz", **TINY)
    assert lm.load(tmp_path / "a.npz")


def test_model_and_model_npz_keep_their_own_resume_files(tmp_path, corpus):
    assert checkpoint.resume_path("model.npz").name == "model.resume.npz"
    assert checkpoint.resume_path("model").name == "model.resume"
    assert checkpoint.resume_path("dir/m.bin").as_posix() == "dir/m.bin.resume"
    (tmp_path / "model.resume.npz").write_bytes(b"")  # where lm put model's until 2026-11-30
    with pytest.raises(lm.LMError, match="nothing to resume.*rename it model.resume$"):
        lm.train(corpus, tmp_path / "model", resume=True)


def test_two_runs_cannot_write_the_same_model_at_once(tmp_path, corpus):
    with checkpoint.Lock(tmp_path / "m.npz"):
        with pytest.raises(lm.LMError, match="another `lm train` is writing"):
            lm.train(corpus, tmp_path / "m.npz", **TINY)
    lm.train(corpus, tmp_path / "m.npz", **TINY)  # free again once the first is done


def test_two_lm_train_processes_on_one_path(tmp_path):
    proc = _start_training(tmp_path)
    _wait_for(proc, "recipe:")
    second = run_lm("train", "long.txt", *TINY_FLAGS, cwd=tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert_one_line_error(second, "another `lm train` is writing", code=1)


# ----- writes that fail -----


@pytest.mark.parametrize("target", ["fsync", "replace"])
def test_a_failed_fsync_or_rename_keeps_the_old_model(tmp_path, corpus, target, monkeypatch):
    path = tmp_path / "m.npz"
    lm.train(corpus, path, **TINY)
    before = path.read_bytes()

    def fail(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(checkpoint.os, target, fail)
    ckpt = lm.load(path)
    with pytest.raises(lm.LMError, match="Input/output error"):
        checkpoint.save(path, ckpt)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [".m.npz.lock", "corpus.txt", "m.npz"]


def test_a_full_disk_during_training_keeps_the_last_good_model(tmp_path, corpus, monkeypatch):
    """The first epoch's model is written; the disk fills up before the second's."""
    path = tmp_path / "m.npz"
    original = checkpoint.np.savez

    def savez(file, **arrays):
        if path.exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        original(file, **arrays)

    monkeypatch.setattr(checkpoint.np, "savez", savez)
    with pytest.raises(lm.LMError, match="No space left on device"):
        lm.train(corpus, path, **TINY)
    monkeypatch.undo()
    assert [h["epoch"] for h in lm.load(path).meta["history"]] == [1]


def test_weights_that_are_not_finite_are_never_saved(tmp_path, corpus):
    ckpt = lm.load(lm.train(corpus, tmp_path / "m.npz", **TINY).path)
    ckpt.model.flat[3] = np.nan
    with pytest.raises(lm.LMError, match="not finite"):
        checkpoint.save(tmp_path / "bad.npz", ckpt)
    assert not (tmp_path / "bad.npz").exists()


# ----- a loss that is not finite -----


def test_a_nan_loss_rolls_back_and_halves_the_learning_rate(tmp_path, corpus, monkeypatch):
    calls = 0
    original = Model.loss_and_grads

    def flaky(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        loss, grads, state = original(self, *args, **kwargs)
        return (math.nan if calls == 5 else loss), grads, state

    monkeypatch.setattr(Model, "loss_and_grads", flaky)
    notices = []
    result = lm.train(corpus, tmp_path / "m.npz", on_progress=lambda i: isinstance(i, Notice) and notices.append(i.text),
                      lr=0.01, **TINY)
    assert len(notices) == 1 and "rolled back" in notices[0] and "halved to 0.005" in notices[0]
    assert [h.lr for h in result.history] == [0.005, 0.005]
    assert np.isfinite(lm.load(tmp_path / "m.npz").model.flat).all()


def test_training_that_keeps_diverging_stops_and_keeps_the_old_model(tmp_path, corpus, monkeypatch):
    path = tmp_path / "m.npz"
    lm.train(corpus, path, **TINY)
    before = path.read_bytes()
    original = Model.loss_and_grads
    calls = 0

    def diverging(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        loss, grads, state = original(self, *args, **kwargs)
        return (math.inf if calls > 4 else loss), grads, state

    monkeypatch.setattr(Model, "loss_and_grads", diverging)
    notices = []
    with pytest.raises(lm.LMError, match="training diverged"):
        lm.train(corpus, path, on_progress=lambda i: isinstance(i, Notice) and notices.append(i.text), **TINY)
    assert len(notices) == 3 and all("rolled back" in n for n in notices)
    assert path.read_bytes() == before


def test_a_run_that_diverges_says_so_in_one_line_and_what_was_saved(tmp_path, corpus):
    """A learning rate of 10^30 overflows everywhere: NumPy's warnings must not reach the user."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would end the run with it, not with LMError
        with pytest.raises(lm.LMError, match=r"training diverged.*\(no model was saved\)"):
            lm.train(corpus, tmp_path / "m.npz", **{**TINY, "optimizer": "sgd", "lr": 1e30, "clip": 0})
    assert not (tmp_path / "m.npz").exists()


# ----- bad input -----


def test_encoding_and_errors_options_read_what_strict_utf8_refuses(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("the café sat on the mat.\n".encode("latin-1") * 30)
    strict = run_lm("train", "latin1.txt", *TINY_FLAGS, cwd=tmp_path)
    assert_one_line_error(strict, "offset 7", "--errors replace", code=1)
    for flags in (["--encoding", "latin-1"], ["--errors", "replace", "-m", "r.npz"]):
        assert_ok(run_lm("train", "latin1.txt", "--epochs", "1", *TINY_FLAGS, *flags, cwd=tmp_path))
    assert "é" in lm.load(tmp_path / "model.npz").tokenizer.tokens
    assert "\ufffd" in lm.load(tmp_path / "r.npz").tokenizer.tokens


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32-le"])
def test_text_in_an_encoding_made_of_nul_bytes_is_read_and_binary_in_it_is_still_refused(tmp_path, encoding):
    from lm.data import read_text
    text = "the café sat on the mat.\n" * 3
    (tmp_path / "wide.txt").write_bytes(text.encode(encoding))
    assert read_text(tmp_path / "wide.txt", encoding) == text
    (tmp_path / "binary.txt").write_bytes((text + "\0").encode(encoding))
    with pytest.raises(lm.LMError, match="looks binary"):
        read_text(tmp_path / "binary.txt", encoding)
    with pytest.raises(lm.LMError, match=r"looks binary \(NUL byte"):
        read_text(tmp_path / "wide.txt")  # read as UTF-8
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf\n\n")  # a Windows editor's empty file
    with pytest.raises(lm.LMError, match="is empty"):
        read_text(tmp_path / "bom.txt")


@pytest.mark.parametrize("encoding, message, code", [
    ("no-such-codec", "unknown text encoding", 2),
    ("rot13", "unknown text encoding", 2),  # a codec, but not bytes to text
    ("idna", "'idna' is not an encoding for text files", 2),  # refuses the "replace" handler: a UnicodeError
    ("punycode", "cannot be read as punycode", 1),  # fails on text as such, with a UnicodeError
])
def test_an_unknown_encoding_is_one_line_wherever_text_is_read(tmp_path, char_model, encoding, message, code):
    """The UnicodeErrors of codecs for other jobs than text files escaped as tracebacks."""
    (tmp_path / "s.txt").write_text("the cat\n")
    runs = [["train", "s.txt", "-m", "new.npz"], ["eval", "s.txt", "-m", char_model],
            ["score", "-f", "s.txt", "-m", char_model], ["sample", "--prime-file", "s.txt", "-m", char_model]]
    for args in runs:
        assert_one_line_error(run_lm(*args, "--encoding", encoding, cwd=tmp_path), message, code=code)
    piped = subprocess.run([sys.executable, "-m", "lm", "score", "-", "-m", str(char_model), "--encoding", encoding],
                           input="the cat\n", capture_output=True, text=True, cwd=tmp_path)
    assert_one_line_error(piped, message, code=code)


@pytest.mark.parametrize("tokenizer", ["char", "word"])
def test_a_single_ten_megabyte_line(tmp_path, tokenizer):
    words = np.random.default_rng(0).choice(["the", "cat", "sat", "on", "a", "mat", "."], 2_000_000)
    line = " ".join(words)[: 10 * 2**20]
    (tmp_path / "line.txt").write_text(line)
    result = lm.train(tmp_path / "line.txt", tmp_path / "m.npz", tokenizer=tokenizer, valid_fraction=0.01,
                      max_time=0.5, **TINY)
    assert result.stopped == "max-time"
    assert np.isfinite(result.best_valid_loss)


def test_unknown_characters_and_words_and_empty_sentences(tmp_path, char_model, word_model):
    char = lm.load(char_model)
    score = lm.score_sentence(char.model, char.tokenizer, "the cat ☃ sat")
    assert score.unknown == 1 and "☃" not in score.tokens  # a character model leaves it out, counted
    primed = run_lm("sample", "-m", char_model, "--prime", "the ☃", "--unk", "error", cwd=tmp_path)
    assert_one_line_error(primed, "never saw", "'☃'", code=1)
    skipped = run_lm("sample", "-m", char_model, "--prime", "the ☃", "--chars", "3", cwd=tmp_path)
    assert_ok(skipped)
    assert skipped.stdout.startswith("the ") and "☃" not in skipped.stdout
    word = lm.load(word_model)
    score = lm.score_sentence(word.model, word.tokenizer, "the zebra sat")
    assert score.unknown == 1 and "<UNK>" in score.tokens
    for empty in ("", "   "):
        assert_one_line_error(run_lm("score", "-m", char_model, empty, cwd=tmp_path), "nothing to score", code=1)


def test_a_model_path_in_a_read_only_place_fails_before_training(tmp_path, corpus):
    result = run_lm("train", corpus.name, "-m", "/proc/model.npz", *TINY_FLAGS, cwd=tmp_path)
    assert_one_line_error(result, "/proc is not writable", code=1)
    assert "epoch" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_fails_before_training(tmp_path, corpus):
    (tmp_path / "ro").mkdir(mode=0o555)
    result = run_lm("train", corpus.name, "-m", "ro/model.npz", *TINY_FLAGS, cwd=tmp_path)
    assert_one_line_error(result, "not writable", code=1)


def test_a_million_characters_stream_in_flat_memory(char_model):
    """`--chars 1000000` prints as it draws: memory does not grow with the length."""
    ckpt = lm.load(char_model)

    def peak(chars):
        tracemalloc.start()
        drawn = sum(len(piece) for piece in lm.sample(ckpt.model, ckpt.tokenizer, chars=chars, seed=0))
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert drawn == chars
        return top

    assert peak(8_000) < 1.2 * peak(800) + 20_000


# ----- every numeric flag: zero, negative, NaN -----


TRAIN_NUMERIC = ["--valid-fraction", "--vocab-size", "--layers", "--hidden", "--embed", "--seq-len", "--batch-size",
                 "--epochs", "--max-time", "--lr", "--lr-decay", "--decay-after", "--patience", "--min-delta",
                 "--clip", "--clip-value", "--seed", "--checkpoint-every"]
ZERO_MEANS_OFF = {"--valid-fraction", "--decay-after", "--min-delta", "--clip", "--clip-value", "--seed"}
SAMPLE_NUMERIC = ["--chars", "--words", "--tokens", "--temperature", "--seed", "--num"]


def _check_value(monkeypatch, capsys, command, flag, value, zero_ok):
    code, out, err = run_main(monkeypatch, capsys, *command, flag, value)
    if value == "0" and zero_ok:
        assert code == 0, err
        return
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lm: error:") and flag in lines[0], err


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_every_numeric_train_flag_refuses_bad_values(tmp_path, corpus, monkeypatch, capsys, value):
    monkeypatch.chdir(tmp_path)
    for flag in TRAIN_NUMERIC:
        command = ["train", corpus.name, "-m", f"m{flag}.npz", "--epochs", "1", *TINY_FLAGS]
        _check_value(monkeypatch, capsys, command, flag, value, flag in ZERO_MEANS_OFF)


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_every_numeric_sample_and_eval_flag_refuses_bad_values(tmp_path, corpus, char_model, monkeypatch, capsys,
                                                               value):
    for flag in SAMPLE_NUMERIC:
        _check_value(monkeypatch, capsys, ["sample", "-m", char_model, "--chars", "5"], flag, value,
                     flag == "--seed")
    _check_value(monkeypatch, capsys, ["eval", corpus, "-m", char_model], "--batch-size", value, False)


def test_absurdly_large_sizes_are_usage_errors_not_numpy_errors(tmp_path, corpus, char_model, monkeypatch, capsys):
    """10**23 hidden units reached NumPy as a TypeError, 2**63 - 1 as "array is too big"."""
    monkeypatch.chdir(tmp_path)
    for value in ("99999999999999999999999", str(2**63 - 1)):
        for flag in ("--vocab-size", "--layers", "--hidden", "--embed", "--seq-len", "--batch-size", "--epochs",
                     "--decay-after", "--patience", "--checkpoint-every", "--sample-chars"):
            command = ["train", corpus.name, "-m", "m.npz", *TINY_FLAGS]
            _check_value(monkeypatch, capsys, command, flag, value, False)
        for flag in ("--num", "--chars", "--words", "--tokens", "--top-k", "--min-length"):
            _check_value(monkeypatch, capsys, ["sample", "-m", char_model, "--tokens", "1"], flag, value, False)
    # 2^31 - 1 and more: an eval batch that large read every token from the zero state, silently
    _check_value(monkeypatch, capsys, ["eval", corpus, "-m", char_model], "--batch-size", str(2**31), False)
    # --sample-chars past the sampler's limit failed only after the first epoch, naming --chars, and lost it
    command = ["train", corpus.name, "-m", "m.npz", *TINY_FLAGS]
    _check_value(monkeypatch, capsys, command, "--sample-chars", str(2**31), False)


def test_an_interrupted_run_does_not_claim_another_runs_model_as_saved(tmp_path, corpus, monkeypatch, capsys):
    """Stopped before its first epoch ended, a run has saved nothing, whatever file is at -m."""
    monkeypatch.chdir(tmp_path)
    lm.train(corpus, tmp_path / "old.npz", **TINY)
    stopped = sys.modules["lm.train"].TrainResult(tmp_path / "old.npz", [], None, "SIGINT", tmp_path / "old.resume.npz")
    monkeypatch.setattr(cli, "run_training", lambda *args, **kwargs: stopped)
    code, _, err = run_main(monkeypatch, capsys, "train", corpus.name, "-m", "old.npz")
    assert code == 130 and "SIGINT: no model saved yet" in err and "saved old.npz" not in err


def test_perplexities_too_large_for_a_float_do_not_crash():
    from lm.score import SentenceScore, StreamScore
    assert SentenceScore("a", ["a"], [-1e6], 0, "char").perplexity > 1e300
    stream = StreamScore(tokens=1, nats=1e6, unknown=0, unk_nats=0.0, unit="word", units=1)
    assert stream.perplexity > 1e300 and stream.perplexity_without_unk > 1e300


def test_an_empty_model_path_is_named_as_the_current_directory(tmp_path, corpus, monkeypatch, capsys):
    """`-m ''` reaches lm as ".": "lm: error: . is a directory" read as a typo in the message."""
    monkeypatch.chdir(tmp_path)
    for command in (["train", corpus.name, *TINY_FLAGS], ["sample"]):
        code, _, err = run_main(monkeypatch, capsys, *command, "-m", "")
        assert code == 1 and err.startswith("lm: error: . (the current directory) is a directory"), err


def test_a_directory_that_cannot_be_synced_still_gets_its_model(tmp_path, corpus, monkeypatch):
    """Some file systems refuse to fsync a directory (EINVAL) after the rename: the model is written."""
    ckpt = lm.load(lm.train(corpus, tmp_path / "m.npz", **TINY).path)
    monkeypatch.setattr(checkpoint, "_fsync_dir", lambda directory: (_ for _ in ()).throw(OSError(errno.EINVAL, "x")))
    checkpoint.save(tmp_path / "n.npz", ckpt)
    assert lm.load(tmp_path / "n.npz").model.num_params() == ckpt.model.num_params()


def test_the_rename_is_made_durable_by_syncing_its_directory_after_it(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "replace", lambda src, dst, replace=os.replace: (calls.append("replace"), replace(src, dst)))
    monkeypatch.setattr(checkpoint, "_fsync_dir", lambda directory: calls.append(("sync", Path(directory))))
    checkpoint.save(tmp_path / "m.npz", lm.load(lm.train(write_corpus(tmp_path), tmp_path / "t.npz", **TINY).path))
    assert calls[-2:] == ["replace", ("sync", tmp_path)]


class _Clock:
    """time for lm.train with a perf_counter that moves on a quarter second at every reading."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.25
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_max_time_of_a_resumed_session_counts_that_session_only(tmp_path, corpus, monkeypatch):
    """Interrupted between epochs, a run resumes at step 0 of the next; the epoch before is in
    its training time once, and --max-time gives the new session its own seconds."""
    monkeypatch.setattr(sys.modules["lm.train"], "time", _Clock())
    path = tmp_path / "m.npz"
    first = lm.train(corpus, path, on_progress=_signal_at(18), **{**TINY, "epochs": 3})  # 18 steps an epoch
    assert first.stopped == "SIGINT" and lm.load(first.resume_path).meta["resume"]["epoch"] == 2
    again = lm.train(corpus, path, resume=True, max_time=2.0)
    assert again.stopped == "max-time"
    steps = lm.load(again.resume_path).meta["resume"]["total_steps"] - 18
    assert steps == 8  # a step's reading of the clock a quarter second after the one before


def test_a_signal_in_the_last_steps_of_the_last_epoch_ends_a_complete_run(tmp_path, corpus):
    """The run finished its last epoch, yet it left a resume file and said to go on from it."""
    path = tmp_path / "m.npz"
    result = lm.train(corpus, path, on_progress=_signal_at(18), **{**TINY, "epochs": 1})  # 18 steps an epoch
    assert result.stopped is None and result.resume_path is None and len(result.history) == 1
    assert path.exists() and not checkpoint.resume_path(path).exists()


def test_settings_a_run_has_no_use_for_are_noted(tmp_path, corpus, monkeypatch, capsys):
    """They were accepted in silence: --vocab-size on a character model, --lines on a word
    model (whose lines --novel then could not use), --valid-fraction beside --valid."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(monkeypatch, capsys, "train", corpus.name, "-m", "c.npz", "--epochs", "1", *TINY_FLAGS,
                            "--vocab-size", "5", "--valid", corpus.name, "--valid-fraction", "0.5")
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert code == 0 and notes == ["note: --vocab-size is for word models: a character model keeps every character",
                                   "note: --valid-fraction is not used with --valid"]
    code, _, err = run_main(monkeypatch, capsys, "train", corpus.name, "-m", "w.npz", "--epochs", "1", *TINY_FLAGS,
                            "--tokenizer", "word", "--lines")
    assert code == 0 and [line for line in err.splitlines() if line.startswith("note:")] == [
        "note: --lines is for character models: a word model reads every line as a sentence"]
    code, _, err = run_main(monkeypatch, capsys, "train", corpus.name, "-m", "q.npz", "--epochs", "1", *TINY_FLAGS)
    assert code == 0 and "note:" not in err


def test_validation_tokens_outside_the_vocabulary_are_noted(tmp_path, corpus):
    """A character model's validation left unseen characters out in silence."""
    valid = tmp_path / "v.txt"
    valid.write_text("ZZZ€€€ the cat\n")
    for tokenizer, note in (("char", f"note: {valid}: 6 characters that the corpus does not have, left out of "
                                     "validation"),
                            ("word", f"note: {valid}: 4 tokens outside the vocabulary, read as <UNK> in validation")):
        seen = []
        lm.train(corpus, tmp_path / f"{tokenizer}.npz", valid=valid, tokenizer=tokenizer, on_progress=seen.append,
                 **{**TINY, "epochs": 1})
        assert lm.Notice(note) in seen, [i for i in seen if isinstance(i, lm.Notice)]


def test_a_batch_that_leaves_much_of_the_corpus_out_says_so(tmp_path):
    """--batch-size 100000 trained on 200,000 of 269,984 tokens, told only by the data line."""
    (tmp_path / "c.txt").write_text(("abcdefghij" * 100)[:-1] + "\n")  # 1,000 characters
    for batch, left_out in ((450, 100), (500, 0)):
        notices = []
        lm.train(tmp_path / "c.txt", tmp_path / f"m{batch}.npz", batch_size=batch, seq_len=2, valid_fraction=0.0,
                 epochs=1, hidden=4, embed=2, sample_chars=0,
                 on_progress=lambda info: notices.append(info.text) if isinstance(info, Notice) else None)
        expected = [f"the last {left_out} training tokens do not fill the {batch} streams of --batch-size and are "
                    "left out; a smaller --batch-size trains on them"] if left_out else []
        assert notices == expected


def test_a_run_that_max_time_stopped_says_how_to_go_on(tmp_path, corpus, monkeypatch, capsys):
    """It said to resume "with a higher --epochs to go past the last one", with epochs left."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.modules["lm.train"], "time", _Clock())
    code, _, err = run_main(monkeypatch, capsys, "train", corpus.name, "-m", "m.npz", "--epochs", "3",
                            "--max-time", "2", *TINY_FLAGS)
    assert code == 0 and "--max-time reached" in err
    assert (f"to go on: lm train {corpus.name} -m m.npz --resume (from m.resume.npz); --max-time counts each "
            "session, and --resume keeps it unless given again") in " ".join(err.split())


def test_the_command_to_go_on_carries_what_resume_checks_and_works_as_printed(tmp_path, corpus, monkeypatch,
                                                                             capsys):
    """It left out --valid and --encoding, which --resume must be given again, and did not quote
    a path with a space; cut in its last epoch, a run has nothing left to go on with."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.modules["lm.train"], "time", _Clock())
    (tmp_path / "my corpus.txt").write_text(corpus.read_text())
    flags = ["--valid", corpus.name, "--encoding", "latin-1", *TINY_FLAGS]
    code, _, err = run_main(monkeypatch, capsys, "train", "my corpus.txt", "-m", "m.npz", "--epochs", "3",
                            "--max-time", "2", *flags)
    printed = " ".join(err.split())
    command = f"lm train 'my corpus.txt' -m m.npz --valid {corpus.name} --encoding latin-1 --resume"
    assert code == 0 and f"to go on: {command} (from m.resume.npz)" in printed, printed
    code, _, err = run_main(monkeypatch, capsys, *shlex.split(command)[1:], "--epochs", "1")
    assert code == 2 and "--epochs 1: the run is at epoch 2, step 0; give --epochs 2 or more" in " ".join(err.split())
    assert (tmp_path / "m.resume.npz").exists()  # going on with fewer epochs would have deleted it
    code, _, err = run_main(monkeypatch, capsys, *shlex.split(command)[1:])
    assert code == 0 and "--max-time reached" in err
    code, _, err = run_main(monkeypatch, capsys, "train", "my corpus.txt", "-m", "last.npz", "--epochs", "1",
                            "--max-time", "2", *flags)
    assert code == 0 and "--max-time reached" in err and "to go on" not in err
    assert not (tmp_path / "last.resume.npz").exists()


def test_a_corpus_too_short_for_its_settings_is_told_what_is_short(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "short.txt").write_text("the cat sat on the mat. " * 40)
    (tmp_path / "one.txt").write_text("a")
    for args, message in (
        (["short.txt", "--valid-fraction", "0.999", "--batch-size", "4"],
         "the corpus less its validation tail (--valid-fraction 0.999) has 1 token, too few for --batch-size 4"),
        (["one.txt", "--valid-fraction", "0", "--batch-size", "1"],
         "the corpus has 1 token, too few for --batch-size 1; give a longer corpus"),
        (["one.txt"], "the corpus is too short to hold out a tail of it; give --valid"),
    ):
        code, _, err = run_main(monkeypatch, capsys, "train", *args)
        assert code == 1 and err.startswith("lm: error: ") and message in err and len(err.splitlines()) == 1, err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("command", [["sample", "--chars", "50"], ["info", "--json"], ["score", "the cat"]],
                         ids=["sample", "info", "score"])
def test_output_to_a_full_device_is_one_line(tmp_path, char_model, command):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "lm", *command, "-m", str(char_model)], cwd=tmp_path,
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    result.stdout = ""
    assert_one_line_error(result, "cannot write the output: No space left on device", code=1)


def test_a_closed_standard_output_is_one_line(tmp_path, char_model):
    """Python leaves sys.stdout None: an AttributeError at import, for every command."""
    result = subprocess.run([sys.executable, "-m", "lm", "sample", "-m", str(char_model)], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True, timeout=60, preexec_fn=lambda: os.close(1))
    result.stdout = ""
    assert_one_line_error(result, "standard output is closed", code=1)


def test_the_printed_resume_command_keeps_a_corpus_named_like_an_option(tmp_path, corpus, monkeypatch, capsys):
    """`lm train -- -k.txt` printed `lm train -k.txt ... --resume`, which reads -k as an option."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-k.txt").write_text(CORPUS_TEXT * 100)
    code, _, err = run_main(monkeypatch, capsys, "train", *TINY_FLAGS, "--max-time", "0.05", "--", "-k.txt")
    command = err.split("to go on: ")[1].split(" (from")[0]
    assert code == 0 and command == "lm train ./-k.txt -m model.npz --resume", err
    code, _, err = run_main(monkeypatch, capsys, *shlex.split(command)[1:], "--max-time", "0.05")
    assert code == 0 and "to go on" in err, err

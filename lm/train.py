"""Training: corpus -> tokenizer -> batches -> truncated BPTT with clipping -> the best model on validation.

`train` reports progress through a callback with StartInfo, StepInfo, EpochInfo and Notice
records, so the CLI (or any caller) renders while the library trains.

Nothing is lost: SIGINT or SIGTERM stops the run at the next step boundary and writes a resume
file (checkpoint.resume_path) with the weights, the optimizer's moments, the state carried
between windows, the position in the data and the run's history; `resume=True` goes on from
it to the same weights a run never interrupted reaches. A step whose loss or gradient is not
finite rolls back to the last good weights and halves the learning rate.
"""

import hashlib
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from . import __version__, checkpoint, optim, parallel
from .checkpoint import Checkpoint
from .config import DEFAULT_MODEL_PATH, ModelConfig, TokenizerConfig, TrainConfig, at_least, check_fields, counted
from .data import BOM, Batches, read_text, split_tail
from .errors import ConfigError, LMError
from .model import Model
from .sample import sample
from .score import perplexity, stream_nats
from .tokenizer import Tokenizer


@dataclass
class StepInfo:
    """After each window of BPTT."""

    epoch: int
    epochs: int
    step: int  # within the epoch, from 1
    steps: int
    loss: float  # mean nats per token over the epoch so far
    tokens_per_s: float
    elapsed_s: float
    eta_s: float
    grad_norm: float
    clipped: float  # fraction of steps so far in which clipping fired

    @property
    def perplexity(self) -> float:
        return perplexity(self.loss)


@dataclass
class StartInfo:
    """Once, before the first step: what is about to be trained on what."""

    model: str  # e.g. "2 x 200 LSTM, embedding 200"
    parameters: int
    vocab: int
    train_tokens: int
    valid_tokens: int
    steps_per_epoch: int
    recipe: str  # optimizer, learning rate and schedule, clipping, batch


@dataclass
class EpochInfo:
    """After each epoch and its validation."""

    epoch: int
    train_loss: float
    valid_loss: float | None
    valid_perplexity: float | None
    tokens_per_s: float
    elapsed_s: float  # wall clock since training started, validation included
    lr: float
    saved: bool  # this epoch's weights became the saved model (validation improved, or there is none)
    train_s: float = 0.0  # this epoch's training steps
    valid_s: float = 0.0  # this epoch's validation
    sample: str | None = None  # sample_chars drawn after the epoch (seeded by the seed and the epoch)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Notice:
    """Something to tell the user as it happens: a rollback, a signal, a resume."""

    text: str


@dataclass
class TrainResult:
    path: Path
    history: list[EpochInfo]
    best_valid_loss: float | None
    stopped: str | None  # why training ended before --epochs: "max-time", "patience", "SIGINT", "SIGTERM", "SIGPIPE"
    resume_path: Path | None = None  # the resume file, when the run can go on from one

    def to_dict(self) -> dict:
        return {"path": str(self.path), "best_valid_loss": self.best_valid_loss, "stopped": self.stopped,
                "resume_path": None if self.resume_path is None else str(self.resume_path)}


Report = Callable[[StartInfo | StepInfo | EpochInfo | Notice], None]
RESUMABLE = ("epochs", "max_time", "checkpoint_every", "patience")  # may change when resuming
ROLLBACK_EVERY = 100  # steps between snapshots of good weights
MAX_ROLLBACKS = 3  # non-finite steps in a row (no good snapshot between) before giving up


@dataclass
class RunState:
    """Where a run is, besides weights, optimizer moments and carried state: the JSON part of
    a resume file, checked as the settings are. Validation losses of None mean none yet."""

    epoch: int = at_least(1, 1)  # the epoch in progress
    step: int = at_least(0, 0)  # steps of it done
    lr: float = at_least(0, 0.0)
    lr_scale: float = field(default=1.0, metadata={"above": 0})  # halved by every rollback
    best: float | None = None  # the best validation loss: the saved model's
    watched: float | None = None  # the last one that counted as an improvement (by min_delta)
    stale: int = at_least(0, 0)  # epochs since then
    train_time: float = at_least(0, 0.0)  # seconds of training steps, every session
    wall_time: float = at_least(0, 0.0)  # seconds in all, validation and saving included, every session
    epoch_time: float = at_least(0, 0.0)  # training seconds of the epoch in progress
    epoch_nats: float = at_least(0, 0.0)
    epoch_tokens: int = at_least(0, 0)
    clipped_steps: int = at_least(0, 0)
    total_steps: int = at_least(0, 0)

    def __post_init__(self):
        check_fields(self, owner="run")


def split_settings(settings: dict) -> tuple[TokenizerConfig, dict, TrainConfig]:
    """Keyword settings (named as the CLI's flags) into the tokenizer, model and training configs."""
    groups: list[dict] = [{}, {}, {}]
    names = [{f.name for f in fields(owner)} for owner in (TokenizerConfig, ModelConfig, TrainConfig)]
    names[1].discard("vocab")  # set by the tokenizer, not by the user
    for key, value in settings.items():
        for group, owned in zip(groups, names):
            if key in owned:
                group[key] = value
                break
        else:
            raise ConfigError(f"unknown setting {key!r}")
    ModelConfig(**groups[1])  # checks the model settings before any data is read
    return TokenizerConfig(**groups[0]), groups[1], TrainConfig(**groups[2])


def train(
    corpus: str | Path,
    model_path: str | Path = DEFAULT_MODEL_PATH,
    *,
    valid: str | Path | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    resume: bool = False,
    on_progress: Report | None = None,
    stop_signals: tuple[str, ...] = ("SIGINT", "SIGTERM"),
    **settings,
) -> TrainResult:
    """Train a model on the text file `corpus` and save the best one (on validation) to model_path.

    settings: any field of TokenizerConfig, ModelConfig or TrainConfig, e.g. cell="gru",
    hidden=128, epochs=3, seq_len=50. Validation is `valid` if given, else the last
    `valid_fraction` of the corpus. errors: "strict", "replace" or "ignore" for bytes that are
    not valid in `encoding`.

    resume: go on from the resume file of model_path (written when a run is interrupted, stops
    at max_time, or every checkpoint_every steps) with the same corpus; only epochs, max_time,
    checkpoint_every and patience may differ from the interrupted run's settings.

    In the main thread, the stop_signals stop the run after the current step and write the
    resume file; the result then has stopped="SIGINT" (or the signal's name). A second one stops
    at once, but for SIGPIPE: `lm train` adds it, since a write to a pipe whose reader is gone is
    its own output's (`lm train --json | head -1`); in a program of other pipes and sockets it
    may be another thread's, so it is not among the defaults.
    """
    path = Path(model_path)
    if path.is_symlink():  # write the model it points to, not a file in the link's place
        path = Path(os.path.realpath(path))  # (a loop of links stays as it is, and fails to open)
    checkpoint.check_writable(path)
    checkpoint.check_replaceable(path)
    with checkpoint.Lock(path):
        if not resume and checkpoint.resume_path(path).exists():
            raise LMError(f"{checkpoint.resume_path(path)} holds an unfinished run; continue it with --resume, "
                          f"or delete it to start afresh")
        run = _Run.resumed(path, corpus, valid, encoding, errors, settings) if resume else \
            _Run.fresh(path, corpus, valid, encoding, errors, settings)
        return run.fit(on_progress or (lambda _: None), stop_signals)


def _corpus_entry(path: str | Path, text: str) -> dict:
    return {"name": Path(path).name, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


class Trainer:
    """One step of truncated BPTT at a time: forward, backward, clip, update, carry the state.

    With two cores and a big enough step, the step is split between this process and a worker
    process (`team` is then a parallel.Team, else a parallel.Solo); `close` ends the worker.
    `train` runs it over epochs; the benchmarks time it as it is.
    """

    def __init__(self, model: Model, cfg: TrainConfig):
        self.model, self.cfg = model, cfg
        kind = parallel.Team if parallel.Team.worth_it(model, cfg.batch_size, cfg.seq_len) else parallel.Solo
        self.opt = optim.make(cfg.optimizer, model.flat.size, model.dtype, kind.zeros)
        self.team: parallel.Solo = kind(model, cfg.batch_size, self.opt)
        self.state = self.team.state

    def reset_state(self) -> None:
        """a<0> = 0 for every stream, at the start of each epoch."""
        for parts in self.state:
            for part in parts:
                part.fill(0.0)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, float, bool]:
        """Inputs and targets (T, B) -> the summed loss, the gradient norm and whether it was clipped."""
        team, cfg = self.team, self.cfg
        # A diverging step overflows on the way to its non-finite loss, which the caller handles:
        # NumPy's warnings about it would only clutter the output.
        with team.cores(), np.errstate(all="ignore"):
            loss = team.loss_and_grads(x, y, 1.0 / cfg.batch_size)
            if not math.isfinite(loss):
                return loss, math.nan, False
            squares, by_value = team.sum_of_squares(cfg.clip_value)
            norm, scale, clipped = optim.clip_factor(squares, cfg.clip, by_value)
            if not math.isfinite(norm):  # an overflowing gradient would write inf or nan into every weight
                return loss, norm, False
            team.update(lr, scale)
        return loss, norm, clipped

    def close(self) -> None:
        self.team.close()


class GradStats:
    """`--grad-stats`: every EVERY steps, the norm of the gradient reaching a<t-k> from the loss
    at a window's last step t, for every distance k and layer; averaged over the measurements."""

    EVERY = 10

    def __init__(self, layers: int, seq_len: int):
        self.total = np.zeros((layers, seq_len))
        self.samples = 0

    def measure(self, model: Model, x: np.ndarray, y: np.ndarray, state) -> None:
        if x.shape[0] == self.total.shape[1]:  # a short last window would skew the far distances
            self.total += model.gradient_reach(x, y, state)
            self.samples += 1

    def state(self) -> dict[str, np.ndarray]:
        """What a resume file keeps of the measurements so far, as arrays (as the optimizer's)."""
        return {"total": self.total, "samples": np.array(self.samples)}

    def load(self, state: dict[str, np.ndarray]) -> None:
        self.total[:] = state["total"]
        self.samples = int(state["samples"])

    def to_dict(self, clip_rate: float) -> dict:
        norm = self.total / max(self.samples, 1)
        return {"distance": list(range(norm.shape[1])), "norm": norm.tolist(), "clip_rate": clip_rate,
                "samples": self.samples}


def _recipe(cfg: TrainConfig) -> str:
    if cfg.lr_schedule == "plateau":
        schedule = f", x{cfg.lr_decay:g} when validation stalls"
    elif cfg.lr_decay < 1:
        schedule = f", x{cfg.lr_decay:g} each epoch after {cfg.decay_after}"
    else:
        schedule = ""
    clip = f"clip {cfg.clip:g}" if cfg.clip else "no clipping"
    stop = f", patience {cfg.patience}" if cfg.patience else ""
    return (f"{cfg.optimizer} lr {cfg.learning_rate:g}{schedule}, {clip}, batch {cfg.batch_size} x "
            f"{counted(cfg.seq_len, 'step')}, {counted(cfg.epochs, 'epoch')}{stop}")


def _unused(settings: dict, tok_cfg: TokenizerConfig, cfg: TrainConfig, valid: bool) -> tuple[str, ...]:
    """Settings given (the keys of `settings`) that the run has no use for, each with why: they
    were accepted in silence, and a user who gave one expects it to act."""
    idle = {
        "vocab_size": (tok_cfg.tokenizer == "char", "--vocab-size is for word models: a character model keeps every character"),
        "lines": (tok_cfg.tokenizer != "char", "--lines is for character models: a word model reads every line as a sentence"),
        "valid_fraction": (valid, "--valid-fraction is not used with --valid"),
        "decay_after": (cfg.lr_schedule == "plateau",
                        "--decay-after is for --lr-schedule step: plateau decays after an epoch that did not improve"),
    }
    return tuple(why for name, (unused, why) in idle.items() if unused and name in settings)


class _Signals:
    """While training runs in the main thread: the first of the signals named (SIGINT, SIGTERM)
    asks the loop to stop at the next step boundary; a second raises KeyboardInterrupt at once,
    which every write survives (they are atomic).

    SIGPIPE, when named (a write to a pipe whose reader is gone: `lm train --json | head -1`),
    stops the run the same way, its state saved to resume: the reader had what it wanted, the
    run's work is kept, and the pipeline ends. Every later write to that pipe repeats it, so it
    never forces the quit. (Python ignores SIGPIPE otherwise; the write raises BrokenPipeError
    either way.)
    """

    def __init__(self, report: Report, names: tuple[str, ...]):
        self.report = report
        self.names = [name for name in names if hasattr(signal, name)]  # Windows has no SIGPIPE
        self.requested: str | None = None
        self.previous: dict = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for name in self.names:
                sig = getattr(signal, name)
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            if name == "SIGPIPE":
                return
            raise KeyboardInterrupt
        self.requested = name
        if name == "SIGPIPE":
            self.report(Notice("SIGPIPE: the output's reader is gone; saving the training state after this step"))
        else:
            self.report(Notice(f"{name}: saving the training state after this step "
                               f"(again to quit at once, keeping the last saved files)"))

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class _Run:
    """One training run: its data, model, optimizer and RunState, from scratch or from a resume file."""

    def __init__(self, path, tokenizer, model, batches, valid_ids, cfg, meta, rs: RunState, kept: dict,
                 notes: tuple[str, ...] = ()):
        self.path, self.tokenizer, self.model, self.batches = path, tokenizer, model, batches
        self.valid_ids, self.cfg, self.meta, self.rs = valid_ids, cfg, meta, rs
        self.notes = notes  # shown at the start: settings the run has no use for, unknown validation tokens
        self.kept = kept  # arrays every saved model carries: the line hashes of a --lines model
        self.trainer = Trainer(model, cfg)
        self.stats = GradStats(model.config.layers, cfg.seq_len) if cfg.grad_stats else None

    @classmethod
    def fresh(cls, path, corpus, valid, encoding, errors, settings) -> "_Run":
        tok_cfg, model_settings, cfg = split_settings(settings)
        text = read_text(corpus, encoding, errors)
        tokenizer = Tokenizer.fit(text, tok_cfg)
        ids, _ = tokenizer.encode(text)
        valid_text = None if valid is None else read_text(valid, encoding, errors)
        meta = {
            "lm_version": __version__,
            "corpus": _corpus_entry(corpus, text),
            "valid": None if valid is None else _corpus_entry(valid, valid_text),
            "tokenizer_config": asdict(tok_cfg),
            "train_config": asdict(cfg),
            "history": [],
        }
        model = Model.init(ModelConfig(vocab=len(tokenizer), **model_settings), np.random.default_rng(cfg.seed))
        batches, valid_ids, notes = _data(tokenizer, ids, valid, valid_text, cfg)
        kept = _kept(tokenizer, text)
        notes = _unused(settings, tok_cfg, cfg, valid is not None) + notes
        return cls(path, tokenizer, model, batches, valid_ids, cfg, meta, RunState(lr=cfg.lr_at(1)), kept, notes)

    @classmethod
    def resumed(cls, path, corpus, valid, encoding, errors, settings) -> "_Run":
        where = checkpoint.resume_path(path)
        if not where.exists():
            older = path.with_name(path.stem + ".resume" + (path.suffix or ".npz"))  # the name until 2026-11-30
            hint = f"; if {older} is this run's (lm named it so before), rename it {where.name}" if older.exists() else ""
            raise LMError(f"nothing to resume: no {where} (it is written when training is interrupted, "
                          f"stops at --max-time, or every --checkpoint-every steps){hint}")
        ckpt = checkpoint.load(where)
        meta = ckpt.meta
        try:
            rs = RunState(**meta.pop("resume"))
            saved = {**meta["tokenizer_config"], **ckpt.model.config_dict(), **meta["train_config"]}
            saved["lr"] = TrainConfig(**meta["train_config"]).learning_rate  # None meant the optimizer's default
            cfg = TrainConfig(**{**meta["train_config"], **{k: v for k, v in settings.items() if k in RESUMABLE}})
            history = meta["history"]
            if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
                raise ConfigError("its history is not a list of epochs")
            for key, entry in (("corpus", meta["corpus"]), ("valid", meta["valid"])):
                if not _is_file_entry(entry) and not (key == "valid" and entry is None):
                    raise ConfigError(f"its {key} record is not a file name and a checksum")
            for h in history:  # read back at the end of the run
                EpochInfo(**h)
        except (KeyError, TypeError, ConfigError) as e:
            raise LMError(f"{where} is not a resume file or is damaged ({e})") from None
        if rs.epoch > cfg.epochs:  # going on would train nothing and delete the resume file
            raise ConfigError(f"--epochs {cfg.epochs}: the run is at epoch {rs.epoch}, step {rs.step}; "
                              f"give --epochs {rs.epoch} or more to go on")
        for key, value in settings.items():
            if key not in saved:
                raise ConfigError(f"unknown setting {key!r}")
            if key not in RESUMABLE and value != saved[key]:
                raise ConfigError(f"--{key.replace('_', '-')} cannot change when resuming "
                                  f"(the run has {saved[key]!r})")
        text = read_text(corpus, encoding, errors)
        if _corpus_entry(corpus, text)["sha256"] != meta["corpus"]["sha256"]:
            if _corpus_entry(corpus, BOM + text)["sha256"] == meta["corpus"]["sha256"]:
                raise LMError(f"this run was started by an lm that read the byte-order mark at the start of "
                              f"{corpus} as text, which lm now drops; its windows would not line up: start afresh")
            raise LMError(f"{corpus} is not the text this run was trained on ({meta['corpus']['name']}, "
                          f"sha256 {meta['corpus']['sha256'][:12]}...); resume with that file")
        valid_text = None if valid is None else read_text(valid, encoding, errors)
        if (meta["valid"] or {}).get("sha256") != (valid_text and _corpus_entry(valid, valid_text)["sha256"]):
            expected = "no --valid" if meta["valid"] is None else f"--valid {meta['valid']['name']}"
            raise LMError(f"this run validated with {expected}; resume with the same")
        tokenizer, model = ckpt.tokenizer, ckpt.model
        ids, _ = tokenizer.encode(text)
        batches, valid_ids, notes = _data(tokenizer, ids, valid, valid_text, cfg)
        if rs.step > len(batches):
            raise LMError(f"{where} is damaged: it is at step {rs.step} of an epoch of {len(batches)}")
        meta["train_config"] = asdict(cfg)
        run = cls(path, tokenizer, model, batches, valid_ids, cfg, meta, rs, _kept(tokenizer, text), notes)
        try:
            run._load_extra(ckpt.extra, where)
        except BaseException:
            run.trainer.close()  # its worker process would outlive the error, holding the model's lock
            raise
        return run

    def _training_arrays(self) -> dict[str, np.ndarray]:
        """What a resume file keeps beside the model: the optimizer's moments, the carried state
        and the gradient statistics, by their names in the file."""
        arrays = _prefixed("opt.", self.trainer.opt.state())
        for layer, parts in enumerate(self.trainer.state):
            arrays.update({f"state.{layer}.{k}": part for k, part in enumerate(parts)})
        if self.stats:
            arrays.update(_prefixed("grad_stats.", self.stats.state()))
        return arrays

    def _load_extra(self, extra: dict, where: Path) -> None:
        """The arrays of `_training_arrays`, from a resume file."""
        trainer = self.trainer
        # Checked first: a wrong shape that broadcasts (one row of state for a batch) would load.
        wrong = [k for k, v in self._training_arrays().items() if k not in extra or extra[k].shape != v.shape]
        try:
            if wrong:
                raise ValueError(", ".join(wrong))
            trainer.opt.load(_unprefixed("opt.", extra))
            for layer, parts in enumerate(trainer.state):
                for k, part in enumerate(parts):
                    part[:] = extra[f"state.{layer}.{k}"]
            if self.stats:
                self.stats.load(_unprefixed("grad_stats.", extra))
        except (TypeError, ValueError, OverflowError) as e:
            raise LMError(f"{where} is damaged: its training arrays do not fit the model ({e})") from None

    def _update_card(self, report: Report) -> None:
        """The saved model keeps its (best) weights, but its metadata gains the epoch just run:
        `lm info` shows the whole run, not the run up to its best epoch. Only the file this run
        saved: one deleted, spoiled or replaced meanwhile is left alone (the next improvement
        saves one), and a failed write is a notice, not the end of the run."""
        try:
            saved = checkpoint.load(self.path)
        except LMError:
            return
        meta = saved.meta
        if (meta.get("corpus"), meta.get("best_epoch"), saved.tokenizer.tokens) != (
                self.meta["corpus"], self.meta.get("best_epoch"), self.tokenizer.tokens):
            return
        try:
            checkpoint.save(self.path, Checkpoint(saved.model, self.tokenizer, self.meta, self.kept))
        except LMError as e:
            report(Notice(f"the saved model keeps its weights, but its card misses this epoch: {e}"))

    def _save_resume(self) -> Path:
        where = checkpoint.resume_path(self.path)
        extra = {**self.kept, **self._training_arrays()}
        self.rs.wall_time = self._wall()
        meta = {**self.meta, "resume": asdict(self.rs)}
        checkpoint.save(where, Checkpoint(self.model, self.tokenizer, meta, extra))
        return where

    def _snapshot(self) -> dict:
        return {"flat": self.model.flat.copy(), **{k: v.copy() for k, v in self.trainer.opt.state().items()}}

    def _rollback(self, snapshot: dict) -> None:
        self.model.flat[:] = snapshot["flat"]
        self.trainer.opt.load(snapshot)
        self.trainer.reset_state()

    def fit(self, report: Report, stop_signals: tuple[str, ...]) -> TrainResult:
        self._session_start, self._wall_before = time.perf_counter(), self.rs.wall_time
        # As in Trainer.step: a run going wrong overflows in validation, --grad-stats and the
        # epoch's sample too, and the figures it reports say so better than NumPy's warnings.
        with _Signals(report, stop_signals) as signals, np.errstate(all="ignore"):
            try:
                stopped = self._epochs(report, signals)
            finally:
                self.trainer.close()
        where = checkpoint.resume_path(self.path)
        if stopped in (None, "patience") or self.rs.epoch > self.cfg.epochs:  # complete: nothing left to resume
            where.unlink(missing_ok=True)
            where = None
        else:
            where = self._save_resume()
        best = self.rs.best
        history = [EpochInfo(**h) for h in self.meta["history"]]
        return TrainResult(self.path, history, best, stopped, where)

    def _epochs(self, report: Report, signals: _Signals) -> str | None:
        """Train until the last epoch, max_time, patience or a signal; which of them stopped it."""
        cfg, rs, model, batches, trainer = self.cfg, self.rs, self.model, self.batches, self.trainer
        c = model.config
        report(StartInfo(f"{c.layers} x {c.hidden} {c.cell.upper()}, embedding {c.embed}", model.num_params(),
                         c.vocab, batches.tokens, len(self.valid_ids), len(batches), _recipe(cfg)))
        for note in self.notes:
            report(Notice(f"note: {note}"))
        if batches.left_out > 0.01 * (batches.tokens + batches.left_out):  # fewer than B: many only if B is large
            report(Notice(f"the last {batches.left_out:,} training tokens do not fill the {cfg.batch_size:,} streams "
                          f"of --batch-size and are left out; a smaller --batch-size trains on them"))
        if rs.step or rs.epoch > 1:
            report(Notice(f"resuming at epoch {rs.epoch}, step {rs.step} of {len(batches)}"))
        steps = len(batches)
        # max_time counts this session's training only; at step 0 epoch_time is the last epoch's,
        # already in train_time
        trained_before = rs.train_time + (rs.epoch_time if rs.step else 0.0)
        snapshot, snapshot_step, failures = self._snapshot(), rs.total_steps, 0
        stopped = None
        while rs.epoch <= cfg.epochs:
            epoch = rs.epoch
            if rs.step == 0:
                if cfg.lr_schedule == "step":
                    rs.lr = cfg.lr_at(epoch) * rs.lr_scale
                trainer.reset_state()
                rs.epoch_nats, rs.epoch_tokens, rs.epoch_time = 0.0, 0, 0.0
            epoch_start = time.perf_counter() - rs.epoch_time
            for step, (x, y) in enumerate(batches.from_step(rs.step), rs.step + 1):
                if signals.requested:
                    return signals.requested
                if self.stats and rs.total_steps % self.stats.EVERY == 0:
                    self.stats.measure(model, x, y, trainer.state)
                loss, norm, clipped = trainer.step(x, y, rs.lr)
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    failures += 1
                    if failures > MAX_ROLLBACKS:
                        kept = f"{self.path} is kept" if self.path.exists() else "no model was saved"
                        raise LMError(f"training diverged: the loss was {loss} at epoch {epoch}, step {step}, "
                                      f"{MAX_ROLLBACKS} times after rolling back, down to --lr {rs.lr:.3g}; "
                                      f"try a lower --lr or a smaller --clip ({kept})")
                    self._rollback(snapshot)
                    rs.lr *= 0.5
                    rs.lr_scale *= 0.5
                    report(Notice(f"the loss was {loss} at epoch {epoch}, step {step}: rolled back to the "
                                  f"weights of {counted(snapshot_step, 'step')} in, learning rate halved to {rs.lr:.3g}"))
                    continue
                rs.step = step
                rs.epoch_nats += loss
                rs.epoch_tokens += y.size
                rs.total_steps += 1
                rs.clipped_steps += clipped
                now = time.perf_counter()
                rs.epoch_time = now - epoch_start
                if rs.total_steps % ROLLBACK_EVERY == 0:
                    snapshot, snapshot_step, failures = self._snapshot(), rs.total_steps, 0
                if cfg.checkpoint_every and rs.total_steps % cfg.checkpoint_every == 0:
                    self._save_resume()
                rate = rs.epoch_tokens / rs.epoch_time
                session = rs.train_time + rs.epoch_time - trained_before
                left = (steps - step + (cfg.epochs - epoch) * steps) * y.size / rate
                if cfg.max_time is not None:
                    left = min(left, max(0.0, cfg.max_time - session))
                report(StepInfo(epoch, cfg.epochs, step, steps, rs.epoch_nats / rs.epoch_tokens, rate,
                                rs.train_time + rs.epoch_time, left, norm, rs.clipped_steps / rs.total_steps))
                if cfg.max_time is not None and session >= cfg.max_time:
                    if step < steps or epoch < cfg.epochs:
                        stopped = "max-time"
                    break
            if not rs.epoch_tokens:  # every step of the epoch rolled back
                raise LMError(f"no step of epoch {epoch} had a finite loss; try a lower --lr")
            rs.train_time += rs.epoch_time
            self._end_epoch(report)
            if cfg.patience and rs.stale >= cfg.patience and rs.epoch <= cfg.epochs:
                stopped = "patience"  # also when --max-time ended the epoch: the run is over either way
            if stopped:
                return stopped
            if signals.requested and rs.epoch <= cfg.epochs:  # after the last epoch there is nothing to resume
                return signals.requested
        return None

    def _wall(self) -> float:
        """Seconds of this run in all, earlier sessions included."""
        return self._wall_before + time.perf_counter() - self._session_start

    def _end_epoch(self, report: Report) -> None:
        """Validate, record the epoch, save the model if it improved, and apply the schedule."""
        cfg, rs, meta = self.cfg, self.rs, self.meta
        valid_start = time.perf_counter()
        valid_loss = None
        if len(self.valid_ids):
            nats, _ = stream_nats(self.model, self.valid_ids, self.tokenizer.start_id, cfg.batch_size, cfg.seq_len)
            valid_loss = nats / len(self.valid_ids)
        improved = valid_loss is None or rs.best is None or valid_loss < rs.best
        valid_time = time.perf_counter() - valid_start
        drawn = None
        if cfg.sample_chars:  # seeded by the epoch, so a resumed run draws the same text
            rng = np.random.default_rng([cfg.seed, rs.epoch])
            drawn = "".join(sample(self.model, self.tokenizer, chars=cfg.sample_chars, seed=rng))
        info = EpochInfo(
            rs.epoch, rs.epoch_nats / rs.epoch_tokens, valid_loss,
            None if valid_loss is None else perplexity(valid_loss),
            rs.epoch_tokens / rs.epoch_time, self._wall(), rs.lr, improved, rs.epoch_time, valid_time, drawn,
        )
        meta["history"].append(info.to_dict())
        meta["train_time_s"] = rs.train_time
        if self.stats:
            meta["grad_stats"] = self.stats.to_dict(rs.clipped_steps / rs.total_steps)
        if improved:
            rs.best = valid_loss
            meta["best_valid_loss"] = valid_loss
            meta["best_epoch"] = rs.epoch
            checkpoint.save(self.path, Checkpoint(self.model, self.tokenizer, meta, self.kept))
        else:
            self._update_card(report)
        report(info)
        if valid_loss is not None:
            if rs.watched is None or valid_loss < rs.watched - cfg.min_delta:
                rs.watched, rs.stale = valid_loss, 0
            else:
                rs.stale += 1
                if cfg.lr_schedule == "plateau":
                    rs.lr *= cfg.lr_decay
        rs.epoch, rs.step = rs.epoch + 1, 0


def _is_file_entry(entry) -> bool:
    """Whether a resume file's record of a file is what _corpus_entry writes."""
    return isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("name", "sha256"))


def _data(tokenizer: Tokenizer, ids: np.ndarray, valid, valid_text: str | None, cfg: TrainConfig):
    """The training windows, the validation stream (the `valid` file's, or the corpus's tail),
    and notes on the valid file's tokens outside the vocabulary."""
    notes: tuple[str, ...] = ()
    if valid_text is not None:
        train_ids, (valid_ids, unknown) = ids, tokenizer.encode(valid_text)
        if unknown and tokenizer.kind == "char":
            notes = (f"{valid}: {counted(unknown, 'character')} that the corpus does not have, left out of "
                     f"validation",)
        elif unknown:
            notes = (f"{valid}: {counted(unknown, 'token')} outside the vocabulary, read as <UNK> in validation",)
    else:
        train_ids, valid_ids = split_tail(ids, cfg.valid_fraction, tokenizer.eos_id)
        valid_ids = valid_ids.copy()  # a view would keep the whole corpus's ids alive beside the batches
    if cfg.valid_fraction == 0 and valid is None and (cfg.patience or cfg.lr_schedule == "plateau"):
        raise ConfigError("--patience and --lr-schedule plateau watch the validation loss; "
                          "keep a --valid-fraction above 0 or give --valid")
    if (valid is not None or cfg.valid_fraction > 0) and not len(valid_ids):
        if valid is not None:
            problem = f"{valid} has no tokens the model knows; give another --valid"
        else:
            problem = "the corpus is too short to hold out a tail of it; give --valid"
        raise LMError(f"no validation text: {problem}, or --valid-fraction 0 to train without validation")
    source = "the corpus"
    if valid is None and cfg.valid_fraction:
        source = f"the corpus less its validation tail (--valid-fraction {cfg.valid_fraction:g})"
    return Batches(train_ids, tokenizer.start_id, cfg.batch_size, cfg.seq_len, source), valid_ids, notes


def _prefixed(prefix: str, arrays: dict) -> dict:
    """A part's arrays named for the resume file: {"m": ...} -> {"opt.m": ...}."""
    return {prefix + name: value for name, value in arrays.items()}


def _unprefixed(prefix: str, arrays: dict) -> dict:
    """The part's arrays back from the resume file's."""
    return {name[len(prefix) :]: value for name, value in arrays.items() if name.startswith(prefix)}


def _kept(tokenizer: Tokenizer, text: str) -> dict:
    """What a saved model keeps of its corpus: for a --lines character model, the hashes of its
    lines, so `lm sample` can mark copies and --novel avoid them; nothing of other models."""
    if tokenizer.kind == "char" and tokenizer.lines:
        return {"line_hashes": tokenizer.line_hashes(text)}
    return {}

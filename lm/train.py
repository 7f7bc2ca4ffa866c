"""Training: corpus -> tokenizer -> batches -> truncated BPTT with clipping -> the best model on validation.

`train` reports progress through a callback with StepInfo and EpochInfo records, so the
CLI (or any caller) renders while the library trains.
"""

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import __version__, checkpoint, optim
from .checkpoint import Checkpoint
from .config import DEFAULT_MODEL_PATH, ModelConfig, TokenizerConfig, TrainConfig
from .data import Batches, read_text, split_tail
from .errors import ConfigError, LMError
from .model import Model
from .score import stream_nats
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
        return math.exp(min(self.loss, 700.0))


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
    saved: bool  # the model file was written (validation improved, or there is none)
    train_s: float = 0.0  # this epoch's training steps
    valid_s: float = 0.0  # this epoch's validation

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    path: Path
    history: list[EpochInfo]
    best_valid_loss: float | None
    stopped: str | None  # why training ended before --epochs: "max-time" or "patience"


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
    on_progress: Callable[[StartInfo | StepInfo | EpochInfo], None] | None = None,
    **settings,
) -> TrainResult:
    """Train a model on the text file `corpus` and save the best one (on validation) to model_path.

    settings: any field of TokenizerConfig, ModelConfig or TrainConfig, e.g. cell="gru",
    hidden=128, epochs=3, seq_len=50. Validation is `valid` if given, else the last
    `valid_fraction` of the corpus.
    """
    tok_cfg, model_settings, cfg = split_settings(settings)
    checkpoint.check_writable(model_path)
    text = read_text(corpus, encoding)
    tokenizer = Tokenizer.fit(text, tok_cfg)
    ids, _ = tokenizer.encode(text)
    if valid is not None:
        train_ids = ids
        valid_ids, _ = tokenizer.encode(read_text(valid, encoding))
    else:
        train_ids, valid_ids = split_tail(ids, cfg.valid_fraction, tokenizer.eos_id)
    if cfg.valid_fraction == 0 and valid is None and (cfg.patience or cfg.lr_schedule == "plateau"):
        raise ConfigError("--patience and --lr-schedule plateau watch the validation loss; "
                          "keep a --valid-fraction above 0 or give --valid")
    if (valid is not None or cfg.valid_fraction > 0) and not len(valid_ids):
        source = valid if valid is not None else "the held-out tail"
        raise LMError(f"no validation text: {source} has no tokens the model knows; "
                      f"give another --valid, or --valid-fraction 0 to train without validation")
    batches = Batches(train_ids, tokenizer.start_id, cfg.batch_size, cfg.seq_len)
    model = Model.init(ModelConfig(vocab=len(tokenizer), **model_settings), np.random.default_rng(cfg.seed))
    meta = {
        "lm_version": __version__,
        "corpus": {"name": Path(corpus).name, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()},
        "train_config": asdict(cfg),
        "history": [],
    }
    return _fit(model, tokenizer, batches, valid_ids, cfg, Path(model_path), meta, on_progress or (lambda _: None))


class Trainer:
    """One step of truncated BPTT at a time: forward, backward, clip, update, carry the state.

    `train` runs it over epochs; the benchmarks time it as it is.
    """

    def __init__(self, model: Model, cfg: TrainConfig):
        self.model, self.cfg = model, cfg
        self.opt = optim.make(cfg.optimizer, model.flat.size, model.dtype)
        self.reset_state()

    def reset_state(self) -> None:
        """a<0> = 0 for every stream, at the start of each epoch."""
        self.state = self.model.zero_state(self.cfg.batch_size)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, float, bool]:
        """Inputs and targets (T, B) -> the summed loss, the gradient norm and whether it was clipped."""
        model = self.model
        loss, _, self.state = model.loss_and_grads(x, y, self.state, scale=1.0 / self.cfg.batch_size)
        if not math.isfinite(loss):
            return loss, math.nan, False
        norm, scale, clipped = optim.clip(model.grad, self.cfg.clip, self.cfg.clip_value)
        self.opt.step(model.flat, model.grad, lr, scale)
        return loss, norm, clipped


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
            f"{cfg.seq_len} steps, {cfg.epochs} epochs{stop}")


def _fit(model, tokenizer, batches, valid_ids, cfg, path, meta, report) -> TrainResult:
    trainer = Trainer(model, cfg)
    B = cfg.batch_size
    steps = len(batches)
    c = model.config
    report(StartInfo(f"{c.layers} x {c.hidden} {c.cell.upper()}, embedding {c.embed}", model.num_params(),
                     c.vocab, batches.tokens, len(valid_ids), steps, _recipe(cfg)))
    history: list[EpochInfo] = []
    best = math.inf  # the best validation loss: the saved model's
    watched = math.inf  # the last validation loss that counted as an improvement (by min_delta)
    stale = 0  # epochs since then
    lr = cfg.learning_rate
    start = time.perf_counter()
    train_time = 0.0
    clipped_steps = total_steps = 0
    stopped = None
    stats = GradStats(c.layers, cfg.seq_len) if cfg.grad_stats else None
    for epoch in range(1, cfg.epochs + 1):
        if cfg.lr_schedule == "step":
            lr = cfg.lr_at(epoch)
        trainer.reset_state()
        nats = 0.0
        tokens = 0
        epoch_start = time.perf_counter()
        for step, (x, y) in enumerate(batches, 1):
            if stats and total_steps % stats.EVERY == 0:
                stats.measure(model, x, y, trainer.state)
            loss, norm, clipped = trainer.step(x, y, lr)
            if not math.isfinite(loss):
                raise LMError(
                    f"training diverged (loss is {loss} at epoch {epoch}, step {step}); "
                    f"try a lower --lr or a smaller --clip"
                )
            nats += loss
            tokens += y.size
            total_steps += 1
            clipped_steps += clipped
            now = time.perf_counter()
            rate = tokens / (now - epoch_start)
            elapsed = train_time + now - epoch_start
            left = (steps - step + (cfg.epochs - epoch) * steps) * y.size / rate
            if cfg.max_time is not None:
                left = min(left, max(0.0, cfg.max_time - elapsed))
            report(StepInfo(epoch, cfg.epochs, step, steps, nats / tokens, rate, elapsed, left, norm,
                            clipped_steps / total_steps))
            if cfg.max_time is not None and elapsed >= cfg.max_time:
                if step < steps or epoch < cfg.epochs:
                    stopped = "max-time"
                break
        epoch_time = time.perf_counter() - epoch_start
        train_time += epoch_time
        valid_loss = None
        if len(valid_ids):
            valid_loss = stream_nats(model, valid_ids, tokenizer.start_id, B, cfg.seq_len) / len(valid_ids)
        valid_time = time.perf_counter() - epoch_start - epoch_time
        improved = valid_loss is None or valid_loss < best
        info = EpochInfo(
            epoch, nats / tokens, valid_loss, None if valid_loss is None else math.exp(valid_loss),
            tokens / epoch_time, time.perf_counter() - start, lr, improved, epoch_time, valid_time,
        )
        history.append(info)
        meta["history"] = [h.to_dict() for h in history]
        meta["train_time_s"] = train_time
        if stats:
            meta["grad_stats"] = stats.to_dict(clipped_steps / total_steps)
        if improved:
            best = valid_loss if valid_loss is not None else best
            meta["best_valid_loss"] = valid_loss
            meta["best_epoch"] = epoch
            checkpoint.save(path, Checkpoint(model, tokenizer, meta))
        report(info)
        if valid_loss is not None:
            if valid_loss < watched - cfg.min_delta:
                watched, stale = valid_loss, 0
            else:
                stale += 1
                if cfg.lr_schedule == "plateau":
                    lr *= cfg.lr_decay
                if cfg.patience and stale >= cfg.patience and epoch < cfg.epochs:
                    stopped = "patience"
        if stopped:
            break
    return TrainResult(path, history, None if best == math.inf else best, stopped)

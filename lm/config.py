"""Every setting and its default, defined once. The CLI's flags are these fields, `_` read as `-`.

Each field may carry its valid range in its metadata ("min" and "max" inclusive, "above" and
"below" exclusive, "choices"), and must hold a value of its own type; __post_init__ checks
them, so a bad value fails the same way from the CLI and from Python: a ConfigError naming
the flag.
"""

import math
import numbers
import typing
from dataclasses import dataclass, field, fields

import numpy as np

from .errors import ConfigError

DEFAULT_MODEL_PATH = "model.npz"


# Far beyond any real model; past them NumPy fails in ways that are not "out of memory".
MAX_UNITS = 2**20  # hidden units, embedding size
MAX_COUNT = 2**31 - 1  # token ids are int32; steps, sequences, epochs


def check_count(flag: str, value: int, least: int = 1) -> None:
    """A count outside the dataclasses (sampling limits, -n, lm eval's batch): from `least` to
    MAX_COUNT, else a ConfigError naming the flag."""
    if not least <= value <= MAX_COUNT:
        raise ConfigError(f"{flag} must be from {least} to {MAX_COUNT:,}, not {value:,}")


def counted(n: int, noun: str) -> str:
    """A count and its noun for messages: "1 step", "20 steps", "1,000 epochs"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def at_least(least, default):
    """A field whose values run from `least` up."""
    return field(default=default, metadata={"min": least})


def _count(default, least=1, max=MAX_COUNT):
    return field(default=default, metadata={"min": least, "max": max})


def _kind(f) -> type:
    """A field's type, None left out of `int | None`."""
    return next((t for t in typing.get_args(f.type) if t is not type(None)), f.type)


def _typed(value, kind: type, flag: str):
    """value as the field's own type: whole numbers for int fields (a NumPy integer becomes an
    int), any real number for float fields; what a model file's JSON could smuggle in (6.0
    hidden units, true for a layer count) is refused."""
    if kind is bool or kind is str:
        if not isinstance(value, (bool, np.bool_) if kind is bool else str):
            raise ConfigError(f"{flag} must be {'true or false' if kind is bool else 'a string'}, not {value!r}")
        return kind(value)
    number = numbers.Integral if kind is int else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, number):
        raise ConfigError(f"{flag} must be a {'whole ' if kind is int else ''}number, not {value!r}")
    try:
        return kind(value)
    except OverflowError:  # an int past a float's range
        raise ConfigError(f"{flag} must be a finite number, not one of {len(str(value))} digits") from None


def check_fields(obj, owner: str | None = None) -> None:
    """The dataclass obj's fields against their types and their metadata's ranges (module
    docstring). Messages name a field as its flag, or as "the OWNER's field" for settings that
    have no flag (a resume file's run state)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        flag = "--" + f.name.replace("_", "-") if owner is None else f"the {owner}'s {f.name.replace('_', ' ')}"
        meta = f.metadata
        if value is None and type(None) in typing.get_args(f.type):
            continue
        value = _typed(value, _kind(f), flag)  # None where a field has no None: a ConfigError
        object.__setattr__(obj, f.name, value)  # the dataclasses are frozen
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(f"{flag} must be one of {', '.join(meta['choices'])}, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag} must be a finite number, not {value}")
        if "min" in meta and value < meta["min"]:
            raise ConfigError(f"{flag} must be at least {meta['min']}, not {value}")
        if "max" in meta and value > meta["max"]:
            raise ConfigError(f"{flag} must be at most {meta['max']:,}, not {value:,}")
        if "above" in meta and value <= meta["above"]:
            raise ConfigError(f"{flag} must be greater than {meta['above']}, not {value}")
        if "below" in meta and value >= meta["below"]:
            raise ConfigError(f"{flag} must be less than {meta['below']}, not {value}")


@dataclass(frozen=True)
class TokenizerConfig:
    """How text becomes tokens. `tokenizer`: char, word (regex, Unicode-aware) or whitespace."""

    tokenizer: str = field(default="char", metadata={"choices": ("char", "word", "whitespace")})
    lower: bool = False
    vocab_size: int = _count(10_000)  # the notes' 10,000 words, plus <UNK> and <EOS>
    lines: bool = False  # character level: every line a sequence ending in <EOS>

    def __post_init__(self):
        check_fields(self)


@dataclass(frozen=True)
class ModelConfig:
    """The network: embedding E, `layers` stacked cells of H units, softmax over V."""

    vocab: int = _count(1)
    cell: str = field(default="lstm", metadata={"choices": ("rnn", "gru", "lstm")})
    layers: int = _count(1, max=1024)
    hidden: int = _count(128, max=MAX_UNITS)
    embed: int = _count(64, max=MAX_UNITS)
    peephole: bool = False

    def __post_init__(self):
        check_fields(self)
        if self.peephole and self.cell != "lstm":
            raise ConfigError("--peephole needs --cell lstm")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: truncated BPTT over seq_len steps of batch_size parallel streams."""

    seq_len: int = _count(50)
    batch_size: int = _count(32)
    epochs: int = _count(10)
    max_time: float | None = field(default=None, metadata={"above": 0})
    optimizer: str = field(default="adam", metadata={"choices": ("adam", "sgd")})
    lr: float | None = field(default=None, metadata={"above": 0})  # None: 2e-3 Adam, 1.0 SGD
    lr_decay: float = field(default=1.0, metadata={"above": 0})
    decay_after: int = _count(1, least=0)
    lr_schedule: str = field(default="step", metadata={"choices": ("step", "plateau")})
    patience: int | None = _count(None)  # epochs without improvement
    min_delta: float = at_least(0.0, 0.0)  # nats/token that count as one
    clip: float = at_least(0, 5.0)  # global norm; 0 turns it off
    clip_value: float = at_least(0, 0.0)  # per element; 0 turns it off
    valid_fraction: float = field(default=0.1, metadata={"min": 0.0, "below": 1.0})
    seed: int = at_least(0, 0)
    grad_stats: bool = False  # record how far back gradients reach (model.gradient_reach)
    checkpoint_every: int | None = _count(None)  # steps between resume files
    sample_chars: int = _count(100, least=0)  # a sample after each epoch; 0: none

    def __post_init__(self):
        check_fields(self)
        if self.lr_decay > 1:
            raise ConfigError(f"--lr-decay must be at most 1, not {self.lr_decay}")
        if self.lr_schedule == "plateau" and self.lr_decay == 1:
            raise ConfigError("--lr-schedule plateau needs an --lr-decay below 1 (0.5 halves the rate)")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 2e-3 if self.optimizer == "adam" else 1.0

    def lr_at(self, epoch: int) -> float:
        """Step schedule: the learning rate of 1-based `epoch`, multiplied by lr_decay for every
        epoch after the first decay_after (Zaremba et al.'s small model: 1.0, halved each epoch
        after the 4th). The plateau schedule starts at the full rate whatever decay_after says;
        training decays it after each epoch that did not improve."""
        if self.lr_schedule == "plateau":
            return self.learning_rate
        return self.learning_rate * self.lr_decay ** max(0, epoch - self.decay_after)

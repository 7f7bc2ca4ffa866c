"""How probable is a text: sentences, P(y<1..T>) = Π_t P(y<t> | y<1..t-1>), and whole files as one stream."""

import functools
import math
from dataclasses import dataclass

import numpy as np

from . import parallel
from .data import inputs_for
from .errors import LMError
from .model import Model
from .ops import target_logprobs
from .tokenizer import EOS, Tokenizer


LN2, LN10 = math.log(2), math.log(10)


def perplexity(loss: float) -> float:
    """e^loss for a loss in nats per token, capped at e^700: e^710 overflows a float."""
    return math.exp(min(loss, 700.0))


@dataclass
class SentenceScore:
    text: str
    tokens: list[str]  # the tokens scored, <EOS> included where the model has one (and it was asked for)
    token_logprobs: list[float]  # natural log of P(y<t> | y<1..t-1>)
    unknown: int  # tokens that were not in the vocabulary (<UNK>, or left-out characters)
    unit: str  # "char" or "word": what bits_per_unit counts

    @property
    def logprob(self) -> float:
        return float(sum(self.token_logprobs))

    @property
    def log10prob(self) -> float:
        """log10 P, as KenLM prints it."""
        return self.logprob / LN10

    @property
    def perplexity(self) -> float:
        return perplexity(-self.logprob / len(self.token_logprobs))

    @property
    def probability(self) -> str:
        """exp(logprob) in scientific notation, from log10 so it never underflows to 0."""
        return sci(self.logprob)

    @property
    def bits_per_unit(self) -> float:
        """-log2 P per character scored (character models; a --lines model's <EOS> is the line's
        break) or per word token, <EOS> not counted (word models): what `lm eval` divides by too."""
        units = len(self.tokens) if self.unit == "char" else sum(t != EOS for t in self.tokens)
        return -self.logprob / LN2 / max(units, 1)

    @property
    def surprisals(self) -> list[float]:
        """Each token's -log2 P: how surprised the model was, in bits."""
        return [-lp / LN2 for lp in self.token_logprobs]

    def to_dict(self, per_token: bool = False) -> dict:
        d = {
            "text": self.text,
            "logprob": self.logprob,
            "log10prob": self.log10prob,
            "probability": self.probability,
            "perplexity": self.perplexity,
            f"bits_per_{self.unit}": self.bits_per_unit,
            "tokens": len(self.tokens),
            "unknown": self.unknown,
        }
        if per_token:
            d["token_logprobs"] = [[t, lp] for t, lp in zip(self.tokens, self.token_logprobs)]
        return d


def sci(logprob: float) -> str:
    """e**logprob as a string like 5.7e-10."""
    log10 = logprob / math.log(10)
    exponent = math.floor(log10)
    mantissa = 10 ** (log10 - exponent)
    if mantissa >= 9.95:
        mantissa, exponent = 1.0, exponent + 1
    return f"{mantissa:.1f}e{exponent:+03d}"


def logprobs(model: Model, x: np.ndarray, y: np.ndarray, state, prepared=None) -> tuple[np.ndarray, list]:
    """log P(y<t> | inputs so far) for a window: x, y (T, B) -> (T, B) float64, 0 where y < 0
    (padding); and the state after the window. prepared: model.prepare(), for many windows."""
    a, state, _ = model.run_layers(x, state, prepared)
    return _picked(model, a, y), state


def _picked(model: Model, a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The top layer's a (T, B, H) -> log P of the targets y (T, B), 0 where y < 0."""
    logits = model.logits(a)
    T, B, V = logits.shape
    picked = target_logprobs(logits.reshape(T * B, V), np.maximum(y, 0).reshape(-1)).reshape(T, B)
    picked[y < 0] = 0.0
    return picked


def score_sentence(model: Model, tokenizer: Tokenizer, text: str, *, no_eos: bool = False,
                   unk: str | None = None) -> SentenceScore:
    """Score one sentence from a<0> = 0, counting its <EOS> where the model has one unless no_eos
    (a fragment). unk: the policy for tokens outside the vocabulary (Tokenizer.ids)."""
    ids, unknown = tokenizer.encode_sentence(text, eos=not no_eos, unk=unk)
    if not text.strip() or ids in ([], [tokenizer.eos_id]):  # every token left out: <EOS> alone is no sentence
        raise LMError(f"nothing to score in {text!r}")
    y = np.asarray(ids, dtype=np.int32)[:, None]
    x = inputs_for(y[:, 0], tokenizer.start_id)[:, None]
    # Windows, so that a sentence of a whole book needs no T x V logits at once.
    window, state, prepared = max(1, LOGITS_BUDGET // model.config.vocab), model.zero_state(1), model.prepare(len(y))
    parts = []
    for i in range(0, len(y), window):
        logp, state = logprobs(model, x[i : i + window], y[i : i + window], state, prepared)
        parts.append(logp[:, 0])
    logp = _finite(np.concatenate(parts))
    unit = "char" if tokenizer.kind == "char" else "word"
    return SentenceScore(text, [tokenizer.tokens[i] for i in ids], logp.tolist(), unknown, unit)


def _finite(logp):
    """Log-probabilities, refused when not finite: finite float32 weights can still overflow the
    logits (a hand-made or damaged model), and NaN would print as a probability."""
    if not np.all(np.isfinite(logp)):
        raise LMError("the model gives no finite probabilities here: its weights are out of range")
    return logp


def rank(scores: list[SentenceScore]) -> list[SentenceScore]:
    """Most probable first."""
    return sorted(scores, key=lambda s: -s.logprob)


@dataclass
class StreamScore:
    tokens: int
    nats: float  # summed negative log-likelihood
    unknown: int  # tokens outside the vocabulary: <UNK> targets, or left-out characters
    unk_nats: float  # the part of nats spent on <UNK> targets
    unit: str  # "char" or "word"
    units: int  # characters or words of the text

    @property
    def loss(self) -> float:
        return self.nats / self.tokens

    @property
    def perplexity(self) -> float:
        return perplexity(self.loss)

    @property
    def perplexity_without_unk(self) -> float:
        """KenLM's "excluding OOVs": <UNK> targets left out of both the sum and the count."""
        scored = self.tokens - (self.unknown if self.unit == "word" else 0)
        return perplexity((self.nats - self.unk_nats) / max(scored, 1))

    @property
    def bits_per_unit(self) -> float:
        return self.nats / LN2 / max(self.units, 1)

    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "loss": self.loss, "perplexity": self.perplexity,
                "perplexity_without_unk": self.perplexity_without_unk, "unknown": self.unknown,
                f"bits_per_{self.unit}": self.bits_per_unit}


LOGITS_BUDGET = 1 << 22  # logits per window (16 MB in float32): larger ones only add memory traffic


def stream_nats(model: Model, ids: np.ndarray, start_id: int, batch_size: int = 1, seq_len: int = 256,
                unk_id: int | None = None) -> tuple[float, float]:
    """Summed -log P of a token stream (N,), the state carried across windows and sentences, and
    the part of it spent on targets that are unk_id.

    batch_size 1 reads the stream exactly as one sequence (how published perplexities are
    computed). A larger batch cuts it into that many consecutive parts, each from the zero
    state: faster, and the figure a little higher. The last part is padded; padding is not scored.
    Windows are at most seq_len steps, and shorter where the logits would pass LOGITS_BUDGET.
    """
    N = len(ids)
    B = max(1, min(batch_size, N))
    seq_len = max(1, min(seq_len, LOGITS_BUDGET // (B * model.config.vocab)))
    n = -(-N // B)
    x = np.zeros(B * n, dtype=np.int32)
    x[:N] = inputs_for(ids, start_id)
    y = np.full(B * n, -1, dtype=np.int32)
    y[:N] = ids
    xs, ys = x.reshape(B, n).T, y.reshape(B, n).T
    state = model.zero_state(B)
    prepared = model.prepare(N)

    def window_nats(a: np.ndarray, y_window: np.ndarray) -> tuple[float, float]:
        logp = _picked(model, a, y_window)
        return -float(logp.sum()), (-float(logp[y_window == unk_id].sum()) if unk_id is not None else 0.0)

    # A window's output layer and softmax run in the background while the next window's time
    # loop runs here (parallel.py): the two are about equal, and the loop cannot be split.
    total = unk_total = 0.0
    pending = None
    with parallel.one_blas_thread():
        for i in range(0, n, seq_len):
            a, state, _ = model.run_layers(np.ascontiguousarray(xs[i : i + seq_len]), state, prepared)
            if pending is not None:
                nats, unk_nats = pending.result()
                total, unk_total = total + nats, unk_total + unk_nats
            pending = parallel.in_background(functools.partial(window_nats, a, ys[i : i + seq_len]))
        nats, unk_nats = pending.result()
    return float(_finite(total + nats)), unk_total + unk_nats


def score_stream(model: Model, tokenizer: Tokenizer, text: str, batch_size: int = 1) -> StreamScore:
    """A whole text as one stream (lines as sentences ending in <EOS> where the model has one)."""
    ids, unknown = tokenizer.encode(text)
    if not len(ids):
        raise LMError("nothing to score: the text has no tokens the model knows")
    nats, unk_nats = stream_nats(model, ids, tokenizer.start_id, batch_size, unk_id=tokenizer.unk_id)
    if tokenizer.kind == "char":  # the characters scored: <EOS> of --lines stands for a line break
        return StreamScore(len(ids), nats, unknown, unk_nats, "char", len(ids))
    return StreamScore(len(ids), nats, unknown, unk_nats, "word", len(ids) - int(np.sum(ids == tokenizer.eos_id)))

"""Drawing novel text: from the zero state, draw y<t> from the softmax with NumPy's random `choice`,
feed it back as x<t+1>, stop at <EOS> or a length limit. Text is yielded as it is drawn."""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, LMError
from .model import Model
from .ops import softmax
from .tokenizer import Tokenizer

DEFAULT_TOKENS = 200  # the limit when none is given
TOKENS_PER_WORD_CAP = 100  # a word limit also stops here, for models that rarely draw a space


@dataclass(frozen=True)
class Limits:
    """Stop after `chars` characters, `words` whitespace-separated words or `tokens` tokens,
    whichever comes first; DEFAULT_TOKENS when none is given."""

    chars: int | None = None
    words: int | None = None
    tokens: int | None = None

    def __post_init__(self):
        for name in ("chars", "words", "tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name} must be at least 1, not {value}")

    @property
    def token_cap(self) -> int | None:
        """Every token adds a character, so a chars limit always ends; a words limit may not."""
        if self.tokens is not None:
            return self.tokens
        if self.words is not None and self.chars is None:
            return self.words * TOKENS_PER_WORD_CAP
        return DEFAULT_TOKENS if self.chars is None else None


def generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """The random stream draws come from; a Generator passes through, so -n draws continue one."""
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise ConfigError(f"--seed must be at least 0, not {seed}")
    return np.random.default_rng(seed)


def choice(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One draw from each row of p (n, V): `rng.choice(V, p=p[i])` for every row at once.

    It is the algorithm of NumPy's Generator.choice (the normalised cumulative sum searched
    for one uniform number), vectorised over rows, so a single row draws exactly what
    `choice` draws from the same generator; tested against it.
    """
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(p))
    return (cdf <= u[:, None]).sum(axis=1)


def _draws(model: Model, start: list[int], n: int, temperature: float, rng: np.random.Generator,
           banned: int | None, greedy: bool) -> Iterator[np.ndarray]:
    """Token ids for n sequences at once, one (n,) array per step, without end: from the zero
    state, read `start` (x<1> and the primer), then feed each draw back as the next input."""
    x = np.repeat(np.array(start, dtype=np.int32)[:, None], n, axis=1)
    prepared = model.prepare()
    logits, state, _ = model.forward(x, model.zero_state(n), prepared)
    while True:
        z = logits[-1].astype(np.float64)
        if banned is not None:
            z[:, banned] = -np.inf
        if greedy:
            ids = np.argmax(z, axis=1)
        else:  # max subtracted before dividing: a tiny temperature gives -inf, never inf - inf
            z -= z.max(axis=1, keepdims=True)
            with np.errstate(over="ignore"):
                ids = choice(rng, softmax(z / temperature))
        yield ids
        logits, state, _ = model.forward(ids[None, :].astype(np.int32), state, prepared)


class _Text:
    """One sequence being drawn: turns token ids into printable pieces and applies the limits."""

    def __init__(self, tokenizer: Tokenizer, limits: Limits, prev: str | None):
        self.tokenizer, self.limits, self.prev = tokenizer, limits, prev
        self.cap = limits.token_cap
        self.tokens = self.chars = self.words = 0
        self.after_space = True  # the drawn text is empty or ends in whitespace: a next word starts a new one
        self.done = False

    def add(self, i: int) -> str:
        """The piece token i adds ('' if it adds none); sets `done` when the text is complete."""
        if i == self.tokenizer.eos_id:
            self.done = True
            return ""
        tok = self.tokenizer.tokens[i]
        piece = self.tokenizer.piece(self.prev, tok)
        self.prev = tok
        self.tokens += 1
        stripped = piece.lstrip()
        self.words += bool(stripped) and (self.after_space or len(stripped) < len(piece))
        self.after_space = piece[-1].isspace() if piece else self.after_space
        limits = self.limits
        if limits.words is not None and self.words > limits.words:
            self.done = True
            return ""
        if limits.chars is not None and self.chars + len(piece) >= limits.chars:
            self.done = True
            piece = piece[: limits.chars - self.chars]
        self.chars += len(piece)
        self.done |= self.cap is not None and self.tokens >= self.cap
        return piece


def _setup(model, tokenizer, chars, words, tokens, temperature, prime, seed, no_unk):
    limits = Limits(chars, words, tokens)
    if not np.isfinite(temperature) or temperature <= 0:
        raise ConfigError(f"--temperature must be a positive number, not {temperature}")
    rng = generator(seed)
    prime_ids = _prime_ids(tokenizer, prime)
    banned = tokenizer.unk_id if no_unk else None
    prev = tokenizer.tokens[prime_ids[-1]] if prime_ids else None
    return limits, rng, prime_ids, banned, prev


def sample(
    model: Model,
    tokenizer: Tokenizer,
    *,
    chars: int | None = None,
    words: int | None = None,
    tokens: int | None = None,
    temperature: float = 1.0,
    prime: str = "",
    seed: int | np.random.Generator | None = None,
    no_unk: bool = False,
    greedy: bool = False,
) -> Iterator[str]:
    """Yield the pieces of one sampled sequence (the primer first), ready to print as they come.

    The limits count the drawn text, not the primer. seed: an int for repeatable text, or a
    np.random.Generator to continue drawing from. no_unk draws from the softmax with <UNK>
    removed and the rest renormalised: the same distribution as the notes' "reject <UNK> and
    draw again", without an unbounded loop.
    """
    limits, rng, prime_ids, banned, prev = _setup(model, tokenizer, chars, words, tokens, temperature, prime,
                                                  seed, no_unk)
    primer = tokenizer.decode(prime_ids)
    if primer:
        yield primer
    text = _Text(tokenizer, limits, prev)
    for ids in _draws(model, [tokenizer.start_id, *prime_ids], 1, temperature, rng, banned, greedy):
        piece = text.add(int(ids[0]))
        if piece:
            yield piece
        if text.done:
            return


def sample_many(
    model: Model,
    tokenizer: Tokenizer,
    num: int,
    *,
    chars: int | None = None,
    words: int | None = None,
    tokens: int | None = None,
    temperature: float = 1.0,
    prime: str = "",
    seed: int | np.random.Generator | None = None,
    no_unk: bool = False,
    greedy: bool = False,
) -> list[str]:
    """`num` sequences drawn side by side as one batch (much faster than one after another),
    each with the primer first; the same settings as `sample`."""
    if num < 1:
        raise ConfigError(f"--num must be at least 1, not {num}")
    limits, rng, prime_ids, banned, prev = _setup(model, tokenizer, chars, words, tokens, temperature, prime,
                                                  seed, no_unk)
    primer = tokenizer.decode(prime_ids)
    texts = [_Text(tokenizer, limits, prev) for _ in range(num)]
    pieces: list[list[str]] = [[primer] for _ in range(num)]
    for ids in _draws(model, [tokenizer.start_id, *prime_ids], num, temperature, rng, banned, greedy):
        for text, drawn, i in zip(texts, pieces, ids.tolist()):
            if not text.done:
                drawn.append(text.add(i))
        if all(text.done for text in texts):
            break
    return ["".join(drawn) for drawn in pieces]


def _prime_ids(tokenizer: Tokenizer, prime: str) -> list[int]:
    if not prime:
        return []
    ids, unknown = tokenizer.ids(tokenizer.split(prime))
    if unknown and tokenizer.unk_id is None:
        unseen = sorted({ch for ch in tokenizer.split(prime) if ch not in tokenizer.index})
        raise LMError(f"the model never saw {', '.join(map(repr, unseen))} in training; change --prime")
    return ids

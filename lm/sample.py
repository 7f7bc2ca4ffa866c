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


@dataclass(frozen=True)
class Limits:
    """Stop after `chars` characters, `words` whitespace-separated words or `tokens` tokens."""

    chars: int | None = None
    words: int | None = None
    tokens: int | None = None

    def __post_init__(self):
        for name in ("chars", "words", "tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name} must be at least 1, not {value}")


def _check(temperature: float) -> None:
    if not np.isfinite(temperature) or temperature <= 0:
        raise ConfigError(f"--temperature must be a positive number, not {temperature}")


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

    seed: an int for repeatable text, or a np.random.Generator to continue drawing from.

    no_unk draws from the softmax with <UNK> removed and the rest renormalised: the same
    distribution as the notes' "reject <UNK> and draw again", without an unbounded loop.
    """
    limits = Limits(chars, words, tokens)
    if limits == Limits():
        limits = Limits(tokens=DEFAULT_TOKENS)
    _check(temperature)
    rng = np.random.default_rng(seed)  # a Generator passes through, so -n draws continue one stream
    prime_ids = _prime_ids(tokenizer, prime)
    eos, unk = tokenizer.eos_id, tokenizer.unk_id
    state = model.zero_state(1)
    logits, state, _ = model.forward(np.array([[tokenizer.start_id, *prime_ids]], dtype=np.int32).T, state)
    text = ""  # what has been drawn, primer excluded: the limits count only this
    prev = None
    n_tokens = n_words = 0
    for i in prime_ids:
        piece = tokenizer.piece(prev, tokenizer.tokens[i])
        prev = tokenizer.tokens[i]
        yield piece
    V = len(tokenizer)
    while True:
        z = logits[-1, 0].astype(np.float64)
        if no_unk and unk is not None:
            z[unk] = -np.inf
        if greedy:
            i = int(np.argmax(z))
        else:
            i = int(rng.choice(V, p=softmax(z / temperature)))
        if i == eos:
            return
        tok = tokenizer.tokens[i]
        piece = tokenizer.piece(prev, tok)
        n_tokens += 1
        n_words += _starts_word(text, piece)
        if limits.words is not None and n_words > limits.words:
            return
        if limits.chars is not None and len(text) + len(piece) >= limits.chars:
            yield piece[: limits.chars - len(text)]
            return
        yield piece
        text, prev = text + piece, tok
        if limits.tokens is not None and n_tokens >= limits.tokens:
            return
        logits, state, _ = model.forward(np.array([[i]], dtype=np.int32), state)


def _starts_word(text: str, piece: str) -> bool:
    stripped = piece.lstrip()
    return bool(stripped) and (not text or text[-1].isspace() or len(stripped) < len(piece))


def _prime_ids(tokenizer: Tokenizer, prime: str) -> list[int]:
    if not prime:
        return []
    ids, unknown = tokenizer.ids(tokenizer.split(prime))
    if unknown and tokenizer.unk_id is None:
        unseen = sorted({ch for ch in tokenizer.split(prime) if ch not in tokenizer.index})
        raise LMError(f"the model never saw {', '.join(map(repr, unseen))} in training; change --prime")
    return ids

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
    limits = Limits(chars, words, tokens)
    cap = limits.token_cap
    if not np.isfinite(temperature) or temperature <= 0:
        raise ConfigError(f"--temperature must be a positive number, not {temperature}")
    rng = generator(seed)
    prime_ids = _prime_ids(tokenizer, prime)
    eos, unk = tokenizer.eos_id, tokenizer.unk_id
    x = np.array([[tokenizer.start_id, *prime_ids]], dtype=np.int32).T
    logits, state, _ = model.forward(x, model.zero_state(1))
    prev = None
    for i in prime_ids:
        yield tokenizer.piece(prev, tokenizer.tokens[i])
        prev = tokenizer.tokens[i]
    n_tokens = n_chars = n_words = 0
    after_space = True  # the drawn text is empty or ends in whitespace: a next word starts a new one
    while cap is None or n_tokens < cap:
        z = logits[-1, 0].astype(np.float64)
        if no_unk and unk is not None:
            z[unk] = -np.inf
        if greedy:
            i = int(np.argmax(z))
        else:  # max subtracted before dividing: a tiny temperature gives -inf, never inf - inf
            with np.errstate(over="ignore"):
                i = int(rng.choice(len(z), p=softmax((z - z.max()) / temperature)))
        if i == eos:
            return
        prev, piece = tokenizer.tokens[i], tokenizer.piece(prev, tokenizer.tokens[i])
        n_tokens += 1
        stripped = piece.lstrip()
        n_words += bool(stripped) and (after_space or len(stripped) < len(piece))
        after_space = piece[-1].isspace() if piece else after_space
        if limits.words is not None and n_words > limits.words:
            return
        if limits.chars is not None and n_chars + len(piece) >= limits.chars:
            yield piece[: limits.chars - n_chars]
            return
        n_chars += len(piece)
        yield piece
        logits, state, _ = model.forward(np.array([[i]], dtype=np.int32), state)


def _prime_ids(tokenizer: Tokenizer, prime: str) -> list[int]:
    if not prime:
        return []
    ids, unknown = tokenizer.ids(tokenizer.split(prime))
    if unknown and tokenizer.unk_id is None:
        unseen = sorted({ch for ch in tokenizer.split(prime) if ch not in tokenizer.index})
        raise LMError(f"the model never saw {', '.join(map(repr, unseen))} in training; change --prime")
    return ids

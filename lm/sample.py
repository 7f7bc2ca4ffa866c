"""Drawing novel text: from the zero state, draw y<t> from the softmax with NumPy's random `choice`,
feed it back as x<t+1>, stop at <EOS> or a length limit. Text is yielded as it is drawn."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np

from .config import check_count
from .errors import ConfigError, LMError
from .model import Model
from .tokenizer import Tokenizer, copies_a_line

DEFAULT_TOKENS = 200  # the limit when none is given
TOKENS_PER_WORD_CAP = 100  # a word limit also stops here, for models that rarely draw a space
NOVEL_ROUNDS = 100  # --novel: batches drawn before giving up on new sequences
MAX_BATCH = 1024  # sequences drawn side by side; -n 10**8 would otherwise ask for a state of 10**8 rows


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
            if value is not None:
                check_count(f"--{name}", value)

    @property
    def token_cap(self) -> int | None:
        """Every token adds a character, so a chars limit always ends; a words limit may not."""
        if self.tokens is not None:
            return self.tokens
        if self.words is not None and self.chars is None:
            return self.words * TOKENS_PER_WORD_CAP
        return DEFAULT_TOKENS if self.chars is None else None


@dataclass(frozen=True)
class Drawing:
    """How each token is drawn from the softmax: at `temperature`, from the `top_k` most probable
    tokens and the smallest set whose probability reaches `top_p` (nucleus), or the argmax
    (`greedy`); <EOS> is not drawn before `min_length` tokens, nor `banned` (<UNK> with --no-unk)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    min_length: int = 0
    banned: int | None = None

    def __post_init__(self):
        if not np.isfinite(self.temperature) or self.temperature <= 0:
            raise ConfigError(f"--temperature must be a positive number, not {self.temperature}")
        if self.top_k is not None:
            check_count("--top-k", self.top_k)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], not {self.top_p}")
        check_count("--min-length", self.min_length, least=0)

    def pick(self, logits: np.ndarray, step: int, eos: int | None, rng: np.random.Generator) -> np.ndarray:
        """One token id for each row of logits (n, V), the `step`-th drawn (from 0).

        In the logits' dtype (float32 from a trained model: its exp costs a quarter of
        float64's), and left unnormalised: `choice` divides by each row's sum anyway."""
        z = logits.copy()
        if self.banned is not None:
            z[:, self.banned] = -np.inf
        if eos is not None and step < self.min_length:
            z[:, eos] = -np.inf
        if self.greedy:
            return np.argmax(z, axis=1)
        z -= z.max(axis=1, keepdims=True)  # before dividing: a tiny temperature gives -inf, never inf - inf
        if self.temperature != 1:  # one below the dtype's smallest would round to 0; all such act alike
            with np.errstate(over="ignore"):
                z /= max(self.temperature, np.finfo(z.dtype).tiny)
        p = np.exp(z, out=z)  # the softmax, times the row's sum
        if self.top_k is not None and self.top_k < p.shape[1]:
            kth = np.partition(p, -self.top_k, axis=1)[:, -self.top_k, None]
            p[p < kth] = 0.0
        if self.top_p is not None and self.top_p < 1:
            order = np.argsort(-p, axis=1)
            ranked = np.take_along_axis(p, order, axis=1)
            before = np.cumsum(ranked.astype(np.float64), axis=1) - ranked  # the mass of the more probable tokens
            ranked[before >= self.top_p * ranked.sum(axis=1, keepdims=True, dtype=np.float64)] = 0.0
            np.put_along_axis(p, order, ranked, axis=1)
        return choice(rng, p)


def generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """The random stream draws come from; a Generator passes through, so -n draws continue one."""
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise ConfigError(f"--seed must be at least 0, not {seed}")
    return np.random.default_rng(seed)


def choice(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One draw from each row of p (n, V): `rng.choice(V, p=p[i])` for every row at once.

    It is the algorithm of NumPy's Generator.choice (the normalised cumulative sum searched
    for one uniform number), vectorised over rows, so a single row draws exactly what
    `choice` draws from the same generator; tested against it. Rows need not sum to 1, and
    are summed in float64 whatever their dtype (converted first: NumPy's cumsum converting
    on the way took 4 times as long over 16 x 10,000).
    """
    cdf = np.cumsum(p.astype(np.float64, copy=False), axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(p))
    return (cdf <= u[:, None]).sum(axis=1)


def _draws(model: Model, start: list[int], n: int, drawing: Drawing, eos: int | None,
           rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Token ids for n sequences at once, one (n,) array per step, without end: from the zero
    state, read `start` (x<1> and the primer), then feed each draw back as the next input."""
    x = np.repeat(np.array(start, dtype=np.int32)[:, None], n, axis=1)
    prepared = model.prepare(n * (len(start) + DEFAULT_TOKENS))  # the limits count characters or words: a guess
    logits, state, _ = model.forward(x, model.zero_state(n), prepared)
    step = 0
    while True:
        ids = drawing.pick(logits[-1], step, eos, rng)
        yield ids
        step += 1
        logits, state, _ = model.forward(ids[None, :].astype(np.int32), state, prepared)


class _Text:
    """One sequence being drawn: turns token ids into printable pieces, applies the limits, and
    holds back text that may be the start of a stop string until it is known not to be."""

    def __init__(self, tokenizer: Tokenizer, limits: Limits, prev: str | None, stops: Sequence[str]):
        self.tokenizer, self.limits, self.prev = tokenizer, limits, prev
        self.cap = limits.token_cap
        self.stops = [s for s in ([stops] if isinstance(stops, str) else stops) if s]  # one string is one stop
        self.held = ""
        self.space = ""  # with a word limit: whitespace drawn, shown once a word within the limit follows
        self.tokens = self.chars = self.words = 0
        self.after_space = True  # the drawn text is empty or ends in whitespace: a next word starts a new one
        self.done = False

    def add(self, i: int) -> str:
        """The text token i lets out ('' if none); sets `done` when the sequence is complete."""
        piece = self._piece(i)
        if not self.stops:
            return piece
        text = self.held + piece
        ends = [k for k in (text.find(s) for s in self.stops) if k >= 0]
        if ends:  # a stop string ends the sequence, and is not printed
            self.done, self.held = True, ""
            return text[: min(ends)]
        if self.done:
            self.held = ""
            return text
        keep = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self.held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def _piece(self, i: int) -> str:
        if i == self.tokenizer.eos_id:
            self.done = True
            return self._spaced("")
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
        return self._spaced(piece)

    def _spaced(self, piece: str) -> str:
        """With a word limit, whitespace waits for the next word, and is dropped if none comes
        (the word past the limit, <EOS> or the token cap ends the text): --words 3 of a
        character model ends "a b c", not "a b c "."""
        if self.limits.words is None:
            return piece
        body = piece.rstrip()
        if not body:
            self.space = "" if self.done else self.space + piece
            return ""
        piece, self.space = self.space + body, "" if self.done else piece[len(body):]
        return piece


@dataclass(frozen=True)
class SampleConfig:
    """How a sample is drawn: the settings of `lm sample`, each with its default, defined once
    for the sampler, `LanguageModel.sample` and the CLI (whose flags they are, `_` read as `-`).

    The limits (Limits) count the drawn text, not the primer. The drawing's settings are
    Drawing's. seed: an int for repeatable text, or a np.random.Generator to continue drawing
    from. stop: strings that end the sequence where they appear (not printed). unk: the policy
    for primer tokens the model never saw ("error", "map" to <UNK>, "skip"; by default map
    where the model has <UNK>, else skip). no_unk draws from the softmax with <UNK> removed and
    the rest renormalised: the notes' "reject <UNK> and draw again" without an unbounded loop.
    """

    chars: int | None = None
    words: int | None = None
    tokens: int | None = None
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    prime: str = ""
    seed: int | np.random.Generator | None = None
    stop: Sequence[str] = ()
    min_length: int = 0
    unk: str | None = None
    no_unk: bool = False
    greedy: bool = False


SAMPLE_SETTINGS = frozenset(f.name for f in fields(SampleConfig))


@dataclass
class _Setup:
    limits: Limits
    drawing: Drawing
    rng: np.random.Generator
    start: list[int]  # x<1> and the primer's ids
    primer: str  # the primer as the model reads it back
    prev: str | None  # the primer's last token
    stop: Sequence[str]


def _setup(tokenizer: Tokenizer, options: dict) -> _Setup:
    """What drawing needs, from the keyword settings of a SampleConfig (checked here)."""
    unknown = set(options) - SAMPLE_SETTINGS
    if unknown:
        raise ConfigError(f"unknown sampling setting {min(unknown)!r}")
    cfg = SampleConfig(**options)
    limits = Limits(cfg.chars, cfg.words, cfg.tokens)
    drawing = Drawing(cfg.temperature, cfg.top_k, cfg.top_p, cfg.greedy, cfg.min_length,
                      tokenizer.unk_id if cfg.no_unk else None)
    rng = generator(cfg.seed)
    prime_ids = tokenizer.encode_prefix(cfg.prime, cfg.unk)[0] if cfg.prime else []
    prev = tokenizer.tokens[prime_ids[-1]] if prime_ids and prime_ids[-1] != tokenizer.eos_id else None
    return _Setup(limits, drawing, rng, [tokenizer.start_id, *prime_ids], tokenizer.decode(prime_ids, eos="\n"), prev,
                  cfg.stop)


def sample(model: Model, tokenizer: Tokenizer, *, novel: np.ndarray | None = None, **options) -> Iterator[str]:
    """Yield the pieces of one sampled sequence (the primer first), ready to print as they come.

    options: the fields of SampleConfig. novel: the line hashes of the training data
    (`Tokenizer.line_hashes`); sequences found in it are drawn again, and the one kept comes
    whole, not piece by piece.
    """
    s = _setup(tokenizer, options)
    if novel is not None:
        yield next(_many(model, tokenizer, 1, s, novel))[1]
        return
    if s.primer:
        yield s.primer
    text = _Text(tokenizer, s.limits, s.prev, s.stop)
    for ids in _draws(model, s.start, 1, s.drawing, tokenizer.eos_id, s.rng):
        piece = text.add(int(ids[0]))
        if piece:
            yield piece
        if text.done:
            return


def draw_many(model: Model, tokenizer: Tokenizer, num: int, *, novel: np.ndarray | None = None,
              **options) -> Iterator[tuple[int, str]]:
    """`num` sequences drawn side by side (much faster than one after another; MAX_BATCH at a
    time), each yielded as (index, text) the moment it is complete, primer first; the settings
    of `sample`."""
    check_count("--num", num)
    return _many(model, tokenizer, num, _setup(tokenizer, options), novel)


def sample_many(model: Model, tokenizer: Tokenizer, num: int, **settings) -> list[str]:
    """The texts of `draw_many`, in order."""
    texts = [""] * num
    for i, text in draw_many(model, tokenizer, num, **settings):
        texts[i] = text
    return texts


def _many(model, tokenizer, num: int, s: _Setup, novel) -> Iterator[tuple[int, str]]:
    if novel is None:
        yield from _batch(model, tokenizer, range(num), s)
        return
    if tokenizer.eos_id is None:
        raise ConfigError("--novel needs a model of one sequence per line (trained with --lines)")
    missing = list(range(num))
    for _ in range(NOVEL_ROUNDS):
        drawn = dict(_batch(model, tokenizer, missing, s))
        for i in list(missing):
            if not copies_a_line(novel, drawn[i]):
                missing.remove(i)
                yield i, drawn[i]
        if not missing:
            return
    raise LMError(f"no new sequence in {NOVEL_ROUNDS} tries: the model mostly repeats its training lines; "
                  f"try a higher --temperature")


def _batch(model, tokenizer, indices, s: _Setup) -> Iterator[tuple[int, str]]:
    """len(indices) sequences, each yielded with its index when complete: MAX_BATCH at a time
    side by side, so that memory stays bounded however many are asked for."""
    for start in range(0, len(indices), MAX_BATCH):
        yield from _side_by_side(model, tokenizer, indices[start : start + MAX_BATCH], s)


def _side_by_side(model, tokenizer, indices, s: _Setup) -> Iterator[tuple[int, str]]:
    """One batch of len(indices) sequences, each yielded with its index when complete."""
    limits = s.limits
    if not s.stop and limits.words is None and (limits.chars is None or tokenizer.kind == "char"):
        # A character model's every token is one character: its chars limit is a token cap.
        cap = min(c for c in (limits.token_cap, limits.chars) if c is not None)
        yield from _batch_of_tokens(model, tokenizer, indices, s, cap)
        return
    texts = {i: _Text(tokenizer, s.limits, s.prev, s.stop) for i in indices}
    pieces = {i: [s.primer] for i in indices}
    for ids in _draws(model, s.start, len(texts), s.drawing, tokenizer.eos_id, s.rng):
        for (i, text), token in zip(texts.items(), ids.tolist()):
            if not text.done:
                pieces[i].append(text.add(token))
                if text.done:
                    yield i, "".join(pieces[i])
        if all(text.done for text in texts.values()):
            return


def _batch_of_tokens(model, tokenizer, indices, s: _Setup, cap: int) -> Iterator[tuple[int, str]]:
    """`_side_by_side` when only tokens are counted: each sequence ends at its first <EOS> or its
    cap-th token, which whole-batch array operations can tell, so a step costs no Python work
    per sequence; a sequence's text is made once, when it ends."""
    eos = tokenizer.eos_id
    drawn = []
    alive = np.ones(len(indices), dtype=bool)
    for ids in _draws(model, s.start, len(indices), s.drawing, eos, s.rng):
        drawn.append(ids)
        if len(drawn) == cap:
            ended = alive.copy()
        else:
            ended = alive & (ids == eos) if eos is not None else np.zeros_like(alive)
        if ended.any():
            columns = np.stack(drawn, axis=1)
            for j in np.flatnonzero(ended):
                yield indices[j], s.primer + tokenizer.decode(columns[j], s.prev)
        alive &= ~ended
        if not alive.any():
            return

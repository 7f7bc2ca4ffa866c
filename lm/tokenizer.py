"""Text <-> token ids: characters, regex words, or whitespace-separated tokens.

Vocabulary ids: the specials first (<EOS>, then <UNK> for word models), then the tokens,
characters in code-point order, words by falling frequency with ties broken alphabetically,
so the same corpus always gives the same ids in any process.

The first input of every sequence, x<1>, is `start_id`: <EOS> (the marker that ends the
previous sentence) for models that have one, else -1, which the embedding reads as the
zero vector of the notes. Training, sampling and scoring all start this way.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import regex

from .config import TokenizerConfig
from .errors import ConfigError, LMError

EOS = "<EOS>"
UNK = "<UNK>"
UNK_LITERALS = frozenset({"<unk>", "<UNK>"})

# A word is letters (with their combining marks, digits, and the invisible joiners that some
# scripts write inside words: ZWNJ in Persian, ZWJ in Indic scripts, the soft hyphen) joined
# by inner apostrophes or hyphens; a number, with its marks (the keycap 1️⃣), may carry inner
# separators; anything else that is not a space stands alone as one grapheme cluster (\X), so
# that an emoji with its skin tone, a flag or a ZWJ family stays one token.
WORD_PATTERN = regex.compile(
    r"<unk>|<UNK>"
    r"|\p{L}[\p{L}\p{M}\p{N}\u00ad\u200c\u200d]*(?:['’\-][\p{L}\p{M}\p{N}\u00ad\u200c\u200d]+)*"
    r"|\p{N}[\p{N}\p{M}]*(?:[.,:]\p{N}[\p{N}\p{M}]*)*"
    r"|(?!\s)\X"
)
NO_SPACE_BEFORE = regex.compile(r"^(?:[.,!?;:%)\]}»”…]+|['’]\p{L}+|n't)$")
NO_SPACE_AFTER = frozenset("([{«“¿¡$")
UNK_POLICIES = ("error", "map", "skip")
CHUNK = 1 << 22  # characters encoded at a time: bounds the temporary objects of a large corpus


@dataclass
class Tokenizer:
    """A vocabulary and the rules to split text into its tokens. Build one with `fit`."""

    kind: str  # "char", "word" or "whitespace"
    tokens: list[str]
    lower: bool = False
    lines: bool = False
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        if self.kind == "char":
            # Code point -> id for whole arrays of characters; the last entry (-1) catches every
            # code point beyond the vocabulary's. "\n" stands for <EOS> in --lines text.
            chars = {ord(t): i for t, i in self.index.items() if len(t) == 1}
            if self.lines:
                chars[ord("\n")] = self.index[EOS]
            self._lut = np.full(max(chars, default=0) + 2, -1, dtype=np.int32)
            self._lut[list(chars)] = list(chars.values())

    @classmethod
    def fit(cls, text: str, config: TokenizerConfig) -> "Tokenizer":
        if config.tokenizer == "char":
            if config.lower:
                text = text.lower()
            if config.lines:  # the same line breaks as encode: splitlines also splits at \r, \x0c, ...
                return cls("char", [EOS] + sorted(set("".join(text.splitlines()))), config.lower, True)
            return cls("char", sorted(set(text)), config.lower, False)
        probe = cls(config.tokenizer, [EOS, UNK], config.lower, True)
        counts = Counter(tok for piece in _pieces(text) for line in piece.splitlines() for tok in probe.split(line))
        for special in (EOS, *UNK_LITERALS):
            counts.pop(special, None)
        words = sorted(counts, key=lambda w: (-counts[w], w))[: config.vocab_size]
        return cls(config.tokenizer, [EOS, UNK] + words, config.lower, True)

    @property
    def eos_id(self) -> int | None:
        return self.index.get(EOS)

    @property
    def unk_id(self) -> int | None:
        return self.index.get(UNK)

    @property
    def start_id(self) -> int:
        """x<1>: <EOS> where the model has it, else -1 (the zero vector)."""
        eos = self.eos_id
        return -1 if eos is None else eos

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, line: str) -> list[str]:
        """One line of text as token strings (no <EOS>)."""
        if self.lower:
            line = line.lower()
        if self.kind == "char":
            return list(line)
        if self.kind == "whitespace":
            return line.split()
        return WORD_PATTERN.findall(line)

    def ids(self, toks: list[str], unk: str | None = None) -> tuple[list[int], int]:
        """Token strings to ids, and how many were unknown.

        unk, the policy for tokens outside the vocabulary: "map" them to <UNK>, "skip" them
        (left out, counted), or raise an "error" naming them. None: map where the model has
        <UNK> (word models), skip where it has none (character models).
        """
        unk_id = self.unk_id
        policy = unk or ("skip" if unk_id is None else "map")
        if policy not in UNK_POLICIES:
            raise ConfigError(f"--unk must be one of {', '.join(UNK_POLICIES)}, not {policy!r}")
        if policy == "map" and unk_id is None:
            raise ConfigError("--unk map needs a model with <UNK> (a word model); use skip or error")
        out: list[int] = []
        unseen: list[str] = []
        for tok in toks:
            # A literal "<EOS>" in the text is a word like any other, not the end of a sentence.
            i = None if tok == EOS else self.index.get(UNK if tok in UNK_LITERALS and unk_id is not None else tok)
            if i is None or i == unk_id:
                unseen.append(tok)
                if policy == "skip":
                    continue
                i = unk_id
            out.append(i)
        if unseen and policy == "error":
            shown = ", ".join(repr(t) for t in dict.fromkeys(unseen))
            raise LMError(f"the model never saw {shown} (--unk error); --unk {'map' if unk_id is not None else 'skip'} "
                          f"reads past them")
        return out, len(unseen)

    def encode_sentence(self, line: str, eos: bool = True, unk: str | None = None) -> tuple[list[int], int]:
        """A sentence as ids, ending in <EOS> where the model has one (and `eos`); and the unknown count."""
        ids, unknown = self.ids(self.split(line), unk)
        if eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids, unknown

    def encode_prefix(self, text: str, unk: str | None = None) -> tuple[list[int], int]:
        """Text for the model to continue (a primer) as ids, read as `encode` reads a corpus: a
        word or --lines model ends every line that has its break with <EOS> (blank lines left
        out); the last line, without one, stays open. And the unknown count (see `ids`)."""
        if self.kind == "char" and not self.lines:
            return self.ids(self.split(text), unk)
        return self._sentences(text, unk, open_end=True)

    def _sentences(self, text: str, unk: str | None = None, open_end: bool = False) -> tuple[list[int], int]:
        """Every non-blank line a sentence, ending in <EOS>; with open_end, a last line without its
        line break stays open. And the unknown count."""
        ids: list[int] = []
        unknown = 0
        for line in text.splitlines(keepends=open_end):
            body = line.splitlines()[0] if open_end else line
            if body.strip():
                line_ids, line_unknown = self.encode_sentence(body, eos=len(body) < len(line) or not open_end, unk=unk)
                ids += line_ids
                unknown += line_unknown
        return ids, unknown

    def line_hashes(self, text: str) -> np.ndarray:
        """A compact record of a --lines corpus: sorted 64-bit hashes of its lines as the model
        prints them (no text), so a sample can be recognised as a copy of a training line."""
        lines = {self.decode(self.encode_sentence(line)[0]) for line in text.splitlines() if line.strip()}
        return np.unique(np.array([_line_hash(line) for line in lines], dtype=np.uint64))

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """A whole corpus as one stream of ids (int32), and how many tokens were unknown.

        Word models and `--lines` character models read every non-blank line as a sentence
        ending in <EOS>; a plain character model reads the text as one stream.
        """
        # A character gives at most one id (a line's <EOS> replaces its break), so a character
        # model's ids fill one array in place: no second copy of a large corpus's ids.
        # Lower-casing may lengthen text ("İ" becomes two code points), so --lower collects pieces.
        out = np.empty(len(text) + 1, dtype=np.int32) if self.kind == "char" and not self.lower else None
        parts, n, unknown = [np.zeros(0, dtype=np.int32)], 0, 0
        for piece in _pieces(text):
            ids, piece_unknown = self._encode_piece(piece)
            if out is None:
                parts.append(ids)
            else:
                out[n : n + len(ids)] = ids
            n += len(ids)
            unknown += piece_unknown
        return (np.concatenate(parts) if out is None else out[:n]), unknown

    def _encode_piece(self, text: str) -> tuple[np.ndarray, int]:
        if self.kind == "char":  # vectorised: one lookup of the code points of the whole piece
            if self.lower:
                text = text.lower()
            if self.lines:
                text = "".join(line + "\n" for line in text.splitlines() if line.strip())
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            ids = self._lut[np.minimum(codes, len(self._lut) - 1)]
            known = ids >= 0
            return ids[known], int(len(ids) - known.sum())
        ids, unknown = self._sentences(text)
        return np.asarray(ids, dtype=np.int32), unknown

    def decode(self, ids, prev: str | None = None, eos: str = "") -> str:
        """Readable text: characters joined; words joined by spaces, none before punctuation.
        prev: the token printed just before, when the text continues one. eos: what an <EOS>
        prints as (a primer's line breaks); a sentence after it starts afresh."""
        eos_id = self.eos_id
        out = []
        for i in ids:
            if i == eos_id:
                if eos:
                    out.append(eos)
                    prev = None
            else:
                out.append(self.piece(prev, self.tokens[i]))
                prev = self.tokens[i]
        return "".join(out)

    def piece(self, prev: str | None, tok: str) -> str:
        """How `tok` is printed after `prev`: a word is preceded by a space unless it is closing
        punctuation or follows an opening one; characters are printed as they are."""
        if self.kind == "char" or prev is None:
            return tok
        if NO_SPACE_BEFORE.match(tok) or prev in NO_SPACE_AFTER:
            return tok
        return " " + tok

    def to_dict(self) -> dict:
        return {"kind": self.kind, "tokens": self.tokens, "lower": self.lower, "lines": self.lines}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        try:
            tok = cls(d["kind"], list(d["tokens"]), bool(d["lower"]), bool(d["lines"]))
        except (KeyError, TypeError) as e:
            raise LMError(f"the model's vocabulary is damaged ({e})") from None
        if (
            tok.kind not in ("char", "word", "whitespace")
            or len(tok.index) != len(tok.tokens)
            or not all(isinstance(t, str) and t for t in tok.tokens)
            or not _is_text("".join(tok.tokens))
        ):
            raise LMError("the model's vocabulary is damaged")
        return tok


def _is_text(s: str) -> bool:
    """Whether s has no lone surrogate: JSON allows one ("\\ud800"), but printing it fails."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _pieces(text: str):
    """The text in consecutive pieces of about CHUNK characters, each ending after a line break
    (or at the end), so no line is split and every character is kept."""
    start = 0
    while start < len(text):
        end = (text.find("\n", start + CHUNK) + 1) or len(text)
        yield text[start:end]
        start = end


def _line_hash(line: str) -> int:
    return int.from_bytes(hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest(), "little")


def copies_a_line(hashes: np.ndarray, sample: str) -> bool:
    """Whether the last line of `sample` is one of the lines `hashes` (from Tokenizer.line_hashes)
    records: a --lines model draws one line, and any lines before it are its primer's."""
    h = np.uint64(_line_hash(sample.rsplit("\n", 1)[-1]))
    i = int(np.searchsorted(hashes, h))
    return bool(i < len(hashes) and hashes[i] == h)

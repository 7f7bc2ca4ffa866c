"""Corpus files in, token streams split and cut into (T, B) windows for truncated BPTT."""

import contextlib
import io
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .config import counted
from .errors import ConfigError, LMError


ERRORS = ("strict", "replace", "ignore")
BOM = "\ufeff"  # a byte-order mark, which Windows editors write before UTF-8 text: not part of the text


def read_text(path: str | Path, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The text of a corpus file, or an LMError that says what is wrong with it.

    errors: what to do with bytes that are not valid in `encoding`: stop (strict), decode them
    as U+FFFD (replace) or drop them (ignore).
    """
    _check_decoding(encoding, errors)
    path = Path(path)
    if not path.exists():
        raise LMError(f"{path}: no such file")
    if path.is_dir():
        raise LMError(f"{path} is a directory; give a text file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LMError(f"{path}: cannot read ({e.strerror})") from None
    wide = b"\0" in "\n".encode(encoding, "replace")  # UTF-16 and UTF-32 text is full of NUL bytes
    nul = -1 if wide else data.find(b"\0")
    if nul >= 0:
        raise LMError(f"{path} looks binary (NUL byte at offset {nul}); give a text file")
    try:
        text = data.decode(encoding, errors)
    except UnicodeDecodeError as e:
        raise LMError(f"{path} is not valid {encoding}: byte 0x{data[e.start]:02x} at offset {e.start}; "
                      f"give its --encoding, or --errors replace") from None
    except UnicodeError as e:  # codecs for other jobs than text (punycode) fail without a position
        raise LMError(f"{path} cannot be read as {encoding} ({e}); give its --encoding") from None
    text = text.removeprefix(BOM)
    nul = text.find("\0") if wide else -1
    if nul >= 0:
        raise LMError(f"{path} looks binary (NUL character at position {nul}); give a text file")
    if not text.strip():
        raise LMError(f"{path} is empty; give a file with some text")
    return text


def read_stdin(encoding: str = "utf-8", errors: str = "strict") -> Iterator[str]:
    """Standard input decoded as read_text decodes a file (not as the locale says), lazily: a
    line at a time, with its line end, each as it arrives down a pipe."""
    _check_decoding(encoding, errors)
    binary = getattr(sys.stdin, "buffer", None)
    return _decoded(binary, encoding, errors) if binary is not None else iter(sys.stdin)


def _decoded(binary, encoding: str, errors: str) -> Iterator[str]:
    stream = io.TextIOWrapper(binary, encoding, errors, newline="")
    try:
        for n, line in enumerate(stream, 1):
            if n == 1:
                line = line.removeprefix(BOM)
            if "\0" in line:  # as read_text refuses a file
                raise LMError(f"standard input looks binary (a NUL character in line {n}); give text")
            yield line
    except UnicodeDecodeError as e:
        raise LMError(f"standard input is not valid {encoding}: byte 0x{e.object[e.start]:02x}; "
                      f"give its --encoding, or --errors replace") from None
    except UnicodeError as e:
        raise LMError(f"standard input cannot be read as {encoding} ({e}); give its --encoding") from None
    finally:
        with contextlib.suppress(ValueError):  # standard input already closed: the generator was left at exit
            stream.detach()  # closing the wrapper would close standard input


def _check_decoding(encoding: str, errors: str) -> None:
    if errors not in ERRORS:
        raise ConfigError(f"--errors must be one of {', '.join(ERRORS)}, not {errors!r}")
    try:
        b"\0".decode(encoding, "replace")  # LookupError for unknown names and for codecs like rot13
    except LookupError:
        raise ConfigError(f"unknown text encoding {encoding!r}") from None
    except UnicodeError:  # idna, punycode, undefined: codecs for other jobs than text files
        raise ConfigError(f"--encoding {encoding!r} is not an encoding for text files") from None


def lines(text: str | Iterable[str]) -> Iterator[tuple[int, str]]:
    """The lines of a text, or of read_stdin, that are not blank, without their line ends, each
    with its 1-based line number (blank lines counted, for messages). Both end lines at \\n,
    \\r\\n or \\r, so a file and the same bytes piped in give the same lines."""
    if isinstance(text, str):
        text = io.StringIO(text, newline="")
    return ((n, line.rstrip("\r\n")) for n, line in enumerate(text, 1) if line.strip())


def inputs_for(ids: np.ndarray, start_id: int) -> np.ndarray:
    """The inputs that predict `ids`: x<1> = start_id, then x<t> = y<t-1>. (N,) -> (N,) int32."""
    x = np.empty(len(ids), dtype=np.int32)
    x[:1] = start_id
    x[1:] = ids[:-1]
    return x


def split_tail(ids: np.ndarray, fraction: float, eos_id: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the last `fraction` of a stream for validation, starting at a sentence where one
    starts in the tail (else at the last sentence start before it, else mid-stream)."""
    if fraction <= 0:
        return ids, ids[:0]
    cut = max(1, int(round(len(ids) * (1.0 - fraction))))
    if eos_id is not None:
        after = np.flatnonzero(ids[cut - 1 : -1] == eos_id)
        before = np.flatnonzero(ids[: cut - 1] == eos_id)
        if len(after):
            cut += int(after[0])
        elif len(before):
            cut = int(before[-1]) + 1
    return ids[:cut], ids[cut:]


class Batches:
    """A stream of N token ids as B parallel streams, cut into windows of T steps.

    Stream b holds positions [b*n, (b+1)*n) with n = N // B, so the hidden state carried from
    one window to the next (truncated BPTT) continues the same text. Each window is a pair of
    time-major int32 arrays: inputs x and targets y, both (T, B); the last may be shorter.
    Only the targets are kept, as one (n, B) array: a window's inputs are the targets one step
    earlier, x<1> of stream b the token before its start (`start_id` for the first stream).
    """

    def __init__(self, ids: np.ndarray, start_id: int, batch_size: int, seq_len: int, source: str = "the corpus"):
        """source: what the ids are, for the error when they are too few."""
        n = len(ids) // batch_size
        if n < 2:
            advice = "use a smaller --batch-size or a longer corpus" if batch_size > 1 else "give a longer corpus"
            raise LMError(f"{source} has {counted(len(ids), 'token')}, too few for --batch-size {batch_size}; {advice}")
        self.y = np.ascontiguousarray(ids[: batch_size * n].astype(np.int32, copy=False).reshape(batch_size, n).T)
        self.left_out = len(ids) - batch_size * n  # the tail that does not fill all B streams
        self.first = np.concatenate([[start_id], self.y[-1, :-1]]).astype(np.int32)  # x<1> of each stream
        self.seq_len = seq_len

    def __len__(self) -> int:
        return -(-self.y.shape[0] // self.seq_len)

    @property
    def tokens(self) -> int:
        return self.y.size

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.from_step(0)

    def from_step(self, step: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The windows after the first `step` (where a resumed epoch goes on)."""
        T, y = self.seq_len, self.y
        for i in range(step * T, y.shape[0], T):
            window = y[i : i + T]
            x = np.empty_like(window)
            x[0] = y[i - 1] if i else self.first
            x[1:] = window[:-1]
            yield x, window

"""One self-contained model file: the parameter arrays and a JSON metadata entry in a NumPy .npz.

The metadata (format version, model configuration, vocabulary, training history) is stored
as the UTF-8 bytes of a JSON document in the uint8 array "__meta__", so nothing needs pickle:
files are read with allow_pickle=False and a file carrying a pickled object is refused.
Writes go to a temporary file in the same directory, are fsynced, then renamed over the
target, so a crash at any moment leaves either the old model or the new one.

Arrays named "train.*" are what training kept beside the parameters: in a resume file
(`resume_path`, a model file too, so it can be sampled from) what an exact resume needs
(optimizer moments, the carried state), and in every file of a --lines model the hashes of
its training lines ("train.line_hashes").
"""

import fcntl
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .errors import ConfigError, LMError
from .model import Model
from .tokenizer import Tokenizer

FORMAT = "lm-model"
VERSION = 1
META_KEY = "__meta__"
EXTRA = "train."  # the prefix of the arrays training kept beside the parameters


@dataclass
class Checkpoint:
    """A trained model with its vocabulary and metadata: everything the sampler and scorer need.
    extra: the arrays training kept beside the parameters, named without the "train." prefix."""

    model: Model
    tokenizer: Tokenizer
    meta: dict = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def resume_path(path: str | Path) -> Path:
    """Where training interrupted while writing `path` keeps its state: model.npz ->
    model.resume.npz; another name gets .resume after it (model -> model.resume), so that
    `-m model` and `-m model.npz` do not share one."""
    path = Path(path)
    if path.suffix == ".npz":
        return path.with_name(path.stem + ".resume.npz")
    return path.with_name(path.name + ".resume")


def _shown(path: Path) -> str:
    """A path for messages: an empty `-m ''` reaches here as ".", which alone reads as a typo."""
    return f"{path} (the current directory)" if path == Path(".") else str(path)


def check_writable(path: str | Path) -> None:
    """Fail now, not after an hour of training, if a model cannot be written at `path`: by creating
    a file there, since permission bits do not tell (root, read-only file systems)."""
    path = Path(path)
    directory = path.parent
    if path.is_dir():
        raise LMError(f"{_shown(path)} is a directory; give a file name for the model")
    if not directory.is_dir():
        raise LMError(f"cannot write the model to {path}: no directory {directory}")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        raise LMError(f"cannot write the model to {path}: {directory} is not writable ({e.strerror or e})") from None


def check_replaceable(path: str | Path) -> None:
    """Fail now if `path` holds something other than an lm model, which training would replace:
    `-m corpus.txt` would overwrite the corpus, or any file given by mistake."""
    path = Path(path)
    if not path.is_file():
        return
    try:
        with zipfile.ZipFile(path) as archive:
            is_model = f"{META_KEY}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        is_model = False
    if not is_model:
        raise LMError(f"{path} exists and is not an lm model; training would overwrite it: give another -m PATH")


class Lock:
    """One `lm train` at a time per model path: an exclusive lock on a hidden file beside it,
    held for the whole run and released by the system however the process ends."""

    def __init__(self, path: str | Path):
        path = Path(path)
        self.target = path
        self.file = path.with_name(f".{path.name}.lock")

    def __enter__(self) -> "Lock":
        try:
            self.fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as e:
            raise LMError(f"cannot write the model to {self.target}: {e.strerror or e}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise LMError(f"another `lm train` is writing {self.target}; wait for it to finish "
                          f"or give another -m PATH") from None
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def save(path: str | Path, ckpt: Checkpoint) -> None:
    path = Path(path)
    meta = {
        **ckpt.meta,
        "format": FORMAT,
        "version": VERSION,
        "model": ckpt.model.config_dict(),
        "tokenizer": ckpt.tokenizer.to_dict(),
    }
    if not np.isfinite(ckpt.model.flat).all():
        raise LMError(f"refusing to write {path}: the model's weights are not finite numbers")
    arrays = dict(ckpt.model.params)
    arrays.update({EXTRA + name: value for name, value in ckpt.extra.items()})
    arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise LMError(f"cannot write the model to {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 would hide the model from others
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise LMError(f"cannot write the model to {path}: {e.strerror or e}") from None
    except BaseException:
        os.unlink(tmp)
        raise
    try:
        _fsync_dir(directory)
    except OSError:  # the model is written; some file systems cannot sync a directory (EINVAL)
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.exists():
        raise LMError(f"no model at {path}; train one with `lm train FILE` or pass -m PATH")
    if path.is_dir():
        raise LMError(f"{_shown(path)} is a directory, not a model file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise LMError(f"cannot read {path}: {e.strerror or e}") from None
    if magic != b"PK\x03\x04":  # every .npz is a zip archive; anything else is refused unread
        raise LMError(f"{path} is not an lm model (not an .npz archive)")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:  # our handle: closed on any error
            _check_unpacked_size(path, npz.zip.infolist())  # np.load has read the directory, no array yet
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise LMError(f"{path} holds a pickled object; refused (lm models never need pickle)") from None
        raise LMError(f"{path} is not an lm model or is damaged ({e})") from None
    except Exception as e:  # a damaged archive fails in zipfile or numpy in many ways (found by fuzzing:
        # RuntimeError for an "encrypted" entry, NotImplementedError for a compression method, ...)
        raise LMError(f"{path} is not an lm model or is damaged ({type(e).__name__}: {e})") from None
    meta = _read_meta(path, arrays.pop(META_KEY, None))
    extra = {name[len(EXTRA) :]: arrays.pop(name) for name in list(arrays) if name.startswith(EXTRA)}
    if not all(isinstance(arr, np.ndarray) for arr in arrays.values()):
        raise LMError(f"{path} is damaged: it holds entries that are not arrays")
    try:
        config = ModelConfig(**meta["model"])
    except (TypeError, ConfigError) as e:
        raise LMError(f"{path}: damaged model configuration ({e})") from None
    tokenizer = Tokenizer.from_dict(meta["tokenizer"])
    # The sizes the metadata claims, against the arrays, before anything that big is built.
    expected = Model.shapes(config)
    if len(tokenizer) != config.vocab or set(arrays) != set(expected):
        raise LMError(f"{path} is damaged: its arrays do not match its configuration")
    params = {}
    for name, arr in arrays.items():
        if arr.shape == expected[name] and arr.dtype.kind == "f":
            with np.errstate(over="ignore"):  # checked below
                params[name] = arr.astype(np.float32, copy=False)
        if name not in params or not np.isfinite(params[name]).all():  # 1e300 in float64 is inf in float32
            raise LMError(f"{path} is damaged: array {name} has the wrong shape or values")
    hashes = extra.get("line_hashes")
    if hashes is not None and (hashes.dtype != np.uint64 or hashes.ndim != 1 or (hashes[1:] <= hashes[:-1]).any()):
        raise LMError(f"{path} is damaged: its training lines' hashes are not sorted 64-bit numbers")
    for key in ("model", "tokenizer", "format", "version"):
        meta.pop(key)
    return Checkpoint(Model(config, params), tokenizer, meta, extra)


UNPACKING = 100  # at most this many bytes of arrays a byte of file (lm writes them uncompressed)


def _check_unpacked_size(path: Path, entries: list[zipfile.ZipInfo]) -> None:
    """Refuse, before reading it, an archive that would unpack to far more than its size: lm stores
    its arrays uncompressed, and real weights barely compress, but a few MB of compressed zeros
    unpack to gigabytes. zipfile reads no more of an entry than its header declares."""
    unpacked = sum(e.file_size for e in entries)
    if unpacked > UNPACKING * max(sum(e.compress_size for e in entries), 2**20):
        raise LMError(f"{path} is damaged: its {path.stat().st_size:,} bytes would unpack to {unpacked:,}")


def _read_meta(path: Path, raw) -> dict:
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8 or raw.ndim != 1:
        raise LMError(f"{path} is not an lm model (no metadata)")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8 or not JSON; numbers past Python's digit limit; deep nesting
        raise LMError(f"{path} is damaged: unreadable metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LMError(f"{path} is not an lm model")
    version = meta.get("version")
    if isinstance(version, int) and version > VERSION:
        raise LMError(f"{path} was written by a newer lm (format {version}); upgrade lm to read it")
    if version != VERSION:
        raise LMError(f"{path} is damaged: unknown format version {version!r}")
    if not isinstance(meta.get("model"), dict) or not isinstance(meta.get("tokenizer"), dict):
        raise LMError(f"{path} is damaged: incomplete metadata")
    return meta

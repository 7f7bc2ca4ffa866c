"""Model files: the save/load round trip, atomic writes, and a clear LMError for every bad file."""

import errno
import json
import os

import numpy as np
import pytest

import lm
from lm import checkpoint
from lm.checkpoint import Checkpoint
from lm.config import ModelConfig, TokenizerConfig
from lm.model import Model
from lm.tokenizer import Tokenizer


def make_checkpoint(seed=0, meta=None) -> Checkpoint:
    tokenizer = Tokenizer.fit("the cat sat on the mat.\n", TokenizerConfig(tokenizer="word"))
    config = ModelConfig(vocab=len(tokenizer), cell="gru", layers=2, hidden=6, embed=4)
    model = Model.init(config, np.random.default_rng(seed))
    return Checkpoint(model, tokenizer, meta if meta is not None else {"note": "hello", "history": [{"epoch": 1}]})


@pytest.fixture
def saved(tmp_path):
    """A valid model file."""
    path = tmp_path / "model.npz"
    checkpoint.save(path, make_checkpoint())
    return path


def test_save_load_round_trip(saved):
    original = make_checkpoint()
    back = lm.load(saved)
    assert back.model.config == original.model.config
    assert set(back.model.params) == set(original.model.params)
    for name, value in original.model.params.items():
        np.testing.assert_array_equal(back.model.params[name], value)
    assert back.tokenizer.to_dict() == original.tokenizer.to_dict()
    assert back.meta == {"note": "hello", "history": [{"epoch": 1}]}


def test_save_replaces_an_existing_model(saved):
    checkpoint.save(saved, make_checkpoint(seed=1, meta={"note": "second"}))
    back = lm.load(saved)
    assert back.meta == {"note": "second"}
    np.testing.assert_array_equal(back.model.params["Wax"], make_checkpoint(seed=1).model.params["Wax"])


def _savez_that_fails(exc):
    def savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half of a zip file")
        raise exc
    return savez


def test_failed_write_keeps_the_old_model_and_leaves_no_temp_file(saved, monkeypatch):
    before = saved.read_bytes()
    monkeypatch.setattr(checkpoint.np, "savez", _savez_that_fails(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(lm.LMError, match="cannot write the model"):
        checkpoint.save(saved, make_checkpoint(seed=1))
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name]
    assert lm.load(saved).meta["note"] == "hello"


def test_interrupted_write_keeps_the_old_model_and_leaves_no_temp_file(saved, monkeypatch):
    before = saved.read_bytes()
    monkeypatch.setattr(checkpoint.np, "savez", _savez_that_fails(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(saved, make_checkpoint(seed=1))
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name]


def test_save_into_a_missing_directory_raises_lm_error(tmp_path):
    with pytest.raises(lm.LMError, match="cannot write the model"):
        checkpoint.save(tmp_path / "no" / "such" / "model.npz", make_checkpoint())


# ----- loading bad files -----

def test_load_missing_path(tmp_path):
    with pytest.raises(lm.LMError, match="no model at"):
        lm.load(tmp_path / "missing.npz")


def test_load_directory(tmp_path):
    with pytest.raises(lm.LMError, match="directory"):
        lm.load(tmp_path)


NOT_A_MODEL = "not an lm model|damaged"


def test_load_truncated_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(lm.LMError, match=NOT_A_MODEL):
        lm.load(saved)


def test_load_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(lm.LMError, match=NOT_A_MODEL):
        lm.load(path)


def test_load_random_bytes(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(lm.LMError, match=NOT_A_MODEL) as info:
        lm.load(path)
    assert "pickle" not in str(info.value)  # it is noise, not a pickled object


def test_load_npz_without_metadata(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, Wax=np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(lm.LMError, match="no metadata"):
        lm.load(path)


def _rewrite_meta(path, **changes):
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    meta.update(changes)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_load_future_format_version(saved):
    _rewrite_meta(saved, version=999)
    with pytest.raises(lm.LMError, match="newer lm.*upgrade"):
        lm.load(saved)


def test_load_other_format(saved):
    _rewrite_meta(saved, format="something-else")
    with pytest.raises(lm.LMError, match="not an lm model"):
        lm.load(saved)


def test_load_arrays_not_matching_the_configuration(saved):
    model = json.loads(np.load(saved)["__meta__"].tobytes())["model"]
    _rewrite_meta(saved, model={**model, "hidden": model["hidden"] + 1})
    with pytest.raises(lm.LMError, match="damaged"):
        lm.load(saved)


class WritesMarker:
    """Unpickling this creates the file `path`: proof that pickled code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_load_refuses_pickled_objects_without_running_them(saved, tmp_path):
    marker = tmp_path / "pickle-ran"
    with np.load(saved) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["Wax"] = np.array([WritesMarker(marker)], dtype=object)
    with open(saved, "wb") as f:
        np.savez(f, **arrays)  # allow_pickle defaults to True when writing
    with pytest.raises(lm.LMError, match="pickle"):
        lm.load(saved)
    assert not marker.exists()
    # The file really does run code when unpickled, so the assertion above means something.
    np.load(saved, allow_pickle=True)["Wax"]
    assert marker.exists()


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "some-model.npz"
    path.write_bytes(b"nonsense")
    with pytest.raises(lm.LMError, match="some-model.npz"):
        lm.load(path)


def test_save_to_a_bare_file_name_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint.save("relative.npz", make_checkpoint())
    assert lm.load("relative.npz").meta["note"] == "hello"
    assert os.listdir(tmp_path) == ["relative.npz"]



@pytest.mark.parametrize(
    "change",
    [{"version": 0}, {"version": "1"}, {"model": {"vocab": 10**5, "hidden": 10**6, "embed": 4}}],
    ids=["version-0", "version-string", "huge-claimed-sizes"],
)
def test_load_refuses_damaged_metadata_without_building_it(saved, change):
    _rewrite_meta(saved, **change)
    with pytest.raises(lm.LMError, match="damaged"):
        lm.load(saved)


@pytest.mark.parametrize(
    "change",
    [{"hidden": 10**6}, {"layers": 10**6}, {"layers": 3}, {"hidden": 6.0}, {"layers": True}, {"embed": "4"},
     {"hidden": None}],
    ids=["huge-hidden", "a-million-layers", "a-layer-too-many", "fractional-hidden", "boolean-layers", "text-embed",
         "null-hidden"],
)
def test_load_refuses_a_model_configuration_its_arrays_do_not_fit_before_building_it(saved, change, monkeypatch):
    """The file's own vocabulary this time, so that only the changed entry is wrong."""
    true_config, build = make_checkpoint().model.config, Model.__init__

    def only_the_true_size(self, config, *args, **kwargs):
        assert config == true_config, f"load built a model of the claimed size, {config}"
        build(self, config, *args, **kwargs)

    monkeypatch.setattr(Model, "__init__", only_the_true_size)
    model = json.loads(np.load(saved)["__meta__"].tobytes())["model"]
    _rewrite_meta(saved, model={**model, **change})
    with pytest.raises(lm.LMError, match="damaged"):
        lm.load(saved)


@pytest.mark.parametrize("token", [3, "", "\ud800"], ids=["number", "empty", "lone-surrogate"])
def test_load_refuses_a_vocabulary_of_tokens_that_are_not_text(saved, token):
    """A lone surrogate is valid JSON, but `lm sample` failed with a traceback printing it."""
    tok = json.loads(np.load(saved)["__meta__"].tobytes())["tokenizer"]
    _rewrite_meta(saved, tokenizer={**tok, "tokens": [token, *tok["tokens"][1:]]})
    with pytest.raises(lm.LMError, match="vocabulary"):
        lm.load(saved)


def test_saved_file_follows_the_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        checkpoint.save(tmp_path / "m.npz", make_checkpoint())
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


def test_unwritable_model_paths_are_refused_before_training(tmp_path):
    (tmp_path / "adir").mkdir()
    for bad, fragment in ((tmp_path / "adir", "is a directory"), (tmp_path / "none" / "m.npz", "no directory")):
        with pytest.raises(lm.LMError, match=fragment):
            checkpoint.check_writable(bad)


@pytest.mark.parametrize("hashes", [np.zeros((3, 3), np.uint64), np.uint64(5), np.array([3, 2], np.uint64),
                                    np.array(["a", "b"])], ids=["2-d", "0-d", "unsorted", "strings"])
def test_load_refuses_line_hashes_that_are_not_a_sorted_list(saved, hashes):
    """`lm sample` and `lm info` failed with a traceback on such a --lines model."""
    checkpoint.save(saved, Checkpoint(**{**vars(lm.load(saved)), "extra": {"line_hashes": np.array([2, 3], np.uint64)}}))
    assert lm.load(saved).in_training("the cat") is False
    with np.load(saved) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["train.line_hashes"] = hashes
    with open(saved, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(lm.LMError, match="damaged"):
        lm.load(saved)


@pytest.mark.parametrize("change", ["nan", "inf", "integers", "1e300"])
def test_load_refuses_weights_that_are_not_finite_floats(saved, change):
    """1e300 in float64 is finite, but inf in the float32 lm computes in."""
    with np.load(saved) as npz:
        arrays = {name: npz[name] for name in npz.files}
    if change == "integers":
        arrays["by"] = arrays["by"].astype(np.int64)
    elif change == "1e300":
        arrays["by"] = arrays["by"].astype(np.float64)
        arrays["by"][0] = 1e300
    else:
        arrays["Wax"][0, 0] = float(change)
    with open(saved, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(lm.LMError, match="array (Wax|by) has the wrong shape or values"):
        lm.load(saved)


def test_weights_that_overflow_the_logits_are_an_error_not_nan(saved):
    """Finite float32 weights can still overflow the logits (Wya at 3e38 did, in a model the
    loader accepts): `lm score` crashed formatting NaN, `lm eval --json` printed NaN, which is
    not JSON. An infinite bias makes the overflow certain here."""
    model = lm.load(saved)
    model.model.params["by"][0] = np.inf
    with pytest.raises(lm.LMError, match="no finite probabilities"):
        model.score("the cat")
    with pytest.raises(lm.LMError, match="no finite probabilities"):
        model.evaluate("the cat sat\n")


def test_metadata_json_refuses_numbers_past_pythons_digit_limit_and_deep_nesting(saved):
    """ValueError (integer string conversion) and RecursionError escaped as tracebacks."""
    with np.load(saved) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for raw in (b'{"format": ' + b"9" * 5000 + b"}", b"[" * 100000 + b"]" * 100000):
        arrays[checkpoint.META_KEY] = np.frombuffer(raw, dtype=np.uint8)
        with open(saved, "wb") as f:
            np.savez(f, **arrays)
        with pytest.raises(lm.LMError, match="damaged: unreadable metadata"):
            lm.load(saved)


def test_an_archive_that_would_unpack_to_far_more_than_its_size_is_refused_unread(saved, monkeypatch):
    """2 MB of compressed zeros in a train.* array made `lm info` take 2.1 GB and 12 s, and passed."""
    with np.load(saved) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["train.junk"] = np.zeros(200 * 2**20 // 8)  # 200 MB, about 200 KB compressed
    with open(saved, "wb") as f:
        np.savez_compressed(f, **arrays)
    read = []
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, key: read.append(key))
    with pytest.raises(lm.LMError, match="damaged: its .* bytes would unpack to 2"):
        lm.load(saved)
    assert not read
    monkeypatch.undo()
    arrays.pop("train.junk")
    with open(saved, "wb") as f:
        np.savez_compressed(f, **arrays)  # a model compressed by hand still loads
    assert lm.load(saved).model.num_params() > 0

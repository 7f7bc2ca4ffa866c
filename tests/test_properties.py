"""Property-based tests (hypothesis): the tokenizers keep text, and no byte string crashes the loader."""

import io
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import lm
from lm import checkpoint, tokenizer as tokenizer_module
from lm.config import TokenizerConfig
from lm.tokenizer import Tokenizer

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.text(), st.sampled_from([3, 1 << 22]))
def test_any_text_round_trips_through_the_character_tokenizer(text, chunk):
    """Also when it is encoded in small pieces (3 characters), as a large corpus is."""
    tok = Tokenizer.fit(text, TokenizerConfig(tokenizer="char"))
    original, tokenizer_module.CHUNK = tokenizer_module.CHUNK, chunk
    try:
        ids, unknown = tok.encode(text)
    finally:
        tokenizer_module.CHUNK = original
    assert unknown == 0
    assert tok.decode(ids.tolist()) == text


@SETTINGS
@given(st.text())
def test_the_word_tokenizer_never_loses_a_non_space_character(text):
    _assert_keeps_non_space(text)


def _assert_keeps_non_space(text):
    tok = Tokenizer.fit(text, TokenizerConfig(tokenizer="word"))
    for line in text.splitlines():
        assert _non_space("".join(tok.split(line))) == _non_space(line)


def _non_space(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace())


def _model_bytes() -> bytes:
    tok = Tokenizer.fit("ab ba\n", TokenizerConfig(tokenizer="char"))
    model = lm.model.Model.init(lm.config.ModelConfig(vocab=len(tok), hidden=3, embed=2), np.random.default_rng(0))
    buffer = io.BytesIO()
    arrays = dict(model.params)
    arrays[checkpoint.META_KEY] = np.frombuffer(
        b'{"format": "lm-model", "version": 1, "model": %s, "tokenizer": %s}'
        % (str(model.config_dict()).replace("'", '"').replace("False", "false").encode(),
           str(tok.to_dict()).replace("'", '"').replace("False", "false").encode()),
        dtype=np.uint8)
    np.savez(buffer, **arrays)
    return buffer.getvalue()


VALID = _model_bytes()


def _load_or_lm_error(tmp_path, data: bytes) -> None:
    path = tmp_path / "m.npz"
    path.write_bytes(data)
    try:
        lm.load(path)
    except lm.LMError:
        pass


def test_the_fuzzing_base_is_a_valid_model(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(VALID)
    assert lm.load(path).model.config.hidden == 3
    assert zipfile.is_zipfile(path)


@SETTINGS
@given(st.binary(max_size=2000))
def test_any_byte_string_loads_or_raises_the_tools_own_error(tmp_path, data):
    _load_or_lm_error(tmp_path, data)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8),
       st.integers(1, len(VALID)))
@example(changes=[(1861, 1)], length=len(VALID))  # found: an entry flagged as encrypted (RuntimeError)
@example(changes=[(1863, 1)], length=len(VALID))  # found: an unknown compression (NotImplementedError)
def test_a_damaged_model_file_loads_or_raises_the_tools_own_error(tmp_path, changes, length):
    """A real model file with bytes changed and its end cut off: never anything but an LMError."""
    data = bytearray(VALID)
    for position, value in changes:
        data[position] = value
    _load_or_lm_error(tmp_path, bytes(data[:length]))


@pytest.mark.parametrize("text", ["x\x1fy", "\u0301a\u0301b", "\u180e x", "\u200b\ufeff"])
def test_word_tokenizer_edge_characters(text):
    """Characters Python and the regex module may disagree about: a space to one, not to the other."""
    _assert_keeps_non_space(text)

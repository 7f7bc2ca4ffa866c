"""Shared fixtures: a tiny made-up corpus, and tiny char and word models trained once per session."""

from pathlib import Path

import pytest

import lm

# A few dozen short lines of plain English with repeating patterns, so a tiny model learns fast.
CORPUS_LINES = [
    "the cat sat on the mat.",
    "the dog ate the bone.",
    "a cat ate the fish.",
    "the dog sat on the rug.",
    "my cat saw a dog.",
    "the bird sang a song.",
] * 6
CORPUS_TEXT = "\n".join(CORPUS_LINES) + "\n"

# Tiny sizes: the whole training takes well under a second.
TINY = dict(hidden=16, embed=8, epochs=2, seq_len=10, batch_size=4, seed=0)


def write_corpus(directory: Path, name: str = "corpus.txt") -> Path:
    path = directory / name
    path.write_text(CORPUS_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    """corpus.txt in this test's tmp_path."""
    return write_corpus(tmp_path)


@pytest.fixture(scope="session")
def char_model(tmp_path_factory) -> Path:
    """A character-level model trained once on the tiny corpus; its path."""
    directory = tmp_path_factory.mktemp("char_model")
    path = directory / "char.npz"
    lm.train(write_corpus(directory), path, **TINY)
    return path


@pytest.fixture(scope="session")
def word_model(tmp_path_factory) -> Path:
    """A word-level (regex tokenizer) model trained once on the tiny corpus; its path."""
    directory = tmp_path_factory.mktemp("word_model")
    path = directory / "word.npz"
    lm.train(write_corpus(directory), path, tokenizer="word", **TINY)
    return path

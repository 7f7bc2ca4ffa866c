"""Tokenizers: character vocabularies, Unicode-aware word splitting, top-K vocabularies,
<UNK> handling, decoding, and the dict form stored in model files."""

import random
from pathlib import Path

import numpy as np
import pytest

import lm
from lm.config import TokenizerConfig
from lm.tokenizer import EOS, UNK, Tokenizer


def fit(text, **settings):
    return Tokenizer.fit(text, TokenizerConfig(**settings))


# ----- characters -----

CHAR_TEXT = "the cat sat on the mat.\nZebras? 42 naïve — café!\n\nthe end\n"


def test_char_vocabulary_is_the_sorted_characters():
    tok = fit(CHAR_TEXT)
    assert tok.tokens == sorted(set(CHAR_TEXT))
    assert EOS not in tok.tokens and tok.eos_id is None and tok.unk_id is None


def test_char_vocabulary_does_not_depend_on_line_order():
    lines = CHAR_TEXT.splitlines()
    random.Random(3).shuffle(lines)
    shuffled = "\n".join(lines) + "\n"
    assert shuffled != CHAR_TEXT
    assert fit(shuffled).tokens == fit(CHAR_TEXT).tokens


def test_char_encode_decode_round_trip():
    tok = fit(CHAR_TEXT)
    text = "the naïve cat — 42 Zebras!\n\nmat? "  # any text made of characters seen in training
    ids, unknown = tok.encode(text)
    assert ids.dtype == np.int32
    assert unknown == 0
    assert tok.decode(ids) == text


def test_char_lines_adds_eos_per_non_blank_line():
    tok = fit(CHAR_TEXT, lines=True)
    assert tok.tokens[0] == EOS and "\n" not in tok.tokens
    ids, unknown = tok.encode("the cat\n\n   \nsat\non\n")
    assert unknown == 0
    assert list(ids).count(tok.eos_id) == 3  # "the cat", "sat", "on"; blank lines give nothing
    assert ids[-1] == tok.eos_id
    assert tok.decode(ids) == "the catsaton"


def test_char_unseen_characters_are_left_out_and_counted():
    tok = fit("abc")
    ids, unknown = tok.encode("aXbYYc")
    assert unknown == 3
    assert tok.decode(ids) == "abc"


# ----- regex words -----

@pytest.mark.parametrize(
    "text, expected",
    [
        ("Größe café naïve — 3.14 l'été, don't!",
         ["Größe", "café", "naïve", "—", "3.14", "l'été", ",", "don't", "!"]),
        ("Привет, мир! Это тест-драйв.", ["Привет", ",", "мир", "!", "Это", "тест-драйв", "."]),
        ("Καλημέρα κόσμε· 42 φορές; 1,000,000", ["Καλημέρα", "κόσμε", "·", "42", "φορές", ";", "1,000,000"]),
        ("我 爱 北京 。 東京 タワー", ["我", "爱", "北京", "。", "東京", "タワー"]),
        ("cafe\u0301 at 12:30 (well-known)", ["cafe\u0301", "at", "12:30", "(", "well-known", ")"]),
        ("l’été don’t", ["l’été", "don’t"]),
        ("می\u200cخواهم بروم", ["می\u200cخواهم", "بروم"]),  # the ZWNJ is inside the Persian word
        ("ok 👍🏽 🇫🇷 👩\u200d👩\u200d👧 1\ufe0f\u20e3 !", ["ok", "👍🏽", "🇫🇷", "👩\u200d👩\u200d👧", "1\ufe0f\u20e3", "!"]),
    ],
    ids=["latin", "cyrillic", "greek", "cjk", "combining-mark", "curly-apostrophe", "zero-width-non-joiner",
         "emoji-clusters"],
)
def test_word_split_keeps_letters_and_numbers_whole_and_splits_punctuation(text, expected):
    assert fit("x", tokenizer="word").split(text) == expected


def test_word_vocabulary_is_top_k_with_ties_alphabetical():
    text = "b a c b a d\nd e c b\n"  # b:3, a:2, c:2, d:2, e:1
    tok = fit(text, tokenizer="word", vocab_size=3)
    assert tok.tokens == [EOS, UNK, "b", "a", "c"]
    assert fit(text, tokenizer="word", vocab_size=100).tokens == [EOS, UNK, "b", "a", "c", "d", "e"]
    assert fit("z y x\n", tokenizer="word", vocab_size=2).tokens == [EOS, UNK, "x", "y"]  # not the order seen


def test_word_specials_come_first():
    tok = fit("the cat\n", tokenizer="word")
    assert (tok.eos_id, tok.unk_id) == (0, 1)
    assert tok.start_id == tok.eos_id


def test_word_literal_unk_in_corpus_is_not_a_vocabulary_word():
    text = "the <unk> sat\nthe <unk> ran\nthe <UNK> <unk> fell\n"
    tok = fit(text, tokenizer="word")
    assert tok.tokens.count(UNK) == 1
    assert "<unk>" not in tok.tokens
    ids, unknown = tok.encode_sentence("the <unk> sat")
    assert ids == [tok.index["the"], tok.unk_id, tok.index["sat"], tok.eos_id]
    assert unknown == 1


def test_a_literal_eos_in_the_text_is_an_unknown_word_not_an_end():
    """Only the whitespace tokenizer sees "<EOS>" whole (the regex splits it at < and >)."""
    tok = fit("a <EOS> b\n", tokenizer="whitespace")
    assert tok.tokens == [EOS, UNK, "a", "b"]
    assert tok.encode_sentence("a <EOS> b") == ([tok.index["a"], tok.unk_id, tok.index["b"], tok.eos_id], 1)


def test_word_out_of_vocabulary_becomes_unk_and_is_counted():
    tok = fit("the cat sat\n", tokenizer="word")
    ids, unknown = tok.encode("the zebra sat on it\n")
    assert list(ids) == [tok.index["the"], tok.unk_id, tok.index["sat"], tok.unk_id, tok.unk_id, tok.eos_id]
    assert unknown == 3


def test_word_encode_adds_eos_per_non_blank_line():
    tok = fit("the cat sat\n", tokenizer="word")
    ids, _ = tok.encode("the cat\n\n  \nsat\n")
    assert list(ids).count(tok.eos_id) == 2


def test_lower_merges_cases_in_fit_and_encode():
    tok = fit("The THE the Cat\n", tokenizer="word", lower=True)
    assert tok.tokens == [EOS, UNK, "the", "cat"]
    ids, unknown = tok.encode_sentence("THE cAt")
    assert ids == [tok.index["the"], tok.index["cat"], tok.eos_id] and unknown == 0


def test_without_lower_cases_stay_distinct():
    tok = fit("The the\n", tokenizer="word")
    assert {"The", "the"} <= set(tok.tokens)


def test_whitespace_tokenizer_splits_only_on_whitespace():
    text = "mr. smith paid $ 5 , didn 't he ?"
    tok = fit(text, tokenizer="whitespace")
    assert tok.split("mr.  smith\tdon 't $ 5") == ["mr.", "smith", "don", "'t", "$", "5"]
    assert set(tok.tokens) == {EOS, UNK, "mr.", "smith", "paid", "$", "5", ",", "didn", "'t", "he", "?"}


def test_decode_puts_no_space_before_punctuation():
    tok = fit("hello , world .\n", tokenizer="word")
    assert tok.decode(tok.encode("hello , world .\n")[0]) == "hello, world."


def test_decode_ptb_style_tokens():
    text = "mr. smith paid $ 5 , didn 't he ?"
    tok = fit(text, tokenizer="whitespace")
    assert tok.decode(tok.encode(text)[0]) == "mr. smith paid $5, didn't he?"


# ----- the dict form stored in model files -----

@pytest.mark.parametrize("settings", [{}, {"lines": True}, {"tokenizer": "word", "lower": True},
                                      {"tokenizer": "whitespace"}])
def test_to_dict_from_dict_round_trip(settings):
    tok = fit(CHAR_TEXT, **settings)
    back = Tokenizer.from_dict(tok.to_dict())
    assert back.to_dict() == tok.to_dict()
    assert back.index == tok.index
    text = "the cat sat on the mat.\n"
    assert np.array_equal(back.encode(text)[0], tok.encode(text)[0])


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "garbage",
        {},
        {"kind": "char"},
        {"kind": "char", "tokens": 5, "lower": False, "lines": False},
        {"kind": "bogus", "tokens": ["a"], "lower": False, "lines": False},
        {"kind": "char", "tokens": ["a", "a"], "lower": False, "lines": False},
    ],
)
def test_from_dict_of_garbage_raises_lm_error(garbage):
    with pytest.raises(lm.LMError, match="vocabulary"):
        Tokenizer.from_dict(garbage)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@pytest.mark.skipif(not (SHARED / "ptb.train.txt").exists(), reason="../shared/corpora (Penn Treebank) is absent")
def test_penn_treebank_vocabulary_and_token_count_match_the_literature():
    """The standard 10,000 types (9,998 words, <unk> as <UNK>, <EOS>) and 73,760 validation tokens."""
    cfg = TokenizerConfig(tokenizer="whitespace")
    tok = Tokenizer.fit((SHARED / "ptb.train.txt").read_text(), cfg)
    assert len(tok) == 10_000
    ids, unknown = tok.encode((SHARED / "ptb.valid.txt").read_text())
    assert len(ids) == 73_760
    assert unknown == int((ids == tok.unk_id).sum()) > 0

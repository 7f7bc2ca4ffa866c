"""The `lm` command end to end, in a subprocess: results on stdout, one-line errors on stderr."""

import json
import math

import pytest
from cli_utils import TINY_FLAGS, assert_ok, assert_one_line_error, json_lines, run_lm, run_main

import lm
from lm import cli


# ----- train -----

def test_train_writes_model_npz_in_the_current_directory(tmp_path, corpus):
    result = run_lm("train", corpus.name, "--epochs", "1", *TINY_FLAGS, cwd=tmp_path)
    assert_ok(result)
    assert result.stdout == ""  # progress and messages go to stderr
    assert (tmp_path / "model.npz").is_file()
    assert lm.load(tmp_path / "model.npz").tokenizer.kind == "char"


def test_train_json_gives_one_object_per_epoch(tmp_path, corpus):
    result = run_lm("train", corpus.name, "-m", "m.npz", "--epochs", "2", *TINY_FLAGS, "--json", cwd=tmp_path)
    assert_ok(result)
    epochs = json_lines(result.stdout)
    assert [e["epoch"] for e in epochs] == [1, 2]
    for e in epochs:
        assert {"epoch", "train_loss", "valid_loss", "valid_perplexity", "tokens_per_s", "elapsed_s"} <= set(e)
        assert math.isclose(e["valid_perplexity"], math.exp(e["valid_loss"]), rel_tol=1e-9)
        assert e["train_loss"] > 0 and e["tokens_per_s"] > 0 and e["elapsed_s"] >= 0
    assert (tmp_path / "m.npz").is_file() and not (tmp_path / "model.npz").exists()


def test_train_shows_its_recipe_and_stops_on_patience(tmp_path, corpus):
    result = run_lm("train", corpus.name, "--epochs", "9", *TINY_FLAGS, "--lr-schedule", "plateau",
                    "--lr-decay", "0.5", "--patience", "2", "--min-delta", "100", cwd=tmp_path)
    assert_ok(result)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("model: 1 x 16 LSTM, embedding 8, ")
    assert lines[1].startswith("data: ") and "validation tokens" in lines[1]
    assert lines[2] == "recipe: adam lr 0.002, x0.5 when validation stalls, clip 5, batch 4 x 10 steps, 9 epochs, patience 2"
    epochs = [line for line in lines if line.startswith("epoch ") and " step " not in line]
    assert len(epochs) == 3 and "lr 0.002 " in epochs[1] and "lr 0.001 " in epochs[2]
    assert "s + valid " in epochs[0]
    assert lines[-1].startswith("no improvement on validation (--patience); saved model.npz")


# ----- sample -----

def test_sample_with_a_seed_is_repeatable_and_limited(tmp_path, char_model):
    args = ("sample", "-m", char_model, "--chars", "50", "--seed", "1")
    first, second = run_lm(*args, cwd=tmp_path), run_lm(*args, cwd=tmp_path)
    assert_ok(first)
    assert first.stdout == second.stdout
    assert first.stdout.endswith("\n")
    text = first.stdout[:-1]
    assert 0 < len(text) <= 50


def test_sample_json(tmp_path, char_model):
    result = run_lm("sample", "-m", char_model, "--chars", "50", "--seed", "2", "--json", cwd=tmp_path)
    assert_ok(result)
    (obj,) = json_lines(result.stdout)
    assert set(obj) == {"index", "text"}  # no "in_training": a model without --lines cannot tell
    assert isinstance(obj["text"], str) and len(obj["text"]) <= 50


# ----- score -----

SHORT = "the cat."
LONG = "the dog sat on the rug. the bird sang a song. my cat saw a dog."


def test_score_ranks_most_probable_first(tmp_path, char_model):
    result = run_lm("score", "-m", char_model, LONG, SHORT, cwd=tmp_path, env_extra={"COLUMNS": "250"})
    assert_ok(result)
    assert SHORT in result.stdout and LONG in result.stdout
    assert result.stdout.index(SHORT) < result.stdout.index(LONG)
    assert f"{len(SHORT)} tokens  0 unknown" in result.stdout
    one = run_lm("score", "-m", char_model, "t", cwd=tmp_path)
    assert_ok(one)
    assert "  1 token  0 unknown  t" in one.stdout, one.stdout


def test_score_json(tmp_path, char_model):
    result = run_lm("score", "-m", char_model, LONG, SHORT, "--json", cwd=tmp_path)
    assert_ok(result)
    scores = json_lines(result.stdout)
    assert [s["text"] for s in scores] == [SHORT, LONG]
    assert scores[0]["logprob"] >= scores[1]["logprob"]
    for s in scores:
        assert {"text", "logprob", "perplexity", "tokens", "unknown"} <= set(s)
        assert "token_logprobs" not in s
        assert s["tokens"] == len(s["text"]) and s["unknown"] == 0  # a char model without <EOS>
        assert math.isclose(s["perplexity"], math.exp(-s["logprob"] / s["tokens"]), rel_tol=1e-9)


def test_score_json_per_token_sums_to_logprob(tmp_path, char_model):
    result = run_lm("score", "-m", char_model, SHORT, "--json", "--per-token", cwd=tmp_path)
    assert_ok(result)
    (s,) = json_lines(result.stdout)
    assert [tok for tok, _ in s["token_logprobs"]] == list(SHORT)
    assert all(lp < 0 for _, lp in s["token_logprobs"])
    assert math.isclose(sum(lp for _, lp in s["token_logprobs"]), s["logprob"], rel_tol=1e-9)


def test_score_word_model_counts_unknown_words(tmp_path, word_model):
    result = run_lm("score", "-m", word_model, "the zebra sat on the mat.", "--json", "--per-token", cwd=tmp_path)
    assert_ok(result)
    (s,) = json_lines(result.stdout)
    assert s["unknown"] == 1
    assert [tok for tok, _ in s["token_logprobs"]] == ["the", "<UNK>", "sat", "on", "the", "mat", ".", "<EOS>"]


# ----- eval -----

def test_eval_json_char_model(tmp_path, corpus, char_model):
    result = run_lm("eval", corpus.name, "-m", char_model, "--json", cwd=tmp_path)
    assert_ok(result)
    (obj,) = json_lines(result.stdout)
    assert {"tokens", "loss", "perplexity", "bits_per_char"} <= set(obj)
    assert obj["tokens"] == len(corpus.read_text())
    assert math.isclose(obj["perplexity"], math.exp(obj["loss"]), rel_tol=1e-9)
    assert math.isclose(obj["bits_per_char"], obj["loss"] / math.log(2), rel_tol=1e-9)


def test_eval_json_word_model_has_no_bits_per_char(tmp_path, corpus, word_model):
    result = run_lm("eval", corpus.name, "-m", word_model, "--json", cwd=tmp_path)
    assert_ok(result)
    (obj,) = json_lines(result.stdout)
    assert "bits_per_char" not in obj and obj["tokens"] > 0


# ----- version and help -----

def test_version(tmp_path):
    result = run_lm("--version", cwd=tmp_path)
    assert_ok(result)
    assert result.stdout.strip() == f"lm {lm.__version__}"


@pytest.mark.parametrize("command", ["", *sorted(c.name or c.callback.__name__ for c in cli.app.registered_commands)])
def test_every_help_ends_with_an_example(tmp_path, command):
    result = run_lm(*[command] * bool(command), "--help", cwd=tmp_path)
    assert_ok(result)
    last = [line.strip() for line in result.stdout.splitlines() if line.strip()][-1]
    assert last.startswith(f"Example: lm {command or 'train'} "), last


# ----- errors: one line on stderr, no traceback -----

@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"  \n\t\n   \n", "empty"),
        ("latin1.txt", b"the cat sat\ncaf\xe9 au lait\n", "offset 15"),
        ("binary.txt", b"the cat\x00sat on the mat\n" * 4, "NUL"),
    ],
    ids=["empty", "whitespace-only", "non-utf8", "binary"],
)
def test_train_bad_corpus_file(tmp_path, name, content, fragment):
    (tmp_path / name).write_bytes(content)
    line = assert_one_line_error(run_lm("train", name, cwd=tmp_path), name, fragment, code=1)
    assert not (tmp_path / "model.npz").exists(), line


def test_train_missing_corpus(tmp_path):
    assert_one_line_error(run_lm("train", "missing.txt", cwd=tmp_path), "missing.txt", code=1)


def test_train_directory_as_corpus(tmp_path):
    (tmp_path / "adir").mkdir()
    assert_one_line_error(run_lm("train", "adir", cwd=tmp_path), "adir", "directory", code=1)


def test_train_corpus_too_short_for_the_batch(tmp_path):
    (tmp_path / "short.txt").write_text("the cat sat on the mat.\n")
    result = run_lm("train", "short.txt", "--batch-size", "64", "--epochs", "1", cwd=tmp_path)
    assert_one_line_error(result, "--batch-size", code=1)


@pytest.mark.parametrize("command", [["sample"], ["score", "the cat"], ["eval", "corpus.txt"]])
def test_missing_model(tmp_path, corpus, command):
    result = run_lm(*command, "-m", "nothing.npz", cwd=tmp_path)
    assert_one_line_error(result, "nothing.npz", code=1)


@pytest.mark.parametrize("command", [["sample"], ["score", "the cat"]])
def test_corrupt_model(tmp_path, command):
    (tmp_path / "model.npz").write_bytes(b"PK\x03\x04 this is not really a model")
    assert_one_line_error(run_lm(*command, cwd=tmp_path), "model.npz", code=1)


@pytest.mark.parametrize(
    "flags, flag",
    [
        (["--epochs", "0"], "--epochs"),
        (["--hidden", "-1"], "--hidden"),
        (["--lr", "nan"], "--lr"),
        (["--cell", "foo"], "--cell"),
        (["--seq-len", "0"], "--seq-len"),
    ],
)
def test_train_bad_flags(tmp_path, corpus, flags, flag):
    result = run_lm("train", corpus.name, *flags, cwd=tmp_path)
    assert_one_line_error(result, flag, code=2)
    assert not (tmp_path / "model.npz").exists()


@pytest.mark.parametrize(
    "flags, flag",
    [
        (["--temperature", "0"], "--temperature"),
        (["--temperature", "nan"], "--temperature"),
        (["--chars", "0"], "--chars"),
    ],
)
def test_sample_bad_flags(tmp_path, char_model, flags, flag):
    result = run_lm("sample", "-m", char_model, *flags, cwd=tmp_path)
    assert_one_line_error(result, flag, code=2)
    assert result.stdout.strip() == ""


def test_score_prints_sentences_literally_even_with_markup_brackets(tmp_path, char_model):
    result = run_lm("score", "-m", char_model, "a [/] b", "x [bold]y", cwd=tmp_path)
    assert_ok(result)
    assert "a [/] b" in result.stdout and "x [bold]y" in result.stdout


def test_unwritable_model_path_fails_before_training(tmp_path, corpus):
    result = run_lm("train", corpus.name, "-m", "missing/m.npz", *TINY_FLAGS, cwd=tmp_path)
    assert_one_line_error(result, "no directory", code=1)
    assert "epoch" not in result.stderr


def test_sample_negative_seed_is_a_usage_error(tmp_path, char_model):
    assert_one_line_error(run_lm("sample", "-m", char_model, "--seed", "-1", cwd=tmp_path), "--seed", code=2)


def test_info_takes_its_model_as_an_argument_or_with_model_not_both(tmp_path, char_model, monkeypatch, capsys):
    """Given both, the argument won silently."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_main(monkeypatch, capsys, "info", "-m", char_model, "--json")
    assert code == 0 and json.loads(out)["file"]["path"] == str(char_model)
    code, _, err = run_main(monkeypatch, capsys, "info", char_model, "-m", tmp_path / "other.npz")
    assert code == 2 and err.strip() == "lm: error: give the model as MODEL or with --model, not both"

"""What users reach for: scoring from stdin, controllable sampling, the training view, the Python
API, the conventions of the command line; and the terminal views, captured in tmux."""

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from cli_utils import TINY_FLAGS, assert_ok, assert_one_line_error, json_lines, run_lm, run_main
from conftest import TINY, write_corpus

import lm
from lm import cli
from lm.config import TokenizerConfig
from lm.data import inputs_for
from lm.model import Model
from lm.sample import _Text, Limits, sample as draw, sample_many
from lm.score import logprobs
from lm.tokenizer import Tokenizer
from test_model import _lines_model, _model

ANSI = "\x1b["


def lm_proc(*args, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "lm", *map(str, args)], cwd=cwd, text=True, **kwargs)


# ----- scoring -----


def test_score_reads_stdin_and_streams_each_result_before_the_next_line(tmp_path, char_model):
    proc = lm_proc("score", "-m", char_model, "--json", cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    results = []
    for sentence in ("the cat sat", "a dog ate", "the bird sang"):
        proc.stdin.write(sentence + "\n")
        proc.stdin.flush()
        results.append(json.loads(proc.stdout.readline()))  # answered while stdin is still open
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert [r["text"] for r in results] == ["the cat sat", "a dog ate", "the bird sang"]  # input order


def test_score_dash_and_file_and_arguments(tmp_path, char_model):
    piped = subprocess.run([sys.executable, "-m", "lm", "score", "-", "-m", str(char_model)], input="the cat\n\nthe dog\n",
                           capture_output=True, text=True, cwd=tmp_path)
    assert_ok(piped)
    lines = piped.stdout.splitlines()
    assert len(lines) == 2 and lines[0].endswith("the cat") and lines[1].endswith("the dog")
    (tmp_path / "s.txt").write_text("the dog\nthe cat sat on the mat.\n")
    ranked = run_lm("score", "-m", char_model, "-f", "s.txt", "--rank", cwd=tmp_path)
    assert ranked.stdout.splitlines()[0].endswith("the dog")  # shorter: more probable
    streamed = run_lm("score", "-m", char_model, "-f", "s.txt", cwd=tmp_path)
    assert streamed.stdout.splitlines()[1].endswith("the cat sat on the mat.")
    assert_one_line_error(run_lm("score", "-m", char_model, cwd=tmp_path), "no sentences", code=1)  # empty stdin
    assert_one_line_error(run_lm("score", "-", "-m", char_model, "-f", "s.txt", cwd=tmp_path), "not both", code=2)
    among = subprocess.run([sys.executable, "-m", "lm", "score", "the cat", "-", "a", "-m", str(char_model), "--json",
                            "--no-rank"], input="the dog\n", capture_output=True, text=True, cwd=tmp_path)
    assert [json.loads(line)["text"] for line in among.stdout.splitlines()] == ["the cat", "the dog", "a"]
    assert_one_line_error(run_lm("score", "-", "-", "-m", char_model, cwd=tmp_path), "once", code=2)


def _lm_bytes(*args, cwd, data: bytes):
    return subprocess.run([sys.executable, "-m", "lm", *map(str, args)], input=data, capture_output=True, cwd=cwd)


def test_piped_text_is_decoded_and_split_into_lines_as_a_file_is(tmp_path, char_model):
    """--encoding and --errors apply to standard input too (it was read in the locale's way), and
    a file's lines are the lines the same bytes give piped in; a byte-order mark is no text."""
    data = "\ufeffthe café sat\r\nthe dog\rthe bird\u2028sang\n\n".encode("utf-8")
    (tmp_path / "s.txt").write_bytes(data)
    from_file = run_lm("score", "-m", char_model, "-f", "s.txt", "--json", cwd=tmp_path)
    piped = _lm_bytes("score", "-", "-m", char_model, "--json", cwd=tmp_path, data=data)
    assert_ok(from_file)
    assert [r["text"] for r in json_lines(from_file.stdout)] == ["the café sat", "the dog", "the bird\u2028sang"]
    assert piped.stdout.decode() == from_file.stdout

    latin1 = "the café sat\n".encode("latin-1")
    (tmp_path / "l.txt").write_bytes(latin1)
    as_latin1 = [_lm_bytes("score", "-", "-m", char_model, "--json", "--encoding", "latin-1", cwd=tmp_path, data=latin1),
                 _lm_bytes("score", "-m", char_model, "--json", "--encoding", "latin-1", "-f", "l.txt", cwd=tmp_path,
                           data=b"")]
    assert [json_lines(r.stdout.decode())[0]["text"] for r in as_latin1] == ["the café sat"] * 2
    refused = _lm_bytes("score", "-", "-m", char_model, cwd=tmp_path, data=latin1)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr.decode()
    assert refused.stderr.decode().strip() == (
        "lm: error: standard input is not valid utf-8: byte 0xe9; give its --encoding, or --errors replace")
    replaced = _lm_bytes("score", "-", "-m", char_model, "--json", "--errors", "replace", cwd=tmp_path, data=latin1)
    assert json_lines(replaced.stdout.decode())[0]["text"] == "the caf\ufffd sat"


def test_eval_reads_stdin_for_dash_and_train_says_it_cannot(tmp_path, char_model):
    """Both said "-: no such file", though --encoding's help spoke of standard input."""
    text = "the cat sat on the mat.\nthe dog sat.\n"
    (tmp_path / "v.txt").write_text(text)
    from_file = json.loads(run_lm("eval", "v.txt", "-m", char_model, "--json", cwd=tmp_path).stdout)
    piped = _lm_bytes("eval", "-", "-m", char_model, "--json", cwd=tmp_path, data=text.encode())
    assert json.loads(piped.stdout) == from_file
    empty = _lm_bytes("eval", "-", "-m", char_model, cwd=tmp_path, data=b" \n")
    assert empty.returncode == 1 and empty.stderr.decode().strip() == "lm: error: standard input is empty; give some text"
    for args in (["-"], ["v.txt", "--valid", "-"]):
        refused = _lm_bytes("train", *args, "-m", "t.npz", cwd=tmp_path, data=text.encode())
        assert refused.returncode == 2 and "not - (standard input)" in refused.stderr.decode()
        assert len(refused.stderr.decode().splitlines()) == 1 and not (tmp_path / "t.npz").exists()


def test_binary_piped_in_is_refused_as_a_binary_file_is(tmp_path, char_model):
    """It was scored, and its NUL bytes printed to the terminal."""
    for args in (["score"], ["score", "the cat", "-"], ["sample", "--prime-file", "-", "--chars", "5"]):
        result = _lm_bytes(*args, "-m", char_model, cwd=tmp_path, data=b"the cat\nabc\0def\n")
        assert result.returncode == 1 and b"\0" not in result.stdout
        assert result.stderr.decode().splitlines() == [
            "lm: error: standard input looks binary (a NUL character in line 2); give text"]


def test_no_eos_log10_and_bits(tmp_path, word_model):
    whole, fragment = json_lines(run_lm("score", "-m", word_model, "the cat sat", "--json", cwd=tmp_path).stdout + "\n"
                                 + run_lm("score", "-m", word_model, "the cat sat", "--json", "--no-eos",
                                          cwd=tmp_path).stdout)
    assert whole["tokens"] == fragment["tokens"] + 1  # <EOS>
    assert fragment["logprob"] > whole["logprob"]
    assert whole["log10prob"] == pytest.approx(whole["logprob"] / math.log(10))
    assert whole["bits_per_word"] == pytest.approx(-whole["logprob"] / math.log(2) / 3)
    text = run_lm("score", "-m", word_model, "the cat sat", "--log10", cwd=tmp_path).stdout
    assert f"log10 P={whole['log10prob']:.3f}" in text


def test_unknown_token_policy_is_shared_by_scoring_and_priming(tmp_path, word_model, char_model):
    base = ["score", "-m", word_model, "the zebra sat", "--json"]
    mapped = json_lines(run_lm(*base, "--unk", "map", cwd=tmp_path).stdout)[0]
    skipped = json_lines(run_lm(*base, "--unk", "skip", cwd=tmp_path).stdout)[0]
    assert mapped["tokens"] == skipped["tokens"] + 1 and mapped["unknown"] == skipped["unknown"] == 1
    assert_one_line_error(run_lm(*base, "--unk", "error", cwd=tmp_path), "never saw 'zebra'", code=1)
    assert_one_line_error(run_lm("sample", "-m", word_model, "--prime", "the zebra", "--unk", "error",
                                 cwd=tmp_path), "never saw 'zebra'", code=1)
    assert_ok(run_lm("sample", "-m", char_model, "--prime", "the ☃", "--chars", "5", cwd=tmp_path))  # skipped
    assert_one_line_error(run_lm("score", "-m", char_model, "x", "--unk", "map", cwd=tmp_path), "--unk map", code=2)


def test_eval_reports_perplexity_with_and_without_unknown_words(tmp_path, word_model):
    text = "the zebra sat on the mat.\nthe cat sat on the okapi.\n"
    (tmp_path / "v.txt").write_text(text)
    result = json_lines(run_lm("eval", "v.txt", "-m", word_model, "--json", cwd=tmp_path).stdout)[0]
    model = lm.load(word_model)
    ids, _ = model.tokenizer.encode(text)
    x = inputs_for(ids, model.tokenizer.start_id)
    token_logprobs = logprobs(model.model, x[:, None], ids[:, None], model.model.zero_state(1))[0][:, 0]
    known = token_logprobs[ids != model.tokenizer.unk_id]
    assert result["unknown"] == 2 and len(known) == len(ids) - 2
    assert result["perplexity"] == pytest.approx(math.exp(-token_logprobs.mean()), rel=1e-4)
    assert result["perplexity_without_unk"] == pytest.approx(math.exp(-known.mean()), rel=1e-4)
    assert result["perplexity_without_unk"] != pytest.approx(result["perplexity"], rel=1e-3)


def test_per_token_colours_by_surprisal_only_in_a_colour_terminal(tmp_path, char_model):
    args = ("score", "-m", char_model, "the cat", "--per-token")
    coloured = run_lm(*args, cwd=tmp_path, env_extra={"FORCE_COLOR": "1"}).stdout
    assert "surprisal in bits" in coloured and ANSI in coloured
    for env in ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, {}):
        plain = run_lm(*args, cwd=tmp_path, env_extra=env).stdout
        assert ANSI not in plain and "P=" in plain and "bits" in plain


# ----- sampling -----


def test_sample_streams_as_it_draws(tmp_path, char_model):
    proc = lm_proc("sample", "-m", char_model, "--chars", "1000000", cwd=tmp_path, stdout=subprocess.PIPE)
    first = proc.stdout.read(20)  # long before a million characters are drawn
    proc.kill()
    proc.wait()
    assert len(first) == 20


def test_top_k_and_top_p_keep_only_the_most_probable_tokens():
    tok = Tokenizer.fit("abcd\n", TokenizerConfig(tokenizer="char", lines=True))
    model = _model("rnn", V=len(tok), layers=1)
    model.params["Wya"][:] = 0
    model.params["by"][:] = [{"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0}.get(t, -50.0) for t in tok.tokens]
    assert set("".join(draw(model, tok, tokens=300, seed=1))) == set("abcd")
    assert set("".join(draw(model, tok, tokens=300, seed=1, top_k=2))) == set("ab")
    assert "".join(draw(model, tok, tokens=50, seed=1, top_k=1)) == "a" * 50
    assert "".join(draw(model, tok, tokens=50, seed=1, top_p=0.6)) == "a" * 50  # P(a) = 0.64 reaches 0.6 alone
    assert set("".join(draw(model, tok, tokens=300, seed=1, top_p=0.8))) == set("ab")  # 0.64 + 0.24
    for bad in ({"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}, {"min_length": -1}):
        with pytest.raises(lm.ConfigError):
            list(draw(model, tok, **bad))


def test_stop_strings_end_the_text_and_are_not_printed_even_across_pieces():
    tok = Tokenizer.fit("hello world", TokenizerConfig(tokenizer="char"))
    text = _Text(tok, Limits(chars=100), None, ["lo w", "xyz"])
    pieces = []
    for ch in "hello world":
        pieces.append(text.add(tok.index[ch]))
        if text.done:
            break
    assert pieces == ["h", "e", "", "l", "", "", ""] and text.done  # "lo " was held back, never printed
    unfinished = _Text(tok, Limits(chars=4), None, ["low"])
    assert "".join(unfinished.add(tok.index[ch]) for ch in "hell") == "hell"  # the limit lets the held text out


def test_min_length_keeps_eos_away():
    model, tok = _lines_model({"<EOS>": 3.0})
    assert min(len(t) for t in sample_many(model, tok, 30, seed=1, min_length=6)) >= 6
    assert min(len(t) for t in sample_many(model, tok, 30, seed=1)) < 6


def test_prime_file_and_primer_on_stdin(tmp_path, char_model):
    (tmp_path / "p.txt").write_text("the cat")
    from_file = run_lm("sample", "-m", char_model, "--prime-file", "p.txt", "--chars", "5", "--seed", "1", cwd=tmp_path)
    from_stdin = subprocess.run([sys.executable, "-m", "lm", "sample", "-m", str(char_model), "--prime-file", "-",
                                 "--chars", "5", "--seed", "1"], input="the cat", capture_output=True, text=True)
    assert_ok(from_file)
    assert from_file.stdout == from_stdin.stdout and from_file.stdout.startswith("the cat")
    assert_one_line_error(run_lm("sample", "-m", char_model, "--prime", "x", "--prime-file", "p.txt", cwd=tmp_path),
                          "not both", code=2)

    (tmp_path / "l.txt").write_bytes("the café".encode("latin-1"))
    primed = [run_lm("sample", "-m", char_model, "--prime-file", "l.txt", "--encoding", "latin-1", "--tokens", "3",
                     "--seed", "1", cwd=tmp_path),
              _lm_bytes("sample", "-m", char_model, "--prime-file", "-", "--encoding", "latin-1", "--tokens", "3",
                        "--seed", "1", cwd=tmp_path, data="the café".encode("latin-1"))]
    assert primed[0].stdout == primed[1].stdout.decode() and primed[0].stdout.startswith("the caf")
    assert_one_line_error(run_lm("sample", "-m", char_model, "--prime-file", "l.txt", cwd=tmp_path),
                          "not valid utf-8", "--encoding", code=1)


@pytest.fixture(scope="module")
def names_model(tmp_path_factory):
    """A --lines character model of a few names, learned almost by heart."""
    directory = tmp_path_factory.mktemp("names")
    corpus = directory / "names.txt"
    corpus.write_text("\n".join(["anna", "bob", "carla", "dave", "emma", "fred"] * 40) + "\n")
    lm.train(corpus, directory / "names.npz", lines=True, hidden=32, embed=8, epochs=12, seq_len=16, batch_size=8,
             lr=0.02, valid_fraction=0.0, sample_chars=0)
    return directory / "names.npz"


def test_samples_copied_from_the_training_lines_are_marked_and_novel_avoids_them(tmp_path, names_model):
    model = lm.load(names_model)
    assert model.in_training("anna") and not model.in_training("annabelle")
    assert model.in_training("a primer's line\nanna") and not model.in_training("anna\nannabelle")
    assert "anna" not in names_model.read_bytes().decode("latin-1")  # hashes, not the text
    records = json_lines(run_lm("sample", "-m", names_model, "-n", "20", "--seed", "1", "--json", cwd=tmp_path).stdout)
    assert sorted(r["index"] for r in records) == list(range(20))
    assert all(r["in_training"] == model.in_training(r["text"]) for r in records)
    assert any(r["in_training"] for r in records)
    plain = run_lm("sample", "-m", names_model, "-n", "20", "--seed", "1", cwd=tmp_path)
    assert "'anna' is a line of the training data" in plain.stderr
    novel = model.sample_many(20, novel=True, temperature=2.0, seed=1)
    assert not any(model.in_training(t) for t in novel)
    model.extra.pop("line_hashes")  # as a model trained without --lines
    with pytest.raises(lm.ConfigError, match="--lines"):
        model.sample(novel=True)
    assert model.in_training("anna") is None


def test_sample_many_streams_each_sequence_when_complete():
    model, tok = _lines_model({"<EOS>": 1.0})
    order = [i for i, _ in lm.draw_many(model, tok, 30, seed=2)]
    assert sorted(order) == list(range(30)) and order != list(range(30))  # the short ones come first


# ----- training view -----


def test_training_log_is_plain_lines_with_gradient_norm_clipping_and_a_sample(tmp_path, corpus):
    result = run_lm("train", corpus.name, "--epochs", "2", *TINY_FLAGS, cwd=tmp_path)
    assert_ok(result)
    assert ANSI not in result.stderr and "\r" not in result.stderr
    steps = [line for line in result.stderr.splitlines() if " step " in line]
    assert len(steps) >= 10 and all("|grad|" in line and "clipped" in line and "ETA" in line for line in steps)
    assert result.stderr.count("  sample: ") == 2


def test_quiet_prints_nothing_but_json_still_works(tmp_path, corpus):
    result = run_lm("train", corpus.name, "--epochs", "2", "--quiet", "--json", *TINY_FLAGS, cwd=tmp_path)
    assert_ok(result)
    assert result.stderr == ""
    assert [r["epoch"] for r in json_lines(result.stdout)] == [1, 2]
    assert all("sample" in r for r in json_lines(result.stdout))


# ----- conventions -----


def test_version_completion_and_python_dash_m(tmp_path):
    version = run_lm("--version", cwd=tmp_path)
    assert_ok(version)
    assert version.stdout.strip() == f"lm {lm.__version__}"
    # Without a shell among its parent processes typer cannot detect one; this typer setting
    # (its own tests use it) makes --show-completion take the shell's name instead.
    completion = run_lm("--show-completion", "bash", cwd=tmp_path,
                        env_extra={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert_ok(completion)
    assert "complete" in completion.stdout and "lm" in completion.stdout


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["score", "x", "-m", "none.npz"], 1), (["train"], 2),
                                        (["sample", "--top-k", "x"], 2), (["nonsense"], 2), ([], 2)])
def test_exit_codes(tmp_path, args, code):
    """0 success, 1 a runtime error, 2 a usage error (plain `lm` shows the help, as a usage error)."""
    assert run_lm(*args, cwd=tmp_path).returncode == code


# ----- Python API -----


def test_the_python_api_does_what_the_cli_does(tmp_path, char_model, corpus):
    model = lm.load(char_model)
    assert isinstance(model, lm.LanguageModel)
    cli_text = run_lm("sample", "-m", char_model, "--chars", "60", "--temperature", "0.8", "--seed", "1",
                      cwd=tmp_path).stdout
    assert model.sample(chars=60, temperature=0.8, seed=1) + "\n" == cli_text
    assert "".join(model.stream(chars=60, temperature=0.8, seed=1)) == cli_text[:-1]
    cli_score = json_lines(run_lm("score", "-m", char_model, "the cat", "--json", cwd=tmp_path).stdout)[0]
    assert model.score("the cat").logprob == pytest.approx(cli_score["logprob"])
    ranked = model.rank(["the dog", "the cat sat on the mat."])
    assert ranked[0].logprob >= ranked[1].logprob and {s.text for s in ranked} == {"the dog", "the cat sat on the mat."}
    cli_eval = json_lines(run_lm("eval", corpus, "-m", char_model, "--json", cwd=tmp_path).stdout)[0]
    assert model.perplexity(lm.read_text(corpus)) == pytest.approx(cli_eval["perplexity"])
    assert model.sample_many(3, chars=10, seed=4) == [t for _, t in sorted(model.draw_many(3, chars=10, seed=4))]


def test_train_reports_progress_to_a_callback_and_the_package_is_typed(tmp_path, corpus):
    seen = []
    result = lm.train(corpus, tmp_path / "m.npz", on_progress=seen.append, **TINY)
    kinds = {type(i).__name__ for i in seen}
    assert kinds == {"StartInfo", "StepInfo", "EpochInfo"}
    assert result.history[-1].sample and isinstance(result.history[-1].sample, str)
    assert os.path.exists(os.path.join(os.path.dirname(lm.__file__), "py.typed"))


# ----- the terminal views, in tmux -----

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _tmux_capture(tmp_path, command: str, done: str, colours: bool = False, timeout: float = 60) -> str:
    """Run `command` in a fresh tmux session (a real terminal, 100 x 40) and return the screen
    once `done` appears in it."""
    session = f"lm-test-{os.getpid()}-{time.monotonic_ns()}"
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "40", "-c", str(tmp_path),
                    f"{command}; sleep 30"], check=True, env=env)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", *(["-e"] if colours else []), "-t", session],
                                    capture_output=True, text=True).stdout
            if done in screen:
                return screen
            time.sleep(0.2)
        pytest.fail(f"{done!r} never appeared:\n{screen}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@needs_tmux
def test_training_view_in_a_terminal(tmp_path):
    write_corpus(tmp_path)
    screen = _tmux_capture(tmp_path, f"{sys.executable} -m lm train corpus.txt --epochs 3 " + " ".join(TINY_FLAGS),
                           "saved model.npz")
    assert "model: 1 x 16 LSTM" in screen and "epoch 3: train" in screen and "  sample: " in screen
    assert " step " not in screen  # the live bar, not log lines, and it is gone when done


@needs_tmux
def test_per_token_view_in_a_terminal_is_coloured(tmp_path, char_model):
    screen = _tmux_capture(tmp_path, f"{sys.executable} -m lm score -m {char_model} 'the cat' --per-token",
                           "bits", colours=True)
    assert "surprisal in bits" in screen and ANSI in screen


# ----- regressions from the review -----


def test_lower_casing_that_lengthens_text_encodes(tmp_path):
    """'İ'.lower() is two code points: the character encoder must not assume one id a character."""
    tok = Tokenizer.fit("İstanbul İzmir\n", TokenizerConfig(tokenizer="char", lower=True))
    ids, unknown = tok.encode("İstanbul ve İzmir\n" * 3)
    assert unknown == 3 * 2 and tok.decode(ids.tolist()).startswith("i̇stanbul ")  # "v", "e" unseen


def test_patience_still_stops_a_run_that_max_time_cut(tmp_path, corpus):
    kw = dict(TINY, epochs=5, patience=1, min_delta=100.0, max_time=1e-4, sample_chars=0)
    stops = [lm.train(corpus, tmp_path / "m.npz", **kw).stopped]
    while stops[-1] == "max-time":
        stops.append(lm.train(corpus, tmp_path / "m.npz", resume=True).stopped)
    assert stops == ["max-time", "patience"]  # epoch 2 does not improve by 100 nats


def test_score_and_eval_count_bits_per_unit_alike(tmp_path, word_model):
    (tmp_path / "one.txt").write_text("The cook, my aunt and the grocer ate a pear.\n")
    model = lm.load(word_model)
    sentence = model.score("The cook, my aunt and the grocer ate a pear.")
    stream = model.evaluate((tmp_path / "one.txt").read_text())
    assert sentence.bits_per_unit == pytest.approx(stream.bits_per_unit, rel=1e-5)


def test_one_stop_string_given_as_a_string_is_one_stop(char_model):
    model = lm.load(char_model)
    text = model.sample(chars=80, seed=3)
    stop = text[10:13]
    assert model.sample(chars=80, seed=3, stop=stop) == text[: text.index(stop)]


def test_resume_accepts_the_default_learning_rate_given_explicitly(tmp_path, corpus):
    from test_robustness import _signal_at
    lm.train(corpus, tmp_path / "m.npz", on_progress=_signal_at(3), **TINY)
    assert lm.train(corpus, tmp_path / "m.npz", resume=True, lr=2e-3).stopped is None


def test_eta_past_a_day_and_out_of_memory(tmp_path, corpus, monkeypatch, capsys):
    from lm.cli import _clock
    assert _clock(25 * 3600 + 61) == "25:01:01"
    # Whether a real 32 TiB model fails at once depends on the system's overcommit setting.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Model, "init", classmethod(lambda cls, *args, **kwargs: np.empty(2**62, dtype=np.int8)))
    code, _, err = run_main(monkeypatch, capsys, "train", corpus, "--hidden", "1048576")
    assert code == 1 and err.startswith("lm: error: out of memory") and len(err.splitlines()) == 1, err


def test_a_sentence_that_cannot_be_scored_does_not_end_the_stream(tmp_path, char_model):
    result = subprocess.run([sys.executable, "-m", "lm", "score", "-", "-m", str(char_model)],
                            input="the cat\n\n☃☃☃\nthe dog\n", capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [(row[0], row[-1]) for row in rows] == [("1", "cat"), ("3", "dog")]  # sentence numbers, as the error's
    assert result.stderr.strip() == "lm: error: sentence 2 (line 3 of standard input): nothing to score in '☃☃☃'"


def _read_then_close(args, cwd, size, stdin=None, stderr=subprocess.PIPE):
    """`lm ARGS` with its stdout read for `size` bytes and then closed, as `| head -c` does
    (with stderr=subprocess.STDOUT, as `2>&1 | head -c` does)."""
    proc = subprocess.Popen([sys.executable, "-m", "lm", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=stderr, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
    if stdin:  # written from a thread: lm's output pipe fills while its input is still coming
        feed = threading.Thread(target=_feed, args=(proc.stdin, stdin))
        feed.start()
    head = proc.stdout.read(size)
    proc.stdout.close()
    code = proc.wait(timeout=60)
    if stdin:
        feed.join()
    return head, code, proc.stderr.read().decode() if proc.stderr else ""


def _feed(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except BrokenPipeError:  # lm stopped reading: it ended once its output was closed
        pass


@pytest.mark.parametrize("args, stdin", [
    (["sample", "--chars", "300000"], None),
    (["info"], None),
    (["score", "-"], b"the cat sat\n" * 20000),
], ids=["sample", "info", "score"])
def test_a_reader_that_stops_reading_ends_lm_quietly(tmp_path, char_model, args, stdin):
    """`lm sample | head -c 20`: the reader had what it wanted; not an error (exit 1), no traceback."""
    head, code, stderr = _read_then_close([*args, "-m", char_model], tmp_path, 20, stdin)
    assert len(head) == 20 and code == 0 and stderr == ""


@pytest.mark.parametrize("stderr", [subprocess.PIPE, subprocess.STDOUT], ids=["stdout", "stdout and stderr"])
def test_a_training_run_whose_reader_is_gone_stops_as_on_a_signal_and_keeps_its_state(tmp_path, corpus, stderr):
    """`lm train --json | head -1`: the run stops after the step, saves its state to resume from, and
    exits as a process stopped by SIGPIPE would (141), not with a traceback or a lost run. With
    stderr in the closed pipe too, every progress line repeats SIGPIPE: that must not quit at once."""
    head, code, messages = _read_then_close(["train", corpus.name, "--json", *TINY_FLAGS, "--epochs", "50",
                                             "--sample-chars", "0"], tmp_path, 20, stderr=stderr)
    assert len(head) == 20 and code == 141, messages
    assert (tmp_path / "model.resume.npz").exists()
    if stderr == subprocess.PIPE:
        assert "Traceback" not in messages
        assert f"continue with: lm train {corpus.name} -m model.npz --resume" in messages


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_live_bar_fits_the_terminal_keeping_the_epoch_loss_and_time_left(monkeypatch, width):
    """At 80 columns the bar's figures alone took the line: the epoch and the time left were cut."""
    import io

    from rich.console import Console
    monkeypatch.setattr(cli, "err", Console(file=io.StringIO(), width=width, force_terminal=True))
    view = cli._TrainView(quiet=False, json_out=False)
    view.show(lm.StepInfo(epoch=3, epochs=10, step=120, steps=400, loss=5.123, tokens_per_s=123456, elapsed_s=10,
                          eta_s=3700, grad_norm=12.5, clipped=0.92))
    view.stop()
    shown = Console(file=io.StringIO(), width=width, color_system=None)
    shown.print(view.progress.get_renderable())
    (line,) = shown.file.getvalue().splitlines()
    assert line.startswith("epoch 3/10 ━") and line.endswith("ETA 1:01:40"), line
    assert "loss 5.123" in line and ("clipped 92%" in line) == (width >= 120), line


def test_a_json_reader_that_is_gone_stops_the_run_within_the_next_epoch(tmp_path):
    """The JSON lines come once an epoch, so the closed pipe was noticed only at the next
    epoch's line: `lm train --json | head -1` trained a whole epoch more before it stopped."""
    (tmp_path / "long.txt").write_text("the cat sat on the mat and the dog ate the bread\n" * 2000)
    proc = subprocess.Popen([sys.executable, "-m", "lm", "train", "long.txt", "--json", *TINY_FLAGS, "--epochs", "3",
                             "--sample-chars", "0"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    first = json.loads(proc.stdout.readline())  # all of the line, as `head -1` reads it
    proc.stdout.close()
    code, messages = proc.wait(timeout=60), proc.stderr.read().decode()
    assert first["epoch"] == 1 and code == 141, messages
    resume = lm.load(tmp_path / "model.resume.npz").meta["resume"]
    assert resume["epoch"] == 2 and 0 < resume["step"] < 1000, (resume, messages)


def test_an_error_after_reading_piped_sentences_is_one_line(tmp_path, char_model):
    result = subprocess.run([sys.executable, "-m", "lm", "score", "-m", str(char_model), "--unk", "map"],
                            input="a\nb\n", capture_output=True, text=True, cwd=tmp_path)
    assert_one_line_error(result, "--unk map needs", code=2)

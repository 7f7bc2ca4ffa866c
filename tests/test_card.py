"""The model card (lm.card): its facts against the model file, and what render and chart draw."""

import json
import math
import os
import re
import signal

import pytest
from rich.console import Console

import lm
from lm.card import MARKERS, card, chart, render
from tests.conftest import write_corpus

TINY = dict(hidden=8, embed=4, epochs=3, seq_len=10, batch_size=4, seed=0, sample_chars=0)


@pytest.fixture(scope="module")
def deep_model(tmp_path_factory):
    """A 2-layer character model trained with --grad-stats; its path."""
    directory = tmp_path_factory.mktemp("card")
    path = directory / "deep.npz"
    lm.train(write_corpus(directory), path, layers=2, grad_stats=True, **TINY)
    return path


def rendered(info: dict) -> str:
    console = Console(record=True, width=100, color_system=None)
    render(info, console)
    return console.export_text()


def chart_rows(text: str, title: str) -> list[str]:
    """The plot rows (those with a y axis) of the chart under `title`."""
    rows = []
    for line in text[text.index(title):].splitlines()[1:]:
        if "└" in line:
            return rows
        if "┤" in line or "│" in line:
            rows.append(line)
    raise AssertionError(f"no x axis under {title!r}")


def y_labels(rows: list[str]) -> list[str]:
    return [row.split("┤")[0].strip() for row in rows if "┤" in row]


def test_card_matches_the_model_file(deep_model):
    ckpt = lm.load(deep_model)
    info = card(ckpt, deep_model)
    assert json.loads(json.dumps(info, allow_nan=False)) == info
    assert info["file"] == {"path": str(deep_model), "bytes": deep_model.stat().st_size}
    assert info["model"] == {"vocab": len(ckpt.tokenizer), "cell": "lstm", "layers": 2, "hidden": 8, "embed": 4,
                             "peephole": False, "parameters": ckpt.model.num_params()}
    assert info["vocabulary"]["size"] == len(ckpt.tokenizer) == ckpt.model.config.vocab
    assert info["vocabulary"]["first"][:3] == ["\n", " ", "."]  # code-point order, the tokens themselves
    assert "'\\n' ' ' '.'" in rendered(info)  # the terminal shows them as reprs
    assert info["corpus"] == ckpt.meta["corpus"]
    assert info["validation"] == {"held_out_fraction": 0.1}
    assert info["lm_version"] == lm.__version__


def test_card_training_figures_come_from_the_history(deep_model):
    training = card(lm.load(deep_model))["training"]
    history = card(lm.load(deep_model))["history"]
    valid = [h["valid_loss"] for h in history]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert training["epochs_run"] == training["epochs_planned"] == 3
    assert training["best_valid_loss"] == min(valid)
    assert training["best_epoch"] == valid.index(min(valid)) + 1
    assert training["best_valid_perplexity"] == pytest.approx(math.exp(min(valid)))
    assert training["best_valid_bits_per_char"] == pytest.approx(min(valid) / math.log(2))
    assert training["recipe"] == {"optimizer": "adam", "lr": 2e-3, "batch_size": 4, "seq_len": 10, "clip": 5.0}


def test_card_gradient_reach_is_the_ratio_to_distance_zero(deep_model):
    ckpt = lm.load(deep_model)
    stats = card(ckpt)["grad_stats"]
    stored = ckpt.meta["grad_stats"]
    assert stats["norm"] == stored["norm"] and stats["samples"] == stored["samples"] > 0
    assert stats["reach"]["distance"] == [1, 2, 5, 9]  # seq_len 10: the farthest is 9
    for norm, ratios in zip(stored["norm"], stats["reach"]["ratio"]):
        assert ratios == pytest.approx([norm[k] / norm[0] for k in (1, 2, 5, 9)])


def test_card_of_a_word_model_lists_its_specials_apart(word_model):
    info = card(lm.load(word_model))
    vocabulary = info["vocabulary"]
    assert vocabulary["kind"] == "word" and vocabulary["specials"] == ["<EOS>", "<UNK>"]
    assert "the" in vocabulary["first"] and "<EOS>" not in vocabulary["first"]
    assert "best_valid_bits_per_char" not in info["training"]  # bits per character only for characters


def test_render_shows_the_facts_and_both_charts(deep_model):
    ckpt = lm.load(deep_model)
    text = rendered(card(ckpt, deep_model))
    for expected in ("2 x 8 LSTM, embedding 4", f"{ckpt.model.num_params():,} parameters",
                     f"corpus.txt sha256 {ckpt.meta['corpus']['sha256'][:16]}", "3 of 3 epochs",
                     "adam lr 0.002, batch 4 x 10 steps, clip 5", "loss per epoch", "• train   ○ valid",
                     "gradient norm reaching a<t-k>", "layer 1 (bottom)", "○ layer 2 (top)", "clipping fired in"):
        assert expected in text
    assert re.search(r"clipping fired in \d+\.\d% of steps", text)
    assert len(chart_rows(text, "loss per epoch")) == 10


def test_render_labels_the_log_scale_in_powers_of_ten(deep_model):
    rows = chart_rows(rendered(card(lm.load(deep_model))), "gradient norm reaching")
    labels = y_labels(rows)
    assert len(rows) == 10 and len(labels) >= 2
    assert all(re.fullmatch(r"1e-?\d+", label) for label in labels)
    exponents = [int(label[2:]) for label in labels]
    assert exponents == sorted(exponents, reverse=True)  # the largest at the top


def test_chart_puts_points_where_they_belong():
    lines = chart({"down": [(1, 3.0), (2, 2.0), (3, 1.0)], "up": [(1, 1.0), (3, 3.0)]}, height=5, width=11)
    rows = [line.split("┤" if "┤" in line else "│", 1)[1] for line in lines[:5]]
    assert rows[0] == "•" + " " * 9 + "○"  # the largest y in the top row, the smallest x at the left
    assert rows[2] == " " * 5 + "•" + " " * 5
    assert rows[4] == "○" + " " * 9 + "•"
    assert y_labels(lines[:5]) == ["3.00", "2.50", "1.50", "1.00"]  # rows 0, 1, 3, 4: their exact values
    assert lines[-1].split() == ["•", "down", "○", "up"]


def test_chart_on_a_log_scale_puts_a_power_of_ten_on_its_label():
    lines = chart({"norm": [(0, 1.0), (1, 1e-2), (2, 3e-5), (3, 0.0)]}, log_y=True, height=6)
    rows = lines[:6]
    labelled = {label: row for row in rows for label in y_labels([row])}
    assert set(labelled) >= {"1e0", "1e-2", "1e-5"}
    assert labelled["1e0"].rstrip().endswith("┤•")
    assert "•" in labelled["1e-2"]
    assert sum(row.count("•") for row in rows) == 3  # the 0 has no place on a log scale


def test_chart_marks_where_series_meet_and_draws_a_single_point():
    lines = chart({"train": [(1, 2.0)], "valid": [(1, 2.0)]})
    assert sum(line.count("*") for line in lines[:10]) == 1
    assert lines[-1].strip().split("   ") == ["• train", "○ valid", "* more than one"]
    assert chart({"train": []}) == ["nothing to draw"]
    with pytest.raises(ValueError):
        chart({str(i): [(0, 1.0)] for i in range(len(MARKERS) + 1)})


def test_render_with_one_epoch(deep_model):
    ckpt = lm.load(deep_model)
    ckpt.meta["history"] = ckpt.meta["history"][:1]
    text = rendered(card(ckpt))
    rows = chart_rows(text, "loss per epoch")
    assert len(rows) == 10
    assert "".join(rows).count("•") + "".join(rows).count("○") + "".join(rows).count("*") == 2


def test_render_of_a_bare_model_leaves_out_what_it_lacks(deep_model):
    ckpt = lm.load(deep_model)
    info = card(lm.Checkpoint(ckpt.model, ckpt.tokenizer))
    assert set(info) == {"model", "vocabulary"}
    text = rendered(info)
    assert "no epochs recorded" in text and "gradient" not in text and "corpus" not in text


def test_card_survives_odd_metadata(deep_model):
    ckpt = lm.load(deep_model)
    ckpt.meta = {"history": "none", "grad_stats": {"distance": ["a"], "norm": [[1.0]]}, "best_valid_loss": math.nan,
                 "train_config": {"optimizer": "sgd", "lr": None}, "corpus": {"name": 3}, "resume": []}
    info = card(ckpt)
    json.dumps(info, allow_nan=False)
    assert info["training"] == {"epochs_run": 0, "recipe": {"optimizer": "sgd", "lr": 1.0}}
    assert "grad_stats" not in info and "corpus" not in info and "unfinished" not in info
    assert "sgd lr 1" in rendered(info)


def test_card_survives_numbers_too_large_to_draw(deep_model):
    """An epoch of 10**400 and losses of ±1e308 crashed `lm info` (OverflowError, NaN); a
    ratio of 1e308 to 1e-320 printed Infinity in --json."""
    ckpt = lm.load(deep_model)
    first = ckpt.meta["history"][0]
    ckpt.meta["history"] = [dict(first, train_loss=1e308), dict(first, epoch=2, train_loss=-1e308),
                            dict(first, epoch=10**400)]
    ckpt.meta["grad_stats"] = {"distance": [0, 10**400], "norm": [[1e-320, 1e308]]}
    info = card(ckpt)
    json.dumps(info, allow_nan=False)
    assert [h["epoch"] for h in info["history"]] == [1, 2, None] and info["history"][0]["train_loss"] is None
    ckpt.meta["grad_stats"] = {"distance": [0, 1], "norm": [[1e-320, 1e308]]}
    info = card(ckpt)
    json.dumps(info, allow_nan=False)
    assert info["grad_stats"]["reach"]["ratio"] == [[None]]  # 1e308 / 1e-320 overflows
    rendered(info)


def test_brackets_render_literally(tmp_path):
    corpus = tmp_path / "c[b].txt"
    corpus.write_text("[b] [/] x y\n" * 30, encoding="utf-8")
    path = tmp_path / "brackets.npz"
    lm.train(corpus, path, tokenizer="whitespace", **TINY)
    info = card(lm.load(path), path)
    text = rendered(info)
    assert "'[b]'" in text and "'[/]'" in text and "c[b].txt" in text


def test_resume_file_shows_the_unfinished_run(tmp_path):
    steps = []

    def interrupt_after_three_steps(info) -> None:
        if isinstance(info, lm.StepInfo):
            steps.append(info)
            if len(steps) == 3:
                os.kill(os.getpid(), signal.SIGINT)

    result = lm.train(write_corpus(tmp_path), tmp_path / "m.npz", on_progress=interrupt_after_three_steps, **TINY)
    info = card(lm.load(result.resume_path), result.resume_path)
    assert info["unfinished"] == {"epoch": 1, "step": 3}
    assert "unfinished run: epoch 1, step 3" in rendered(info)

"""The agreement corpus (corpora/make_agreement.py) and its benchmark (bench/long_range.py)."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "corpora"))

import make_agreement as agreement  # noqa: E402

SMALL = dict(sentences=400, max_gap=50, pair_count=20)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return agreement.write(tmp_path_factory.mktemp("agreement"), 7, **SMALL)


def lines(path: Path) -> list[list[str]]:
    return [line.split(" ") for line in path.read_text(encoding="utf-8").splitlines()]


def pairs(path: Path) -> list[dict]:
    rows = path.read_text(encoding="utf-8").splitlines()
    names = rows[0].split("\t")
    return [dict(zip(names, row.split("\t"))) for row in rows[1:]]


def clause_words(tokens: list[str]) -> list[str]:
    """The words between the commas: "the cat , <clause> , was full ."."""
    return tokens[3:-4] if tokens[2] == "," else []


def test_the_same_seed_writes_the_same_files_and_another_seed_others(files, tmp_path):
    again = agreement.write(tmp_path / "again", 7, **SMALL)
    other = agreement.write(tmp_path / "other", 8, **SMALL)
    for name in ("train", "valid", "pairs"):
        assert again[name].read_bytes() == files[name].read_bytes()
        assert other[name].read_bytes() != files[name].read_bytes()


@pytest.mark.parametrize("gap", range(0, 51))
def test_every_gap_has_exactly_that_many_clause_words(gap):
    rng = random.Random(gap)
    for number in ("sg", "pl") * 10:
        tokens = agreement.sentence(rng, gap, number)
        assert len(tokens) == 5 + gap + 2 * (gap > 0)
        assert len(clause_words(tokens)) == gap
        assert "," not in clause_words(tokens)


def test_the_evaluation_pairs_cover_the_gaps_and_differ_only_in_the_verb(files):
    rows = pairs(files["pairs"])
    assert sorted({int(r["gap"]) for r in rows}) == list(range(0, 51, 5))
    for row in rows:
        good, bad = row["good"].split(" "), row["bad"].split(" ")
        assert len(clause_words(good)) == int(row["gap"])
        assert len(good) == len(bad)
        diff = [(g, b) for g, b in zip(good, bad) if g != b]
        assert len(diff) == 1 and set(diff[0]) == {"was", "were"}
        assert int(row["attractors"]) == agreement.attractors(good)
    assert {r["number"] for r in rows} == {"sg", "pl"}


def test_singular_subjects_take_was_and_the_clause_never_gives_the_number_away(files):
    sentences = lines(files["train"]) + lines(files["valid"]) + [r["good"].split(" ") for r in pairs(files["pairs"])]
    for tokens in sentences:
        singular = tokens[1] in agreement.SUBJECTS["sg"]
        assert singular != (tokens[1] in agreement.SUBJECTS["pl"])
        assert tokens[-3] == ("was" if singular else "were")
        clause = clause_words(tokens)
        assert not {"was", "were", *agreement.SUBJECTS["sg"], *agreement.SUBJECTS["pl"]} & set(clause)
    gaps = [len(clause_words(t)) for t in lines(files["train"])]
    assert min(gaps) == 0 and max(gaps) == 50


def test_short_sentences_are_the_requested_fraction(tmp_path):
    written = agreement.write(tmp_path, 7, sentences=2000, max_gap=50, pair_count=1, short=1.0)
    assert max(len(clause_words(t)) for t in lines(written["train"])) == agreement.SHORT_GAP
    written = agreement.write(tmp_path, 7, sentences=2000, max_gap=50, pair_count=1, short=0.5)
    long = sum(len(clause_words(t)) > agreement.SHORT_GAP for t in lines(written["train"]))
    assert 0.35 < long / 2000 < 0.45  # half the sentences draw from 0..50, 40 of 51 gaps above 10


def test_the_quick_benchmark_runs_end_to_end(tmp_path):
    out = tmp_path / "long_range.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "long_range.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| gap | rnn | gru | lstm |" in proc.stdout
    report = json.loads(out.read_text())
    cells = report["cells"]
    assert list(cells) == ["rnn", "gru", "lstm"]
    counts = [cells[c]["parameters"] for c in cells]
    assert max(counts) / min(counts) < 1.05
    for result in cells.values():
        assert list(result["accuracy"]) == ["0", "5", "10"]
        assert all(0.0 <= a <= 1.0 for a in result["accuracy"].values())
        stats = result["grad_stats"]
        if stats is None:
            assert "gradient statistics not recorded" in proc.stdout
        else:
            assert list(stats["norm"]) == ["0", "1", "2", "5", "10"]  # the distances shown below seq_len 20
            assert 0.0 <= stats["clip_rate"] <= 1.0

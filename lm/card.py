"""The model card (`lm info`): what a model file holds, how it was trained, and how that went.

`card` gathers the facts of a Checkpoint into a JSON-ready dict; `render` prints that dict for
a terminal, with the loss per epoch and, for models trained with --grad-stats, the gradient
norm against distance drawn by `chart` as plain text, readable without colour. Old or hand-made
files may lack any metadata entry, so each section of the card is there only when its facts are.
"""

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .checkpoint import Checkpoint
from .config import TrainConfig, counted
from .errors import ConfigError
from .score import perplexity
from .tokenizer import EOS, UNK

SHOWN_TOKENS = 10  # vocabulary entries on the card, after the specials
REACH_DISTANCES = (1, 2, 5, 10, 20, 50, 100, 200, 500)  # where the card gives norm[k] / norm[0]
MARKERS = "•○×+"  # one per series of a chart, distinct without colour
OVERLAP = "*"  # where points of different series share a cell, so that neither hides the other
MIN_WIDTH, MAX_WIDTH = 20, 60  # a chart's plotting columns when the caller does not choose
Points = Sequence[tuple[float, float]]


# ---------------------------------------------------------------- the card as data


def card(ckpt: Checkpoint, path: str | Path | None = None) -> dict[str, Any]:
    """The model card of `ckpt` (read from `path`, if given) as a JSON-serialisable dict.

    Sections: file, model, vocabulary, corpus, validation, training, history, grad_stats,
    unfinished (a resume file's position), lm_version; a section whose facts the file does not
    carry is left out, and a number that is not finite is given as None.
    """
    meta = ckpt.meta
    history = _history(meta.get("history"))
    sections = {
        "file": _file(path),
        "model": _model(ckpt),
        "vocabulary": _vocabulary(ckpt),
        "corpus": _source(meta.get("corpus")),
        "validation": _validation(meta),
        "training": _training(meta, history, ckpt.tokenizer.kind),
        "history": history,
        "grad_stats": _grad_stats(meta.get("grad_stats")),
        "unfinished": _unfinished(meta.get("resume")),
        "lm_version": meta.get("lm_version") if isinstance(meta.get("lm_version"), str) else None,
    }
    return {name: value for name, value in sections.items() if value}


LARGEST = 1e100  # beyond any real figure; larger ones overflow the charts' arithmetic (1e308 - -1e308)


def _number(value: Any) -> float | None:
    """A finite number as a float, else None: hand-edited metadata may hold anything, and
    strict JSON has no NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= LARGEST:
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= LARGEST else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _file(path: str | Path | None) -> dict | None:
    if path is None:
        return None
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:  # the card of a checkpoint whose file has gone since it was read
        return {"path": str(path)}
    return {"path": str(path), "bytes": size}


def _model(ckpt: Checkpoint) -> dict:
    return {**ckpt.model.config_dict(), "parameters": ckpt.model.num_params()}


def _vocabulary(ckpt: Checkpoint) -> dict:
    """Size and kind, the specials, and the first other entries (the tokens themselves: the
    terminal's row shows their reprs)."""
    tok = ckpt.tokenizer
    specials = list(itertools.takewhile(lambda t: t in (EOS, UNK), tok.tokens))
    entries = tok.tokens[len(specials) : len(specials) + SHOWN_TOKENS]
    vocabulary = {"kind": tok.kind, "size": len(tok), "lower": tok.lower, "lines": tok.lines,
                  "specials": specials, "first": list(entries)}
    hashes = ckpt.extra.get("line_hashes")
    if hashes is not None:  # what `lm sample --novel` checks against
        vocabulary["line_hashes"] = len(hashes)
    return vocabulary


def _source(entry: Any) -> dict | None:
    """A text file the run read: its name and SHA-256."""
    if not isinstance(entry, dict):
        return None
    return {key: entry[key] for key in ("name", "sha256") if isinstance(entry.get(key), str)} or None


def _validation(meta: dict) -> dict | None:
    """The --valid file, or else the share of the corpus held out (0: no validation)."""
    named = _source(meta.get("valid"))
    if named:
        return named
    fraction = _number(_dict(meta.get("train_config")).get("valid_fraction"))
    if "valid" in meta and fraction is not None:
        return {"held_out_fraction": fraction}
    return None


def _history(entries: Any) -> list[dict]:
    if not isinstance(entries, list):
        return []
    return [{"epoch": _integer(h.get("epoch")), "train_loss": _number(h.get("train_loss")),
             "valid_loss": _number(h.get("valid_loss"))} for h in entries if isinstance(h, dict)]


def _training(meta: dict, history: list[dict], kind: str) -> dict:
    """Epochs, time, the best validation figures and the recipe."""
    config = _dict(meta.get("train_config"))
    training = {
        "epochs_run": len(history) if "history" in meta else None,
        "epochs_planned": _integer(config.get("epochs")),
        "train_time_s": _number(meta.get("train_time_s")),
        "best_epoch": _integer(meta.get("best_epoch")),
    }
    best = _number(meta.get("best_valid_loss"))
    if best is not None:
        training["best_valid_loss"] = best
        training["best_valid_perplexity"] = _number(perplexity(best))
        if kind == "char":  # nats per character; bits are the usual unit for character models
            training["best_valid_bits_per_char"] = best / math.log(2)
    recipe = {
        "optimizer": config.get("optimizer") if isinstance(config.get("optimizer"), str) else None,
        "lr": _learning_rate(config),
        "batch_size": _integer(config.get("batch_size")),
        "seq_len": _integer(config.get("seq_len")),
        "clip": _number(config.get("clip")),
    }
    training["recipe"] = {k: v for k, v in recipe.items() if v is not None}
    return {k: v for k, v in training.items() if v is not None and v != {}}


def _learning_rate(config: dict) -> float | None:
    """The starting rate; a stored lr of None means the optimizer's default, which TrainConfig knows."""
    if config.get("lr") is not None:
        return _number(config["lr"])
    if "optimizer" not in config:
        return None
    try:
        return TrainConfig(optimizer=config["optimizer"]).learning_rate
    except ConfigError:  # an optimizer this version does not know
        return None


def _grad_stats(stats: Any) -> dict | None:
    """The stored statistics, and for each layer norm[k] / norm[0] at a few distances k: the
    share of the gradient of the last step's loss that reaches k steps back."""
    stats = _dict(stats)
    norm, distance = stats.get("norm"), stats.get("distance")
    if not (isinstance(norm, list) and isinstance(distance, list) and norm and distance
            and all(_integer(k) is not None for k in distance)
            and all(isinstance(row, list) and len(row) == len(distance) for row in norm)):
        return None
    norm = [[_number(v) for v in row] for row in norm]
    shown = [i for i in REACH_DISTANCES if i < len(distance)]  # positions; GradStats stores distance i at i
    if len(distance) > 1 and len(distance) - 1 not in shown:
        shown.append(len(distance) - 1)  # the farthest the window reaches
    ratios = [[_ratio(row[i], row[0]) for i in shown] for row in norm]
    return {"distance": distance, "norm": norm, "clip_rate": _number(stats.get("clip_rate")),
            "samples": _integer(stats.get("samples")),
            "reach": {"distance": [distance[i] for i in shown], "ratio": ratios}}


def _ratio(far: float | None, near: float | None) -> float | None:
    return None if far is None or not near else _number(far / near)


def _unfinished(resume: Any) -> dict | None:
    """Where an interrupted run stands: the loader leaves a resume file's position in its meta."""
    if not isinstance(resume, dict):
        return None
    return {key: resume[key] for key in ("epoch", "step") if _integer(resume.get(key)) is not None} or None


# ---------------------------------------------------------------- the card as text


def render(info: dict[str, Any], console: Console) -> None:
    """Print a card made by `card`: its facts as a two-column table, then the loss per epoch and
    the gradient statistics as text charts. All text goes out as Text objects, never as markup,
    so a vocabulary entry or file name such as "[b]" prints as it is."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for label, value in _rows(info):
        table.add_row(Text(label), Text(value))
    console.print(table)
    unfinished = info.get("unfinished")
    if unfinished:
        console.print(Text(f"unfinished run: {_position(unfinished)} (continue it with lm train --resume)"))
    _print_chart(console, "loss per epoch", _loss_chart(info.get("history", [])))
    stats = info.get("grad_stats")
    if stats:
        _print_chart(console, "gradient norm reaching a<t-k>, by distance k (log scale)", _reach_chart(stats))
        if stats.get("clip_rate") is not None:
            console.print(Text(f"clipping fired in {stats['clip_rate']:.1%} of steps"))


def _print_chart(console: Console, title: str, lines: list[str]) -> None:
    console.print()
    console.print(Text(title, style="bold"))
    for line in lines:
        console.print(Text(line, no_wrap=True, overflow="ignore"), crop=False)


def _position(unfinished: dict) -> str:
    return ", ".join(f"{key} {unfinished[key]}" for key in ("epoch", "step") if key in unfinished)


def _rows(info: dict) -> list[tuple[str, str]]:
    """The card's facts as (label, value) lines, leaving out what the card does not have."""
    training = info.get("training", {})
    rows = [
        ("file", _file_row(info.get("file"))),
        ("model", _model_row(info["model"])),
        ("vocabulary", _vocabulary_row(info["vocabulary"])),
        ("first entries", " ".join(map(repr, info["vocabulary"]["first"]))),  # a newline or a space shows as one
        ("corpus", _source_row(info.get("corpus"))),
        ("validation", _validation_row(info.get("validation"))),
        ("trained", _trained_row(training)),
        ("best validation", _best_row(training)),
        ("recipe", _recipe_row(training.get("recipe", {}))),
        *_reach_rows(info.get("grad_stats")),
        ("lm version", info.get("lm_version")),
    ]
    return [(label, value) for label, value in rows if value]


def _file_row(file: dict | None) -> str | None:
    if not file:
        return None
    return file["path"] + (f" ({file['bytes']:,} bytes)" if "bytes" in file else "")


def _model_row(model: dict) -> str:
    peephole = " with peepholes" if model["peephole"] else ""
    return (f"{model['layers']} x {model['hidden']} {model['cell'].upper()}{peephole}, "
            f"embedding {model['embed']}, {model['parameters']:,} parameters")


def _vocabulary_row(vocabulary: dict) -> str:
    notes = [f"{vocabulary['size']:,} tokens ({vocabulary['kind']})"]
    if vocabulary["specials"]:
        notes.append("specials " + " ".join(vocabulary["specials"]))
    if vocabulary["lower"]:
        notes.append("lowercased")
    if vocabulary["lines"] and vocabulary["kind"] == "char":
        notes.append("one line a sequence")
    if "line_hashes" in vocabulary:
        notes.append(f"hashes of {vocabulary['line_hashes']:,} training lines")
    return ", ".join(notes)


def _source_row(source: dict | None) -> str | None:
    if not source:
        return None
    digest = source.get("sha256")
    return " ".join(part for part in (source.get("name"), digest and f"sha256 {digest[:16]}...") if part)


def _validation_row(validation: dict | None) -> str | None:
    if not validation or "held_out_fraction" not in validation:
        return _source_row(validation)
    fraction = validation["held_out_fraction"]
    return f"the last {fraction:.0%} of the corpus" if fraction else "none"


def _trained_row(training: dict) -> str | None:
    parts = []
    if "epochs_run" in training:
        planned = training.get("epochs_planned")
        run = training["epochs_run"]
        parts.append(f"{run} of {counted(planned, 'epoch')}" if planned else counted(run, "epoch"))
    if "train_time_s" in training:
        parts.append(_duration(training["train_time_s"]))
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _best_row(training: dict) -> str | None:
    if "best_valid_loss" not in training:
        return None
    epoch = f"epoch {training['best_epoch']}: " if "best_epoch" in training else ""
    parts = [f"{epoch}loss {training['best_valid_loss']:.4f} nats/token"]
    if training.get("best_valid_perplexity") is not None:
        parts.append(f"perplexity {training['best_valid_perplexity']:.2f}")
    if "best_valid_bits_per_char" in training:
        parts.append(f"{training['best_valid_bits_per_char']:.3f} bits/char")
    return ", ".join(parts)


def _recipe_row(recipe: dict) -> str:
    rate = [recipe["optimizer"]] if "optimizer" in recipe else []
    if "lr" in recipe:
        rate.append(f"lr {recipe['lr']:g}")
    parts = [" ".join(rate)]
    if "batch_size" in recipe and "seq_len" in recipe:
        parts.append(f"batch {recipe['batch_size']} x {counted(recipe['seq_len'], 'step')}")
    if "clip" in recipe:
        parts.append(f"clip {recipe['clip']:g}" if recipe["clip"] else "no clipping")
    return ", ".join(p for p in parts if p)


def _reach_rows(stats: dict | None) -> list[tuple[str, str]]:
    """What share of the gradient reaches k steps back, norm[k] / norm[0]: a row per layer."""
    if not stats:
        return []
    reach = stats["reach"]
    layers = [(f"  {_layer_name(layer, len(reach['ratio']))}",
               ", ".join(f"k={k} {r:.2g}" for k, r in zip(reach["distance"], ratios) if r is not None))
              for layer, ratios in enumerate(reach["ratio"])]
    return [("gradient reach", "norm[k] / norm[0] of the gradient reaching k steps back"), *layers]


def _layer_name(layer: int, layers: int) -> str:
    """Layers from 1 at the input; the ends named, since that is where gradients differ most."""
    end = {0: " (bottom)", layers - 1: " (top)"}.get(layer, "") if layers > 1 else ""
    return f"layer {layer + 1}{end}"


def _loss_chart(history: list[dict]) -> list[str]:
    if not history:
        return ["no epochs recorded"]
    series = {"train": [(h["epoch"], h["train_loss"]) for h in history]}
    valid = [(h["epoch"], h["valid_loss"]) for h in history]
    if any(loss is not None for _, loss in valid):
        series["valid"] = valid
    return chart(series, x_label="epoch", y_label="nats per token")


def _reach_chart(stats: dict) -> list[str]:
    """One curve per layer; with more layers than markers, the bottom and top ones."""
    norm = stats["norm"]
    layers = list(range(len(norm)))
    if len(layers) > len(MARKERS):
        layers = [0, len(norm) - 1]
    series = {_layer_name(i, len(norm)): list(zip(stats["distance"], norm[i])) for i in layers}
    return chart(series, log_y=True, x_label="distance k", y_label="gradient norm")


# ---------------------------------------------------------------- text charts


def chart(series: dict[str, Points], height: int = 10, width: int | None = None, log_y: bool = False,
          x_label: str = "", y_label: str = "") -> list[str]:
    """Points (x, y) drawn as lines of plain text, one marker character per series (MARKERS,
    in order; at most that many series; OVERLAP where series meet). Points whose y is None
    or not finite, or not positive on a log scale, are left out.

    The lines: y_label (if any); `height` rows of the plot, each starting with its y label
    (or none) and an axis character; the x axis; the x labels and x_label; the legend. The
    top row is the largest y. width: plotting columns; None adapts to the number of distinct
    x values. log_y: a log10 scale labelled at powers of ten.
    """
    if len(series) > len(MARKERS):
        raise ValueError(f"a chart draws at most {len(MARKERS)} series, not {len(series)}")
    plotted = {name: _plottable(points, log_y) for name, points in series.items()}
    every = [point for points in plotted.values() for point in points]
    if not every:
        return ["nothing to draw"]
    xs = sorted({x for x, _ in every})
    width = width or _width(len(xs))
    y_lo, y_hi = _y_range([y for _, y in every], log_y)
    grid = [[" "] * width for _ in range(height)]
    for marker, points in zip(MARKERS, plotted.values()):
        for x, y in points:
            row, column = _cell(y_hi - y, y_hi - y_lo, height), _cell(x - xs[0], xs[-1] - xs[0], width)
            grid[row][column] = marker if grid[row][column] in (" ", marker) else OVERLAP
    y_labels = _y_labels(y_lo, y_hi, height, log_y)
    pad = max(len(label) for label in y_labels.values())
    lines = [y_label] if y_label else []
    for row, cells in enumerate(grid):
        label = y_labels.get(row)
        lines.append(f"{label or '':>{pad}} {'┤' if label else '│'}" + "".join(cells))
    lines.append(" " * (pad + 1) + "└" + "─" * width)
    lines.append(" " * (pad + 2) + _x_labels(xs, width) + (f"  {x_label}" if x_label else ""))
    legend = [f"{marker} {name}" for marker, name in zip(MARKERS, plotted)]
    if any(OVERLAP in cells for cells in grid):
        legend.append(f"{OVERLAP} more than one")
    lines.append(" " * (pad + 2) + "   ".join(legend))
    return lines


def _width(distinct: int) -> int:
    """Plotting columns for `distinct` x values: up to 4 columns between neighbours, a whole
    number of them so that evenly spaced x values land evenly, within MIN_WIDTH and MAX_WIDTH."""
    gap = next((g for g in (4, 3, 2, 1) if g * (distinct - 1) + 1 <= MAX_WIDTH), 1)
    return min(MAX_WIDTH, max(MIN_WIDTH, gap * (distinct - 1) + 1))


def _plottable(points: Points, log_y: bool) -> list[tuple[float, float]]:
    """The points that can be drawn, y already on the plotting scale."""
    kept = []
    for x, y in points:
        if x is None or y is None or not math.isfinite(y) or (log_y and y <= 0):
            continue
        kept.append((x, math.log10(y) if log_y else y))
    return kept


def _y_range(ys: list[float], log_y: bool) -> tuple[float, float]:
    """The y values of the bottom and top rows: whole decades on a log scale, so that powers of
    ten fall inside; a flat series gets room above and below."""
    lo, hi = min(ys), max(ys)
    if log_y:
        lo, hi = math.floor(lo), math.ceil(hi)
        return (lo, hi) if hi > lo else (lo, lo + 1)
    if hi > lo:
        return lo, hi
    half = abs(lo) * 0.1 or 1.0
    return lo - half, hi + half


def _cell(offset: float, span: float, cells: int) -> int:
    """The row or column, 0 to cells - 1, of a value `offset` along a `span`; a span of 0
    (a single x, say) puts everything in the first."""
    if span <= 0:
        return 0
    return min(cells - 1, max(0, math.floor(offset / span * (cells - 1) + 0.5)))


def _y_labels(lo: float, hi: float, height: int, log_y: bool) -> dict[int, str]:
    """Row -> label: on a log scale the powers of ten (every few, when they would crowd), each
    at its nearest row; on a linear one the exact values of four evenly spaced rows, with the
    decimals their spacing needs."""
    span = hi - lo
    if log_y:
        stride = max(1, math.ceil(span / max(height - 1, 1)))
        return {_cell(hi - d, span, height): f"1e{d}" for d in range(int(hi), int(lo) - 1, -stride)}
    rows = sorted({_cell(i, 3, height) for i in range(4)})
    step = span / 3
    decimals = max(0, 1 - math.floor(math.log10(step)))
    return {row: f"{hi - row / max(height - 1, 1) * span:.{decimals}f}" for row in rows}


def _x_labels(xs: list[float], width: int) -> str:
    """Labels under the x axis at their columns: the ends, then round values between, each
    kept only where it has room."""
    span = xs[-1] - xs[0]
    whole = all(float(x).is_integer() for x in xs)  # epochs and distances: no label between two
    values = [xs[0], xs[-1]] + _round_values(xs[0], xs[-1], width, whole)
    line = [" "] * (width + 12)
    for value in values:
        text = f"{value:g}"
        start = min(_cell(value - xs[0], span, width), len(line) - len(text))
        if all(c == " " for c in line[max(0, start - 1) : start + len(text) + 1]):
            line[start : start + len(text)] = text
    return "".join(line).rstrip()


def _round_values(lo: float, hi: float, width: int, whole: bool) -> list[float]:
    """Multiples of 1, 2 or 5 times a power of ten between lo and hi, about one per 6 columns;
    whole numbers only if `whole`."""
    span = hi - lo
    if span <= 0:
        return []
    raw = span / max(1, width // 6)
    step = min(m * 10 ** math.ceil(math.log10(raw / m)) for m in (1, 2, 5))
    if whole:
        step = max(step, 1)
    first = math.ceil(lo / step)
    return [k * step for k in range(first, math.floor(hi / step) + 1)]

"""The `lm` command: parse arguments, call the library, print. No model logic lives here.

Results go to stdout, progress and messages to stderr, so `lm sample > out.txt` stays clean.
Errors the user can cause end in one line on stderr: exit 1 for runtime errors, 2 for usage.
"""

import json
import sys
import time
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from . import __version__
from .checkpoint import load
from .config import DEFAULT_MODEL_PATH, ModelConfig, TokenizerConfig, TrainConfig
from .data import read_text
from .errors import ConfigError, LMError
from .sample import sample as draw, sample_many
from .score import rank, score_sentence, score_stream
from .train import EpochInfo, Notice, StartInfo, StepInfo, train as run_training

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Recurrent language models in NumPy: train on a text file, sample from it, score sentences.",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)

TOK, MOD, TRN = TokenizerConfig(), ModelConfig(), TrainConfig()  # the defaults
SETTINGS = {f.name for c in (TOK, MOD, TRN) for f in fields(c)} - {"vocab"}


class TokenizerKind(str, Enum):
    char = "char"
    word = "word"
    whitespace = "whitespace"


class CellKind(str, Enum):
    rnn = "rnn"
    gru = "gru"
    lstm = "lstm"


class ScheduleKind(str, Enum):
    step = "step"
    plateau = "plateau"


class OptimizerKind(str, Enum):
    adam = "adam"
    sgd = "sgd"


class ErrorsKind(str, Enum):
    strict = "strict"
    replace = "replace"
    ignore = "ignore"


ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Model file (.npz).")]
EncodingOpt = Annotated[str, typer.Option(help="Text encoding of the input files.")]
ErrorsOpt = Annotated[ErrorsKind, typer.Option(
    help="Bytes not valid in --encoding: strict stops with their offset, replace reads them as U+FFFD, "
         "ignore drops them.")]
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}  # the shell's codes for a process stopped by the signal
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON lines on stdout.")]


@app.command(epilog='Example: lm train corpus.txt --cell gru --epochs 5')
def train(
    ctx: typer.Context,
    corpus: Annotated[Path, typer.Argument(metavar="CORPUS", help="A UTF-8 text file to learn from.")],
    model: ModelOpt = Path(DEFAULT_MODEL_PATH),
    valid: Annotated[Optional[Path], typer.Option(help="Validation file (default: the corpus's tail).")] = None,
    valid_fraction: Annotated[float, typer.Option(help="Tail of the corpus held out for validation.")] = TRN.valid_fraction,
    tokenizer: Annotated[TokenizerKind, typer.Option(help="char, word (regex) or whitespace.")] = TokenizerKind(TOK.tokenizer),
    lower: Annotated[bool, typer.Option("--lower", help="Lower-case the text first.")] = TOK.lower,
    vocab_size: Annotated[int, typer.Option(help="Word models: keep this many most frequent words.")] = TOK.vocab_size,
    lines: Annotated[bool, typer.Option("--lines", help="Char models: every line a sequence ending in <EOS>.")] = TOK.lines,
    cell: Annotated[CellKind, typer.Option(help="Recurrent cell.")] = CellKind(MOD.cell),
    layers: Annotated[int, typer.Option(help="Stacked recurrent layers.")] = MOD.layers,
    hidden: Annotated[int, typer.Option(help="Hidden units per layer (H).")] = MOD.hidden,
    embed: Annotated[int, typer.Option(help="Embedding size (E).")] = MOD.embed,
    peephole: Annotated[bool, typer.Option("--peephole", help="LSTM peephole connections.")] = MOD.peephole,
    seq_len: Annotated[int, typer.Option(help="Steps of backpropagation through time.")] = TRN.seq_len,
    batch_size: Annotated[int, typer.Option(help="Parallel streams per batch.")] = TRN.batch_size,
    epochs: Annotated[int, typer.Option(help="Passes over the corpus.")] = TRN.epochs,
    max_time: Annotated[Optional[float], typer.Option(
        help="Stop after this many seconds of training (this session's; the epoch ends there).")] = None,
    optimizer: Annotated[OptimizerKind, typer.Option(help="adam or sgd.")] = OptimizerKind(TRN.optimizer),
    lr: Annotated[Optional[float], typer.Option(help="Learning rate [default: 2e-3 adam, 1.0 sgd].")] = None,
    lr_decay: Annotated[float, typer.Option(help="Multiply the rate by this every epoch after --decay-after.")] = TRN.lr_decay,
    decay_after: Annotated[int, typer.Option(help="Epochs at the full learning rate.")] = TRN.decay_after,
    lr_schedule: Annotated[ScheduleKind, typer.Option(
        help="step: decay every epoch after --decay-after; plateau: decay after an epoch that did not improve.",
    )] = ScheduleKind(TRN.lr_schedule),
    patience: Annotated[Optional[int], typer.Option(
        help="Stop after this many epochs without improvement on validation.")] = None,
    min_delta: Annotated[float, typer.Option(
        help="Validation loss must fall by at least this (nats/token) to count as an improvement.",
    )] = TRN.min_delta,
    clip: Annotated[float, typer.Option(help="Clip the gradient's global norm to this (0: off).")] = TRN.clip,
    clip_value: Annotated[float, typer.Option(help="Clip each gradient element to ±this (0: off).")] = TRN.clip_value,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same model.")] = TRN.seed,
    grad_stats: Annotated[bool, typer.Option(
        "--grad-stats", help="Record how far back gradients reach (every 10th step; `lm info` shows it).",
    )] = TRN.grad_stats,
    checkpoint_every: Annotated[Optional[int], typer.Option(
        help="Write the resume file every this many steps, not only when interrupted.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Go on from MODEL's resume file (left by Ctrl-C, --max-time or --checkpoint-every).",
    )] = False,
    encoding: EncodingOpt = "utf-8",
    errors: ErrorsOpt = ErrorsKind.strict,
    json_out: JsonOpt = False,
) -> None:
    """Train a model on CORPUS and save the best one on validation.

    Ctrl-C (or SIGTERM) stops after the current step and writes MODEL's resume file (model.resume.npz
    beside model.npz); `--resume` goes on from it exactly. A second Ctrl-C quits at once.
    """
    given = {k for k in SETTINGS if ctx.get_parameter_source(k).name != "DEFAULT"}
    settings = {k: v.value if isinstance(v, Enum) else v for k, v in locals().items()
                if k in SETTINGS and (k in given or not resume)}
    progress = Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]:.3f}  ppl {task.fields[ppl]:.2f}  {task.fields[rate]:,.0f} tok/s"),
        TextColumn("ETA {task.fields[eta]}"),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # a log file gets the epoch lines only
    )
    bar = progress.add_task("train", total=None, epoch="", loss=0.0, ppl=0.0, rate=0.0, eta="-")

    def render(info: StartInfo | StepInfo | EpochInfo) -> None:
        if isinstance(info, StartInfo):
            err.print(f"model: {info.model}, {info.parameters:,} parameters, vocabulary {info.vocab:,}", markup=False)
            err.print(f"data: {info.train_tokens:,} training tokens ({info.steps_per_epoch:,} steps an epoch), "
                      f"{info.valid_tokens:,} validation tokens", markup=False)
            err.print(f"recipe: {info.recipe}", markup=False)
            return
        if isinstance(info, Notice):
            progress.console.print(info.text, markup=False)
            return
        if isinstance(info, StepInfo):
            progress.start()  # at the first step, so an early error leaves no empty bar behind
            done = (info.epoch - 1) * info.steps + info.step
            progress.update(
                bar, completed=done, total=info.epochs * info.steps, epoch=f"{info.epoch}/{info.epochs}",
                loss=info.loss, ppl=info.perplexity, rate=info.tokens_per_s,
                eta=time.strftime("%H:%M:%S", time.gmtime(info.eta_s)),
            )
            return
        valid_text = "" if info.valid_loss is None else (
            f"  valid {info.valid_loss:.3f} (ppl {info.valid_perplexity:.2f})"
        )
        progress.console.print(
            f"epoch {info.epoch}: train {info.train_loss:.3f}{valid_text}  lr {info.lr:.3g}  "
            f"{info.tokens_per_s:,.0f} tok/s  {info.train_s:.0f}s + valid {info.valid_s:.0f}s = "
            f"{info.elapsed_s:.0f}s in all" + ("  saved" if info.saved else ""),
            markup=False,
        )
        if json_out:
            print(json.dumps(info.to_dict()), flush=True)

    try:
        result = run_training(corpus, model, valid=valid, encoding=encoding, errors=errors.value, resume=resume,
                              on_progress=render, **settings)
    finally:
        progress.stop()
    best = "" if result.best_valid_loss is None else f" (best validation loss {result.best_valid_loss:.4f} nats/token)"
    saved = f"saved {result.path}{best}" if result.path.exists() else "no model saved yet"
    if result.stopped in SIGNAL_EXIT:
        err.print(f"{result.stopped}: {saved}; training state in {result.resume_path}; "
                  f"continue with: lm train {corpus} -m {model} --resume", markup=False)
        raise typer.Exit(SIGNAL_EXIT[result.stopped])
    why = {"max-time": "--max-time reached; ", "patience": f"no improvement in {patience} epochs; "}
    err.print(f"{why.get(result.stopped, '')}{saved}", markup=False)
    if result.resume_path is not None:
        err.print(f"to train on: lm train {corpus} -m {model} --resume (from {result.resume_path})", markup=False)


@app.command(epilog='Example: lm sample --chars 200 --temperature 0.8 --seed 1')
def sample(
    model: ModelOpt = Path(DEFAULT_MODEL_PATH),
    chars: Annotated[Optional[int], typer.Option(help="Stop after this many characters.")] = None,
    words: Annotated[Optional[int], typer.Option(help="Stop after this many words.")] = None,
    tokens: Annotated[Optional[int], typer.Option(help="Stop after this many tokens [default: 200 if no limit].")] = None,
    temperature: Annotated[float, typer.Option(help="Below 1: safer; above 1: wilder.")] = 1.0,
    prime: Annotated[str, typer.Option(help="Continue this beginning.")] = "",
    seed: Annotated[Optional[int], typer.Option(help="Random seed: the same seed gives the same text.")] = None,
    num: Annotated[int, typer.Option("--num", "-n", help="Number of sequences.")] = 1,
    no_unk: Annotated[bool, typer.Option("--no-unk", help="Never draw <UNK>.")] = False,
    greedy: Annotated[bool, typer.Option("--greedy", help="Take the most probable token each step.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Draw text from a model, printed as it is drawn."""
    if num < 1:
        raise ConfigError(f"--num must be at least 1, not {num}")
    ckpt = load(model)
    settings = dict(chars=chars, words=words, tokens=tokens, temperature=temperature, prime=prime, seed=seed,
                    no_unk=no_unk, greedy=greedy)
    if num > 1:  # drawn side by side as one batch, printed when all are complete
        for text in sample_many(ckpt.model, ckpt.tokenizer, num, **settings):
            print(json.dumps({"text": text}) if json_out else text, flush=True)
        return
    pieces = draw(ckpt.model, ckpt.tokenizer, **settings)
    if json_out:
        print(json.dumps({"text": "".join(pieces)}), flush=True)
        return
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


@app.command(epilog='Example: lm score "the apple and pear salad" "the apple and pair salad"')
def score(
    sentences: Annotated[Optional[list[str]], typer.Argument(metavar="SENTENCE...", help="Sentences to score.")] = None,
    model: ModelOpt = Path(DEFAULT_MODEL_PATH),
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Score each line of this file.")] = None,
    per_token: Annotated[bool, typer.Option(help="Show each token's probability.")] = False,
    encoding: EncodingOpt = "utf-8",
    errors: ErrorsOpt = ErrorsKind.strict,
    json_out: JsonOpt = False,
) -> None:
    """Score sentences: P(sentence) as the product of P(token | tokens before), ranked most probable first."""
    texts = list(sentences or [])
    if file is not None:
        texts += [line for line in read_text(file, encoding, errors.value).splitlines() if line.strip()]
    if not texts:
        raise LMError("give sentences to score, or --file FILE")
    ckpt = load(model)
    scores = rank([score_sentence(ckpt.model, ckpt.tokenizer, text) for text in texts])
    if json_out:
        for s in scores:
            print(json.dumps(s.to_dict(per_token)))
        return
    table = Table("rank", "P(sentence)", "log P", "perplexity", "tokens", "unknown", "sentence")
    for i, s in enumerate(scores, 1):
        table.add_row(str(i), s.probability, f"{s.logprob:.2f}", f"{s.perplexity:.2f}", str(len(s.tokens)),
                      str(s.unknown), Text(s.text))
    out.print(table)
    if per_token:
        for s in scores:
            out.print(s.text, markup=False)
            for tok, lp in zip(s.tokens, s.token_logprobs):
                out.print(f"  {tok!r:>16}  P={np.exp(lp):.4f}  log P={lp:.3f}", markup=False)


@app.command("eval", epilog='Example: lm eval valid.txt')
def evaluate(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Text file, read as one stream.")],
    model: ModelOpt = Path(DEFAULT_MODEL_PATH),
    batch_size: Annotated[int, typer.Option(help="1 is exact; more is faster, a little pessimistic.")] = 1,
    encoding: EncodingOpt = "utf-8",
    errors: ErrorsOpt = ErrorsKind.strict,
    json_out: JsonOpt = False,
) -> None:
    """Perplexity of a whole file, the state carried across lines (as published figures are computed)."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, not {batch_size}")
    ckpt = load(model)
    result = score_stream(ckpt.model, ckpt.tokenizer, read_text(file, encoding, errors.value), batch_size)
    if json_out:
        print(json.dumps(result.to_dict()))
        return
    line = f"tokens {result.tokens:,}  loss {result.loss:.4f} nats/token  perplexity {result.perplexity:.2f}"
    if result.bits_per_char is not None:
        line += f"  bits/char {result.bits_per_char:.4f}"
    out.print(line + (f"  unknown {result.unknown:,}" if result.unknown else ""))


def _version(value: bool) -> None:
    if value:
        print(f"lm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Recurrent language models in NumPy: train on a text file, sample from it, score sentences."""


def _fail(message: str, code: int) -> None:
    print(f"lm: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except LMError as e:
        _fail(str(e), e.exit_code)
    except typer.TyperException as e:  # typer's own usage errors: bad or missing options
        if type(e).__name__ == "NoArgsIsHelpError":  # plain `lm`: the help, as it is
            print(e.format_message(), file=sys.stderr)
            sys.exit(e.exit_code)
        _fail(e.format_message(), e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(code or 0)

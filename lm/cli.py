"""The `lm` command: parse arguments, call the library, print. No model logic lives here.

Results go to stdout, progress and messages to stderr, so `lm sample > out.txt` stays clean.
Errors the user can cause end in one line on stderr: exit 1 for runtime errors, 2 for usage.
"""

import itertools
import json
import math
import os
import select
import shlex
import signal
import stat
import sys
from collections.abc import Iterator
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.text import Text

from . import __version__, card
from .api import LanguageModel, load
from .config import DEFAULT_MODEL_PATH, ModelConfig, TokenizerConfig, TrainConfig, counted
from .data import lines, read_stdin, read_text
from .errors import ConfigError, LMError
from .sample import DEFAULT_TOKENS, SAMPLE_SETTINGS, SampleConfig
from .score import SentenceScore, rank
from .tokenizer import EOS, UNK_POLICIES
from .train import EpochInfo, Notice, StartInfo, StepInfo, train as run_training

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Recurrent language models in NumPy: train on a text file, sample from it, score sentences.",
    epilog="Example: lm train corpus.txt && lm sample --chars 200",
)


class _Messages(Console):
    """stderr. Once its reader is gone (`lm train 2>&1 | head`), nothing more is written to it and
    the command goes on, where rich's Console would exit with 1: a training run then stops after
    the step on the SIGPIPE and saves its state (train._Signals)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _to_devnull(self.file)


err = _Messages(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout and sys.stdout.isatty() else 160)

TOK, MOD, TRN, SMP = TokenizerConfig(), ModelConfig(), TrainConfig(), SampleConfig()  # the defaults
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


UnkKind = Enum("UnkKind", {p: p for p in UNK_POLICIES}, type=str)


class ErrorsKind(str, Enum):
    strict = "strict"
    replace = "replace"
    ignore = "ignore"


ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Model file (.npz).")]
EncodingOpt = Annotated[str, typer.Option(help="Text encoding of the input files and of standard input.")]
ErrorsOpt = Annotated[ErrorsKind, typer.Option(
    help="Bytes not valid in --encoding: strict stops with their offset, replace reads them as U+FFFD, "
         "ignore drops them.")]
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGPIPE": 141}  # what stops `lm train`, and the shell's exit codes
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON lines on stdout.")]
UnkOpt = Annotated[Optional[UnkKind], typer.Option(
    help="Tokens the model never saw: error, map to <UNK>, or skip [default: map for word models, "
         "skip for character models].")]
# Surprisal -log2 P of a token, in bits: the upper bound of each colour's band.
SURPRISAL_COLOURS = ((1.0, "bold green"), (3.0, "green"), (6.0, "yellow"), (10.0, "dark_orange"), (math.inf, "bold red"))


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
    encoding: Annotated[str, typer.Option(help="Text encoding of CORPUS and --valid.")] = "utf-8",
    errors: ErrorsOpt = ErrorsKind.strict,
    sample_chars: Annotated[int, typer.Option(help="Characters sampled after each epoch (0: none).")] = TRN.sample_chars,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print errors only, and a stopped run's resume command.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train a model on CORPUS and save the best one on validation.

    Ctrl-C (or SIGTERM, or a reader of the output that goes away) stops after the current step and
    writes MODEL's resume file (model.resume.npz beside model.npz); `--resume` goes on from it
    exactly. A second Ctrl-C quits at once.
    """
    if "-" in (str(corpus), str(valid)):
        raise ConfigError("lm train reads files only, not - (standard input): --resume checks that its corpus "
                          "is the same; save the text to a file first")
    given = {k for k in SETTINGS if ctx.get_parameter_source(k).name != "DEFAULT"}
    settings = {k: v.value if isinstance(v, Enum) else v for k, v in locals().items() if k in given}
    view = _TrainView(quiet, json_out)
    try:
        result = run_training(corpus, model, valid=valid, encoding=encoding, errors=errors.value, resume=resume,
                              on_progress=view.show, stop_signals=tuple(SIGNAL_EXIT), **settings)
    finally:
        view.stop()
    best = "" if result.best_valid_loss is None else f" (best validation loss {result.best_valid_loss:.4f} nats/token)"
    saved = f"saved {result.path}{best}" if result.history else "no model saved yet"  # a file there is another run's
    # What resume must be given again (it checks the files), quoted for a shell.
    again = [_not_an_option(corpus), "-m", _not_an_option(model),
             *(["--valid", _not_an_option(valid)] if valid is not None else []),
             *(["--encoding", encoding] if encoding != "utf-8" else []),
             *(["--errors", errors.value] if errors is not ErrorsKind.strict else []), "--resume"]
    again = "lm train " + shlex.join(again)
    if result.stopped in SIGNAL_EXIT:
        err.print(f"{result.stopped}: {saved}; training state in {result.resume_path}; continue with: {again}",
                  markup=False)
        raise typer.Exit(SIGNAL_EXIT[result.stopped])
    if quiet:
        return
    why = {"max-time": "--max-time reached; ", "patience": "no improvement on validation (--patience); "}
    err.print(f"{why.get(result.stopped, '')}{saved}", markup=False)
    if result.resume_path is not None:  # --max-time stopped it: epochs remain
        err.print(f"to go on: {again} (from {result.resume_path}); --max-time counts each session, and --resume "
                  f"keeps it unless given again", markup=False)


def _not_an_option(path: Path) -> str:
    """A path for a printed command that the command will not read as an option: -k.txt as ./-k.txt."""
    return f"./{path}" if str(path).startswith("-") else str(path)


def _clock(seconds: float) -> str:
    """H:MM:SS, hours unbounded (a long run's ETA passes a day)."""
    minutes, secs = divmod(int(min(seconds, 1e9)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class _TrainView:
    """What `lm train` shows on stderr: a live bar in a terminal, plain lines in a log (about
    LOG_LINES an epoch), nothing but errors with --quiet. --json epoch lines go to stdout."""

    LOG_LINES = 10

    def __init__(self, quiet: bool, json_out: bool):
        self.quiet, self.json_out = quiet, json_out
        self.live = err.is_terminal and not quiet
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(bar_width=None),  # what the text leaves, so the text is never cut
            TextColumn("{task.fields[numbers]}"),
            console=err,
            transient=True,
            disable=not self.live,
        )
        self.bar = self.progress.add_task("train", total=None, epoch="", numbers="")

    def show(self, info: StartInfo | StepInfo | EpochInfo | Notice) -> None:
        if isinstance(info, StepInfo) and self.json_out and _pipe_closed(sys.stdout):
            # The JSON lines come once an epoch: waiting for the next write to fail would train
            # on for up to an epoch after `| head -1` had its line.
            self.json_out = False
            signal.raise_signal(signal.SIGPIPE)
        if isinstance(info, EpochInfo) and self.json_out:
            try:
                print(json.dumps(info.to_dict()), flush=True)
            except BrokenPipeError:  # the reader is gone; the run stops on the SIGPIPE (train._Signals)
                _to_devnull(sys.stdout)
        if self.quiet:
            return
        if isinstance(info, StartInfo):
            self._line(f"model: {info.model}, {info.parameters:,} parameters, vocabulary {info.vocab:,}")
            self._line(f"data: {info.train_tokens:,} training tokens ({counted(info.steps_per_epoch, 'step')} an epoch), "
                       f"{info.valid_tokens:,} validation tokens")
            self._line(f"recipe: {info.recipe}")
        elif isinstance(info, Notice):
            self._line(info.text)
        elif isinstance(info, StepInfo):
            self._step(info)
        else:
            self._epoch(info)

    BAR_ROOM = 16  # columns the live bar keeps, with the gaps between its columns

    def _step(self, info: StepInfo) -> None:
        if not self.live and info.step % max(1, info.steps // self.LOG_LINES):
            return  # a log shows about LOG_LINES steps an epoch: the others need no text
        figures = {"loss": f"loss {info.loss:.3f}", "ppl": f"ppl {info.perplexity:,.2f}",
                   "speed": f"{info.tokens_per_s:,.0f} tok/s", "grad": f"|grad| {info.grad_norm:.2f}",
                   "clipped": f"clipped {info.clipped:.0%}", "eta": f"ETA {_clock(info.eta_s)}"}
        epoch = f"{info.epoch}/{info.epochs}"
        if self.live:
            # In a narrow terminal the figures least needed at a glance go first; the loss and
            # the time left stay.
            room = err.width - len(f"epoch {epoch}") - self.BAR_ROOM
            for least in ("clipped", "grad", "ppl", "speed"):
                if len("  ".join(figures.values())) <= room:
                    break
                del figures[least]
            self.progress.start()  # at the first step, so an early error leaves no empty bar behind
            self.progress.update(self.bar, completed=(info.epoch - 1) * info.steps + info.step,
                                 total=info.epochs * info.steps, epoch=epoch, numbers="  ".join(figures.values()))
        else:
            self._line(f"epoch {epoch}  step {info.step}/{info.steps}  {'  '.join(figures.values())}")

    def _epoch(self, info: EpochInfo) -> None:
        valid = "" if info.valid_loss is None else f"  valid {info.valid_loss:.3f} (ppl {info.valid_perplexity:,.2f})"
        self._line(f"epoch {info.epoch}: train {info.train_loss:.3f}{valid}  lr {info.lr:.3g}  "
                   f"{info.tokens_per_s:,.0f} tok/s  {info.train_s:.0f}s + valid {info.valid_s:.0f}s = "
                   f"{info.elapsed_s:.0f}s in all" + ("  saved" if info.saved else ""))
        if info.sample:
            self._line("  sample: " + info.sample.replace("\n", "\n  | "))

    def _line(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        self.progress.stop()


@app.command(epilog='Example: lm sample --chars 200 --temperature 0.8 --top-p 0.95 --seed 1')
def sample(
    model: ModelOpt = Path(DEFAULT_MODEL_PATH),
    chars: Annotated[Optional[int], typer.Option(help="Stop after this many characters.")] = None,
    words: Annotated[Optional[int], typer.Option(help="Stop after this many words.")] = None,
    tokens: Annotated[Optional[int], typer.Option(
        help=f"Stop after this many tokens [default: {DEFAULT_TOKENS} if no limit].")] = None,
    temperature: Annotated[float, typer.Option(help="Below 1: safer; above 1: wilder.")] = SMP.temperature,
    top_k: Annotated[Optional[int], typer.Option(help="Draw from the K most probable tokens only.")] = None,
    top_p: Annotated[Optional[float], typer.Option(
        help="Draw from the smallest set of tokens whose probability reaches P (nucleus sampling).")] = None,
    prime: Annotated[str, typer.Option(help="Continue this beginning.")] = SMP.prime,
    prime_file: Annotated[Optional[Path], typer.Option(help="Continue the text of this file (- reads stdin).")] = None,
    stop: Annotated[Optional[list[str]], typer.Option(
        help="End a sequence where this string appears (not printed); may be repeated.")] = None,
    min_length: Annotated[int, typer.Option(help="Tokens drawn before <EOS> may end a sequence.")] = SMP.min_length,
    seed: Annotated[Optional[int], typer.Option(help="Random seed: the same seed gives the same text.")] = None,
    num: Annotated[int, typer.Option("--num", "-n", help="Number of sequences, drawn side by side.")] = 1,
    unk: UnkOpt = None,
    no_unk: Annotated[bool, typer.Option("--no-unk", help="Never draw <UNK>.")] = SMP.no_unk,
    greedy: Annotated[bool, typer.Option("--greedy", help="Take the most probable token each step.")] = SMP.greedy,
    novel: Annotated[bool, typer.Option(
        "--novel", help="--lines models: draw again any sequence that is a line of the training data.")] = False,
    encoding: EncodingOpt = "utf-8",
    errors: ErrorsOpt = ErrorsKind.strict,
    json_out: JsonOpt = False,
) -> None:
    """Draw text from a model, printed as it is drawn (each of -n N as it is complete).

    For models trained with --lines, a sequence that is a line of the training data is marked.
    """
    if prime_file is not None:
        if prime:
            raise ConfigError("give --prime or --prime-file, not both")
        prime = _whole_text(prime_file, encoding, errors.value)
    lm_model = load(model)
    options = {k: v for k, v in locals().items() if k in SAMPLE_SETTINGS}
    options.update(stop=stop or (), unk=unk and unk.value, novel=novel)
    if num == 1 and not json_out:
        pieces = []
        for piece in lm_model.stream(**options):
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        _mark_copy(lm_model, "".join(pieces))
        return
    for i, text in lm_model.draw_many(num, **options):
        if json_out:
            record = {"index": i, "text": text}
            if lm_model.line_hashes is not None:
                record["in_training"] = lm_model.in_training(text)
            print(json.dumps(record), flush=True)
        else:
            sys.stdout.write(text)
            _mark_copy(lm_model, text)


def _mark_copy(lm_model: LanguageModel, text: str) -> None:
    """End a printed sample's line, marked if it is a line of the training data: in a terminal
    beside it, else on stderr, so piped samples stay clean."""
    copy = lm_model.in_training(text)
    if copy and out.is_terminal:
        sys.stdout.flush()
        out.print(Text("  (a line of the training data)", style="dim"))
        return
    sys.stdout.write("\n")
    sys.stdout.flush()
    if copy:
        err.print(f"({text!r} is a line of the training data)", markup=False)


@app.command(epilog='Example: lm score "the apple and pear salad" "the apple and pair salad"')
def score(
    sentences: Annotated[Optional[list[str]], typer.Argument(
        metavar="SENTENCE...", help="Sentences to score; - reads them from stdin, one per line.")] = None,
    model: ModelOpt = Path(DEFAULT_MODEL_PATH),
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Score each line of this file.")] = None,
    per_token: Annotated[bool, typer.Option(
        help="Show each token's probability, coloured by surprisal in a terminal.")] = False,
    no_eos: Annotated[bool, typer.Option("--no-eos", help="Score fragments: no <EOS> at the end.")] = False,
    unk: UnkOpt = None,
    log10: Annotated[bool, typer.Option("--log10", help="Log-probabilities in base 10, as KenLM prints them.")] = False,
    ranked: Annotated[Optional[bool], typer.Option(
        "--rank/--no-rank", help="Most probable first (waits for all) [default: rank arguments, stream lines].",
    )] = None,
    encoding: EncodingOpt = "utf-8",
    errors: ErrorsOpt = ErrorsKind.strict,
    json_out: JsonOpt = False,
) -> None:
    """Score sentences: P(sentence) as the product of P(token | tokens before).

    Reads SENTENCE arguments, the lines of --file, or standard input (- or a pipe), and prints each
    result as it is scored; arguments are ranked, most probable first.
    """
    texts = _sentences(sentences or [], file, encoding, errors.value)
    lm_model = load(model)
    failed: list[int] = []
    scores: Iterator[tuple[int, SentenceScore]] | list[tuple[int, SentenceScore]] = _scored(
        lm_model, texts, no_eos, unk and unk.value, failed)  # numbered in input order
    if ranked is None:
        ranked = bool(sentences) and sentences != ["-"]
    if ranked:
        scores = list(enumerate(rank([s for _, s in scores]), 1))  # numbered by rank
    if per_token and not json_out and _colour():
        bounds = [bound for bound, _ in SURPRISAL_COLOURS[:-1]]
        labels = [f"<{b:g}" for b in bounds] + [f">={bounds[-1]:g}"]
        out.print(Text.assemble("surprisal in bits: ", *[(f"{label}  ", style)
                                                        for label, (_, style) in zip(labels, SURPRISAL_COLOURS)]))
    i = 0
    for i, (n, s) in enumerate(scores, 1):
        if json_out:
            print(json.dumps(s.to_dict(per_token)), flush=True)
            continue
        log = f"log10 P={s.log10prob:.3f}" if log10 else f"log P={s.logprob:.2f}"
        out.print(f"{n:>3}  P={s.probability}  {log}  ppl {s.perplexity:,.2f}  {s.bits_per_unit:.2f} bits/{s.unit}  "
                  f"{counted(len(s.tokens), 'token')}  {s.unknown} unknown  ", Text(s.text), sep="", markup=False)
        if per_token:
            _per_token(lm_model, s, log10)
        sys.stdout.flush()
    if failed:
        raise typer.Exit(1)
    if not i:
        raise LMError("no sentences to score: the input has no lines that are not blank")


def _scored(lm_model: LanguageModel, texts: Iterator[tuple[str, str]], no_eos: bool, unk: str | None,
            failed: list[int]) -> Iterator[tuple[int, SentenceScore]]:
    """Each sentence scored, with its number in the input; one that cannot be (no token the
    model knows, or --unk error) is reported on stderr, where it came from named, and the rest
    go on, so one bad line does not end a long stream. A bad option (ConfigError) still stops
    everything."""
    for n, (where, text) in enumerate(texts, 1):
        try:
            yield n, lm_model.score(text, no_eos=no_eos, unk=unk)
        except ConfigError:
            raise
        except LMError as e:
            failed.append(n)
            err.print(f"lm: error: sentence {n}{where}: {e}", markup=False)


def _sentences(args: list[str], file: Path | None, encoding: str, errors: str) -> Iterator[tuple[str, str]]:
    """The sentences to score, lazily: the arguments, stdin's lines where one of them is "-",
    then --file's lines; with neither arguments nor --file, a pipe's lines. Each comes with
    where it is for messages: " (line N of F)" for a line, "" for an argument."""
    if "-" in args and file is not None:
        raise ConfigError("give - (standard input) or --file, not both")
    if args.count("-") > 1:
        raise ConfigError("give - (standard input) once")
    if not args and file is None:
        if sys.stdin.isatty():
            raise ConfigError("give sentences to score, --file FILE, or pipe them in (- reads stdin)")
        args = ["-"]

    def numbered(name: str, text) -> Iterator[tuple[str, str]]:
        return ((f" (line {n} of {name})", line) for n, line in lines(text))

    given = [("", arg) for arg in args]
    if "-" in args:
        at = args.index("-")
        return itertools.chain(given[:at], numbered("standard input", read_stdin(encoding, errors)), given[at + 1 :])
    return iter(given + (list(numbered(str(file), read_text(file, encoding, errors))) if file else []))


def _whole_text(path: Path, encoding: str, errors: str) -> str:
    """A file's text, or all of standard input's for "-", refused alike when empty or binary."""
    if str(path) != "-":
        return read_text(path, encoding, errors)
    text = "".join(read_stdin(encoding, errors))
    if not text.strip():
        raise LMError("standard input is empty; give some text")
    return text


def _colour() -> bool:
    return out.is_terminal and not out.no_color


def _surprisal_style(bits: float) -> str:
    return next(style for bound, style in SURPRISAL_COLOURS if bits < bound)


def _per_token(lm_model: LanguageModel, s: SentenceScore, log10: bool) -> None:
    """The sentence with each token coloured by surprisal (in a colour terminal), then a line a token."""
    styles = [_surprisal_style(bits) for bits in s.surprisals]
    if _colour():
        line, prev = Text("     "), None
        for tok, style in zip(s.tokens, styles):
            line.append(lm_model.tokenizer.piece(prev, tok) if tok != EOS else f" {EOS}", style=style)
            prev = tok
        out.print(line)
    scale, label = (math.log(10), "log10 P") if log10 else (1.0, "log P")
    for tok, lp, bits, style in zip(s.tokens, s.token_logprobs, s.surprisals, styles):
        out.print(Text(f"     {tok!r:>16}  P={math.exp(lp):.4f}  {label}={lp / scale:.3f}  {bits:5.2f} bits",
                       style=style))


@app.command("eval", epilog='Example: lm eval valid.txt')
def evaluate(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Text file, read as one stream; - reads stdin.")],
    model: ModelOpt = Path(DEFAULT_MODEL_PATH),
    batch_size: Annotated[int, typer.Option(help="1 is exact; more is faster, a little pessimistic.")] = 1,
    encoding: EncodingOpt = "utf-8",
    errors: ErrorsOpt = ErrorsKind.strict,
    json_out: JsonOpt = False,
) -> None:
    """Perplexity of a whole file, the state carried across lines (as published figures are computed),
    with and without the tokens outside the vocabulary (as KenLM reports it)."""
    lm_model = load(model)
    result = lm_model.evaluate(_whole_text(file, encoding, errors.value), batch_size=batch_size)
    if json_out:
        print(json.dumps(result.to_dict()))
        return
    out.print(f"tokens {result.tokens:,}  loss {result.loss:.4f} nats/token  perplexity {result.perplexity:.2f}  "
              f"without unknown {result.perplexity_without_unk:.2f} ({result.unknown:,} unknown)  "
              f"bits/{result.unit} {result.bits_per_unit:.4f}", markup=False)


@app.command(epilog="Example: lm info models/ptb.npz")
def info(
    path: Annotated[Optional[Path], typer.Argument(metavar="[MODEL]", help="Model file [default: --model].")] = None,
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m", help=f"Model file (.npz) [default: {DEFAULT_MODEL_PATH}].")] = None,
    json_out: JsonOpt = False,
) -> None:
    """The model card: network, vocabulary, corpus, training, the loss curve and gradient statistics."""
    if path is not None and model is not None:
        raise ConfigError("give the model as MODEL or with --model, not both")
    path = path or model or Path(DEFAULT_MODEL_PATH)
    facts = load(path).info(path)
    if json_out:
        print(json.dumps(facts))
        return
    card.render(facts, out)


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
    if sys.stdout is None:  # started with it closed (`lm sample >&-`): Python leaves None, not a stream
        _fail("standard output is closed; give lm a file or a pipe to write to (> /dev/null to drop it)", 1)
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
    except MemoryError:
        _fail("out of memory; try a smaller --hidden, --batch-size, --seq-len or --num", 1)
    except BrokenPipeError:
        _reader_gone()
    except OSError as e:  # what is left: standard output or error unwritable (a full disk, /dev/full)
        _fail(f"cannot write the output: {e.strerror or e}", 1)
    except SystemExit as e:
        if isinstance(e.__context__, BrokenPipeError):  # click's own catch of it, which exits with 1
            _reader_gone()
        raise
    sys.exit(code or 0)


READ_IN_PART = {"sample", "score", "eval", "info"}  # commands whose output a reader may cut short


def _reader_gone() -> None:
    """A reader of lm's output stopped reading (`lm sample | head`). For a command whose product
    is its output, it had what it wanted: exit with 0. Another command exits with 1 (a training
    run's --json reader going away stops the run on SIGPIPE before this: train._Signals).
    Nothing on stderr either way (it may be the pipe that closed); stdout points at /dev/null
    for the final flush."""
    _to_devnull(sys.stdout)
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    sys.exit(0 if command in READ_IN_PART else 1)


def _pipe_closed(stream) -> bool:
    """Whether `stream` is a pipe whose reader has closed it, found without writing to it: poll
    reports an error on a pipe's write end once no reader is left. A few microseconds."""
    try:
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, 0)  # errors and hang-ups are reported whatever the mask asks
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # a closed or replaced stream; no poll (Windows)
        return False


def _to_devnull(stream) -> None:
    """Writes to the stream's file descriptor go to /dev/null from now on, its final flush too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)  # the stream's descriptor is now a copy of it

"""The Python face of a trained model: `lm.load(path)` gives a LanguageModel whose methods do what
the CLI's commands do, with keyword arguments named as the CLI's flags:

    model = lm.load("model.npz")
    model.sample(chars=200, temperature=0.8, seed=1)
    model.score("the apple and pear salad").logprob
    model.perplexity(open("valid.txt").read())
"""

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import card, checkpoint, sample as sampling
from .checkpoint import Checkpoint
from .config import check_count
from .errors import ConfigError
from .score import SentenceScore, StreamScore, rank, score_sentence, score_stream
from .tokenizer import copies_a_line


class LanguageModel(Checkpoint):
    """A trained model (network, vocabulary, metadata) and what can be done with it."""

    @classmethod
    def load(cls, path: str | Path) -> "LanguageModel":
        ckpt = checkpoint.load(path)
        return cls(ckpt.model, ckpt.tokenizer, ckpt.meta, ckpt.extra)

    def sample(self, *, novel: bool = False, **options: Any) -> str:
        """One sampled text, primer first (lm sample). options: the fields of lm.SampleConfig
        (chars, temperature, seed, ...); novel: never a line of the training data (models
        trained with --lines)."""
        return "".join(self.stream(novel=novel, **options))

    def stream(self, **options: Any) -> Iterator[str]:
        """The pieces of one sampled text as they are drawn; the options of `sample`."""
        return sampling.sample(self.model, self.tokenizer, **self._options(options))

    def sample_many(self, num: int, **options: Any) -> list[str]:
        """`num` texts drawn side by side (lm sample -n); the options of `sample`."""
        return sampling.sample_many(self.model, self.tokenizer, num, **self._options(options))

    def draw_many(self, num: int, **options: Any) -> Iterator[tuple[int, str]]:
        """`num` texts drawn side by side, each yielded as (index, text) when complete."""
        return sampling.draw_many(self.model, self.tokenizer, num, **self._options(options))

    def _options(self, options: dict) -> dict:
        """--novel as the sampler takes it: the line hashes, which only --lines models keep."""
        options = dict(options)
        if options.pop("novel", False):
            if self.line_hashes is None:
                raise ConfigError("--novel needs a character model trained with --lines (it keeps hashes of its "
                                  "training lines; word models keep none)")
            options["novel"] = self.line_hashes
        return options

    @property
    def line_hashes(self) -> np.ndarray | None:
        return self.extra.get("line_hashes")

    def in_training(self, text: str) -> bool | None:
        """Whether `text`, a sample, copies a line of the training data: its last line, since the
        lines before it are a primer's; None if the model cannot tell (no --lines)."""
        hashes = self.line_hashes
        return None if hashes is None else copies_a_line(hashes, text)

    def score(self, sentence: str, *, no_eos: bool = False, unk: str | None = None) -> SentenceScore:
        """P(sentence) token by token (lm score). no_eos: a fragment, without <EOS>; unk: "error",
        "map" or "skip" for tokens outside the vocabulary."""
        return score_sentence(self.model, self.tokenizer, sentence, no_eos=no_eos, unk=unk)

    def rank(self, sentences: Iterable[str], *, no_eos: bool = False, unk: str | None = None) -> list[SentenceScore]:
        """The sentences scored, most probable first."""
        return rank([self.score(s, no_eos=no_eos, unk=unk) for s in sentences])

    def evaluate(self, text: str, *, batch_size: int = 1) -> StreamScore:
        """A whole text read as one stream (lm eval): perplexity with and without <UNK>, bits per unit."""
        check_count("--batch-size", batch_size)
        return score_stream(self.model, self.tokenizer, text, batch_size)

    def perplexity(self, text: str, *, batch_size: int = 1) -> float:
        return self.evaluate(text, batch_size=batch_size).perplexity

    def info(self, path: str | Path | None = None) -> dict:
        """The model card (lm info) as a JSON-ready dict."""
        return card.card(self, path)


def load(path: str | Path) -> LanguageModel:
    """A model file (.npz) as a LanguageModel."""
    return LanguageModel.load(path)

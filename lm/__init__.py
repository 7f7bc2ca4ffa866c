"""lm: recurrent language models (RNN, GRU, LSTM) in NumPy: train, sample, score.

    import lm
    lm.train("corpus.txt", "model.npz", cell="gru", epochs=3)
    model = lm.load("model.npz")
    print(model.sample(chars=200, temperature=0.8, seed=1))
    print(model.score("the apple and pear salad").logprob)
"""

__version__ = "0.2.0"

from .api import LanguageModel, load  # noqa: E402
from .checkpoint import Checkpoint, save  # noqa: E402
from .data import read_text  # noqa: E402
from .errors import ConfigError, LMError  # noqa: E402
from .sample import SampleConfig, draw_many, sample, sample_many  # noqa: E402
from .score import SentenceScore, StreamScore, rank, score_sentence, score_stream  # noqa: E402
from .train import EpochInfo, Notice, StartInfo, StepInfo, TrainResult, train  # noqa: E402

__all__ = [
    "Checkpoint", "ConfigError", "EpochInfo", "LMError", "LanguageModel", "Notice", "SampleConfig", "SentenceScore",
    "StartInfo", "StepInfo", "StreamScore", "TrainResult", "__version__", "draw_many", "load", "rank", "read_text",
    "sample", "sample_many", "save", "score_sentence", "score_stream", "train",
]

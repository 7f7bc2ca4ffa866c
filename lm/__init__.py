"""lm: recurrent language models (RNN, GRU, LSTM) in NumPy: train, sample, score.

    import lm
    lm.train("corpus.txt", "model.npz", cell="gru", epochs=3)
    ckpt = lm.load("model.npz")
    print("".join(lm.sample(ckpt.model, ckpt.tokenizer, chars=200, seed=1)))
"""

__version__ = "0.1.0"

from .checkpoint import Checkpoint, load, save  # noqa: E402
from .errors import ConfigError, LMError  # noqa: E402
from .sample import sample, sample_many  # noqa: E402
from .score import rank, score_sentence, score_stream  # noqa: E402
from .train import EpochInfo, StartInfo, StepInfo, TrainResult, train  # noqa: E402

__all__ = [
    "Checkpoint", "ConfigError", "LMError", "load", "rank", "sample", "sample_many", "save",
    "score_sentence", "score_stream", "train", "EpochInfo", "StartInfo", "StepInfo", "TrainResult", "__version__",
]

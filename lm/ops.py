"""Element-wise functions and the fused softmax + cross-entropy, shared by every cell and the model.

All functions keep the dtype of their input: float32 in training, float64 in gradient checks.
"""

import numpy as np


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """σ(z) computed as (1 + tanh(z/2)) / 2: one ufunc and no exp overflow for large |z|."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log ŷ over the last axis, max subtracted first so exp never overflows."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


def softmax(logits: np.ndarray) -> np.ndarray:
    """ŷ = softmax(logits) over the last axis."""
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return p


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Summed loss L = Σ_t L<t>, L<t> = -log ŷ<t>[y<t>], and dL/dlogits = ŷ - onehot(y).

    logits: (N, V), overwritten with the gradient to save a (N, V) buffer.
    y: (N,) int target ids.
    Returns the summed loss (a Python float) and the gradient (the same array as logits).
    """
    n = np.arange(y.shape[0])
    logits -= logits.max(axis=1, keepdims=True)
    picked = float(logits[n, y].sum())
    np.exp(logits, out=logits)
    total = logits.sum(axis=1)
    loss = float(np.log(total).sum()) - picked
    logits /= total[:, None]
    logits[n, y] -= 1.0
    return loss, logits

"""Element-wise functions, the fused softmax + cross-entropy, and the embedding's row scatter,
shared by every cell and the model.

The functions keep the dtype of their input (float32 in training, float64 in gradient checks),
but for target_logprobs, whose float64 log-probabilities are summed over a whole corpus.
"""

import numpy as np


SAFE_LOGIT = 60.0  # e^±60 neither overflows nor underflows float32, even summed over 10^6 entries


def _exp_shifted(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In place: logits (N, V) -> exp(logits - shift), shift the row max where the max could
    overflow or underflow exp, else 0 (which saves a pass over the array; the softmax is the
    same either way). Returns the shifted logit of each target y (N,) and the row sums."""
    top = logits.max(axis=1, keepdims=True)
    if np.abs(top).max() >= SAFE_LOGIT:
        # inf - inf where logits overflowed: scoring refuses the NaN, training rolls the step back
        with np.errstate(invalid="ignore"):
            logits -= top
    picked = logits[np.arange(len(y)), y]
    np.exp(logits, out=logits)
    return picked, logits.sum(axis=1)


def target_logprobs(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log ŷ[y] for each row: logits (N, V), overwritten; y (N,) -> (N,) float64, at most 0.

    At most 0 because the row sum is rounded in float32: a near-certain token's sum can come
    out just below e^logit, and its log-probability just above 0 (P > 1, perplexity < 1)."""
    picked, total = _exp_shifted(logits, y)
    return np.minimum(picked.astype(np.float64) - np.log(total.astype(np.float64)), 0.0)


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray, scale: float = 1.0) -> tuple[float, np.ndarray]:
    """Summed loss L = Σ_t L<t>, L<t> = -log ŷ<t>[y<t>], and scale * dL/dlogits = scale * (ŷ - onehot(y)).

    logits: (N, V), overwritten with the gradient to save a (N, V) buffer.
    y: (N,) int target ids. scale rides on the normalisation, so it costs no extra pass.
    Returns the summed loss (a Python float) and the gradient (the same array as logits).
    """
    picked, total = _exp_shifted(logits, y)
    loss = float(np.log(total, dtype=np.float64).sum() - picked.sum(dtype=np.float64))
    logits *= (scale / total)[:, None]
    logits[np.arange(len(y)), y] -= scale
    return loss, logits


def add_rows(out: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> None:
    """out[ids[i]] += rows[i] for every i, repeated ids summed. The same as np.add.at, done as a
    sort and a segmented sum because np.add.at is an order of magnitude slower.

    out: (V, E); ids: (N,) ints, negative ones skipped; rows: (N, E).
    """
    keep = ids >= 0
    if not keep.all():
        ids, rows = ids[keep], rows[keep]
    if not len(ids):
        return
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    out[ids[starts]] += np.add.reduceat(rows[order], starts, axis=0)

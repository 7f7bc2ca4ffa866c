"""Every gradient against central differences in float64: each cell, 1 and 2 layers, embedding,
softmax, and the gradient reaching the initial state (what truncated BPTT carries)."""

import numpy as np
import pytest

from lm.cells import Embedded
from lm.config import ModelConfig
from lm.model import Model
from lm.ops import softmax_cross_entropy

# V 5: the first layer projects the embedding table (character models; Embedded.worth_it at
# E 8 and T x B = 24 positions); V 13: it projects the embedded inputs (word models). Both
# paths are checked, and the test says which one ran.
CASES = [
    (cell, layers, peephole, V)
    for cell in ("rnn", "gru", "lstm")
    for layers in (1, 2)
    for peephole in ((False, True) if cell == "lstm" else (False,))
    for V in (5, 13)
]


def _setup(cell, layers, peephole, V=5, T=4, B=6):
    rng = np.random.default_rng(0)
    cfg = ModelConfig(vocab=V, cell=cell, layers=layers, hidden=5, embed=8, peephole=peephole)
    model = Model.init(cfg, rng, dtype=np.float64)
    # Larger weights and biases than the init, so gates are away from 1/2 and every term matters.
    for k, v in model.params.items():
        v += rng.normal(0.0, 0.3, v.shape)
    x = rng.integers(0, V, (T, B))
    x[0, 0] = -1  # the zero-vector start input
    y = rng.integers(0, V, (T, B))
    state = [tuple(rng.normal(0.0, 0.5, s.shape) for s in layer) for layer in model.zero_state(B)]
    # Weight the final state's gradient too, as if later windows depended on it.
    wstate = [tuple(rng.normal(0.0, 1.0, s.shape) for s in layer) for layer in state]
    return model, x, y, state, wstate


def _loss(model, x, y, state, wstate):
    T, B = x.shape
    logits, final, _ = model.forward(x, state)
    loss, _ = softmax_cross_entropy(logits.reshape(T * B, -1).copy(), y.reshape(-1))
    return loss + sum(float((s * w).sum()) for fl, wl in zip(final, wstate) for s, w in zip(fl, wl))


def _numeric(f, arr, eps=1e-6):
    grad = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        up = f()
        arr[i] = old - eps
        down = f()
        arr[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def _rel_error(a, b):
    return np.abs(a - b).max() / max(1e-8, np.abs(a).max() + np.abs(b).max())


@pytest.mark.parametrize("cell,layers,peephole,V", CASES)
def test_gradients_match_central_differences(cell, layers, peephole, V):
    model, x, y, state, wstate = _setup(cell, layers, peephole, V)
    T, B = x.shape
    logits, _, cache = model.forward(x, state)
    assert isinstance(cache.layers[0].x, Embedded) == (V == 5)
    _, dlogits = softmax_cross_entropy(logits.reshape(T * B, -1), y.reshape(-1))
    grads, dstate0 = model.backward(cache, dlogits.reshape(T, B, -1), dstate=wstate)

    def f():
        return _loss(model, x, y, state, wstate)

    assert set(grads) == set(model.params)
    for name, p in model.params.items():
        err = _rel_error(grads[name], _numeric(f, p))
        assert err < 1e-6, f"{name}: relative error {err:.2e}"
    for layer, (analytic, values) in enumerate(zip(dstate0, state)):
        for k, (g, s) in enumerate(zip(analytic, values)):
            err = _rel_error(g, _numeric(f, s))
            assert err < 1e-6, f"state of layer {layer}, part {k}: relative error {err:.2e}"


@pytest.mark.parametrize("scale, offset", [(1.0, 0.0), (0.25, 0.0), (0.25, 100.0)],
                         ids=["unscaled", "scaled", "scaled-and-shifted"])
def test_softmax_gradient_is_its_scale_times_the_central_differences(scale, offset):
    """The training step asks for scale = 1 / batch, which the model checks above never use;
    logits past SAFE_LOGIT take the shifted path."""
    rng = np.random.default_rng(1)
    logits, y = rng.normal(0.0, 2.0, (6, 7)) + offset, rng.integers(0, 7, 6)
    _, grad = softmax_cross_entropy(logits.copy(), y, scale)
    numeric = _numeric(lambda: scale * softmax_cross_entropy(logits.copy(), y)[0], logits)
    assert _rel_error(grad, numeric) < 1e-6


def test_gradient_check_catches_a_wrong_gradient():
    """The check above can fail: a deliberately broken backward is caught."""
    model, x, y, state, wstate = _setup("lstm", 1, False)
    T, B = x.shape
    logits, _, cache = model.forward(x, state)
    _, dlogits = softmax_cross_entropy(logits.reshape(T * B, -1), y.reshape(-1))
    grads, _ = model.backward(cache, dlogits.reshape(T, B, -1), dstate=wstate)
    grads["layers.0.W"][0, 0] *= 1.01
    numeric = _numeric(lambda: _loss(model, x, y, state, wstate), model.params["layers.0.W"])
    assert _rel_error(grads["layers.0.W"], numeric) > 1e-6


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    """Logits beyond exp's float32 range (e^89 overflows, e^-104 underflows), near its edge or
    far past it, give the same loss and gradient as shifted ones."""
    rng = np.random.default_rng(3)
    small = rng.normal(size=(5, 9)).astype(np.float32)
    y = rng.integers(0, 9, 5)
    loss, grad = softmax_cross_entropy(small.copy(), y, scale=0.5)
    for shift in (70.0, 87.0, 95.0, -95.0, -110.0, 1000.0, -1000.0):
        big_loss, big_grad = softmax_cross_entropy(small + np.float32(shift), y, scale=0.5)
        assert np.isfinite(big_loss) and big_loss == pytest.approx(loss, rel=1e-4)
        np.testing.assert_allclose(big_grad, grad, atol=1e-4)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_gradient_reach_matches_central_differences(cell):
    """gradient_reach's [top layer, k] is the norm of dL<T>/da<T-k>: checked by perturbing the
    top layer's a after step T-k (the state a later window would start from)."""
    model, x, y, state, _ = _setup(cell, 2, False, V=13, T=5)
    T, B = x.shape
    reach = model.gradient_reach(x, y, state)
    assert reach.shape == (2, T)

    for k in range(T):
        _, mid, _ = model.forward(x[: T - k], state)
        a = mid[-1][0]  # the top layer's a<T-k>

        def last_loss():
            if k == 0:
                logits = np.concatenate([a, np.ones((B, 1))], axis=1) @ model._out
            else:
                logits = model.forward(x[T - k :], mid)[0][-1]
            return softmax_cross_entropy(logits.copy(), y[-1])[0]

        numeric = _numeric(last_loss, a)
        expected = np.linalg.norm(numeric, axis=1).mean()
        assert reach[1, k] == pytest.approx(expected, rel=1e-6), f"distance {k}"
    assert reach[1, -1] != pytest.approx(reach[1, 0])  # the test above is not comparing constants

"""Gradient clipping and the optimizers. Clipping runs between backward and the step, never inside
backward, so the gradient checks see the true gradient."""

import numpy as np

Params = dict[str, np.ndarray]


def global_norm(grads: Params) -> float:
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip(grads: Params, max_norm: float | None, max_value: float | None) -> tuple[float, bool]:
    """Clip in place: every element to [-max_value, max_value] (the notes' clipping by value),
    then the whole gradient to global norm max_norm. 0 or None turns either off.

    Returns the global norm before norm clipping (after any value clipping) and whether
    anything was clipped.
    """
    clipped = False
    if max_value:
        for g in grads.values():
            clipped |= bool(np.abs(g).max() > max_value)
            np.clip(g, -max_value, max_value, out=g)
    norm = global_norm(grads)
    if max_norm and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
        clipped = True
    return norm, clipped


class SGD:
    """θ <- θ - lr * dθ."""

    def step(self, params: Params, grads: Params, lr: float) -> None:
        for name, g in grads.items():
            params[name] -= lr * g


class Adam:
    """Adam (Kingma & Ba) with bias correction; its moments m, v are kept per parameter."""

    def __init__(self, params: Params, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params: Params, grads: Params, lr: float) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step = lr * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for name, g in grads.items():
            m, v = self.m[name], self.v[name]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            params[name] -= step * m / (np.sqrt(v) + self.eps)


def make(name: str, params: Params):
    return Adam(params) if name == "adam" else SGD()

"""Gradient clipping and the optimizers, on the model's flat parameter and gradient arrays.

Clipping runs between backward and the step, never inside backward, so the gradient checks
see the true gradient. Norm clipping does not rescale the gradient: it returns the factor,
and the optimizer folds it into its own arithmetic, which saves a pass over every parameter.
"""

import numpy as np


def global_norm(grad: np.ndarray) -> float:
    return float(np.sqrt(np.dot(grad, grad)))


def clip(grad: np.ndarray, max_norm: float | None, max_value: float | None) -> tuple[float, float, bool]:
    """Clip every element of the flat gradient to [-max_value, max_value] in place (the notes'
    clipping by value), then find the factor that brings its global norm down to max_norm.
    0 or None turns either off.

    Returns the global norm (after any value clipping), the factor to scale the gradient by,
    and whether anything was clipped.
    """
    clipped = False
    if max_value:
        clipped = bool(np.abs(grad).max() > max_value)
        np.clip(grad, -max_value, max_value, out=grad)
    norm = global_norm(grad)
    if max_norm and norm > max_norm:
        return norm, max_norm / norm, True
    return norm, 1.0, clipped


class SGD:
    """θ <- θ - lr * dθ."""

    def step(self, theta: np.ndarray, grad: np.ndarray, lr: float, scale: float = 1.0) -> None:
        """Update theta in place from scale * grad; grad is used as scratch."""
        grad *= lr * scale
        theta -= grad

    def state(self) -> dict[str, np.ndarray]:
        """What the optimizer carries from step to step: nothing for SGD."""
        return {}

    def load(self, state: dict[str, np.ndarray]) -> None:
        pass


class Adam:
    """Adam (Kingma & Ba) with bias correction; its moments m, v are kept for every parameter."""

    def __init__(self, size: int, dtype=np.float32, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = np.zeros(size, dtype)
        self.v = np.zeros(size, dtype)
        self.t = 0

    def step(self, theta: np.ndarray, grad: np.ndarray, lr: float, scale: float = 1.0) -> None:
        """Update theta in place from scale * grad; grad is used as scratch."""
        self.t += 1
        b1, b2, m, v = self.beta1, self.beta2, self.m, self.v
        step = lr * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        grad *= scale
        m *= b1
        v *= b2
        m += (1 - b1) * grad  # m <- b1 m + (1 - b1) g
        np.square(grad, out=grad)
        grad *= 1 - b2
        v += grad  # v <- b2 v + (1 - b2) g²
        np.sqrt(v, out=grad)
        grad += self.eps
        np.divide(m, grad, out=grad)
        grad *= step
        theta -= grad  # θ <- θ - lr m̂ / (√v̂ + ε)

    def state(self) -> dict[str, np.ndarray]:
        """The moments and the step count, as arrays (the live ones: copy to keep them)."""
        return {"m": self.m, "v": self.v, "t": np.array(self.t)}

    def load(self, state: dict[str, np.ndarray]) -> None:
        self.m[:] = state["m"]
        self.v[:] = state["v"]
        self.t = int(state["t"])


def make(name: str, size: int, dtype=np.float32):
    return Adam(size, dtype) if name == "adam" else SGD()

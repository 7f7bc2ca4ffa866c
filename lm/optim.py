"""Gradient clipping and the optimizers, on the model's flat parameter and gradient arrays.

Clipping runs between backward and the step, never inside backward, so the gradient checks
see the true gradient. Norm clipping does not rescale the gradient: it returns the factor,
and the optimizer folds it into its own arithmetic, which saves a pass over every parameter.
"""

import numpy as np


def sum_of_squares(grad: np.ndarray, max_value: float | None) -> tuple[float, bool]:
    """Clip every element of the flat gradient to [-max_value, max_value] in place (the notes'
    clipping by value; 0 or None turns it off), then Σ g². Returns that and whether any element
    was clipped. Made on parts of the gradient, the sums add up (parallel.Team)."""
    clipped = False
    if max_value and grad.size:  # a part may be empty: no embedding rows in a window of x<1> = 0 only
        clipped = bool(np.abs(grad).max() > max_value)
        np.clip(grad, -max_value, max_value, out=grad)
    return float(np.dot(grad, grad)), clipped


def clip_factor(squares: float, max_norm: float | None, clipped: bool = False) -> tuple[float, float, bool]:
    """From the gradient's Σ g²: its global norm, the factor that brings the norm down to
    max_norm (1 when it is within, or max_norm is 0 or None), and whether anything was clipped."""
    norm = float(np.sqrt(squares))
    if max_norm and norm > max_norm:
        return norm, max_norm / norm, True
    return norm, 1.0, clipped


class SGD:
    """θ <- θ - lr * dθ."""

    # Whether a step moves parameters whose gradient is 0. SGD's does not, so a step may skip
    # the embedding rows of tokens not in the window (parallel.Solo); Adam's moments decay.
    every_parameter = False

    def advance(self, lr: float) -> float:
        """Start a step: its rate, for `apply`."""
        return lr

    def apply(self, rate: float, theta: np.ndarray, grad: np.ndarray, scale: float = 1.0,
              part: slice = slice(None)) -> None:
        """Update theta[part] in place from scale * grad[part]; grad is used as scratch. part:
        a slice, or (SGD) an array of distinct offsets."""
        grad = grad[part]
        grad *= rate * scale
        theta[part] -= grad

    def step(self, theta: np.ndarray, grad: np.ndarray, lr: float, scale: float = 1.0) -> None:
        """A whole step: update theta in place from scale * grad; grad is used as scratch."""
        self.apply(self.advance(lr), theta, grad, scale)

    def state(self) -> dict[str, np.ndarray]:
        """What the optimizer carries from step to step: nothing for SGD."""
        return {}

    def load(self, state: dict[str, np.ndarray]) -> None:
        pass


class Adam(SGD):
    """Adam (Kingma & Ba) with bias correction; its moments m, v are kept for every parameter,
    in arrays made by `zeros` (shared memory for parallel.Team)."""

    every_parameter = True

    def __init__(self, size: int, dtype=np.float32, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 zeros=np.zeros):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = zeros(size, dtype)
        self.v = zeros(size, dtype)
        self.t = 0

    def advance(self, lr: float) -> float:
        """Start a step: t <- t + 1, and the bias-corrected rate lr √(1 - β2^t) / (1 - β1^t)."""
        self.t += 1
        return lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)

    def apply(self, rate: float, theta: np.ndarray, grad: np.ndarray, scale: float = 1.0,
              part: slice = slice(None)) -> None:
        b1, b2, m, v, grad = self.beta1, self.beta2, self.m[part], self.v[part], grad[part]
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
        grad *= rate
        theta[part] -= grad  # θ <- θ - α_t m / (√v + ε̂), α_t = lr √(1 - β2^t) / (1 - β1^t)

    def state(self) -> dict[str, np.ndarray]:
        """The moments and the step count, as arrays (the live ones: copy to keep them)."""
        return {"m": self.m, "v": self.v, "t": np.array(self.t)}

    def load(self, state: dict[str, np.ndarray]) -> None:
        self.m[:] = state["m"]
        self.v[:] = state["v"]
        self.t = int(state["t"])  # OverflowError for inf: the caller reports the file as damaged


def make(name: str, size: int, dtype=np.float32, zeros=np.zeros) -> SGD:
    return Adam(size, dtype, zeros=zeros) if name == "adam" else SGD()

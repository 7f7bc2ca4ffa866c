"""The language model: embedding -> stacked recurrent cells over T steps -> softmax over V.

Parameters (one flat dict, the checkpoint's array names):
    Wax          (V, E)       embedding: row i is W_ax times the one-hot x = e_i, a lookup
    layers.l.W   (H+E_l, kH)  cell l's stacked weights (see cells.py); E_0 = E, E_l = H above
    layers.l.b   (kH,)
    layers.l.p   (3H,)        LSTM peepholes, when enabled
    Wya          (H, V)       ŷ<t> = softmax(Wya a<t> + by), a<t> from the top layer
    by           (V,)
Input ids of -1 stand for the zero vector (x<1> = 0 in the notes).
"""

from dataclasses import asdict
from typing import NamedTuple

import numpy as np

from .cells import CELLS
from .config import ModelConfig
from .ops import softmax_cross_entropy

Params = dict[str, np.ndarray]
State = list[tuple[np.ndarray, ...]]


class Cache(NamedTuple):
    ids: np.ndarray  # (T, B) inputs
    layers: list  # one cell cache per layer
    a_top: np.ndarray  # (T, B, H)


class Model:
    """A configuration and its parameters; forward and backward are pure functions of both."""

    def __init__(self, config: ModelConfig, params: Params):
        self.config = config
        self.params = params
        self.cell = CELLS[config.cell]

    @classmethod
    def init(cls, config: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> "Model":
        V, E, H = config.vocab, config.embed, config.hidden
        s = 1.0 / np.sqrt(H)
        params = {"Wax": rng.uniform(-0.1, 0.1, (V, E))}
        cell = CELLS[config.cell]
        for layer in range(config.layers):
            p = cell.init(rng, E if layer == 0 else H, H, config.peephole)
            params.update({f"layers.{layer}.{k}": v for k, v in p.items()})
        params["Wya"] = rng.uniform(-s, s, (H, V))
        params["by"] = np.zeros(V)
        return cls(config, {k: v.astype(dtype) for k, v in params.items()})

    def astype(self, dtype) -> "Model":
        return Model(self.config, {k: v.astype(dtype) for k, v in self.params.items()})

    @property
    def dtype(self):
        return self.params["Wya"].dtype

    def num_params(self) -> int:
        return sum(v.size for v in self.params.values())

    def config_dict(self) -> dict:
        return asdict(self.config)

    def _layer(self, layer: int) -> Params:
        prefix = f"layers.{layer}."
        return {k[len(prefix) :]: v for k, v in self.params.items() if k.startswith(prefix)}

    def zero_state(self, batch: int) -> State:
        """a<0> = 0 (and c<0> = 0) for every layer: a list of per-layer state tuples of (B, H)."""
        H = self.config.hidden
        return [
            tuple(np.zeros((batch, H), dtype=self.dtype) for _ in range(self.cell.state_size))
            for _ in range(self.config.layers)
        ]

    def forward(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State, Cache]:
        """ids (T, B) -> logits (T, B, V), the state after step T, and the cache for backward."""
        T, B = ids.shape
        Wax = self.params["Wax"]
        x = Wax[ids]  # (T, B, E): W_ax times one-hot x<t>, as a row lookup
        zero = ids < 0
        if zero.any():
            x[zero] = 0.0
        caches, new_state = [], []
        for layer in range(self.config.layers):
            x, s, cache = self.cell.forward(self._layer(layer), x, state[layer])
            caches.append(cache)
            new_state.append(s)
        H = x.shape[2]
        logits = x.reshape(T * B, H) @ self.params["Wya"]
        logits += self.params["by"]
        return logits.reshape(T, B, -1), new_state, Cache(ids, caches, x)

    def backward(self, cache: Cache, dlogits: np.ndarray, dstate: State | None = None) -> tuple[Params, State]:
        """dL/dlogits (T, B, V) -> gradients of every parameter, and dL/d(initial state).

        dstate is the gradient reaching the final state from later steps; truncated BPTT
        passes None (zeros).
        """
        ids, caches, a_top = cache
        T, B, V = dlogits.shape
        H = a_top.shape[2]
        d2 = dlogits.reshape(T * B, V)
        grads = {"Wya": a_top.reshape(T * B, H).T @ d2, "by": d2.sum(axis=0)}
        dx = (d2 @ self.params["Wya"].T).reshape(T, B, H)
        if dstate is None:
            dstate = [tuple(np.zeros_like(s) for s in layer) for layer in self.zero_state(B)]
        dstate0 = [None] * self.config.layers
        for layer in range(self.config.layers - 1, -1, -1):
            dx, g, dstate0[layer] = self.cell.backward(self._layer(layer), caches[layer], dx, dstate[layer])
            grads.update({f"layers.{layer}.{k}": v for k, v in g.items()})
        keep = ids >= 0
        dWax = np.zeros_like(self.params["Wax"])
        np.add.at(dWax, ids[keep], dx[keep])
        grads["Wax"] = dWax
        return grads, dstate0

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, state: State, scale: float = 1.0):
        """Summed cross-entropy L = Σ_t L<t> of targets y (T, B), the gradients of scale * L,
        and the state to carry into the next window."""
        T, B = x.shape
        logits, state, cache = self.forward(x, state)
        loss, dlogits = softmax_cross_entropy(logits.reshape(T * B, -1), y.reshape(-1))
        if scale != 1.0:
            dlogits *= scale
        grads, _ = self.backward(cache, dlogits.reshape(T, B, -1))
        return loss, grads, state

"""The language model: embedding -> stacked recurrent cells over T steps -> softmax over V.

Parameters (one flat dict, the checkpoint's array names):
    Wax          (V, E)       embedding: row i is W_ax times the one-hot x = e_i, a lookup
    layers.l.W   (H+E_l, kH)  cell l's stacked weights (see cells.py); E_0 = E, E_l = H above
    layers.l.b   (kH,)
    layers.l.p   (3H,)        LSTM peepholes, when enabled
    Wya          (H, V)       ŷ<t> = softmax(Wya a<t> + by), a<t> from the top layer
    by           (V,)
Input ids of -1 stand for the zero vector (x<1> = 0 in the notes).

All parameters are views into one flat array, and so are their gradients: clipping and the
optimizer's update are then a few whole-array operations instead of a loop over arrays, and
Wya and by sit next to each other as one (H+1, V) block, so the output layer is one matrix
multiply of [a<t>, 1] with the bias included, forward and backward.
"""

from dataclasses import asdict
from typing import NamedTuple

import numpy as np

from .cells import CELLS, Embedded
from .config import ModelConfig
from .heap import keep_freed_memory
from .ops import add_rows, softmax_cross_entropy

Params = dict[str, np.ndarray]
State = list[tuple[np.ndarray, ...]]


class Cache(NamedTuple):
    ids: np.ndarray  # (T, B) inputs
    layers: list  # one cell cache per layer
    a1: np.ndarray  # (T*B, H+1), the top layer's a<t> and a column of ones


class Model:
    """A configuration and its parameters; forward and backward are functions of both.

    params: name -> array, views into `flat`. `grads` has the same names, views into `grad`,
    and holds the gradients of the last `backward` until the next one.
    """

    def __init__(self, config: ModelConfig, params: Params):
        keep_freed_memory()  # every forward and backward allocates large arrays; see heap.py
        self.config = config
        self.cell = CELLS[config.cell]
        names = ["Wax", *sorted(k for k in params if k.startswith("layers.")), "Wya", "by"]
        dtype = params["Wya"].dtype
        self._shapes = {k: np.shape(params[k]) for k in names}
        flat = np.concatenate([np.asarray(params[k], dtype).ravel() for k in names])
        self._bind(flat, np.zeros_like(flat))

    def place(self, flat: np.ndarray, grad: np.ndarray) -> None:
        """Keep the parameters in `flat` (their values copied into it) and the gradients in
        `grad`: arrays of num_params() elements, such as memory shared with another process."""
        if flat is not self.flat:
            flat[:] = self.flat
        self._bind(flat, grad)

    def _bind(self, flat: np.ndarray, grad: np.ndarray) -> None:
        self.flat, self.grad = flat, grad
        self.params = self._views(flat, self._shapes)
        self.grads = self._views(grad, self._shapes)
        self._layers = [self._layer(self.params, layer) for layer in range(self.config.layers)]
        self._layer_grads = [self._layer(self.grads, layer) for layer in range(self.config.layers)]
        H, V = self.config.hidden, self.config.vocab
        self._out = flat[-(H + 1) * V :].reshape(H + 1, V)  # [Wya; by]
        self._dout = grad[-(H + 1) * V :].reshape(H + 1, V)

    def embedding_rows(self, ids: np.ndarray) -> np.ndarray:
        """The offsets in `grad` of the embedding rows that a window with inputs ids (T, B) can
        give a non-zero gradient: its ids' rows. The embedding comes first in `grad`; every
        other parameter after it, from offset Wax.size on."""
        E = self.config.embed
        rows = np.unique(ids)
        rows = rows[rows >= 0]
        return (rows[:, None] * E + np.arange(E)).reshape(-1)

    @staticmethod
    def _views(flat: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> Params:
        views, offset = {}, 0
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            views[name] = flat[offset : offset + size].reshape(shape)
            offset += size
        return views

    @staticmethod
    def _layer(arrays: Params, layer: int) -> Params:
        prefix = f"layers.{layer}."
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    @staticmethod
    def shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
        """Every parameter's name and shape (the module docstring's table), from the configuration
        alone: a model file is checked against them before anything is built."""
        V, E, H = config.vocab, config.embed, config.hidden
        kH = CELLS[config.cell].gates * H
        shapes = {"Wax": (V, E)}
        for layer in range(config.layers):
            shapes[f"layers.{layer}.W"] = (H + (E if layer == 0 else H), kH)
            shapes[f"layers.{layer}.b"] = (kH,)
            if config.peephole:
                shapes[f"layers.{layer}.p"] = (3 * H,)
        return {**shapes, "Wya": (H, V), "by": (V,)}

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
        return self.flat.dtype

    def num_params(self) -> int:
        return self.flat.size

    def config_dict(self) -> dict:
        return asdict(self.config)

    def zero_state(self, batch: int) -> State:
        """a<0> = 0 (and c<0> = 0) for every layer: a list of per-layer state tuples of (B, H)."""
        H = self.config.hidden
        return [
            tuple(np.zeros((batch, H), dtype=self.dtype) for _ in range(self.cell.state_size))
            for _ in range(self.config.layers)
        ]

    def prepare(self, positions: int = 0) -> list[Params]:
        """Every layer's weights as its forward uses them; valid until the parameters change.

        positions: how many the weights will serve (a window's T*B; sampling and scoring: the
        whole run's). Where that many make it pay (Embedded.worth_it), the first layer's input
        part comes from a product with the embedding table, made here once."""
        prepared = [self.cell.prepare(p) for p in self._layers]
        if Embedded.worth_it(positions, self.params["Wax"]):
            prepared[0]["P"] = Embedded.table_product(prepared[0]["W_xb"], self.params["Wax"])
        return prepared

    def forward(self, ids: np.ndarray, state: State, prepared: list[Params] | None = None
                ) -> tuple[np.ndarray, State, Cache]:
        """ids (T, B) -> logits (T, B, V), the state after step T, and the cache for backward.

        prepared: from `prepare(positions)`, for callers that run many short windows with
        unchanged weights (sampling); made afresh when not given.
        """
        a, new_state, caches = self.run_layers(ids, state, prepared)
        a1 = self._with_ones(a)
        logits = a1 @ self._out  # Wya a<t> + by
        return logits.reshape(*ids.shape, -1), new_state, Cache(ids, caches, a1)

    def run_layers(self, ids: np.ndarray, state: State, prepared: list[Params] | None = None
                   ) -> tuple[np.ndarray, State, list]:
        """The recurrent part of forward: ids (T, B) -> the top layer's a<1..T> (T, B, H), the
        state after step T, and the layers' caches. `logits` finishes the job; the scorer runs
        the two apart so that one window's softmax overlaps the next window's time loop."""
        prepared = prepared or self.prepare(ids.size)
        Wax = self.params["Wax"]
        if "P" in prepared[0]:
            x = Embedded(ids, Wax)
        else:
            x = Wax[ids]  # (T, B, E): W_ax times one-hot x<t>, as a row lookup
            zero = ids < 0
            if zero.any():
                x[zero] = 0.0
        caches, new_state = [], []
        for q, s in zip(prepared, state):
            x, s, cache = self.cell.forward(q, x, s)
            caches.append(cache)
            new_state.append(s)
        return x, new_state, caches

    def logits(self, a: np.ndarray) -> np.ndarray:
        """The top layer's a (T, B, H) -> logits Wya a<t> + by (T, B, V)."""
        return (self._with_ones(a) @ self._out).reshape(*a.shape[:2], -1)

    def _with_ones(self, a: np.ndarray) -> np.ndarray:
        """[a<t>, 1] for every position: (T*B, H+1), so the bias rides in the output multiply."""
        T, B, H = a.shape
        a1 = np.empty((T, B, H + 1), dtype=a.dtype)
        a1[..., :H] = a  # a is a cell's transposed view: reshaping it first would copy it twice
        a1[..., H] = 1.0
        return a1.reshape(T * B, H + 1)

    def backward(self, cache: Cache, dlogits: np.ndarray, dstate: State | None = None,
                 traces: np.ndarray | None = None) -> tuple[Params, State]:
        """dL/dlogits (T, B, V) -> gradients of every parameter (self.grads), and dL/d(initial state).

        dstate is the gradient reaching the final state from later steps; truncated BPTT
        passes None (zeros). traces (layers, T), when given, receives each layer's mean
        gradient norm at every step.
        """
        ids, caches, a1 = cache
        T, B, V = dlogits.shape
        H = self.config.hidden
        d2 = dlogits.reshape(T * B, V)
        np.matmul(a1.T, d2, out=self._dout)  # dWya and dby
        dx = (self.params["Wya"] @ d2.T).reshape(H, T, B).transpose(1, 2, 0)  # the cells' layout
        if dstate is None:
            dstate = [tuple(np.zeros_like(s) for s in layer) for layer in self.zero_state(B)]
        dstate0 = [None] * self.config.layers
        for layer in range(self.config.layers - 1, -1, -1):
            dx, dstate0[layer] = self.cell.backward(
                self._layers[layer], caches[layer], dx, dstate[layer], self._layer_grads[layer],
                None if traces is None else traces[layer],
            )
        dWax = self.grads["Wax"]
        if isinstance(caches[0].x, Embedded):
            dWax[:] = dx
        else:
            dWax.fill(0.0)
            add_rows(dWax, ids.reshape(-1), dx.reshape(T * B, -1))
        return self.grads, dstate0

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, state: State, scale: float = 1.0):
        """Summed cross-entropy L = Σ_t L<t> of targets y (T, B), the gradients of scale * L
        (self.grads), and the state to carry into the next window."""
        T, B = x.shape
        logits, state, cache = self.forward(x, state)
        loss, dlogits = softmax_cross_entropy(logits.reshape(T * B, -1), y.reshape(-1), scale)
        grads, _ = self.backward(cache, dlogits.reshape(T, B, -1))
        return loss, grads, state

    def gradient_reach(self, x: np.ndarray, y: np.ndarray, state: State) -> np.ndarray:
        """How far back the loss of the window's last step reaches: (layers, T), entry [l, k]
        the norm of dL<T>/da<T-k> in layer l, per sequence, averaged over the batch.

        Vanishing gradients show as a fast fall with k, exploding ones as a rise. Uses (and
        overwrites) self.grads; the state is left as it was.
        """
        T, B = x.shape
        logits, _, cache = self.forward(x, state)
        dlogits = np.zeros_like(logits)
        _, dlogits[-1] = softmax_cross_entropy(logits[-1], y[-1], 1.0)
        traces = np.zeros((self.config.layers, T))
        self.backward(cache, dlogits, traces=traces)
        return traces[:, ::-1]

"""Recurrent cells: a vanilla tanh RNN, the full GRU and the LSTM, each forward beside its backward.

Shapes: T time steps, B batch, E input size (embedding or the layer below), H hidden units.
The interface is time-major and batch-major: x (T, B, E), a (T, B, H), state parts (B, H).

Every cell keeps the notes' stacked weight W[a<t-1>, x<t>] as one array `W` of shape
(H + E, k*H): rows [:H] multiply a<t-1> (or c<t-1>), rows [H:] multiply x<t>, and the k
column blocks are the gates, in the order the docstring gives. It is the transpose of the
notes' W because the interface's batches are rows. Keeping one array lets the input half of
every gate of all T steps be computed in one matrix multiply before the time loop, and the
weight gradients in one multiply over all T x B positions after it. Only the recurrent half is
multiplied step by step.

Speed, since the time loop is Python and a step is a small multiply plus many element-wise
NumPy calls:
- The step's multiplies are `np.dot`, not `np.matmul`: the same BLAS call with less of NumPy
  around it (a 4 x 4 product 0.9 against 1.7 µs). Alternated in one process, a whole layer's
  forward and backward took 0.99x the time at batch 25 and 0.96-0.97x at batch 1 (sampling).
  np.dot copies an operand that is neither C- nor F-contiguous, so GRU keeps its blocks apart.
- Inside a cell, arrays hold one column per sequence, as in the notes: z = W[a<t-1>; x<t>] + b
  is (kH, B), a<t> is (H, B), stacked over time as (T, kH, B). Every gate is then a block of
  whole rows, contiguous, and an element-wise call over it is one loop; with a row per
  sequence a gate is a column block, and the same calls take up to twice as long. Outputs and
  states leave as transposed views, so one layer's output reaches the next without a copy.
- σ and tanh come from one `np.exp` per step (`_activate`): NumPy's float32 exp costs about
  two thirds of its tanh on x86, and σ(z) = 1 / (1 + e^-z), tanh(z) = 2σ(2z) - 1. The signs and
  the 2 are folded into a scaled copy of the weights by `prepare`.

State is a tuple: (a,) for the RNN, (c,) for the GRU (where a = c), (a, c) for the LSTM,
so nothing outside this module special-cases a cell.

prepare(p) -> q: the weights as forward uses them (made once per window, or once for all the
tokens of a sampling run).
forward(q, x, state) -> (a, state_T, cache): the outputs a<1..T> and the last state.
backward(p, cache, da, dstate_T, grads) -> (dx, dstate_0): da is dL/da<1..T> from above,
dstate_T the gradient reaching the last state from the next window (zeros in truncated BPTT);
the parameter gradients are written into `grads` (arrays shaped like p). trace, when given
(T,), receives the norm of dL/da<t> at every step (the gradient statistics of `--grad-stats`).
"""

from typing import NamedTuple

import numpy as np

State = tuple[np.ndarray, ...]
Params = dict[str, np.ndarray]


def _swap(x: np.ndarray, dtype=None, out: np.ndarray | None = None) -> np.ndarray:
    """(A, C, B) -> (C, A, B), the first two axes swapped: contiguous, in `dtype` (or x's), and
    x itself where it already is that (A or C of 1: a sampling step); or written into `out`.

    Where B's values are contiguous in both, each run of B is copied as one item of a void
    dtype; NumPy otherwise copies value by value, which at B = 25 took 1.6-1.8x the time."""
    A, C, B = x.shape
    runs = A > 1 and C > 1 and x.strides[2] == x.itemsize and (dtype is None or dtype == x.dtype)
    if out is None:
        if not runs:
            return np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype)
        out = np.empty((C, A, B), dtype=x.dtype)
    if runs and out.dtype == x.dtype and out.strides[2] == x.itemsize:
        run = np.dtype((np.void, B * x.itemsize))
        out.view(run)[..., 0] = x.view(run)[..., 0].T
    else:
        out[...] = x.transpose(1, 0, 2)
    return out


def _columns(x: np.ndarray, dtype) -> np.ndarray:
    """(T, B, E) -> (T, E, B), contiguous, in `dtype`: the backward's, that of the weights and
    the forward's arrays together, since np.dot writes its products only into arrays of their
    own dtype. A gradient from the model's output layer or a cell above is a view of an
    (E, T, B) array: the copy then moves whole rows of B."""
    return _swap(x.transpose(2, 0, 1), dtype)


def _positions(x: np.ndarray) -> np.ndarray:
    """(T, B, E) -> (E+1, T, B): every position a column, with a 1 under it, so that
    X.reshape(E+1, T*B) is the operand of one multiply over all positions, bias included."""
    T, B, E = x.shape
    X = np.empty((E + 1, T, B), dtype=x.dtype)
    _swap(x.transpose(0, 2, 1), out=X[:E])  # x is mostly a cell's (T, E, B) seen as (T, B, E)
    X[E] = 1.0
    return X


def _rows(x: np.ndarray) -> np.ndarray:
    """(T, E, B) -> (T, B, E), a view: what the interface hands out."""
    return x.transpose(0, 2, 1)


def _state_columns(s: np.ndarray, dtype) -> np.ndarray:
    """A state part (B, H) -> a fresh (H, B) in `dtype`, which the caller may overwrite."""
    return s.T.astype(dtype, order="C")


def _prepared(p: Params, H: int, tanh_from: int) -> Params:
    """The weights in column form for forward, scaled for `_activate`: rows [:tanh_from] (the
    σ gates) by -1, the rest (tanh) by -2. W_a (kH, H); W_xb (kH, E+1), W_x with b as its last
    column; p (3, H, 1)."""
    W, b = p["W"], p["b"]
    s = np.full(b.shape[0], -2.0, dtype=b.dtype)
    s[:tanh_from] = -1.0
    # Both are kept as transposes of contiguous arrays, (H, kH) and (E+1, kH): at B = 1 (sampling,
    # scoring) their multiplies are then matrix-vector products along rows of kH, not of H or E,
    # which OpenBLAS runs up to 40% faster; larger batches run level.
    Wxb = np.empty((W.shape[0] - H + 1, W.shape[1]), dtype=W.dtype)
    np.multiply(W[H:], s, out=Wxb[:-1])
    np.multiply(b, s, out=Wxb[-1])
    q = {"W_a": (W[:H] * s).T, "W_xb": Wxb.T}
    if "p" in p:
        q["p"] = -p["p"].reshape(3, H, 1)  # peepholes only reach the σ gates
    return q


def _activate(z: np.ndarray, tanh_from: int) -> None:
    """In place, on pre-activations made with `_prepared` weights (-z on σ rows, -2z on tanh
    rows): rows [:tanh_from] -> σ(z), the rest -> tanh(z). Call under np.errstate(over="ignore"):
    e^-z overflows float32 for z < -88 (z < -44 on tanh rows), and 1 / (1 + inf) = 0 is then
    the right answer."""
    np.exp(z, out=z)
    z += 1.0
    np.divide(1.0, z, out=z)  # σ(z) = 1 / (1 + e^-z)
    if tanh_from < z.shape[0]:
        t = z[tanh_from:]
        t *= 2.0
        t -= 1.0  # tanh(z) = 2σ(2z) - 1


class Embedded(NamedTuple):
    """The first layer's input while it is still ids: x<t> = table[ids[t]], -1 for the zero vector.

    With a small vocabulary (character models), the input half of the gates is cheaper as
    (table W[H:] + b)[ids]: one product per vocabulary entry, then a pick per position, and its
    gradients likewise: dz summed per id first. Sampling and scoring make the product once.
    """

    ids: np.ndarray  # (T, B) int
    table: np.ndarray  # (V, E), the embedding Wax

    @staticmethod
    def worth_it(positions: int, table: np.ndarray) -> bool:
        """Fewer multiply-adds than the embedded inputs' product over that many positions:
        V (E + n) < E n. Never for a vocabulary larger than the embedding (word models)."""
        V, E = table.shape
        return V * (E + positions) < E * positions

    @staticmethod
    def table_product(W_xb: np.ndarray, table: np.ndarray) -> np.ndarray:
        """P (kH, V+1) from W_xb (kH, E+1), W_x and b: column i is W_x table[i] + b, and the last
        column, b alone, is the zero vector's, which id -1 picks."""
        E = table.shape[1]
        P = np.empty((W_xb.shape[0], table.shape[0] + 1), dtype=W_xb.dtype)
        np.matmul(W_xb[:, :E], table.T, out=P[:, :-1])
        P[:, -1] = 0.0
        P += W_xb[:, E:]
        return P

    def onehot(self) -> np.ndarray:
        """(V+1, T*B): a column per position, its id's one-hot vector; row V stands for id -1."""
        V = self.table.shape[0]
        onehot = np.zeros((V + 1, self.ids.size), dtype=self.table.dtype)
        onehot[self.ids.reshape(-1), np.arange(self.ids.size)] = 1.0
        return onehot

    def project(self, q: Params) -> np.ndarray:
        """(kH, T, B): the columns of the table product (q's own "P", made by `Model.prepare` for
        many windows, else made here) picked by id, laid out by position. The pick took a
        training step 0.975-0.99x the time of a one-hot product, and a sampling step at batch 64
        27 against 62 us."""
        P = q["P"] if "P" in q else self.table_product(q["W_xb"], self.table)
        return np.take(P, self.ids, axis=1)

    def grads(self, D: np.ndarray, W_x: np.ndarray, dW_x: np.ndarray, db: np.ndarray) -> np.ndarray:
        """dW_x (E, kH) and db from D = dz (kH, T*B); returns dL/dtable (V, E), the embedding's
        gradient. W_x is the parameter's own (E, kH)."""
        V = self.table.shape[0]
        dP = self.onehot() @ D.T  # dz summed per id
        np.sum(dP, axis=0, out=db)
        np.matmul(self.table.T, dP[:V], out=dW_x)
        return dP[:V] @ W_x.T


def _input_part(q: Params, x: "np.ndarray | Embedded") -> np.ndarray:
    """W_x x<t> + b for all T steps before the loop, in one multiply over all T x B positions
    (x as positions (E+1, T, B), or Embedded): (T, kH, B), step t reading zx[t].

    The multiply lays its result out by position, (kH, T, B). Copied into step order once, each
    step reads one contiguous block instead of kH short rows from across the whole array; at
    batch 25 (a Team's half of the char case) that took a forward step 0.93-0.95x the time."""
    if isinstance(x, Embedded):
        zx = x.project(q)
    else:
        E1, T, B = x.shape
        zx = (q["W_xb"] @ x.reshape(E1, T * B)).reshape(-1, T, B)
    return _swap(zx)


def _sigmoid_grad(G: np.ndarray) -> np.ndarray:
    """σ' = Γ (1 - Γ), from the gates themselves."""
    d = np.subtract(1.0, G)
    d *= G
    return d


def _tanh_grad(y: np.ndarray) -> np.ndarray:
    """tanh' = 1 - tanh², from the outputs themselves; C order whatever the order of y."""
    d = np.square(y, order="C")
    np.subtract(1.0, d, out=d)
    return d


def _mean_norm(d: np.ndarray) -> float:
    """The norm of each sequence's gradient (H, B), one per column, averaged over the batch."""
    return float(np.sqrt(np.square(d, dtype=np.float64).sum(axis=0)).mean())


def _flat(x: np.ndarray) -> np.ndarray:
    """(T, n, B) -> (n, T*B): every position a column, for the one multiply over all of them."""
    T, n, B = x.shape
    return _swap(x).reshape(n, T * B)


def _weight_grads(p: Params, x: "np.ndarray | Embedded", dz: np.ndarray, H: int, grads: Params,
                  *recurrent: tuple[np.ndarray, slice]) -> np.ndarray:
    """dW and db into `grads`, and dx, from the pre-activation gradients dz (T, kH, B) of all steps.

    x: positions (E+1, T, B) or Embedded. recurrent: (input, columns of W) pairs: what multiplied
    W[:H, columns] at each step, (T, H, B). Returns dx (T, B, E), a view of an (E, T, B) array,
    or for an Embedded input the gradient of its table.
    """
    T, _, B = dz.shape
    D = _flat(dz)
    dW = grads["W"]
    for inp, cols in recurrent:
        np.matmul(_flat(inp), D[cols].T, out=dW[:H, cols])
    if isinstance(x, Embedded):
        return x.grads(D, p["W"][H:], dW[H:], grads["b"])
    dWb = x.reshape(-1, T * B) @ D.T  # [dW_x; db], the ones row giving db
    dW[H:], grads["b"][:] = dWb[:-1], dWb[-1]
    return (p["W"][H:] @ D).reshape(-1, T, B).transpose(1, 2, 0)


def _as_input(x: "np.ndarray | Embedded") -> "np.ndarray | Embedded":
    """A layer's input as the cell keeps it: ids stay ids, arrays become positions (E+1, T, B)."""
    return x if isinstance(x, Embedded) else _positions(x)


class RNN:
    """Vanilla RNN:  a<t> = tanh(Wa[a<t-1>, x<t>] + ba).  W: (H+E, H), b: (H,)."""

    gates = 1
    state_size = 1

    class Cache(NamedTuple):
        x: "np.ndarray | Embedded"  # (E+1, T, B)
        a: np.ndarray  # (T+1, H, B), a[0] = a<0>

    @staticmethod
    def init(rng: np.random.Generator, E: int, H: int, peephole: bool = False) -> Params:
        s = 1.0 / np.sqrt(H)
        return {"W": rng.uniform(-s, s, (H + E, H)), "b": np.zeros(H)}

    @staticmethod
    def prepare(p: Params) -> Params:
        return _prepared(p, p["b"].shape[0], 0)

    @staticmethod
    def forward(q: Params, x: "np.ndarray | Embedded", state: State):
        """x (T, B, E), or the first layer's Embedded ids; state (a<0>,), a<0> (B, H)
        -> a<1..T> (T, B, H), (a<T>,), the cache."""
        x = _as_input(x)
        zx = _input_part(q, x)
        T, H, B = zx.shape
        a = np.empty((T + 1, H, B), dtype=zx.dtype)
        a[0] = state[0].T
        with np.errstate(over="ignore"):
            for t in range(T):
                np.dot(q["W_a"], a[t], out=a[t + 1])
                a[t + 1] += zx[t]
                _activate(a[t + 1], 0)  # a<t> = tanh(Wa[a<t-1>, x<t>] + ba)
        return _rows(a[1:]), (a[T].T.copy(),), RNN.Cache(x, a)

    @staticmethod
    def backward(p: Params, cache: "RNN.Cache", da: np.ndarray, dstate: State, grads: Params,
                 trace: np.ndarray | None = None):
        """da = dL/da<1..T> (T, B, H); dstate (da<T>,) (B, H) from the next window
        -> dx (T, B, E) (Embedded: the embedding's (V, E)), (da<0>,); dW (H+E, H), db (H,) into grads."""
        x, a = cache
        W = p["W"]
        dtype = np.result_type(W, a)
        da = _columns(da, dtype)
        T, H, _ = da.shape
        W_a = W[:H]  # da<t-1> = W_a dz<t>: the forward's multiply, transposed
        dz = _tanh_grad(a[1:])  # tanh' = 1 - a<t>², then times the incoming gradient
        da_next = _state_columns(dstate[0], dtype)
        for t in range(T - 1, -1, -1):
            da_next += da[t]
            if trace is not None:
                trace[t] = _mean_norm(da_next)
            dz[t] *= da_next
            np.dot(W_a, dz[t], out=da_next)
        dx = _weight_grads(p, x, dz, H, grads, (a[:-1], slice(None)))
        return dx, (da_next.T,)


class GRU:
    """Full GRU (notes: a<t> = c<t>).  W: (H+E, 3H) with column blocks [u | r | c], b: (3H,).

        Γu = σ(Wu[c<t-1>, x<t>] + bu)
        Γr = σ(Wr[c<t-1>, x<t>] + br)
        c~<t> = tanh(Wc[Γr * c<t-1>, x<t>] + bc)
        c<t> = Γu * c~<t> + (1 - Γu) * c<t-1>
    """

    gates = 3
    state_size = 1

    class Cache(NamedTuple):
        x: "np.ndarray | Embedded"  # (E+1, T, B)
        c: np.ndarray  # (T+1, H, B), c[0] = c<0>
        G: np.ndarray  # (T, 2H, B), [Γu ; Γr]
        c_tilde: np.ndarray  # (T, H, B)
        rc: np.ndarray  # (T, H, B), Γr * c<t-1>

    @staticmethod
    def init(rng: np.random.Generator, E: int, H: int, peephole: bool = False) -> Params:
        s = 1.0 / np.sqrt(H)
        return {"W": rng.uniform(-s, s, (H + E, 3 * H)), "b": np.zeros(3 * H)}

    @staticmethod
    def prepare(p: Params) -> Params:
        """As `_prepared`, with W_a as its two blocks, each contiguous: the gates' (2H, H) and
        the candidate's (H, H), so that np.dot multiplies them without a copy each step."""
        H = p["b"].shape[0] // 3
        q = _prepared(p, H, 2 * H)
        W_a = q.pop("W_a")
        q["Wur_a"], q["Wc_a"] = np.asfortranarray(W_a[: 2 * H]), np.asfortranarray(W_a[2 * H :])
        return q

    @staticmethod
    def forward(q: Params, x: "np.ndarray | Embedded", state: State):
        """x (T, B, E), or the first layer's Embedded ids; state (c<0>,), c<0> (B, H)
        -> a<1..T> = c<1..T> (T, B, H), (c<T>,), the cache."""
        x = _as_input(x)
        zx = _input_part(q, x)
        T, H3, B = zx.shape
        H = H3 // 3
        Wur_a, Wc_a = q["Wur_a"], q["Wc_a"]
        c = np.empty((T + 1, H, B), dtype=zx.dtype)
        G = np.empty((T, 2 * H, B), dtype=zx.dtype)
        c_tilde = np.empty((T, H, B), dtype=zx.dtype)
        rc = np.empty((T, H, B), dtype=zx.dtype)
        c[0] = state[0].T
        with np.errstate(over="ignore"):
            for t in range(T):
                np.dot(Wur_a, c[t], out=G[t])
                G[t] += zx[t, : 2 * H]
                _activate(G[t], 2 * H)  # Γu, Γr = σ(W[c<t-1>, x<t>] + b)
                np.multiply(G[t, H:], c[t], out=rc[t])
                np.dot(Wc_a, rc[t], out=c_tilde[t])
                c_tilde[t] += zx[t, 2 * H :]
                _activate(c_tilde[t], 0)  # c~<t> = tanh(Wc[Γr * c<t-1>, x<t>] + bc)
                np.subtract(c_tilde[t], c[t], out=c[t + 1])
                c[t + 1] *= G[t, :H]
                c[t + 1] += c[t]  # c<t> = Γu * c~<t> + (1 - Γu) * c<t-1>
        return _rows(c[1:]), (c[T].T.copy(),), GRU.Cache(x, c, G, c_tilde, rc)

    @staticmethod
    def backward(p: Params, cache: "GRU.Cache", da: np.ndarray, dstate: State, grads: Params,
                 trace: np.ndarray | None = None):
        """da = dL/dc<1..T> (T, B, H); dstate (dc<T>,) (B, H) from the next window
        -> dx (T, B, E) (Embedded: the embedding's (V, E)), (dc<0>,); dW (H+E, 3H), db (3H,) into grads."""
        x, c, G, c_tilde, rc = cache
        W = p["W"]
        dtype = np.result_type(W, c)
        da = _columns(da, dtype)
        T, H, B = da.shape
        Wur_a, Wc_a = np.ascontiguousarray(W[:H, : 2 * H]), np.ascontiguousarray(W[:H, 2 * H :])
        Gu, Gr = G[:, :H], G[:, H:]
        # dz = [dc * K_u ; drc * K_r ; dc * K_c]: the factors of every step at once.
        K = _sigmoid_grad(G)
        K[:, :H] *= c_tilde - c[:-1]  # dΓu = dc * (c~ - c<t-1>)
        K[:, H:] *= c[:-1]  # dΓr = d(Γr * c<t-1>) * c<t-1>
        K_c = _tanh_grad(c_tilde)
        K_c *= Gu  # through c~ = tanh(.), weighted by Γu
        keep = np.subtract(1.0, Gu)
        dz = np.empty((T, 3 * H, B), dtype=da.dtype)
        dc = _state_columns(dstate[0], dtype)
        drc = np.empty((H, B), dtype=da.dtype)
        back = np.empty((H, B), dtype=da.dtype)
        for t in range(T - 1, -1, -1):
            dc += da[t]
            if trace is not None:
                trace[t] = _mean_norm(dc)
            np.multiply(dc, K_c[t], out=dz[t, 2 * H :])
            np.dot(Wc_a, dz[t, 2 * H :], out=drc)
            np.multiply(dc, K[t, :H], out=dz[t, :H])
            np.multiply(drc, K[t, H:], out=dz[t, H : 2 * H])
            dc *= keep[t]  # c<t-1> directly, through (1 - Γu)
            drc *= Gr[t]  # and through Γr * c<t-1>
            dc += drc
            np.dot(Wur_a, dz[t, : 2 * H], out=back)  # and through the gates
            dc += back
        # The candidate block's recurrent input was Γr * c<t-1>, the gates' c<t-1>.
        dx = _weight_grads(p, x, dz, H, grads, (c[:-1], slice(0, 2 * H)), (rc, slice(2 * H, 3 * H)))
        return dx, (dc.T,)


class LSTM:
    """LSTM with update, forget and output gates.  W: (H+E, 4H) with blocks [u | f | o | c], b: (4H,).

        Γu = σ(Wu[a<t-1>, x<t>] + bu)        (+ pu * c<t-1> with peepholes)
        Γf = σ(Wf[a<t-1>, x<t>] + bf)        (+ pf * c<t-1>)
        Γo = σ(Wo[a<t-1>, x<t>] + bo)        (+ po * c<t-1>)
        c~<t> = tanh(Wc[a<t-1>, x<t>] + bc)
        c<t> = Γu * c~<t> + Γf * c<t-1>
        a<t> = Γo * tanh(c<t>)

    Peepholes, as the notes describe them, feed c<t-1> into all three gates, element by
    element: p is (3H,) = [pu | pf | po], the i-th cell value reaching only the i-th gate unit.
    The forget-gate bias starts at 1 so that memory is kept by default early in training.
    """

    gates = 4
    state_size = 2

    class Cache(NamedTuple):
        x: "np.ndarray | Embedded"  # (E+1, T, B)
        a: np.ndarray  # (T+1, H, B), a[0] = a<0>
        c: np.ndarray  # (T+1, H, B), c[0] = c<0>
        Z: np.ndarray  # (T, 4H, B), [Γu ; Γf ; Γo ; c~]
        tanh_c: np.ndarray  # (T, H, B)

    @staticmethod
    def init(rng: np.random.Generator, E: int, H: int, peephole: bool = False) -> Params:
        s = 1.0 / np.sqrt(H)
        b = np.zeros(4 * H)
        b[H : 2 * H] = 1.0
        p = {"W": rng.uniform(-s, s, (H + E, 4 * H)), "b": b}
        if peephole:
            p["p"] = rng.uniform(-s, s, 3 * H)
        return p

    @staticmethod
    def prepare(p: Params) -> Params:
        H = p["b"].shape[0] // 4
        return _prepared(p, H, 3 * H)

    @staticmethod
    def forward(q: Params, x: "np.ndarray | Embedded", state: State):
        """x (T, B, E), or the first layer's Embedded ids; state (a<0>, c<0>), each (B, H)
        -> a<1..T> (T, B, H), (a<T>, c<T>), the cache."""
        x = _as_input(x)
        W_a, peep = q["W_a"], q.get("p")
        zx = _input_part(q, x)
        T, H4, B = zx.shape
        H = H4 // 4
        a = np.empty((T + 1, H, B), dtype=zx.dtype)
        c = np.empty((T + 1, H, B), dtype=zx.dtype)
        Z = np.empty((T, 4 * H, B), dtype=zx.dtype)
        tanh_c = np.empty((T, H, B), dtype=zx.dtype)
        fc = np.empty((H, B), dtype=zx.dtype)
        a[0], c[0] = state[0].T, state[1].T
        with np.errstate(over="ignore"):
            for t in range(T):
                z = Z[t]
                np.dot(W_a, a[t], out=z)
                z += zx[t]
                if peep is not None:
                    gates = z[: 3 * H].reshape(3, H, B)
                    gates += peep * c[t]
                _activate(z, 3 * H)  # Γu, Γf, Γo = σ(W[a<t-1>, x<t>] + b); c~<t> = tanh(Wc[...] + bc)
                np.multiply(z[:H], z[3 * H :], out=c[t + 1])
                np.multiply(z[H : 2 * H], c[t], out=fc)
                c[t + 1] += fc  # c<t> = Γu * c~<t> + Γf * c<t-1>
                np.tanh(c[t + 1], out=tanh_c[t])
                np.multiply(z[2 * H : 3 * H], tanh_c[t], out=a[t + 1])  # a<t> = Γo * tanh(c<t>)
        return _rows(a[1:]), (a[T].T.copy(), c[T].T.copy()), LSTM.Cache(x, a, c, Z, tanh_c)

    @staticmethod
    def backward(p: Params, cache: "LSTM.Cache", da: np.ndarray, dstate: State, grads: Params,
                 trace: np.ndarray | None = None):
        """da = dL/da<1..T> (T, B, H); dstate (da<T>, dc<T>), each (B, H), from the next window
        -> dx (T, B, E) (Embedded: the embedding's (V, E)), (da<0>, dc<0>); dW (H+E, 4H), db (4H,)
        and with peepholes dp (3H,) into grads."""
        x, a, c, Z, tanh_c = cache
        W = p["W"]
        dtype = np.result_type(W, Z)
        da = _columns(da, dtype)
        T, H, B = da.shape
        peep = p.get("p")
        W_a = W[:H]  # da<t-1> = W_a dz<t>: the forward's multiply, transposed
        dz = np.empty((T, 4 * H, B), dtype=da.dtype)
        da_next, dc = _state_columns(dstate[0], dtype), _state_columns(dstate[1], dtype)
        for t in range(T - 1, -1, -1):
            G, c_tilde = Z[t, : 3 * H], Z[t, 3 * H :]
            Gu, Gf, Go = G[:H], G[H : 2 * H], G[2 * H :]
            d = dz[t]
            da_next += da[t]
            if trace is not None:
                trace[t] = _mean_norm(da_next)
            dc += da_next * Go * (1.0 - tanh_c[t] ** 2)  # through a = Γo * tanh(c)
            np.multiply(dc, c_tilde, out=d[:H])  # dΓu = dc * c~<t>
            np.multiply(dc, c[t], out=d[H : 2 * H])  # dΓf = dc * c<t-1>
            np.multiply(da_next, tanh_c[t], out=d[2 * H : 3 * H])  # dΓo = da * tanh(c<t>)
            d[: 3 * H] *= G * (1.0 - G)  # σ' = Γ (1 - Γ)
            np.multiply(dc, Gu, out=d[3 * H :])
            d[3 * H :] *= 1.0 - c_tilde**2  # through c~ = tanh(.)
            dc *= Gf  # c<t-1> reaches c<t> through Γf
            if peep is not None:
                dc += (d[: 3 * H].reshape(3, H, B) * peep.reshape(3, H, 1)).sum(axis=0)
            np.dot(W_a, d, out=da_next)
        dx = _weight_grads(p, x, dz, H, grads, (a[:-1], slice(None)))
        if peep is not None:
            dzg = dz[:, : 3 * H].reshape(T, 3, H, B)
            grads["p"][:] = (dzg * c[:-1, None]).sum(axis=(0, 3)).reshape(3 * H)
        return dx, (da_next.T, dc.T)


CELLS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}

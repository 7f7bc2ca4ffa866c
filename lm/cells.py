"""Recurrent cells: a vanilla tanh RNN, the full GRU and the LSTM, each forward beside its backward.

Shapes: T time steps, B batch, E input size (embedding or the layer below), H hidden units.
Arrays are time-major: x (T, B, E), a (T, B, H).

Every cell keeps the notes' stacked weight W[a<t-1>, x<t>] as one array `W` of shape
(H + E, k*H): rows [:H] multiply a<t-1> (or c<t-1>), rows [H:] multiply x<t>, and the k
column blocks are the gates, in the order the docstring gives. It is the transpose of the
notes' W because our batches are rows. Keeping one array lets the input half of every gate
of all T steps be computed in one matrix multiply before the time loop, and the weight
gradients in one multiply over all T x B positions after it. Only the recurrent half is
multiplied step by step.

Speed, since the time loop is Python: a step does as few NumPy calls as it can. Gates use
σ(z) = (1 + tanh(z/2)) / 2 with the 1/2 folded into a scaled copy of W, so one tanh call
covers every gate and the candidate.

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


def _scaled(p: Params, gate_columns: int) -> Params:
    """W and b with the gate columns halved, so tanh of the product is 2σ(z) - 1; peepholes too."""
    W, b = p["W"].copy(), p["b"].copy()
    W[:, :gate_columns] *= 0.5
    b[:gate_columns] *= 0.5
    q = {"W": W, "b": b}
    if "p" in p:
        q["p"] = 0.5 * p["p"]
    return q


class Embedded(NamedTuple):
    """The first layer's input while it is still ids: x<t> = table[ids[t]], -1 for the zero vector.

    When the vocabulary is smaller than the T x B positions of a window (character models),
    the input half of the gates is cheaper as (table W[H:] + b)[ids], one product per vocabulary
    entry instead of one per position, and its gradients likewise: dz summed per id first.
    """

    ids: np.ndarray  # (T, B) int
    table: np.ndarray  # (V, E), the embedding Wax

    @staticmethod
    def worth_it(ids: np.ndarray, table: np.ndarray) -> bool:
        return table.shape[0] < ids.size

    def project(self, W_x: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(T, B, k*H): row V of the product is the zero vector's, b alone, which id -1 picks."""
        P = np.empty((self.table.shape[0] + 1, W_x.shape[1]), dtype=W_x.dtype)
        np.matmul(self.table, W_x, out=P[:-1])
        P[-1] = 0.0
        P += b
        return P[self.ids]

    def grads(self, dz2: np.ndarray, W_x: np.ndarray, dW_x: np.ndarray) -> np.ndarray:
        """dW_x into dW_x from dz2 (T*B, k*H); returns dL/dtable (V, E), the embedding's gradient."""
        ids = self.ids.reshape(-1)
        onehot = np.zeros((self.table.shape[0], ids.size), dtype=dz2.dtype)  # few rows: V < T*B
        known = np.flatnonzero(ids >= 0)
        onehot[ids[known], known] = 1.0
        dP = onehot @ dz2  # dz summed per id
        np.matmul(self.table.T, dP, out=dW_x)
        return dP @ W_x.T


def _input_part(W: np.ndarray, b: np.ndarray, x: "np.ndarray | Embedded", H: int) -> np.ndarray:
    """x<t> W[H:] + b for all T steps in one multiply: (T, B, k*H)."""
    if isinstance(x, Embedded):
        return x.project(W[H:], b)
    T, B, E = x.shape
    zx = x.reshape(T * B, E) @ W[H:]
    zx += b
    return zx.reshape(T, B, -1)


def _to_gates(z: np.ndarray) -> None:
    """In place: tanh(z/2) -> σ(z) = (1 + tanh(z/2)) / 2."""
    z *= 0.5
    z += 0.5


def _sigmoid_grad(G: np.ndarray) -> np.ndarray:
    """σ' = Γ (1 - Γ), from the gates themselves."""
    d = np.subtract(1.0, G)
    d *= G
    return d


def _tanh_grad(y: np.ndarray) -> np.ndarray:
    """tanh' = 1 - tanh², from the outputs themselves."""
    d = np.square(y)
    np.subtract(1.0, d, out=d)
    return d


def _mean_row_norm(d: np.ndarray) -> float:
    """The norm of each sequence's gradient (B, H), averaged over the batch."""
    return float(np.sqrt(np.square(d, dtype=np.float64).sum(axis=1)).mean())


def _weight_grads(p: Params, x: "np.ndarray | Embedded", dz: np.ndarray, H: int, grads: Params,
                  *recurrent: tuple[np.ndarray, slice]) -> np.ndarray:
    """dW and db into `grads`, and dx, from the pre-activation gradients dz (T, B, k*H) of all steps.

    recurrent: (input, columns) pairs: what multiplied W[:H, columns] at each step, (T, B, H).
    dx is (T, B, E), or for an Embedded input the gradient of its table.
    """
    T, B, _ = dz.shape
    dz2 = dz.reshape(T * B, -1)
    dW = grads["W"]
    for inp, cols in recurrent:
        np.matmul(inp.reshape(T * B, H).T, dz2[:, cols], out=dW[:H, cols])
    np.sum(dz2, axis=0, out=grads["b"])
    if isinstance(x, Embedded):
        return x.grads(dz2, p["W"][H:], dW[H:])
    E = x.shape[2]
    np.matmul(x.reshape(T * B, E).T, dz2, out=dW[H:])
    return (dz2 @ p["W"][H:].T).reshape(T, B, E)


class RNN:
    """Vanilla RNN:  a<t> = tanh(Wa[a<t-1>, x<t>] + ba).  W: (H+E, H), b: (H,)."""

    gates = 1
    state_size = 1

    class Cache(NamedTuple):
        x: np.ndarray  # (T, B, E)
        a: np.ndarray  # (T+1, B, H), a[0] = a<0>

    @staticmethod
    def init(rng: np.random.Generator, E: int, H: int, peephole: bool = False) -> Params:
        s = 1.0 / np.sqrt(H)
        return {"W": rng.uniform(-s, s, (H + E, H)), "b": np.zeros(H)}

    @staticmethod
    def prepare(p: Params) -> Params:
        return p

    @staticmethod
    def forward(q: Params, x: np.ndarray, state: State):
        H = q["b"].shape[0]
        Wa_a = q["W"][:H]
        zx = _input_part(q["W"], q["b"], x, H)
        T, B, _ = zx.shape
        a = np.empty((T + 1, B, H), dtype=zx.dtype)
        a[0] = state[0]
        for t in range(T):
            np.matmul(a[t], Wa_a, out=a[t + 1])
            a[t + 1] += zx[t]
            np.tanh(a[t + 1], out=a[t + 1])  # a<t> = tanh(Wa[a<t-1>, x<t>] + ba)
        return a[1:], (a[T].copy(),), RNN.Cache(x, a)

    @staticmethod
    def backward(p: Params, cache: "RNN.Cache", da: np.ndarray, dstate: State, grads: Params,
                 trace: np.ndarray | None = None):
        x, a = cache
        T = da.shape[0]
        H = p["b"].shape[0]
        Wa_a_T = np.ascontiguousarray(p["W"][:H].T)  # contiguous: the per-step multiply runs faster
        dz = _tanh_grad(a[1:])  # tanh' = 1 - a<t>², then times the incoming gradient
        da_next = dstate[0].copy()
        for t in range(T - 1, -1, -1):
            da_next += da[t]
            if trace is not None:
                trace[t] = _mean_row_norm(da_next)
            dz[t] *= da_next
            np.matmul(dz[t], Wa_a_T, out=da_next)
        dx = _weight_grads(p, x, dz, H, grads, (a[:-1], slice(None)))
        return dx, (da_next,)


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
        x: np.ndarray  # (T, B, E)
        c: np.ndarray  # (T+1, B, H), c[0] = c<0>
        G: np.ndarray  # (T, B, 2H), [Γu | Γr]
        c_tilde: np.ndarray  # (T, B, H)
        rc: np.ndarray  # (T, B, H), Γr * c<t-1>

    @staticmethod
    def init(rng: np.random.Generator, E: int, H: int, peephole: bool = False) -> Params:
        s = 1.0 / np.sqrt(H)
        return {"W": rng.uniform(-s, s, (H + E, 3 * H)), "b": np.zeros(3 * H)}

    @staticmethod
    def prepare(p: Params) -> Params:
        return _scaled(p, 2 * p["b"].shape[0] // 3)

    @staticmethod
    def forward(q: Params, x: np.ndarray, state: State):
        H = q["b"].shape[0] // 3
        W, b = q["W"], q["b"]
        Wur_a, Wc_a = W[:H, : 2 * H], W[:H, 2 * H :]
        zx = _input_part(W, b, x, H)
        T, B, _ = zx.shape
        c = np.empty((T + 1, B, H), dtype=zx.dtype)
        G = np.empty((T, B, 2 * H), dtype=zx.dtype)
        c_tilde = np.empty((T, B, H), dtype=zx.dtype)
        rc = np.empty((T, B, H), dtype=zx.dtype)
        c[0] = state[0]
        for t in range(T):
            np.matmul(c[t], Wur_a, out=G[t])
            G[t] += zx[t, :, : 2 * H]
            np.tanh(G[t], out=G[t])
            _to_gates(G[t])  # Γu, Γr = σ(W[c<t-1>, x<t>] + b)
            np.multiply(G[t, :, H:], c[t], out=rc[t])
            np.matmul(rc[t], Wc_a, out=c_tilde[t])
            c_tilde[t] += zx[t, :, 2 * H :]
            np.tanh(c_tilde[t], out=c_tilde[t])  # c~<t> = tanh(Wc[Γr * c<t-1>, x<t>] + bc)
            np.subtract(c_tilde[t], c[t], out=c[t + 1])
            c[t + 1] *= G[t, :, :H]
            c[t + 1] += c[t]  # c<t> = Γu * c~<t> + (1 - Γu) * c<t-1>
        return c[1:], (c[T].copy(),), GRU.Cache(x, c, G, c_tilde, rc)

    @staticmethod
    def backward(p: Params, cache: "GRU.Cache", da: np.ndarray, dstate: State, grads: Params,
                 trace: np.ndarray | None = None):
        x, c, G, c_tilde, rc = cache
        T, B, H = da.shape
        W = p["W"]
        Wur_a_T, Wc_a_T = np.ascontiguousarray(W[:H, : 2 * H].T), np.ascontiguousarray(W[:H, 2 * H :].T)
        Gu, Gr = G[:, :, :H], G[:, :, H:]
        # dz = [dc * K_u | drc * K_r | dc * K_c]: the factors of every step at once.
        K = _sigmoid_grad(G)
        K[:, :, :H] *= c_tilde - c[:-1]  # dΓu = dc * (c~ - c<t-1>)
        K[:, :, H:] *= c[:-1]  # dΓr = d(Γr * c<t-1>) * c<t-1>
        K_c = _tanh_grad(c_tilde)
        K_c *= Gu  # through c~ = tanh(.), weighted by Γu
        keep = np.subtract(1.0, Gu)
        dz = np.empty((T, B, 3 * H), dtype=da.dtype)
        dc = dstate[0].copy()
        drc = np.empty((B, H), dtype=da.dtype)
        back = np.empty((B, H), dtype=da.dtype)
        for t in range(T - 1, -1, -1):
            dc += da[t]
            if trace is not None:
                trace[t] = _mean_row_norm(dc)
            np.multiply(dc, K_c[t], out=dz[t, :, 2 * H :])
            np.matmul(dz[t, :, 2 * H :], Wc_a_T, out=drc)
            np.multiply(dc, K[t, :, :H], out=dz[t, :, :H])
            np.multiply(drc, K[t, :, H:], out=dz[t, :, H : 2 * H])
            dc *= keep[t]  # c<t-1> directly, through (1 - Γu)
            drc *= Gr[t]  # and through Γr * c<t-1>
            dc += drc
            np.matmul(dz[t, :, : 2 * H], Wur_a_T, out=back)  # and through the gates
            dc += back
        # The candidate block's recurrent input was Γr * c<t-1>, the gates' c<t-1>.
        dx = _weight_grads(p, x, dz, H, grads, (c[:-1], slice(0, 2 * H)), (rc, slice(2 * H, 3 * H)))
        return dx, (dc,)


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
        x: np.ndarray  # (T, B, E)
        a: np.ndarray  # (T+1, B, H), a[0] = a<0>
        c: np.ndarray  # (T+1, B, H), c[0] = c<0>
        Z: np.ndarray  # (T, B, 4H), [Γu | Γf | Γo | c~]
        tanh_c: np.ndarray  # (T, B, H)

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
        return _scaled(p, 3 * p["b"].shape[0] // 4)

    @staticmethod
    def forward(q: Params, x: np.ndarray, state: State):
        H = q["b"].shape[0] // 4
        W, b = q["W"], q["b"]
        W_a = W[:H]
        peep = None if "p" not in q else q["p"].reshape(3, H)
        zx = _input_part(W, b, x, H)
        T, B, _ = zx.shape
        a = np.empty((T + 1, B, H), dtype=zx.dtype)
        c = np.empty((T + 1, B, H), dtype=zx.dtype)
        Z = np.empty((T, B, 4 * H), dtype=zx.dtype)
        tanh_c = np.empty((T, B, H), dtype=zx.dtype)
        fc = np.empty((B, H), dtype=zx.dtype)
        a[0], c[0] = state
        for t in range(T):
            z = Z[t]
            np.matmul(a[t], W_a, out=z)
            z += zx[t]
            if peep is not None:
                z.reshape(B, 4, H)[:, :3] += peep * c[t][:, None, :]
            np.tanh(z, out=z)  # c~<t> = tanh(Wc[a<t-1>, x<t>] + bc) in the last block
            _to_gates(z[:, : 3 * H])  # Γu, Γf, Γo = σ(W[a<t-1>, x<t>] + b)
            np.multiply(z[:, :H], z[:, 3 * H :], out=c[t + 1])
            np.multiply(z[:, H : 2 * H], c[t], out=fc)
            c[t + 1] += fc  # c<t> = Γu * c~<t> + Γf * c<t-1>
            np.tanh(c[t + 1], out=tanh_c[t])
            np.multiply(z[:, 2 * H : 3 * H], tanh_c[t], out=a[t + 1])  # a<t> = Γo * tanh(c<t>)
        return a[1:], (a[T].copy(), c[T].copy()), LSTM.Cache(x, a, c, Z, tanh_c)

    @staticmethod
    def backward(p: Params, cache: "LSTM.Cache", da: np.ndarray, dstate: State, grads: Params,
                 trace: np.ndarray | None = None):
        x, a, c, Z, tanh_c = cache
        T, B, H = da.shape
        peep = p.get("p")
        W_a_T = np.ascontiguousarray(p["W"][:H].T)  # contiguous: the per-step multiply runs faster
        dz = np.empty((T, B, 4 * H), dtype=da.dtype)
        da_next, dc = dstate[0].copy(), dstate[1].copy()
        for t in range(T - 1, -1, -1):
            G, c_tilde = Z[t, :, : 3 * H], Z[t, :, 3 * H :]
            Gu, Gf, Go = G[:, :H], G[:, H : 2 * H], G[:, 2 * H :]
            da_next += da[t]
            if trace is not None:
                trace[t] = _mean_row_norm(da_next)
            dc += da_next * Go * (1.0 - tanh_c[t] ** 2)  # through a = Γo * tanh(c)
            np.multiply(dc, c_tilde, out=dz[t, :, :H])  # dΓu = dc * c~<t>
            np.multiply(dc, c[t], out=dz[t, :, H : 2 * H])  # dΓf = dc * c<t-1>
            np.multiply(da_next, tanh_c[t], out=dz[t, :, 2 * H : 3 * H])  # dΓo = da * tanh(c<t>)
            dz[t, :, : 3 * H] *= G * (1.0 - G)  # σ' = Γ (1 - Γ)
            np.multiply(dc, Gu, out=dz[t, :, 3 * H :])
            dz[t, :, 3 * H :] *= 1.0 - c_tilde**2  # through c~ = tanh(.)
            dc *= Gf  # c<t-1> reaches c<t> through Γf
            if peep is not None:
                dc += (dz[t, :, : 3 * H].reshape(B, 3, H) * peep.reshape(3, H)).sum(axis=1)
            np.matmul(dz[t], W_a_T, out=da_next)
        dx = _weight_grads(p, x, dz, H, grads, (a[:-1], slice(None)))
        if peep is not None:
            dzg = dz[:, :, : 3 * H].reshape(T * B, 3, H)
            grads["p"][:] = (dzg * c[:-1].reshape(T * B, 1, H)).sum(axis=0).reshape(3 * H)
        return dx, (da_next, dc)


CELLS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}

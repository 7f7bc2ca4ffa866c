"""Recurrent cells: a vanilla tanh RNN, the full GRU and the LSTM, each forward beside its backward.

Shapes: T time steps, B batch, E input size (embedding or the layer below), H hidden units.
Arrays are time-major: x (T, B, E), a (T, B, H).

Every cell keeps the notes' stacked weight W[a<t-1>, x<t>] as one array `W` of shape
(H + E, k*H): rows [:H] multiply a<t-1> (or c<t-1>), rows [H:] multiply x<t>, and the k
column blocks are the gates, in the order the docstring gives. It is the transpose of the
notes' W because our batches are rows. Keeping one array lets the input half of every gate
of all T steps be computed in one matrix multiply before the time loop, and the weight
gradients in one multiply after it.

State is a tuple: (a,) for the RNN, (c,) for the GRU (where a = c), (a, c) for the LSTM,
so nothing outside this module special-cases a cell.

forward(p, x, state) -> (a, state_T, cache): the outputs a<1..T> and the last state.
backward(p, cache, da, dstate_T) -> (dx, grads, dstate_0): da is dL/da<1..T> from above,
dstate_T the gradient reaching the last state from the next chunk (zeros in truncated BPTT).
"""

from typing import NamedTuple

import numpy as np

from .ops import sigmoid

State = tuple[np.ndarray, ...]
Params = dict[str, np.ndarray]


def _input_part(p: Params, x: np.ndarray, H: int) -> np.ndarray:
    """x<t> W[H:] + b for all T steps in one multiply: (T, B, k*H)."""
    T, B, E = x.shape
    zx = x.reshape(T * B, E) @ p["W"][H:]
    zx += p["b"]
    return zx.reshape(T, B, -1)


def _weight_grads(p: Params, x: np.ndarray, dz: np.ndarray, H: int, *recurrent: tuple[np.ndarray, slice]):
    """dW, db and dx from the pre-activation gradients dz (T, B, k*H) of all steps at once.

    recurrent: (input, columns) pairs: what multiplied W[:H, columns] at each step, (T, B, H).
    """
    T, B, E = x.shape
    dz2 = dz.reshape(T * B, -1)
    dW = np.empty_like(p["W"])
    for inp, cols in recurrent:
        np.matmul(inp.reshape(T * B, H).T, dz2[:, cols], out=dW[:H, cols])
    np.matmul(x.reshape(T * B, E).T, dz2, out=dW[H:])
    dx = (dz2 @ p["W"][H:].T).reshape(T, B, E)
    return dx, {"W": dW, "b": dz2.sum(axis=0)}


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
    def forward(p: Params, x: np.ndarray, state: State):
        T, B, _ = x.shape
        H = p["b"].shape[0]
        Wa_a = p["W"][:H]
        zx = _input_part(p, x, H)
        a = np.empty((T + 1, B, H), dtype=x.dtype)
        a[0] = state[0]
        for t in range(T):
            z = np.matmul(a[t], Wa_a, out=a[t + 1])
            z += zx[t]
            np.tanh(z, out=a[t + 1])  # a<t> = tanh(Wa[a<t-1>, x<t>] + ba)
        return a[1:], (a[T],), RNN.Cache(x, a)

    @staticmethod
    def backward(p: Params, cache: "RNN.Cache", da: np.ndarray, dstate: State):
        x, a = cache
        T = x.shape[0]
        H = p["b"].shape[0]
        Wa_a_T = p["W"][:H].T
        dz = np.empty_like(da)
        da_next = dstate[0]
        for t in range(T - 1, -1, -1):
            np.add(da[t], da_next, out=dz[t])
            dz[t] *= 1.0 - a[t + 1] ** 2  # tanh' = 1 - a<t>²
            da_next = dz[t] @ Wa_a_T
        dx, grads = _weight_grads(p, x, dz, H, (a[:-1], slice(None)))
        return dx, grads, (da_next,)


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
    def forward(p: Params, x: np.ndarray, state: State):
        T, B, _ = x.shape
        H = p["b"].shape[0] // 3
        W = p["W"]
        Wur_a, Wc_a = W[:H, : 2 * H], W[:H, 2 * H :]
        zx = _input_part(p, x, H)
        c = np.empty((T + 1, B, H), dtype=x.dtype)
        G = np.empty((T, B, 2 * H), dtype=x.dtype)
        c_tilde = np.empty((T, B, H), dtype=x.dtype)
        rc = np.empty((T, B, H), dtype=x.dtype)
        c[0] = state[0]
        for t in range(T):
            z = np.matmul(c[t], Wur_a, out=G[t])
            z += zx[t, :, : 2 * H]
            sigmoid(z, out=G[t])  # Γu, Γr = σ(W[c<t-1>, x<t>] + b)
            Gu, Gr = G[t, :, :H], G[t, :, H:]
            np.multiply(Gr, c[t], out=rc[t])
            z = np.matmul(rc[t], Wc_a, out=c_tilde[t])
            z += zx[t, :, 2 * H :]
            np.tanh(z, out=c_tilde[t])  # c~<t> = tanh(Wc[Γr * c<t-1>, x<t>] + bc)
            np.subtract(c_tilde[t], c[t], out=c[t + 1])
            c[t + 1] *= Gu
            c[t + 1] += c[t]  # c<t> = Γu * c~<t> + (1 - Γu) * c<t-1>
        return c[1:], (c[T],), GRU.Cache(x, c, G, c_tilde, rc)

    @staticmethod
    def backward(p: Params, cache: "GRU.Cache", da: np.ndarray, dstate: State):
        x, c, G, c_tilde, rc = cache
        T, B, H = da.shape
        W = p["W"]
        Wur_a_T, Wc_a_T = W[:H, : 2 * H].T, W[:H, 2 * H :].T
        dz = np.empty((T, B, 3 * H), dtype=da.dtype)
        dc_next = dstate[0]
        for t in range(T - 1, -1, -1):
            Gu, Gr = G[t, :, :H], G[t, :, H:]
            dc = da[t] + dc_next
            dz_u, dz_r, dz_c = dz[t, :, :H], dz[t, :, H : 2 * H], dz[t, :, 2 * H :]
            np.multiply(dc, Gu, out=dz_c)
            dz_c *= 1.0 - c_tilde[t] ** 2  # through c~ = tanh(.)
            drc = dz_c @ Wc_a_T
            np.subtract(c_tilde[t], c[t], out=dz_u)
            dz_u *= dc  # dΓu = dc * (c~ - c<t-1>)
            np.multiply(drc, c[t], out=dz_r)  # dΓr = d(Γr * c<t-1>) * c<t-1>
            dz[t, :, : 2 * H] *= G[t] * (1.0 - G[t])  # σ' = Γ (1 - Γ)
            dc_next = dc * (1.0 - Gu) + drc * Gr + dz[t, :, : 2 * H] @ Wur_a_T
        # The candidate block's recurrent input was Γr * c<t-1>, the gates' c<t-1>.
        dx, grads = _weight_grads(p, x, dz, H, (c[:-1], slice(0, 2 * H)), (rc, slice(2 * H, 3 * H)))
        return dx, grads, (dc_next,)


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
        G: np.ndarray  # (T, B, 3H), [Γu | Γf | Γo]
        c_tilde: np.ndarray  # (T, B, H)
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
    def forward(p: Params, x: np.ndarray, state: State):
        T, B, _ = x.shape
        H = p["b"].shape[0] // 4
        W_a = p["W"][:H]
        peep = p.get("p")
        zx = _input_part(p, x, H)
        a = np.empty((T + 1, B, H), dtype=x.dtype)
        c = np.empty((T + 1, B, H), dtype=x.dtype)
        G = np.empty((T, B, 3 * H), dtype=x.dtype)
        c_tilde = np.empty((T, B, H), dtype=x.dtype)
        tanh_c = np.empty((T, B, H), dtype=x.dtype)
        z = np.empty((B, 4 * H), dtype=x.dtype)
        a[0], c[0] = state
        for t in range(T):
            np.matmul(a[t], W_a, out=z)
            z += zx[t]
            if peep is not None:
                z.reshape(B, 4, H)[:, :3] += peep.reshape(3, H) * c[t][:, None, :]
            sigmoid(z[:, : 3 * H], out=G[t])  # Γu, Γf, Γo = σ(W[a<t-1>, x<t>] + b)
            np.tanh(z[:, 3 * H :], out=c_tilde[t])  # c~<t> = tanh(Wc[a<t-1>, x<t>] + bc)
            Gu, Gf, Go = G[t, :, :H], G[t, :, H : 2 * H], G[t, :, 2 * H :]
            np.multiply(Gu, c_tilde[t], out=c[t + 1])
            c[t + 1] += Gf * c[t]  # c<t> = Γu * c~<t> + Γf * c<t-1>
            np.tanh(c[t + 1], out=tanh_c[t])
            np.multiply(Go, tanh_c[t], out=a[t + 1])  # a<t> = Γo * tanh(c<t>)
        return a[1:], (a[T], c[T]), LSTM.Cache(x, a, c, G, c_tilde, tanh_c)

    @staticmethod
    def backward(p: Params, cache: "LSTM.Cache", da: np.ndarray, dstate: State):
        x, a, c, G, c_tilde, tanh_c = cache
        T, B, H = da.shape
        W_a_T = p["W"][:H].T
        peep = p.get("p")
        dz = np.empty((T, B, 4 * H), dtype=da.dtype)
        da_next, dc_next = dstate
        for t in range(T - 1, -1, -1):
            Gu, Gf, Go = G[t, :, :H], G[t, :, H : 2 * H], G[t, :, 2 * H :]
            da_t = da[t] + da_next
            dc = dc_next + da_t * Go * (1.0 - tanh_c[t] ** 2)  # through a = Γo * tanh(c)
            np.multiply(dc, c_tilde[t], out=dz[t, :, :H])  # dΓu
            np.multiply(dc, c[t], out=dz[t, :, H : 2 * H])  # dΓf
            np.multiply(da_t, tanh_c[t], out=dz[t, :, 2 * H : 3 * H])  # dΓo
            dz[t, :, : 3 * H] *= G[t] * (1.0 - G[t])  # σ' = Γ (1 - Γ)
            np.multiply(dc, Gu, out=dz[t, :, 3 * H :])
            dz[t, :, 3 * H :] *= 1.0 - c_tilde[t] ** 2  # through c~ = tanh(.)
            dc_next = dc * Gf
            if peep is not None:
                dc_next += (dz[t, :, : 3 * H].reshape(B, 3, H) * peep.reshape(3, H)).sum(axis=1)
            da_next = dz[t] @ W_a_T
        dx, grads = _weight_grads(p, x, dz, H, (a[:-1], slice(None)))
        if peep is not None:
            dzg = dz[:, :, : 3 * H].reshape(T * B, 3, H)
            grads["p"] = (dzg * c[:-1].reshape(T * B, 1, H)).sum(axis=0).reshape(3 * H)
        return dx, grads, (da_next, dc_next)


CELLS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}

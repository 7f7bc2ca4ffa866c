"""The model, batching, clipping, sampler, scorer and training, through the library's API."""

import importlib
import math
import warnings

import numpy as np
import pytest

import lm
from lm import optim, parallel, score
from lm.card import card
from lm.cells import Embedded
from lm.config import ModelConfig, TokenizerConfig, TrainConfig
from lm.data import Batches, split_tail
from lm.model import Model
from lm.ops import target_logprobs
from lm.sample import choice, sample, sample_many
from lm.score import logprobs, rank, score_sentence, score_stream, stream_nats
from lm.tokenizer import Tokenizer
from lm.train import Trainer

CELLS = ["rnn", "gru", "lstm"]


def _model(cell="lstm", V=11, layers=2, dtype=np.float32, seed=0, peephole=False):
    cfg = ModelConfig(vocab=V, cell=cell, layers=layers, hidden=8, embed=6, peephole=peephole)
    return Model.init(cfg, np.random.default_rng(seed), dtype=dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_fresh_model_loss_is_a_uniform_guess(cell):
    """min-char-rnn's free check: before training, the loss per token is about log V."""
    model = _model(cell, V=50)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 50, (20, 8)), rng.integers(0, 50, (20, 8))
    loss, _, _ = model.loss_and_grads(x, y, model.zero_state(8))
    assert abs(loss / y.size - math.log(50)) < 0.05


@pytest.mark.parametrize("cell", CELLS)
def test_one_step_at_a_time_equals_the_whole_window(cell):
    """Carrying the state through T calls of one step gives the same logits as one call of T steps."""
    model = _model(cell, dtype=np.float64, peephole=cell == "lstm")
    ids = np.random.default_rng(2).integers(0, 11, (7, 3))
    whole, final, _ = model.forward(ids, model.zero_state(3))
    state = model.zero_state(3)
    for t in range(7):
        step, state, _ = model.forward(ids[t : t + 1], state)
        np.testing.assert_allclose(step[0], whole[t], rtol=1e-12, atol=1e-12)
    for s_layer, f_layer in zip(state, final):
        for s, f in zip(s_layer, f_layer):
            np.testing.assert_allclose(s, f, rtol=1e-12, atol=1e-12)


def _notes_layer(cell, p, x, H):
    """The notes' equations written out plainly, a row per sequence: x (T, B, E) -> a (T, B, H)."""
    sigma = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    W, b = p["W"], p["b"]
    a = c = np.zeros((x.shape[1], H))
    out = []
    for x_t in x:
        if cell == "rnn":
            a = np.tanh(np.hstack([a, x_t]) @ W + b)
        elif cell == "gru":
            u = sigma(np.hstack([c, x_t]) @ W[:, :H] + b[:H])
            r = sigma(np.hstack([c, x_t]) @ W[:, H : 2 * H] + b[H : 2 * H])
            c_tilde = np.tanh(np.hstack([r * c, x_t]) @ W[:, 2 * H :] + b[2 * H :])
            a = c = u * c_tilde + (1 - u) * c
        else:
            z = np.hstack([a, x_t]) @ W + b
            u, f, o = (sigma(z[:, k * H : (k + 1) * H] + p["p"][k * H : (k + 1) * H] * c) for k in range(3))
            c = u * np.tanh(z[:, 3 * H :]) + f * c
            a = o * np.tanh(c)
        out.append(a)
    return np.array(out)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("V", [4, 40])  # the embedding table's product picked per id (Embedded), and not
@pytest.mark.parametrize("gain", [1.0, 60.0])  # 60: gates saturate, e^-z overflows float64 too
def test_cells_compute_the_notes_equations(cell, V, gain):
    """The fast path (columns, σ and tanh from one exp, prepared weights) against the equations
    written out plainly, with the gates saturated too, and no floating-point warning escaping."""
    model = _model(cell, V=V, layers=1, dtype=np.float64, peephole=cell == "lstm")
    for k, v in model.params.items():
        v *= gain
    ids = np.random.default_rng(4).integers(0, V, (6, 3))
    ids[0, 1] = -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's default error handling, as a user runs it
        a, _, caches = model.run_layers(ids, model.zero_state(3))
    assert isinstance(caches[0].x, Embedded) == (V == 4)
    x = model.params["Wax"][ids] * (ids >= 0)[..., None]
    p = {k[len("layers.0.") :]: v for k, v in model.params.items() if k.startswith("layers.0.")}
    with np.errstate(over="ignore"):
        expected = _notes_layer(cell, p, x, 8)
    np.testing.assert_allclose(a, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_weights_prepared_for_a_long_run_pick_from_the_table_product_made_once(cell):
    """Sampling and scoring prepare once for the whole run: one short window then picks the input
    part from the table product made by prepare, and gets what the plain product gives."""
    model = _model(cell, V=4, dtype=np.float64)
    ids = np.array([[2, -1, 0]])  # one step of three sequences, one of them padding
    once = model.prepare(positions=10_000)
    assert "P" in once[0] and "P" not in model.prepare(positions=ids.size)[0]
    a, _, caches = model.run_layers(ids, model.zero_state(3), once)
    plain, _, plain_caches = model.run_layers(ids, model.zero_state(3))
    assert isinstance(caches[0].x, Embedded) and not isinstance(plain_caches[0].x, Embedded)
    np.testing.assert_allclose(a, plain, rtol=1e-12, atol=1e-14)
    assert "P" not in _model(cell, V=40).prepare(positions=10**9)[0]  # vocabulary over the embedding size

@pytest.mark.parametrize("layout", ["contiguous", "a view with contiguous runs", "runs not contiguous"])
def test_the_first_two_axes_swap_alike_however_the_runs_lie(layout):
    """cells._swap copies each contiguous run of the last axis as one item, else value by value."""
    from lm.cells import _swap

    x = np.arange(4 * 3 * 10, dtype=np.float32).reshape(4, 3, 10)
    x = {"contiguous": x, "a view with contiguous runs": np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2),
         "runs not contiguous": x[:, :, ::2]}[layout]
    np.testing.assert_array_equal(_swap(x), x.transpose(1, 0, 2))
    wide = _swap(x, np.float64)
    assert wide.dtype == np.float64 and np.array_equal(wide, x.transpose(1, 0, 2))
    out = np.zeros((4, 4, x.shape[2]), np.float32)
    _swap(x, out=out[1:])
    assert np.array_equal(out[1:], x.transpose(1, 0, 2)) and not out[0].any()
    step = x[:1]  # a sampling step's one time step: already in the swapped order, not copied
    assert np.array_equal(_swap(step), step.transpose(1, 0, 2))
    assert np.shares_memory(_swap(step), step) == (layout == "contiguous")


def test_float32_agrees_with_float64():
    m64 = _model("gru", dtype=np.float64)
    m32 = m64.astype(np.float32)
    ids = np.random.default_rng(3).integers(0, 11, (9, 4))
    a, _, _ = m64.forward(ids, m64.zero_state(4))
    b, _, _ = m32.forward(ids, m32.zero_state(4))
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_batches_cut_parallel_streams_and_carry_them_across_windows():
    ids = np.arange(1, 41, dtype=np.int32)
    batches = Batches(ids, start_id=-1, batch_size=4, seq_len=3)
    windows = list(batches)
    assert len(batches) == len(windows) == 4  # 10 steps per stream: 3 + 3 + 3 + 1
    xs = np.concatenate([x for x, _ in windows])
    ys = np.concatenate([y for _, y in windows])
    assert xs.shape == ys.shape == (10, 4)
    np.testing.assert_array_equal(ys[:, 1], np.arange(11, 21))  # stream 1 continues across windows
    np.testing.assert_array_equal(xs[1:], ys[:-1])  # each input is the previous target
    assert xs[0, 0] == -1 and xs[0, 1] == 10


def test_batches_refuse_a_corpus_shorter_than_a_batch():
    with pytest.raises(lm.LMError, match="batch-size"):
        Batches(np.arange(5, dtype=np.int32), -1, batch_size=4, seq_len=3)


def test_validation_tail_starts_at_a_sentence():
    ids = np.array([5, 6, 0, 7, 8, 9, 0, 5, 0, 6, 6, 0], dtype=np.int32)
    train, valid = split_tail(ids, 0.5, eos_id=0)  # the plain cut, 6, falls inside "7 8 9"
    assert train.tolist() == ids[:7].tolist() and valid.tolist() == ids[7:].tolist()
    assert split_tail(ids, 0.0, 0)[1].size == 0
    last_is_long = np.array([5, 0, 6, 7, 8, 9, 9, 9, 0], dtype=np.int32)  # no sentence starts in the tail
    assert split_tail(last_is_long, 0.3, eos_id=0)[1].tolist() == last_is_long[2:].tolist()


def _clip(grad, max_norm, max_value):
    squares, by_value = optim.sum_of_squares(grad, max_value)
    return optim.clip_factor(squares, max_norm, by_value)


def test_clipping_by_norm_and_by_value():
    grad = np.array([3.0, 4.0, 0.0])
    norm, scale, clipped = _clip(grad, max_norm=1.0, max_value=0)
    assert norm == pytest.approx(5.0) and clipped and scale == pytest.approx(0.2)
    assert np.linalg.norm(grad * scale) == pytest.approx(1.0)
    grad = np.array([3.0, -4.0, 0.5])
    _, scale, clipped = _clip(grad, max_norm=0, max_value=1.0)
    assert clipped and scale == 1.0 and grad.tolist() == [1.0, -1.0, 0.5]
    grad = np.array([-3.0, 0.5])  # only a negative element past the bound
    assert _clip(grad, max_norm=0, max_value=1.0) == (pytest.approx(1.25 ** 0.5), 1.0, True)
    assert grad.tolist() == [-1.0, 0.5]
    assert _clip(np.array([0.3]), 5.0, 1.0) == (pytest.approx(0.3), 1.0, False)
    assert _clip(np.zeros(0), 5.0, 1.0) == (0.0, 1.0, False)  # an empty part of the gradient


def test_clipping_by_value_in_a_window_with_no_embedding_rows():
    """SGD updates only the embedding rows of the window's inputs; inputs that are all x<1> = 0
    (a character model's first window at batch 1 and seq-len 1) leave none."""
    tok = Tokenizer.fit("abc", TokenizerConfig(tokenizer="char"))
    model = Model.init(ModelConfig(vocab=len(tok), hidden=4, embed=3), np.random.default_rng(0))
    trainer = Trainer(model, TrainConfig(seq_len=1, batch_size=1, optimizer="sgd", clip_value=0.5))
    x, y = np.full((1, 1), -1), np.ones((1, 1), dtype=np.int64)
    loss, norm, _ = trainer.step(x, y, 0.1)
    assert math.isfinite(loss) and math.isfinite(norm)
    trainer.close()


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizers_fold_the_clipping_factor_into_the_step(name):
    """Stepping with scale s is stepping with the gradient times s, for both optimizers."""
    rng = np.random.default_rng(0)
    theta, grad = rng.normal(size=50), rng.normal(size=50)
    folded, scaled = theta.copy(), theta.copy()
    a, b = optim.make(name, 50, np.float64), optim.make(name, 50, np.float64)
    for _ in range(3):
        a.step(folded, grad.copy(), 0.1, scale=0.25)
        b.step(scaled, grad * 0.25, 0.1)
    np.testing.assert_allclose(folded, scaled, rtol=1e-12)
    assert not np.allclose(folded, theta)


@pytest.mark.parametrize("seed, eps, reference_step", [
    # Kingma & Ba's Algorithm 1, written out (with ε = 0, where it and the faster form agree exactly).
    (1, 0.0, lambda t, m, v: (m / (1 - 0.9**t)) / np.sqrt(v / (1 - 0.999**t))),
    # The faster form we use, θ <- θ - α_t m / (√v + ε), α_t = α √(1 - β2^t) / (1 - β1^t), with an ε
    # large enough to matter.
    (2, 0.1, lambda t, m, v: np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 0.1)),
], ids=["algorithm-1", "faster-form-epsilon"])
def test_adam_matches_its_definition(seed, eps, reference_step):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=20)
    ours, ref = theta.copy(), theta.copy()
    adam = optim.Adam(20, np.float64, eps=eps)
    m = v = np.zeros(20)
    for t in range(1, 5):
        g = rng.normal(size=20)
        adam.step(ours, g.copy(), 0.01)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref -= 0.01 * reference_step(t, m, v)
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


# A small word corpus whose sentences the model can learn by heart.
SENTENCES = [
    "the cat sat on the mat .",
    "the dog ate the bone .",
    "a bird sang in the tree .",
    "the cook made a pear salad .",
]


@pytest.fixture(scope="module")
def word_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("word") / "corpus.txt"
    path.write_text("\n".join(SENTENCES * 30) + "\n")
    model_path = path.with_name("m.npz")
    result = lm.train(path, model_path, tokenizer="whitespace", hidden=32, embed=16, epochs=12,
                      seq_len=12, batch_size=4, lr=0.01, valid_fraction=0.1, seed=3)
    return lm.load(model_path), result


def test_training_loss_falls_and_the_corpus_is_learned(word_model):
    ckpt, result = word_model
    losses = [h.train_loss for h in result.history]
    assert losses[-1] < losses[0] / 3
    # The sentences are deterministic given their first word or two: almost perfectly learned.
    assert result.best_valid_loss < 0.5
    assert ckpt.meta["best_valid_loss"] == pytest.approx(result.best_valid_loss)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """ŷ = softmax(logits), written plainly in float64: the reference for the fused versions."""
    e = np.exp(logits.astype(np.float64) - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_next_token_probabilities_sum_to_one(word_model):
    """The scorer's fused log-softmax, asked for every possible next token at each position."""
    ckpt, _ = word_model
    ids = np.array([[ckpt.tokenizer.start_id, 3, 4, 5]]).T
    logits, _, _ = ckpt.model.forward(ids, ckpt.model.zero_state(1))
    T, V = len(ids), logits.shape[-1]
    every = target_logprobs(np.repeat(logits.reshape(T, V), V, axis=0), np.tile(np.arange(V), T))
    np.testing.assert_allclose(np.exp(every).reshape(T, V).sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.exp(every).reshape(T, V), _softmax(logits.reshape(T, V)), rtol=1e-5, atol=1e-9)


def test_a_certain_token_has_log_probability_at_most_zero():
    """The float32 row sum rounds below e^logit for about half of all logits: a one-token
    vocabulary (or any near-certain token) scored log P > 0, perplexity below 1."""
    logits = np.linspace(-50, 50, 999, dtype=np.float32)[:, None]
    rounded = logits[:, 0].astype(np.float64) - np.log(np.exp(logits[:, 0]).astype(np.float64))
    assert (rounded > 0).sum() > 100  # what the unclamped difference gives
    assert (target_logprobs(logits.copy(), np.zeros(999, dtype=int)) <= 0.0).all()


def test_sentence_logprob_is_the_sum_of_its_token_logprobs(word_model):
    ckpt, _ = word_model
    s = score_sentence(ckpt.model, ckpt.tokenizer, "the cat sat on the mat .")
    assert s.tokens[-1] == "<EOS>" and len(s.tokens) == 8
    # Independently: feed one token at a time and multiply the softmax probabilities.
    model, tok = ckpt.model, ckpt.tokenizer
    state, prev, total = model.zero_state(1), tok.start_id, 0.0
    for t in s.tokens:
        logits, state, _ = model.forward(np.array([[prev]]), state)
        prev = tok.index[t]
        total += math.log(_softmax(logits[0, 0])[prev])
    assert s.logprob == pytest.approx(total, rel=1e-5)
    assert s.perplexity == pytest.approx(math.exp(-total / 8), rel=1e-5)


def test_seen_sentence_beats_a_scrambled_one_and_unknown_words_are_counted(word_model):
    ckpt, _ = word_model
    seen = score_sentence(ckpt.model, ckpt.tokenizer, "the cook made a pear salad .")
    scrambled = score_sentence(ckpt.model, ckpt.tokenizer, "salad the pear . made cook a")
    assert rank([scrambled, seen])[0] is seen
    unk = score_sentence(ckpt.model, ckpt.tokenizer, "the zebra sat on the mat .")
    assert unk.unknown == 1 and "<UNK>" in unk.tokens
    with pytest.raises(lm.LMError):
        score_sentence(ckpt.model, ckpt.tokenizer, "   ")


def test_a_long_sentence_is_scored_in_windows_with_its_state_carried(word_model, monkeypatch):
    """A sentence of a whole book took T x V logits at once (7.9 GB for 200,000 words)."""
    ckpt, _ = word_model
    text = " ".join(SENTENCES[:3])
    whole = score_sentence(ckpt.model, ckpt.tokenizer, text)
    monkeypatch.setattr(score, "LOGITS_BUDGET", 3 * ckpt.model.config.vocab)  # windows of 3 tokens
    windowed = score_sentence(ckpt.model, ckpt.tokenizer, text)
    assert len(whole.tokens) > 6 and windowed.tokens == whole.tokens
    assert windowed.token_logprobs == pytest.approx(whole.token_logprobs, rel=1e-5, abs=1e-6)


def test_stream_score_carries_state_and_ignores_padding(word_model, monkeypatch):
    ckpt, _ = word_model
    model, tok = ckpt.model, ckpt.tokenizer
    text = "\n".join(SENTENCES[:3]) + "\n"
    ids, _ = tok.encode(text)
    exact, no_unk = stream_nats(model, ids, tok.start_id, batch_size=1, seq_len=5)
    assert no_unk == 0.0  # no unk_id given
    x = np.concatenate([[tok.start_id], ids[:-1]])[:, None]
    one_window, _ = logprobs(model, x, ids[:, None], model.zero_state(1))
    assert exact == pytest.approx(-one_window.sum(), rel=1e-5)
    # Windows overlap (one's softmax in the background, the next one's loop here); the part
    # spent on a chosen id still comes from the right positions.
    chosen = ids[4]
    total, on_chosen = stream_nats(model, ids, tok.start_id, batch_size=1, seq_len=5, unk_id=chosen)
    assert total == exact
    assert on_chosen == pytest.approx(-one_window[ids == chosen].sum(), rel=1e-5) and on_chosen > 0
    # ...and to the last bit what one thread computes, window after window.
    with monkeypatch.context() as patch:
        patch.setattr(parallel, "in_background", lambda call: parallel._Done(call()))
        assert stream_nats(model, ids, tok.start_id, batch_size=1, seq_len=5, unk_id=chosen) == (total, on_chosen)
    # 23 tokens in 3 parts of 8, 8 and 7 (the last padded): each token scored once, each part
    # from the zero state with the token before it as input.
    parts, _ = stream_nats(model, ids, tok.start_id, batch_size=3, seq_len=4)
    by_hand = 0.0
    for lo in (0, 8, 16):
        part_x, part_y = x[lo : lo + 8], ids[lo : lo + 8, None]
        by_hand -= logprobs(model, part_x, part_y, model.zero_state(1))[0].sum()
    assert parts == pytest.approx(by_hand, rel=1e-5)
    result = score_stream(model, tok, text)
    assert result.tokens == len(ids) == 8 + 7 + 8
    assert result.perplexity == pytest.approx(math.exp(exact / len(ids)), rel=1e-5)


def test_same_seed_same_model_with_or_without_grad_stats(tmp_path):
    """--grad-stats only watches: the model is the same, and the statistics are in its metadata."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcabcabd\n" * 40)
    kw = dict(hidden=8, embed=4, epochs=2, seq_len=8, batch_size=4, cell="gru", seed=7, layers=2)
    lm.train(corpus, tmp_path / "a.npz", **kw)
    seen = []
    lm.train(corpus, tmp_path / "b.npz", grad_stats=True, on_progress=seen.append, **kw)
    a, b = lm.load(tmp_path / "a.npz"), lm.load(tmp_path / "b.npz")
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    assert "grad_stats" not in a.meta
    stats = b.meta["grad_stats"]
    assert stats["distance"] == list(range(8))
    norm = np.array(stats["norm"])
    assert norm.shape == (2, 8) and (norm > 0).all()
    assert norm[1, 0] > norm[1, -1]  # the gradient of a small GRU fades with distance
    last = [i for i in seen if isinstance(i, lm.StepInfo)][-1]
    assert stats["samples"] >= 1 and stats["clip_rate"] == pytest.approx(last.clipped)  # of the whole run


def _lines_model(bias):
    """A --lines character model whose next-token distribution is fixed by the output bias."""
    tok = Tokenizer.fit("ab\nba\n", TokenizerConfig(tokenizer="char", lines=True))
    model = _model("rnn", V=len(tok), layers=1)
    model.params["Wya"][:] = 0
    model.params["by"][:] = [bias.get(t, 0.0) for t in tok.tokens]
    return model, tok


def test_sampler_stops_at_eos_and_respects_every_limit():
    model, tok = _lines_model({"<EOS>": 3.0})
    lengths = [len("".join(sample(model, tok, seed=s))) for s in range(50)]
    assert max(lengths) < 30 and min(lengths) == 0  # EOS is likely: sequences end early
    model, tok = _lines_model({"<EOS>": -50.0})
    assert len("".join(sample(model, tok, chars=17, seed=1))) == 17
    assert len("".join(sample(model, tok, tokens=9, seed=1))) == 9
    assert len("".join(sample(model, tok, seed=1))) == 200  # the default limit
    for bad in ({"chars": 0}, {"tokens": -1}, {"temperature": 0.0}, {"temperature": float("nan")}, {"temprature": 1}):
        with pytest.raises(lm.ConfigError):
            list(sample(model, tok, **bad))


def test_sampler_words_limit_and_primer():
    tok = Tokenizer.fit("a b\n", TokenizerConfig(tokenizer="char"))  # chars: '\n', ' ', 'a', 'b'
    model = _model("rnn", V=len(tok), layers=1)
    model.params["Wya"][:] = 0
    text = "".join(sample(model, tok, words=4, seed=5, prime="ab "))
    assert text.startswith("ab ") and len(text[3:].split()) <= 4
    for seed in range(5):  # the word past the limit takes the whitespace before it
        text = "".join(sample(model, tok, words=2, seed=seed))
        assert len(text.split()) == 2 and text == text.rstrip(), repr(text)
    capped = ["".join(sample(model, tok, words=9, tokens=6, seed=seed)) for seed in range(20)]
    assert all(t == t.rstrip() for t in capped) and any(len(t) < 6 for t in capped)  # whitespace the cap cut off
    lines = Tokenizer.fit("a b\n", TokenizerConfig(tokenizer="char", lines=True))  # <EOS>, ' ', 'a', 'b'
    ended = _model("rnn", V=len(lines), layers=1)
    ended.params["Wya"][:] = 0
    ended.params["by"][:] = [0.0, 1.0, 0.0, -9.0]
    drawn = ["".join(sample(ended, lines, words=9, seed=seed)) for seed in range(20)]
    assert all(t == t.rstrip() for t in drawn)  # the space before <EOS> (likely here) is dropped too
    assert "".join(sample(model, tok, prime="axb", tokens=1, seed=5)).startswith("ab")  # unseen: skipped
    with pytest.raises(lm.LMError, match="never saw 'x', 'y', 'z'"):
        list(sample(model, tok, prime="xyz", unk="error"))
    with pytest.raises(lm.ConfigError, match="--unk map needs"):
        list(sample(model, tok, prime="xyz", unk="map"))


@pytest.mark.parametrize("config, text", [
    (TokenizerConfig(tokenizer="word"), "the cat sat .\nthe dog ran .\n"),
    (TokenizerConfig(tokenizer="char", lines=True), "ann\nbob\n"),
])
def test_a_primer_of_several_lines_is_read_as_the_training_text_was(config, text, monkeypatch):
    """Each line break ends a sentence with <EOS>, as `encode` reads a corpus; the last line,
    unfinished, stays open for the model to continue, and the primer prints its line breaks."""
    tok = Tokenizer.fit(text, config)
    whole = tok.encode(text)[0].tolist()
    assert tok.encode_prefix(text)[0] == whole
    assert tok.encode_prefix(text.rstrip("\n") + "\n\n  \n")[0] == whole  # blank lines left out
    assert tok.encode_prefix(text.rstrip("\n"))[0] == whole[:-1]
    model = _model("gru", V=len(tok), layers=1)
    primed = "".join(sample(model, tok, prime=text.rstrip("\n"), tokens=3, seed=1))
    assert primed.startswith(tok.decode(whole[:-1], eos="\n")) and primed.count("\n") == 1
    # By default <EOS> prints as nothing, and the word after it keeps its space.
    assert tok.decode(whole) == ("annbob" if config.lines else "the cat sat. the dog ran.")
    if config.lines:  # --novel looks at the drawn line, not the primer's lines before it
        monkeypatch.setattr(importlib.import_module("lm.sample"), "_batch",
                            lambda model, tok, indices, s: ((i, "ann\nbob") for i in indices))
        with pytest.raises(lm.LMError, match="no new sequence"):
            sample_many(model, tok, 2, prime="ann\nb", novel=tok.line_hashes(text))


def test_a_sentence_of_characters_a_lines_model_never_saw_is_not_scored():
    tok = Tokenizer.fit("ann\nbob\n", TokenizerConfig(tokenizer="char", lines=True))
    model = _model("gru", V=len(tok), layers=1)
    assert score_sentence(model, tok, "ab☃").unknown == 1
    for fragment in (False, True):
        with pytest.raises(lm.LMError, match="nothing to score"):
            score_sentence(model, tok, "☃☃☃", no_eos=fragment)


def test_same_seed_same_text_and_greedy_and_no_unk(word_model):
    ckpt, _ = word_model
    model, tok = ckpt.model, ckpt.tokenizer
    a = "".join(sample(model, tok, tokens=30, seed=11))
    b = "".join(sample(model, tok, tokens=30, seed=11))
    assert a == b and a
    assert "".join(sample(model, tok, greedy=True)) == "".join(sample(model, tok, greedy=True, seed=99))
    model.params["by"][tok.unk_id] += 100.0  # <UNK> now almost certain
    try:
        assert "<UNK>" in "".join(sample(model, tok, tokens=5, seed=1))
        assert "<UNK>" not in "".join(sample(model, tok, tokens=20, seed=1, no_unk=True))
    finally:
        model.params["by"][tok.unk_id] -= 100.0


@pytest.mark.parametrize("cell", CELLS)
def test_a_tiny_corpus_is_learned_almost_perfectly(tmp_path, cell):
    """A deterministic stream: every cell drives its loss near zero and greedy sampling replays it."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat. " * 60)
    lm.train(corpus, tmp_path / "m.npz", cell=cell, hidden=32, embed=8, epochs=15, seq_len=13,
             batch_size=4, lr=0.02, valid_fraction=0.1, seed=1)
    ckpt = lm.load(tmp_path / "m.npz")
    assert score_stream(ckpt.model, ckpt.tokenizer, corpus.read_text()).loss < 0.05
    text = "".join(sample(ckpt.model, ckpt.tokenizer, prime="the ", chars=26, greedy=True))
    assert text == "the cat sat. the cat sat. the "


def test_a_words_limit_ends_even_if_the_model_never_draws_a_space():
    tok = Tokenizer.fit("ab b\n", TokenizerConfig(tokenizer="char"))
    model = _model("rnn", V=len(tok), layers=1)
    model.params["Wya"][:] = 0
    model.params["by"][:] = [0.0 if t in "ab" else -100.0 for t in tok.tokens]
    text = "".join(sample(model, tok, words=3, seed=1))
    assert set(text) <= {"a", "b"} and len(text) == 3 * 100


def test_a_tiny_temperature_is_almost_greedy():
    model, tok = _lines_model({"a": 1.0, "<EOS>": -50.0})
    assert "".join(sample(model, tok, tokens=5, temperature=1e-300, seed=1)) == "aaaaa"


def test_validation_tail_is_never_empty_and_a_useless_valid_file_is_refused(tmp_path):
    one_line = np.array([5, 6, 7, 8, 9, 0], dtype=np.int32)  # a single sentence
    train, valid = split_tail(one_line, 0.5, eos_id=0)
    assert len(train) and len(valid)
    corpus, valid_file = tmp_path / "c.txt", tmp_path / "v.txt"
    corpus.write_text("abab" * 50)
    valid_file.write_text("zzzz")
    with pytest.raises(lm.LMError, match="no validation text"):
        lm.train(corpus, tmp_path / "m.npz", valid=valid_file, hidden=4, embed=2, batch_size=2)


def test_learning_rate_schedule():
    cfg = TrainConfig(optimizer="sgd", lr=1.0, lr_decay=0.5, decay_after=4)
    assert [cfg.lr_at(e) for e in range(1, 8)] == [1, 1, 1, 1, 0.5, 0.25, 0.125]
    default = TrainConfig(lr_decay=0.5)
    assert default.lr_at(1) == default.learning_rate == 2e-3 and default.lr_at(2) == 1e-3


def test_choice_draws_what_numpy_choice_draws():
    """Our row-wise draw is Generator.choice's algorithm: one row, same seed, same draws."""
    p = np.random.default_rng(0).dirichlet(np.full(30, 0.3), size=200)
    ours, theirs = np.random.default_rng(7), np.random.default_rng(7)
    for row in p:
        assert choice(ours, row[None, :])[0] == theirs.choice(30, p=row)


def test_choice_rows_follow_their_own_distributions():
    p = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    draws = np.stack([choice(np.random.default_rng(s), p) for s in range(400)])
    assert (draws[:, 0] == 1).all()
    assert set(draws[:, 1]) == {0, 2} and 150 < (draws[:, 1] == 0).sum() < 250


def test_sample_many_draws_side_by_side_within_the_limits():
    tok = Tokenizer.fit("ab cd\n", TokenizerConfig(tokenizer="char"))
    model = _model("lstm", V=len(tok), layers=2)
    texts = sample_many(model, tok, 8, chars=23, seed=3)
    assert len(texts) == 8 and all(len(t) == 23 for t in texts)
    assert len(set(texts)) > 1  # each row draws its own sequence
    assert sample_many(model, tok, 8, chars=23, seed=3) == texts
    one = sample_many(model, tok, 1, tokens=30, seed=11)[0]
    assert one == "".join(sample(model, tok, tokens=30, seed=11))  # one row is the streaming sampler
    primed = sample_many(model, tok, 3, prime="ab", tokens=5, seed=1)
    assert all(t.startswith("ab") and len(t) == 7 for t in primed)
    eos_model, eos_tok = _lines_model({"<EOS>": 1.0})
    lengths = {len(t) for t in sample_many(eos_model, eos_tok, 40, seed=2)}
    assert 0 in lengths and len(lengths) > 2  # each row stops at its own <EOS>
    with pytest.raises(lm.ConfigError, match="--num"):
        sample_many(model, tok, 0)


@pytest.mark.parametrize("limits", [{"tokens": 9}, {"chars": 9}])  # the whole-batch path and the per-text one
def test_many_sequences_are_drawn_a_bounded_batch_at_a_time(monkeypatch, limits):
    tok = Tokenizer.fit("ab cd\n", TokenizerConfig(tokenizer="char"))
    model = _model("lstm", V=len(tok), layers=1)
    sampling, sizes = importlib.import_module("lm.sample"), []  # lm.sample is the function
    draws = sampling._draws
    monkeypatch.setattr(sampling, "_draws", lambda model, start, n, *rest: sizes.append(n) or draws(model, start, n, *rest))
    monkeypatch.setattr(sampling, "MAX_BATCH", 3)
    texts = sample_many(model, tok, 7, seed=5, **limits)
    assert sizes == [3, 3, 1]
    assert len(texts) == 7 and all(len(t) == 9 for t in texts) and len(set(texts)) > 3


def test_token_limits_alone_take_the_whole_batch_path_and_draw_the_same(word_model, monkeypatch):
    """With only tokens counted (or characters, by a character model), sequences end by array
    tests (sample._batch_of_tokens); a stop string that never appears sends the same draws
    through the per-sequence path instead."""
    ckpt, _ = word_model
    words = ckpt.model, ckpt.tokenizer
    eos_model, eos_tok = _lines_model({"<EOS>": 1.0})
    sampling, texts = importlib.import_module("lm.sample"), []  # lm.sample is the function
    monkeypatch.setattr(sampling, "_Text", lambda *args, text=sampling._Text: texts.append(1) or text(*args))
    for model, tok in (words, (eos_model, eos_tok), _lines_model({"<EOS>": -3.0})):
        for settings in (dict(tokens=9), dict(), dict(tokens=4, prime="the cat" if tok.kind == "word" else "ab"),
                         dict(chars=5), dict(chars=5, tokens=3), dict(chars=4, prime="ab")):
            texts.clear()
            fast = sample_many(model, tok, 12, seed=5, **settings)
            assert not texts or (tok.kind != "char" and "chars" in settings)  # a word model counts characters one by one
            slow = sample_many(model, tok, 12, seed=5, stop=["\x00"], **settings)
            assert fast == slow
    assert {len(t) for t in sample_many(eos_model, eos_tok, 40, seed=2, tokens=3)} >= {0, 3}


def _tiny_run(tmp_path, **settings):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat. " * 40)
    seen = []
    result = lm.train(corpus, tmp_path / "m.npz", hidden=8, embed=4, seq_len=8, batch_size=4, seed=1,
                      on_progress=seen.append, **settings)
    return result, seen


def test_plateau_schedule_decays_after_an_epoch_without_improvement(tmp_path):
    # A min_delta no epoch can beat: every epoch after the first is a plateau.
    result, _ = _tiny_run(tmp_path, epochs=4, lr=0.01, lr_schedule="plateau", lr_decay=0.5, min_delta=100.0)
    assert [h.lr for h in result.history] == [0.01, 0.01, 0.005, 0.0025]  # epoch 2 stalls: 3 is halved
    result, _ = _tiny_run(tmp_path, epochs=3, lr=0.01, lr_schedule="plateau", lr_decay=0.5)
    assert [h.lr for h in result.history] == [0.01, 0.01, 0.01]  # it improves: no decay
    result, seen = _tiny_run(tmp_path, epochs=2, lr=0.01, lr_schedule="plateau", lr_decay=0.5, decay_after=0)
    assert [h.lr for h in result.history] == [0.01, 0.01]  # the step schedule's --decay-after is not plateau's
    assert lm.Notice("note: --decay-after is for --lr-schedule step: plateau decays after an epoch that did not "
                     "improve") in seen  # through the API as through the CLI
    with pytest.raises(lm.ConfigError, match="lr-decay"):
        _tiny_run(tmp_path, lr_schedule="plateau")


def test_patience_stops_training_and_keeps_the_best_model(tmp_path):
    result, _ = _tiny_run(tmp_path, epochs=10, patience=2, min_delta=100.0)
    assert len(result.history) == 3 and result.stopped == "patience"
    assert result.best_valid_loss == min(h.valid_loss for h in result.history)
    result, _ = _tiny_run(tmp_path, epochs=2, patience=1, min_delta=100.0)
    assert len(result.history) == 2 and result.stopped is None  # the last epoch is not an early stop
    with pytest.raises(lm.ConfigError, match="validation"):
        _tiny_run(tmp_path, patience=2, valid_fraction=0.0)


def test_training_reports_its_recipe_first_and_the_time_of_each_epoch(tmp_path):
    result, seen = _tiny_run(tmp_path, epochs=2, cell="gru", optimizer="sgd", lr=0.5, lr_decay=0.5,
                             decay_after=1)
    start = seen[0]
    assert isinstance(start, lm.StartInfo)
    assert start.model == "1 x 8 GRU, embedding 4" and start.parameters == lm.load(tmp_path / "m.npz").model.num_params()
    assert start.recipe == "sgd lr 0.5, x0.5 each epoch after 1, clip 5, batch 4 x 8 steps, 2 epochs"
    one = importlib.import_module("lm.train")._recipe(lm.config.TrainConfig(epochs=1, clip=0.0, seq_len=1))
    assert one.endswith("no clipping, batch 32 x 1 step, 1 epoch"), one
    assert start.steps_per_epoch == sum(isinstance(i, lm.StepInfo) and i.epoch == 1 for i in seen)
    assert all(h.train_s > 0 and h.valid_s > 0 and h.elapsed_s >= h.train_s + h.valid_s for h in result.history)


def test_settings_take_numbers_of_their_own_kind_from_python_too():
    """The CLI's flags arrive typed; a Python caller's values (or a model file's JSON) may not."""
    config = ModelConfig(vocab=np.int64(7), hidden=np.int32(5))
    assert type(config.vocab) is int and type(config.hidden) is int  # JSON-ready for the model file
    assert type(TrainConfig(lr=1).lr) is float
    for bad, message in ((dict(hidden=6.0), "--hidden must be a whole number, not 6.0"),
                         (dict(layers=True), "--layers must be a whole number, not True"),
                         (dict(embed="4"), "--embed must be a whole number"),
                         (dict(peephole=1), "--peephole must be true or false")):
        with pytest.raises(lm.ConfigError, match=message):
            ModelConfig(vocab=7, **bad)
    with pytest.raises(lm.ConfigError, match="--lr must be a number, not '0.1'"):
        TrainConfig(lr="0.1")
    with pytest.raises(lm.ConfigError, match="--clip must be a finite number, not one of 401 digits"):
        TrainConfig(clip=10**400)  # a float's range ends near 1.8e308
    assert ModelConfig(vocab=7, peephole=np.True_).peephole is True


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_backward_takes_incoming_gradients_of_another_dtype(cell):
    """np.dot, unlike np.matmul, writes only into arrays of its product's dtype: a float64
    gradient reaching a float32 model (or the other way) must still give the same result."""
    for model_dtype, other in ((np.float32, np.float64), (np.float64, np.float32)):
        model = Model.init(ModelConfig(vocab=7, cell=cell, layers=2, hidden=5, embed=4), np.random.default_rng(0),
                           dtype=model_dtype)
        x = np.random.default_rng(1).integers(0, 7, (3, 2))
        logits, state, cache = model.forward(x, model.zero_state(2))
        dstate = [tuple(np.full_like(part, 0.1) for part in layer) for layer in state]
        model.backward(cache, np.ones_like(logits), dstate)
        same = model.grad.copy()
        model.backward(cache, np.ones(logits.shape, other), [tuple(p.astype(other) for p in ls) for ls in dstate])
        np.testing.assert_allclose(model.grad, same, rtol=1e-5)


@pytest.mark.parametrize("cell, peephole", [("rnn", False), ("gru", False), ("lstm", False), ("lstm", True)])
def test_the_shapes_a_model_file_is_checked_against_are_those_init_makes(cell, peephole):
    config = ModelConfig(vocab=7, cell=cell, layers=3, hidden=5, embed=4, peephole=peephole)
    made = Model.init(config, np.random.default_rng(0)).params
    assert Model.shapes(config) == {name: array.shape for name, array in made.items()}


def test_the_saved_model_keeps_its_best_weights_and_the_whole_run_in_its_card(tmp_path, monkeypatch):
    """Rewritten only when validation improved, the file's history, epochs and training time
    stopped at the best epoch: `lm info` said "trained 1 of 3 epochs" of a run of three."""
    losses = iter([1.0, 2.0, 3.0])  # per token: epoch 1 is the best
    monkeypatch.setattr(importlib.import_module("lm.train"), "stream_nats",
                        lambda model, ids, *args: (next(losses) * len(ids), 0))
    saved = {}

    def keep(info):
        if isinstance(info, lm.EpochInfo):
            saved[info.epoch] = lm.load(tmp_path / "m.npz")

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat. " * 40)
    result = lm.train(corpus, tmp_path / "m.npz", hidden=8, embed=4, seq_len=8, batch_size=4, epochs=3,
                      on_progress=keep)
    assert [h.saved for h in result.history] == [True, False, False]
    final = saved[3]
    assert [h["epoch"] for h in final.meta["history"]] == [1, 2, 3] and final.meta["best_epoch"] == 1
    assert final.meta["train_time_s"] == pytest.approx(sum(h.train_s for h in result.history))
    np.testing.assert_array_equal(final.model.flat, saved[1].model.flat)
    assert card(final)["training"]["epochs_run"] == 3


def test_a_model_file_replaced_during_training_is_left_alone(tmp_path, monkeypatch):
    """The card's update wrote this run's metadata onto whatever file was at the path."""
    other = tmp_path / "other.txt"
    other.write_text("a different corpus, a different model. " * 20)
    lm.train(other, tmp_path / "other.npz", hidden=8, embed=4, seq_len=8, batch_size=4, epochs=1)
    foreign = (tmp_path / "other.npz").read_bytes()
    losses = iter([1.0, 2.0])  # epoch 2 does not improve: only its card would be written
    monkeypatch.setattr(importlib.import_module("lm.train"), "stream_nats",
                        lambda model, ids, *args: (next(losses) * len(ids), 0))

    def replace(info):
        if isinstance(info, lm.EpochInfo) and info.epoch == 1:
            (tmp_path / "m.npz").write_bytes(foreign)

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat. " * 40)
    lm.train(corpus, tmp_path / "m.npz", hidden=8, embed=4, seq_len=8, batch_size=4, epochs=2, on_progress=replace)
    assert (tmp_path / "m.npz").read_bytes() == foreign


def test_every_epoch_starts_from_the_zero_state(tmp_path, monkeypatch):
    """a<0> = 0 at each epoch's first window; the windows after it carry the state on."""
    trainer_class, before = importlib.import_module("lm.train").Trainer, []
    step = trainer_class.step

    def recording(self, x, y, lr):
        before.append(max(float(np.abs(part).max()) for layer in self.state for part in layer))
        return step(self, x, y, lr)

    monkeypatch.setattr(trainer_class, "step", recording)
    _, seen = _tiny_run(tmp_path, epochs=2)
    steps = next(i for i in seen if isinstance(i, lm.StartInfo)).steps_per_epoch
    assert len(before) == 2 * steps and steps > 1
    assert before[0] == before[steps] == 0.0 and before[1] > 0 and before[steps + 1] > 0


def test_a_primed_sample_reads_x1_before_its_primer():
    """The primer continues from x<1> (the zero vector here), as training and scoring read every
    sequence; the next token is the argmax after [x<1>, primer], not after the primer alone."""
    tok = Tokenizer.fit("abcdefgh", TokenizerConfig(tokenizer="char"))
    a, b = tok.index["a"], tok.index["b"]
    for seed in range(20):
        model = _model("rnn", V=len(tok), layers=1, seed=seed)
        for v in model.params.values():  # the biases too, or x<1> = 0 would leave a<1> = 0
            v += np.random.default_rng(seed).normal(0.0, 1.0, v.shape).astype(v.dtype)
        after = [int(np.argmax(model.forward(np.array(ids)[:, None], model.zero_state(1))[0][-1, 0]))
                 for ids in ([tok.start_id, a, b], [a, b])]
        if after[0] != after[1]:
            break
    assert after[0] != after[1]  # the check below can tell the two apart
    assert "".join(sample(model, tok, prime="ab", tokens=1, greedy=True)) == "ab" + tok.tokens[after[0]]

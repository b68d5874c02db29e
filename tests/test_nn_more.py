"""The layers PyTorch users reach for: pad, Embedding, Conv1d (dilation, groups), GroupNorm,
AdaptiveAvgPool2d, KLDivLoss, LSTM and GRU (PyTorch's layouts), trunc_normal_/orthogonal_,
manual_seed, hooks and summary().  Values from independent loops, NumPy, SciPy or hand
derivations; gradients against finite differences; each under jit at a second input."""

from __future__ import annotations

import math
import warnings

import numpy
import pytest
import scipy.special
import scipy.stats
from op_cases import conv2d_loops

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F

RNG = numpy.random.default_rng(99)


def r(*shape):
    return RNG.standard_normal(shape)


def params_of(module):
    return {k: numpy.array(p.data) for k, p in module.named_parameters()}


def check_module(module, *inputs, out=lambda y: y):
    f = lambda p, *x: out(nn.functional_call(module, p, *x))  # noqa: E731
    return cr.check_grads(f, params_of(module), *inputs)


def jit_follows(module, x1, x2, out=lambda y: y):
    """jit of value_and_grad (parameters and input), compiled at x1 and run at x2, equals the
    eager computation at x2."""
    step = lambda p, x: out(nn.functional_call(module, p, x)).sum()  # noqa: E731
    eager = cr.value_and_grad(step, argnums=(0, 1))
    compiled = cr.jit(eager)
    p = params_of(module)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cr.JitFallbackWarning)
        compiled(p, x1)
        v_j, (gp_j, gx_j) = compiled(p, x2)
    v_e, (gp_e, gx_e) = eager(p, x2)
    numpy.testing.assert_allclose(v_j, v_e, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(gx_j, gx_e, rtol=1e-12, atol=1e-12)
    for k in gp_e:
        numpy.testing.assert_allclose(gp_j[k], gp_e[k], rtol=1e-12, atol=1e-12)


# --- pad --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "np_mode"),
    [("constant", "constant"), ("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")],
)
def test_pad_equals_numpys_modes_and_gradients_check(mode, np_mode):
    x = r(2, 3, 4, 5)
    got = F.pad(x, (1, 2, 3, 0), mode=mode)
    expected = numpy.pad(x, ((0, 0), (0, 0), (3, 0), (1, 2)), mode=np_mode)
    numpy.testing.assert_array_equal(got, expected)
    cr.check_grads(lambda t: F.pad(t, (1, 2, 3, 0), mode=mode), x)


def test_pad_crops_with_negative_sizes_and_checks_its_arguments():
    x = numpy.arange(10.0).reshape(2, 5)
    numpy.testing.assert_array_equal(F.pad(x, (-1, 2), value=7.0)[0], [1, 2, 3, 4, 7, 7])
    with pytest.raises(ValueError, match="reflect padding"):
        F.pad(x, (5, 0), mode="reflect")
    with pytest.raises(ValueError, match="pairs for at most 2 axes"):
        F.pad(x, (1, 1, 1, 1, 1, 1))


# --- Embedding ----------------------------------------------------------------------------------


def test_embedding_rows_padding_gradient_and_errors():
    emb = nn.Embedding(6, 3, padding_idx=2, rng=0)
    w = emb.weight.data.copy()
    assert (w[2] == 0).all() and 0.7 < w[[0, 1, 3, 4, 5]].std() < 1.4  # N(0, 1) init
    ids = numpy.array([[1, 2, 5], [2, 2, 0]])
    numpy.testing.assert_array_equal(emb(ids).data, w[ids])
    (emb(ids) * r(2, 3, 3)).sum().backward()
    assert (emb.weight.grad[2] == 0).all() and (emb.weight.grad[3] == 0).all()
    assert (emb.weight.grad[1] != 0).all()
    check_module(nn.Embedding(5, 2, rng=0), numpy.array([[0, 4, 4], [1, 3, 0]]))
    # under jit the indices are followed, not frozen at the first call
    step = lambda p, i: (nn.functional_call(emb, p, i) ** 2).sum()  # noqa: E731
    eager = cr.value_and_grad(step)
    compiled = cr.jit(eager)
    compiled(params_of(emb), ids)
    other = numpy.array([[0, 3, 3], [4, 2, 1]])
    for a, b in zip(compiled(params_of(emb), other), eager(params_of(emb), other)):
        numpy.testing.assert_allclose(
            a if not isinstance(a, dict) else a["weight"],
            b if not isinstance(b, dict) else b["weight"],
            rtol=1e-12,
        )
    with pytest.raises(IndexError, match="index 6 is out of range for 6 embeddings"):
        emb(numpy.array([6]))
    with pytest.raises(TypeError, match="indices must be integers"):
        emb(numpy.array([1.0]))


# --- Conv1d -------------------------------------------------------------------------------------


def conv1d_loops(x, w, b, stride, pad, dilation, groups):
    n, c, length = x.shape
    o, cg, k = w.shape
    xp = numpy.zeros((n, c, length + 2 * pad))
    xp[:, :, pad : pad + length] = x
    lout = (length + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    out = numpy.zeros((n, o, lout))
    og = o // groups
    for a in range(n):
        for q in range(o):
            g = q // og
            for i in range(lout):
                for ci in range(cg):
                    for j in range(k):
                        out[a, q, i] += xp[a, g * cg + ci, i * stride + j * dilation] * w[q, ci, j]
                out[a, q, i] += b[q]
    return out


@pytest.mark.parametrize(
    ("stride", "pad", "dilation", "groups"),
    [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (2, 0, 3, 4)],
)
def test_conv1d_equals_the_definition_and_gradients_check(stride, pad, dilation, groups):
    conv = nn.Conv1d(4, 8, 3, stride=stride, padding=pad, dilation=dilation, groups=groups, rng=0)
    x = r(2, 4, 11)
    expected = conv1d_loops(x, conv.weight.data, conv.bias.data, stride, pad, dilation, groups)
    numpy.testing.assert_allclose(conv(x).data, expected, rtol=1e-12, atol=1e-12)
    check_module(conv, r(2, 4, 9))
    jit_follows(conv, r(2, 4, 9), r(2, 4, 9))


def test_conv1d_same_padding_unbatched_init_and_errors():
    conv = nn.Conv1d(2, 3, 4, padding="same", dilation=2, bias=False, rng=0)
    assert conv(numpy.zeros((1, 2, 7))).shape == (1, 3, 7)
    assert conv(numpy.zeros((2, 7))).shape == (3, 7)
    big = nn.Conv1d(6, 6, 5, groups=3, rng=1)
    bound = 1 / math.sqrt(2 * 5)  # fan_in = in / groups * k
    assert abs(big.weight.data).max() <= bound and abs(big.weight.data).max() > 0.8 * bound
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv1d(3, 4, 2, groups=2)
    with pytest.raises(ValueError, match="too short"):
        nn.Conv1d(1, 1, 5, rng=0)(numpy.zeros((1, 1, 3)))


# --- GroupNorm, AdaptiveAvgPool2d -----------------------------------------------------------


def test_group_norm_equals_the_definition_and_gradients_check():
    gn = nn.GroupNorm(3, 6)
    gn.load_state_dict({"weight": r(6), "bias": r(6)})
    x = r(2, 6, 4, 3)
    expected = numpy.empty_like(x)
    for a in range(2):
        for g in range(3):
            block = x[a, 2 * g : 2 * g + 2]
            expected[a, 2 * g : 2 * g + 2] = (block - block.mean()) / numpy.sqrt(block.var() + 1e-5)
    expected = expected * gn.weight.data[None, :, None, None] + gn.bias.data[None, :, None, None]
    numpy.testing.assert_allclose(gn(x).data, expected, rtol=1e-12, atol=1e-12)
    check_module(gn, r(2, 6, 3))
    jit_follows(gn, r(2, 6, 3), r(2, 6, 3))
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(4, 6)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, None), 4])
def test_adaptive_avg_pool_uses_pytorchs_bins_and_gradients_check(size):
    x = r(2, 3, 5, 7)
    pool = nn.AdaptiveAvgPool2d(size)
    ho, wo = (size, size) if isinstance(size, int) else (size[0], size[1] or 7)
    expected = numpy.zeros((2, 3, ho, wo))
    for i in range(ho):
        for j in range(wo):
            h0, h1 = (i * 5) // ho, math.ceil((i + 1) * 5 / ho)
            w0, w1 = (j * 7) // wo, math.ceil((j + 1) * 7 / wo)
            expected[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    numpy.testing.assert_allclose(pool(x), expected, rtol=1e-12, atol=1e-12)
    cr.check_grads(pool, r(1, 2, 5, 7))
    jit_follows(nn.Sequential(nn.Conv2d(2, 2, 1, rng=0), pool), r(1, 2, 5, 7), r(1, 2, 5, 7))


# --- KLDivLoss ----------------------------------------------------------------------------------


def test_kl_div_equals_scipys_relative_entropy_in_each_reduction():
    p = scipy.special.softmax(r(4, 5), axis=1)
    p[0, 1] = 0.0  # a zero target contributes 0
    p[0] /= p[0].sum()
    logq = F.log_softmax(r(4, 5), dim=1).data
    rel = scipy.special.rel_entr(p, numpy.exp(logq))
    numpy.testing.assert_allclose(F.kl_div(logq, p, reduction="none"), rel, atol=1e-15)
    assert float(nn.KLDivLoss(reduction="batchmean")(logq, p)) == pytest.approx(rel.sum() / 4)
    assert float(nn.KLDivLoss()(logq, p)) == pytest.approx(rel.mean())
    assert float(F.kl_div(logq, numpy.log(p + 1e-300), "sum", log_target=True)) == pytest.approx(
        rel.sum(), rel=1e-9
    )
    cr.check_grads(lambda a: F.kl_div(a, p, reduction="batchmean"), logq)
    with pytest.raises(ValueError, match="reduction must be"):
        F.kl_div(logq, p, reduction="avg")


# --- LSTM, GRU ----------------------------------------------------------------------------------


def sig(v):
    return 1 / (1 + math.exp(-v))


def test_lstm_and_gru_equal_pytorchs_equations_worked_by_hand_in_scalars():
    # hidden size 1, input size 1: every weight a number, the equations of PyTorch's docs
    lstm = nn.LSTM(1, 1, rng=0)
    W, U, b1, b2 = (
        lstm.weight_ih_l0.data[:, 0],
        lstm.weight_hh_l0.data[:, 0],
        lstm.bias_ih_l0.data,
        lstm.bias_hh_l0.data,
    )
    xs, h, c = [0.5, -1.2, 2.0], 0.0, 0.0
    hs = []
    for x in xs:
        z = [W[k] * x + b1[k] + U[k] * h + b2[k] for k in range(4)]
        c = sig(z[1]) * c + sig(z[0]) * math.tanh(z[2])
        h = sig(z[3]) * math.tanh(c)
        hs.append(h)
    out, (hn, cn) = lstm(numpy.array(xs).reshape(3, 1, 1))
    numpy.testing.assert_allclose(out.data.ravel(), hs, rtol=1e-13)
    assert hn.data.item() == pytest.approx(h, rel=1e-13) and cn.data.item() == pytest.approx(c)
    gru = nn.GRU(1, 1, rng=1)
    W, U, b1, b2 = (
        gru.weight_ih_l0.data[:, 0],
        gru.weight_hh_l0.data[:, 0],
        gru.bias_ih_l0.data,
        gru.bias_hh_l0.data,
    )
    h, hs = 0.3, []
    for x in xs:
        rr = sig(W[0] * x + b1[0] + U[0] * h + b2[0])
        zz = sig(W[1] * x + b1[1] + U[1] * h + b2[1])
        nn_ = math.tanh(W[2] * x + b1[2] + rr * (U[2] * h + b2[2]))
        h = (1 - zz) * nn_ + zz * h
        hs.append(h)
    out, hn = gru(numpy.array(xs).reshape(3, 1, 1), numpy.full((1, 1, 1), 0.3))
    numpy.testing.assert_allclose(out.data.ravel(), hs, rtol=1e-13)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_recurrent_layouts_bidirectional_and_states(cls):
    m = cls(3, 4, num_layers=2, bidirectional=True, rng=0)
    names = [k for k, _ in m.named_parameters()]
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert "weight_ih_l1_reverse" in names and m.weight_ih_l1.shape[1] == 8
    x = r(5, 2, 3)
    out = m(x)
    y, h = out[0], (out[1][0] if cls is nn.LSTM else out[1])
    assert y.shape == (5, 2, 8) and h.shape == (4, 2, 4)
    # the forward direction's last output is the top layer's final forward state, the
    # reverse direction's first output the final reverse state (PyTorch's h_n layout)
    numpy.testing.assert_allclose(y.data[-1, :, :4], h.data[2])
    numpy.testing.assert_allclose(y.data[0, :, 4:], h.data[3])
    # batch_first is the transposed layout; unbatched is a batch of one
    bf = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True, rng=0)
    numpy.testing.assert_allclose(
        bf(numpy.transpose(x, (1, 0, 2)))[0].data, numpy.transpose(y.data, (1, 0, 2)), rtol=1e-13
    )
    numpy.testing.assert_allclose(m(x[:, 0])[0].data, y.data[:, 0], rtol=1e-13)
    # a single-layer reverse direction equals the forward layer run on the reversed sequence
    one = cls(3, 4, bidirectional=True, rng=0)
    fwd = cls(3, 4, rng=0)
    fwd.load_state_dict(
        {
            k.replace("_reverse", ""): v
            for k, v in one.state_dict().items()
            if k.endswith("_reverse")
        }
    )
    numpy.testing.assert_allclose(one(x)[0].data[::-1, :, 4:], fwd(x[::-1])[0].data, rtol=1e-13)
    with pytest.raises(ValueError, match="must have shape"):
        m(
            x,
            (numpy.zeros((1, 2, 4)), numpy.zeros((1, 2, 4)))
            if cls is nn.LSTM
            else numpy.zeros((1, 2, 4)),
        )


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_recurrent_gradients_check_and_jit(cls):
    m = cls(2, 3, num_layers=2, bidirectional=True, rng=0)

    def everything(o):  # the output sequence and the final states, as one vector
        y, states = o
        states = states if cls is nn.LSTM else (states,)
        return numpy.concatenate([y.ravel()] + [s.ravel() for s in states])

    check_module(m, r(4, 2, 2), out=everything)
    jit_follows(m, r(4, 2, 2), r(4, 2, 2), out=everything)


def test_lstm_dropout_between_layers_only_in_training():
    m = nn.LSTM(2, 3, num_layers=2, dropout=0.5, rng=0)
    x = r(4, 1, 2)
    m.eval()
    a, b = m(x)[0].data, m(x)[0].data
    numpy.testing.assert_array_equal(a, b)
    m.train()
    assert not numpy.allclose(m(x)[0].data, a)


# --- init, seed, hooks, summary ---------------------------------------------------------------


def test_trunc_normal_matches_scipys_truncated_normal_and_orthogonal_is_orthogonal():
    v = nn.init.trunc_normal((200_000,), mean=0.5, std=2.0, a=-1.0, b=3.0, rng=0)
    dist = scipy.stats.truncnorm((-1.0 - 0.5) / 2.0, (3.0 - 0.5) / 2.0, loc=0.5, scale=2.0)
    assert v.min() >= -1.0 and v.max() <= 3.0
    assert v.mean() == pytest.approx(dist.mean(), abs=0.01)
    assert v.var() == pytest.approx(dist.var(), rel=0.01)
    w = nn.init.orthogonal_(nn.Parameter(numpy.zeros((3, 2, 4))), gain=2.0, generator=0)
    flat = w.data.reshape(3, 8)
    numpy.testing.assert_allclose(flat @ flat.T, 4 * numpy.eye(3), atol=1e-12)
    tall = nn.init.orthogonal((6, 2), rng=1)
    numpy.testing.assert_allclose(tall.T @ tall, numpy.eye(2), atol=1e-12)


def test_manual_seed_makes_models_reproducible():
    cr.manual_seed(7)
    a = nn.LSTM(2, 3).state_dict()
    d1 = nn.Dropout(0.5)(numpy.ones(100)).data
    cr.manual_seed(7)
    b = nn.LSTM(2, 3).state_dict()
    d2 = nn.Dropout(0.5)(numpy.ones(100)).data
    for k in a:
        numpy.testing.assert_array_equal(a[k], b[k])
    numpy.testing.assert_array_equal(d1, d2)


def test_forward_hooks_replace_inputs_and_outputs_and_are_removable():
    model = nn.MLP([2, 3, 1], rng=0)
    x = r(4, 2)
    base = model(x).data
    seen = []
    h1 = model.layers[0].register_forward_pre_hook(lambda m, args: (args[0] * 0.0,))
    h2 = model.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    zero = model(x).data
    numpy.testing.assert_allclose(
        zero, model.layers[2](model.layers[1](model.layers[0].bias.data[None].repeat(4, 0))).data
    )
    h1.remove()
    h3 = model.register_forward_hook(lambda m, args, out: out * 2)
    numpy.testing.assert_allclose(model(x).data, 2 * base)
    h2.remove()
    h3.remove()
    numpy.testing.assert_allclose(model(x).data, base)
    assert seen == [(4, 1), (4, 1)]


def test_summary_lists_layers_shapes_and_frozen_parameters():
    model = nn.Sequential(nn.Embedding(10, 4, rng=0), nn.LSTM(4, 6, batch_first=True, rng=0))
    model[0].requires_grad_(False)
    text = model.summary(numpy.zeros((2, 5), dtype=int))
    lines = text.splitlines()
    assert lines[0].split() == ["Layer", "(type)", "Output", "shape", "Params"]
    assert lines[2].split() == ["0", "(Embedding)", "(2,", "5,", "4)", "40", "(frozen)"]
    assert (
        lines[3].split()[:2] == ["1", "(LSTM)"]
        and "[(2, 5, 6), [(1, 2, 6), (1, 2, 6)]]" in lines[3]
    )
    n_lstm = 4 * 6 * (4 + 6 + 2)
    assert lines[-3:] == [
        f"Total params: {40 + n_lstm:,}",
        f"Trainable params: {n_lstm:,}",
        "Frozen params: 40",
    ]


# --- Conv2d dilation and groups ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stride", "pad", "dil", "groups"), [(1, 0, 2, 1), (2, 1, 1, 2), (1, 2, 2, 4)]
)
def test_conv2d_dilation_and_groups_equal_the_definition_and_gradients_check(
    stride, pad, dil, groups
):
    conv = nn.Conv2d(4, 8, 3, stride=stride, padding=pad, dilation=dil, groups=groups, rng=0)
    assert conv.weight.shape == (8, 4 // groups, 3, 3)
    x = r(2, 4, 7, 8)
    expected = conv2d_loops(x, conv.weight.data, conv.bias.data, stride, pad, dil, groups)
    numpy.testing.assert_allclose(conv(x).data, expected, rtol=1e-12, atol=1e-12)
    check_module(conv, r(1, 4, 6, 6))
    jit_follows(conv, r(1, 4, 6, 6), r(1, 4, 6, 6))
    same = nn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=4, rng=0)  # depthwise
    assert same(x).shape == (2, 4, 7, 8)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)


# --- MultiheadAttention, TransformerEncoderLayer ----------------------------------------------


def mha_loops(mha, q, k, v, blocked=None):
    """Per batch and head, with SciPy's softmax: (N, L, E) inputs, batch first."""
    e, h = mha.embed_dim, mha.num_heads
    d = e // h
    W, b = mha.in_proj_weight.data, mha.in_proj_bias.data
    Wo, bo = mha.out_proj.weight.data, mha.out_proj.bias.data
    n, length, _ = q.shape
    s = k.shape[1]
    out = numpy.zeros((n, length, e))
    weights = numpy.zeros((n, length, s))
    for a in range(n):
        Q, K, V = (
            q[a] @ W[:e].T + b[:e],
            k[a] @ W[e : 2 * e].T + b[e : 2 * e],
            v[a] @ W[2 * e :].T + b[2 * e :],
        )
        cat = []
        for j in range(h):
            sl = slice(j * d, (j + 1) * d)
            sc = Q[:, sl] @ K[:, sl].T / math.sqrt(d)
            if blocked is not None:
                sc = numpy.where(blocked[a], -numpy.inf, sc)
            p = scipy.special.softmax(sc, axis=1)
            weights[a] += p / h
            cat.append(p @ V[:, sl])
        out[a] = numpy.hstack(cat) @ Wo.T + bo
    return out, weights


def test_multihead_attention_equals_per_head_loops_with_masks_and_layouts():
    mha = nn.MultiheadAttention(6, 3, batch_first=True, rng=0)
    mha.in_proj_bias.data = r(18)
    mha.out_proj.bias.data = r(6)
    q, k, v = r(2, 4, 6), r(2, 5, 6), r(2, 5, 6)
    out, w = mha(q, k, v)
    eo, ew = mha_loops(mha, q, k, v)
    numpy.testing.assert_allclose(out.data, eo, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(w.data, ew, rtol=1e-12, atol=1e-12)
    pad = numpy.array([[False] * 4 + [True], [False, True, False, False, False]])
    causal = numpy.triu(numpy.ones((4, 5), dtype=bool), k=1)
    out, w = mha(q, k, v, key_padding_mask=pad, attn_mask=causal)
    blocked = causal[None] | pad[:, None, :]
    eo, ew = mha_loops(mha, q, k, v, blocked)
    numpy.testing.assert_allclose(out.data, eo, rtol=1e-12, atol=1e-12)
    assert (w.data[blocked] == 0).all()
    # sequence-first layout and unbatched input give the same numbers
    seq = nn.MultiheadAttention(6, 3, rng=0)
    seq.load_state_dict(mha.state_dict())
    o2, _ = seq(*(numpy.transpose(t, (1, 0, 2)) for t in (q, k, v)))
    numpy.testing.assert_allclose(numpy.transpose(o2.data, (1, 0, 2)), mha(q, k, v)[0].data)
    numpy.testing.assert_allclose(mha(q[0], k[0], v[0])[0].data, mha(q, k, v)[0].data[0])
    heads = mha(q, k, v, average_attn_weights=False)[1]
    assert heads.shape == (2, 3, 4, 5)
    assert mha(q, k, v, need_weights=False)[1] is None
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(6, 4)


def test_attention_gradients_check_and_jit():
    mha = nn.MultiheadAttention(4, 2, rng=0)
    mha.in_proj_bias.data = r(12)
    x = r(3, 2, 4)
    f = lambda p, t: nn.functional_call(
        mha, p, t, t, t, attn_mask=nn.MultiheadAttention.causal_mask(3)
    )[0]  # noqa: E731
    cr.check_grads(f, params_of(mha), x)
    layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, rng=0)
    check_module(layer, r(3, 2, 4))
    jit_follows(layer, r(3, 2, 4), r(3, 2, 4))
    pre = nn.TransformerEncoderLayer(
        4,
        2,
        dim_feedforward=6,
        dropout=0.0,
        norm_first=True,
        activation="gelu",
        batch_first=True,
        rng=0,
    )
    check_module(pre, r(2, 3, 4))


def test_transformer_encoder_layer_composes_pytorchs_blocks():
    layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, rng=0)
    layer.eval()
    x = r(5, 2, 4)
    sa = layer.self_attn(x, x, x)[0].data
    h = layer.norm1(x + sa).data
    ff = layer.linear2(numpy.maximum(layer.linear1(h).data, 0)).data
    numpy.testing.assert_allclose(layer(x).data, layer.norm2(h + ff).data, rtol=1e-12)
    assert layer.linear1.weight.shape == (8, 4) and layer.self_attn.in_proj_weight.shape == (12, 4)


# --- ConvTranspose2d ----------------------------------------------------------------------------


def conv_transpose_loops(x, w, b, stride, pad, out_pad, groups, dil):
    """Each input pixel scatters its kernel: out[o, i s + u d - p, j s + v d - p] += x w."""
    n, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    ho = (h - 1) * stride - 2 * pad + dil * (kh - 1) + out_pad + 1
    wo = (wd - 1) * stride - 2 * pad + dil * (kw - 1) + out_pad + 1
    full = numpy.zeros((n, cog * groups, ho + 2 * pad + stride, wo + 2 * pad + stride))
    cg = cin // groups
    for c in range(cin):
        g = c // cg
        for o in range(cog):
            for i in range(h):
                for j in range(wd):
                    for u in range(kh):
                        for v in range(kw):
                            full[:, g * cog + o, i * stride + u * dil, j * stride + v * dil] += (
                                x[:, c, i, j] * w[c, o, u, v]
                            )
    return full[:, :, pad : pad + ho, pad : pad + wo] + b[None, :, None, None]


@pytest.mark.parametrize(
    ("stride", "pad", "out_pad", "groups", "dil"),
    [(1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (2, 0, 1, 2, 1), (3, 2, 0, 1, 2)],
)
def test_conv_transpose2d_equals_the_scatter_definition_and_gradients_check(
    stride, pad, out_pad, groups, dil
):
    up = nn.ConvTranspose2d(
        4,
        6,
        3,
        stride=stride,
        padding=pad,
        output_padding=out_pad,
        groups=groups,
        dilation=dil,
        rng=0,
    )
    assert up.weight.shape == (4, 6 // groups, 3, 3)
    x = r(2, 4, 3, 4)
    expected = conv_transpose_loops(
        x, up.weight.data, up.bias.data, stride, pad, out_pad, groups, dil
    )
    numpy.testing.assert_allclose(up(x).data, expected, rtol=1e-12, atol=1e-12)
    check_module(up, r(1, 4, 3, 3))
    jit_follows(up, r(1, 4, 3, 3), r(1, 4, 3, 3))


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    # <conv2d(x, w), y> == <x, conv_transpose2d(y, w)> for the same weight, stride, padding
    x, w, y = r(2, 3, 7, 7), r(5, 3, 3, 3), r(2, 5, 4, 4)
    lhs = float((F.conv2d(x, w, stride=2, padding=1) * y).sum())
    rhs = float((x * F.conv_transpose2d(y, w, stride=2, padding=1)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)

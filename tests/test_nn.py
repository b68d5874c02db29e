"""chainrule.nn: the Module API, every layer and loss against finite differences (float64),
values derived by hand or by independent loops, numerical stability, initialisers."""

from __future__ import annotations

import math

import numpy
import pytest

import chainrule as cr
from chainrule import nn, seed
from chainrule.nn import functional as F

RNG = numpy.random.default_rng(1234)


def params_of(module):
    """The trainable parameters as a dict of plain arrays (for check_grads)."""
    return {k: numpy.array(p.data) for k, p in module.named_parameters()}


def check_module(module, *inputs, **kw):
    """check_grads of module's output with respect to its parameters and its inputs."""
    f = lambda p, *x: nn.functional_call(module, p, *x)  # noqa: E731
    return cr.check_grads(f, params_of(module), *inputs, **kw)


# =============================================================================================
# Module API
# =============================================================================================


def test_mlp_parameter_names_shapes_and_tensors():
    mlp = nn.MLP([4, 6, 6, 6, 1], rng=0)
    names = [n for n, _ in mlp.named_parameters()]
    assert names == [
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
        "layers.2.bias",
        "layers.4.weight",
        "layers.4.bias",
        "layers.6.weight",
        "layers.6.bias",
    ]
    shapes = [p.shape for p in mlp.parameters()]
    assert shapes == [(6, 4), (6,), (6, 6), (6,), (6, 6), (6,), (1, 6), (1,)]
    assert all(isinstance(p, cr.Tensor) and p.requires_grad for p in mlp.parameters())
    assert mlp.num_parameters() == 6 * 4 + 6 + 2 * (36 + 6) + 6 + 1


def test_linear_is_x_times_weight_transposed_plus_bias():
    layer = nn.Linear(3, 2, rng=0)
    W = numpy.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    b = numpy.array([0.25, -1.0])
    layer.load_state_dict({"weight": W, "bias": b})
    x = numpy.array([[1.0, 1.0, 1.0], [2.0, 0.0, -1.0]])
    # row 0: [1+2+3+0.25, -1+0.5+0-1] ; row 1: [2-3+0.25, -2+0+0-1]
    numpy.testing.assert_array_equal(layer(x).data, [[6.25, -1.5], [-0.75, -3.0]])
    assert nn.Linear(3, 2, bias=False).bias is None
    with pytest.raises(ValueError, match="last dimension 3"):
        layer(numpy.ones((2, 4)))


def test_mlp_reproduces_the_hand_derived_seed_gradients():
    """The README's 4-6-6-6-1 network as an nn.MLP: weights are (out, in), so W.T."""
    mlp = nn.MLP([4, 6, 6, 6, 1])
    state = {}
    for i, k in enumerate(("1", "2", "3", "4")):
        state[f"layers.{2 * i}.weight"] = seed.PARAMS[f"W{k}"].T
        state[f"layers.{2 * i}.bias"] = seed.PARAMS[f"B{k}"].reshape(-1)
    mlp.load_state_dict(state)
    F.mse_loss(mlp(seed.X), seed.T).backward()
    expected = seed.hand_derived_gradients(seed.X, seed.T, **seed.PARAMS)
    for i, k in enumerate(("1", "2", "3", "4")):
        numpy.testing.assert_allclose(
            mlp.layers[2 * i].weight.grad, expected[f"W{k}"].T, rtol=1e-12, atol=1e-15
        )
        numpy.testing.assert_allclose(
            mlp.layers[2 * i].bias.grad, expected[f"B{k}"].reshape(-1), rtol=1e-12, atol=1e-15
        )


def test_state_dict_is_a_copy_and_round_trips():
    a, b = nn.MLP([3, 5, 2], rng=1), nn.MLP([3, 5, 2], rng=2)
    sd = a.state_dict()
    sd["layers.0.weight"][...] = 99.0  # must not touch the model
    assert not (a.layers[0].weight.data == 99.0).any()
    weight_object = b.layers[0].weight
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.layers[0].weight is weight_object  # same tensor, new values
    x = RNG.standard_normal((4, 3))
    numpy.testing.assert_array_equal(a(x).data, b(x).data)
    kept = b.state_dict(keep_vars=True)
    assert kept["layers.0.weight"] is weight_object


def test_load_state_dict_strict_errors_name_every_problem_and_change_nothing():
    m = nn.MLP([3, 5, 2], rng=0)
    before = m.state_dict()
    bad = m.state_dict()
    del bad["layers.0.bias"]
    bad["layers.9.weight"] = numpy.zeros(3)
    bad["layers.2.weight"] = numpy.zeros((5, 2))
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(bad)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "layers.0.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "layers.9.weight"' in msg
    assert "size mismatch for layers.2.weight" in msg and "(5, 2)" in msg and "(2, 5)" in msg
    for k, v in m.state_dict().items():
        numpy.testing.assert_array_equal(v, before[k])
    # non-strict: reports instead of raising (shapes must still match)
    del bad["layers.2.weight"]
    result = m.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["layers.0.bias", "layers.2.weight"]
    assert result.unexpected_keys == ["layers.9.weight"]


def test_train_eval_repr_and_containers():
    m = nn.MLP([4, 8, 3], dropout=0.5, norm="batch", rng=0)
    assert repr(m) == (
        "MLP(\n"
        "  (layers): Sequential(\n"
        "    (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "    (1): BatchNorm1d(8, eps=1e-05, momentum=0.1, affine=True, "
        "track_running_stats=True)\n"
        "    (2): ReLU()\n"
        "    (3): Dropout(p=0.5)\n"
        "    (4): Linear(in_features=8, out_features=3, bias=True)\n"
        "  )\n"
        ")"
    )
    assert all(x.training for x in m.modules())
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert m.layers[3].training
    seq = m.layers
    assert len(seq) == 5 and isinstance(seq[0], nn.Linear)
    assert isinstance(seq[1:3], nn.Sequential) and len(seq[1:3]) == 2
    assert [k for k, _ in m.named_buffers()] == ["layers.1.running_mean", "layers.1.running_var"]


def test_shared_parameters_listed_once_and_custom_modules():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2, rng=0)
            self.b = nn.Linear(2, 2, rng=1)
            self.b.weight = self.a.weight
            self.scale = nn.Parameter(numpy.ones(1))
            self.register_buffer("steps", numpy.zeros(1))
            self.register_buffer("cache", numpy.zeros(2), persistent=False)

        def forward(self, x):
            return self.b(self.a(x)) * self.scale

    t = Tied()
    names = [n for n, _ in t.named_parameters()]
    assert names == ["scale", "a.weight", "a.bias", "b.bias"]
    assert sorted(t.state_dict()) == ["a.bias", "a.weight", "b.bias", "b.weight", "scale", "steps"]
    with pytest.raises(TypeError, match="parameter 'scale'"):
        t.scale = numpy.ones(1)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        t.nothing  # noqa: B018

    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(numpy.ones(1))

    with pytest.raises(AttributeError, match="super"):
        Forgot()


def test_zero_grad_requires_grad_and_dtype_conversion():
    m = nn.MLP([2, 3, 1], rng=0)
    F.mse_loss(m(numpy.ones((2, 2))), numpy.zeros((2, 1))).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.float()
    assert m.dtype == numpy.float32
    assert m(numpy.ones((2, 2), dtype=numpy.float32)).dtype == numpy.float32
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_functional_call_matches_backward_and_restores_parameters():
    model = nn.MLP([3, 4, 2], activation="tanh", rng=0)
    x, y = RNG.standard_normal((5, 3)), numpy.array([0, 1, 1, 0, 1])
    F.cross_entropy(model(x), y).backward()
    grads = cr.grad(lambda p: F.cross_entropy(nn.functional_call(model, p, x), y))(
        model.state_dict()
    )
    assert sorted(grads) == sorted(model.state_dict())
    for name, p in model.named_parameters():
        numpy.testing.assert_allclose(grads[name], p.grad, rtol=1e-12)
    # a different parameter set really is used, and the module's own is restored
    zeros = {k: numpy.zeros_like(v) for k, v in model.state_dict().items()}
    numpy.testing.assert_array_equal(model.functional_call(zeros, x), numpy.zeros((5, 2)))
    assert isinstance(model.layers[0].weight, cr.Tensor)
    assert model.layers[0].weight.requires_grad
    with pytest.raises(KeyError, match="not a parameter or buffer"):
        nn.functional_call(model, {"layers.7.weight": numpy.zeros(1)}, x)
    # with buffers in the state dict (batch norm): they get zero gradients and stay unchanged
    bn_model = nn.MLP([3, 4, 2], norm="batch", rng=0)
    state = bn_model.state_dict()
    g = cr.grad(lambda p: F.cross_entropy(nn.functional_call(bn_model, p, x), y))(state)
    assert not g["layers.1.running_mean"].any() and g["layers.0.weight"].any()
    numpy.testing.assert_array_equal(bn_model.layers[1].running_mean, numpy.zeros(4))

    def boom(x):
        raise RuntimeError("boom")

    own = model.layers[0].weight
    model.forward = boom
    with pytest.raises(RuntimeError):
        nn.functional_call(model, zeros, x)
    assert model.layers[0].weight is own


# =============================================================================================
# Layers: gradients (check_grads, float64) and forward values from independent code
# =============================================================================================


def conv2d_loops(x, w, b, stride, pad):
    """Direct definition: out[n, o, i, j] = sum_{c,u,v} xpad[n, c, i*s+u, j*s+v] w[o, c, u, v]."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = numpy.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad : pad + h, pad : pad + wd] = x
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = numpy.zeros((n, o, ho, wo))
    for a in range(n):
        for q in range(o):
            for i in range(ho):
                for j in range(wo):
                    patch = xp[a, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    out[a, q, i, j] = (patch * w[q]).sum() + (0 if b is None else b[q])
    return out


@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 1)])
def test_conv2d_forward_equals_the_definition_and_gradients_check(stride, pad):
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=pad, rng=0)
    x = RNG.standard_normal((2, 3, 5, 6))
    expected = conv2d_loops(x, conv.weight.data, conv.bias.data, stride, pad)
    numpy.testing.assert_allclose(conv(x).data, expected, rtol=1e-12, atol=1e-12)
    check_module(conv, x)


def test_conv2d_same_padding_unbatched_and_errors():
    conv = nn.Conv2d(2, 3, (3, 2), padding="same", bias=False, rng=0)
    assert conv(numpy.zeros((1, 2, 5, 5))).shape == (1, 3, 5, 5)
    assert conv(numpy.zeros((2, 5, 5))).shape == (3, 5, 5)
    check_module(conv, RNG.standard_normal((2, 2, 4, 5)))
    check_module(conv, RNG.standard_normal((2, 4, 5)))  # unbatched
    cr.check_grads(nn.Identity(), RNG.standard_normal(3))
    with pytest.raises(ValueError, match="4 channels .* expects 2"):
        nn.Conv2d(2, 3, 3)(numpy.zeros((1, 4, 5, 5)))
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(2, 3, 3, stride=2, padding="same")


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (2, 1, 0)])
def test_max_pool_forward_equals_the_definition_and_gradients_check(k, s, p):
    x = RNG.permutation(2 * 3 * 5 * 6).reshape(2, 3, 5, 6) / 7.0  # distinct values: no ties
    pool = nn.MaxPool2d(k, s, p)
    stride = k if s is None else s
    xp = numpy.full((2, 3, 5 + 2 * p, 6 + 2 * p), -numpy.inf)
    xp[:, :, p : p + 5, p : p + 6] = x
    ho, wo = (5 + 2 * p - k) // stride + 1, (6 + 2 * p - k) // stride + 1
    expected = numpy.array(
        [
            [
                [
                    [
                        xp[n, c, i * stride : i * stride + k, j * stride : j * stride + k].max()
                        for j in range(wo)
                    ]
                    for i in range(ho)
                ]
                for c in range(3)
            ]
            for n in range(2)
        ]
    )
    numpy.testing.assert_array_equal(pool(x), expected)
    cr.check_grads(pool, x)
    avg = nn.AvgPool2d(k, s, p)
    cr.check_grads(avg, x)


def test_max_pool_sends_the_gradient_to_the_maximum():
    x = cr.tensor([[[[1.0, 5.0], [2.0, 3.0]]]], requires_grad=True)
    nn.MaxPool2d(2)(x).sum().backward()
    numpy.testing.assert_array_equal(x.grad, [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_linear_mlp_layernorm_flatten_gradients():
    check_module(nn.Linear(4, 3, rng=0), RNG.standard_normal((5, 4)))
    check_module(nn.MLP([3, 4, 4, 2], activation="tanh", rng=0), RNG.standard_normal((3, 3)))
    ln = nn.LayerNorm((2, 3))
    ln.load_state_dict({"weight": RNG.standard_normal((2, 3)), "bias": RNG.standard_normal((2, 3))})
    check_module(ln, RNG.standard_normal((4, 2, 3)))
    cr.check_grads(nn.Flatten(), RNG.standard_normal((2, 3, 2)))


def test_layer_norm_values():
    y = nn.LayerNorm(4, elementwise_affine=False, eps=0.0)(numpy.array([[1.0, 2.0, 3.0, 6.0]]))
    # mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
    numpy.testing.assert_allclose(y, [[-2, -1, 0, 3] / numpy.sqrt(3.5)], rtol=1e-14)


def test_batchnorm_train_eval_running_statistics_and_gradients():
    bn = nn.BatchNorm1d(2, momentum=0.5)
    x = numpy.array([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0]])
    y = bn(x)
    # column 0: mean 3, biased var 8/3, unbiased var 4; column 1: mean 20, biased var 200,
    # unbiased 300
    numpy.testing.assert_allclose(y.data[:, 0], numpy.array([-2, 0, 2]) / numpy.sqrt(8 / 3 + 1e-5))
    numpy.testing.assert_allclose(bn.running_mean, [0.5 * 0 + 0.5 * 3, 0.5 * 0 + 0.5 * 20])
    numpy.testing.assert_allclose(bn.running_var, [0.5 * 1 + 0.5 * 4, 0.5 * 1 + 0.5 * 300])
    bn.eval()
    # (x - running mean) / sqrt(running var + eps)
    x = numpy.array([[1.5, 10.0], [1.5 + 2.5**0.5, 10.0 + 150.5**0.5]])
    expected = [[0.0, 0.0], [1 / (1 + 1e-5 / 2.5) ** 0.5, 1 / (1 + 1e-5 / 150.5) ** 0.5]]
    numpy.testing.assert_allclose(bn(x).data, expected, rtol=1e-12, atol=1e-12)
    bn.train()
    bn.load_state_dict(
        {
            "weight": numpy.array([1.5, -0.5]),
            "bias": numpy.array([0.2, 0.1]),
            "running_mean": numpy.zeros(2),
            "running_var": numpy.ones(2),
        }
    )
    check_module(bn, RNG.standard_normal((5, 2)))  # training mode
    bn.eval()
    state = {k: numpy.array(v) for k, v in bn.state_dict().items()}
    state["running_var"] = numpy.array([0.5, 2.0])
    cr.check_grads(lambda p, x: nn.functional_call(bn, p, x), state, RNG.standard_normal((3, 2)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(2)(numpy.ones((1, 2)))
    bn2 = nn.BatchNorm2d(3)
    check_module(bn2, RNG.standard_normal((2, 3, 2, 2)))
    with pytest.raises(ValueError, match="4-D"):
        bn2(numpy.ones((2, 3)))


def test_dropout_mask_scale_reproducibility_eval_identity_and_gradient():
    x = numpy.ones(10_000)
    d = nn.Dropout(0.25, rng=7)
    y = d(x)
    assert set(numpy.unique(y).tolist()) == {0.0, 1.0 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    numpy.testing.assert_array_equal(nn.Dropout(0.25, rng=7)(x), y)  # same seed, same mask
    assert not numpy.array_equal(d(x), y)  # a new mask each call
    d.eval()
    assert d(x) is x
    assert numpy.array_equal(nn.Dropout(1.0)(x), numpy.zeros_like(x))
    d.train()

    def f(x):
        d.generator = numpy.random.default_rng(3)  # a fixed mask per call
        return d(x)

    cr.check_grads(f, RNG.standard_normal((4, 5)))


ACTIVATIONS = [
    nn.ReLU(),
    nn.LeakyReLU(0.2),
    nn.ELU(0.7),
    nn.SELU(),
    nn.GELU(),
    nn.GELU("tanh"),
    nn.Sigmoid(),
    nn.Tanh(),
    nn.Softplus(2.0),
    nn.SiLU(),
    nn.Softmax(dim=1),
    nn.LogSoftmax(dim=0),
]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: repr(a))
def test_activation_gradients(act):
    x = RNG.standard_normal((3, 4)) * 2
    cr.check_grads(act, x, order=2)


def test_activation_values_and_conventions_at_zero():
    x = numpy.array([-2.0, 0.0, 3.0])
    numpy.testing.assert_array_equal(F.relu(x), [0, 0, 3])
    numpy.testing.assert_allclose(F.leaky_relu(x, 0.1), [-0.2, 0, 3])
    numpy.testing.assert_allclose(F.elu(x, 2.0), [2 * (math.exp(-2) - 1), 0, 3])
    numpy.testing.assert_allclose(
        F.sigmoid(x), [1 / (1 + math.exp(2)), 0.5, 1 / (1 + math.exp(-3))]
    )
    numpy.testing.assert_allclose(
        F.softplus(x), [math.log1p(math.exp(-2)), math.log(2), math.log1p(math.exp(3))]
    )
    numpy.testing.assert_allclose(
        F.softmax(numpy.log(numpy.array([1.0, 2.0, 5.0]))), [0.125, 0.25, 0.625]
    )
    # derivatives at exactly 0 (PyTorch's conventions)
    derivative = lambda f: float(cr.grad(lambda t: f(t).sum())(numpy.array([0.0]))[0])  # noqa
    assert derivative(F.relu) == 0.0
    assert derivative(lambda t: F.leaky_relu(t, 0.1)) == pytest.approx(0.1)
    assert derivative(lambda t: F.elu(t, 0.7)) == pytest.approx(0.7)
    assert derivative(F.sigmoid) == pytest.approx(0.25)
    assert derivative(F.gelu) == pytest.approx(0.5, abs=1e-7)


def test_gelu_matches_math_erf():
    xs = numpy.linspace(-6, 6, 241)
    exact = numpy.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in xs])
    assert numpy.max(numpy.abs(F.gelu(xs) - exact)) < 2e-7
    tanh = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))) for v in xs]
    numpy.testing.assert_allclose(F.gelu(xs, "tanh"), tanh, rtol=1e-13, atol=1e-15)


def test_activations_are_finite_and_warning_free_for_huge_inputs():
    # pytest runs with filterwarnings=error, so an overflow in exp would fail here
    x = cr.tensor([-1e4, -800.0, 0.0, 800.0, 1e4], requires_grad=True)
    for f in (
        F.sigmoid,
        F.log_sigmoid,
        F.softplus,
        F.elu,
        F.selu,
        F.silu,
        F.gelu,
        lambda t: F.softmax(t, 0),
        lambda t: F.log_softmax(t, 0),
        F.tanh,
    ):
        x.grad = None
        y = f(x)
        (y * numpy.arange(5.0)).sum().backward()
        assert numpy.all(numpy.isfinite(y.data)), f
        assert numpy.all(numpy.isfinite(x.grad)), f
    numpy.testing.assert_array_equal(F.sigmoid(numpy.array([-1e4, 1e4])), [0.0, 1.0])
    numpy.testing.assert_array_equal(F.log_sigmoid(numpy.array([-1e4])), [-1e4])


# =============================================================================================
# Losses
# =============================================================================================


def test_loss_values_derived_by_hand():
    # mse/l1: errors (1, -3) -> squares 1, 9; absolutes 1, 3
    p, t = numpy.array([1.0, -1.0]), numpy.array([0.0, 2.0])
    assert float(F.mse_loss(p, t)) == 5.0
    assert float(F.mse_loss(p, t, reduction="sum")) == 10.0
    assert float(F.l1_loss(p, t)) == 2.0
    numpy.testing.assert_array_equal(F.l1_loss(p, t, reduction="none"), [1.0, 3.0])
    # huber, delta 1: |d| = 0.5 -> 0.5*0.25 = 0.125; |d| = 3 -> 1*(3 - 0.5) = 2.5
    numpy.testing.assert_array_equal(
        F.huber_loss(numpy.array([0.5, -3.0]), numpy.zeros(2), reduction="none"), [0.125, 2.5]
    )
    # smooth L1, beta 2: |d| = 1 -> 0.5*1/2 = 0.25; |d| = 3 -> 3 - 1 = 2
    numpy.testing.assert_array_equal(
        F.smooth_l1_loss(numpy.array([1.0, 3.0]), numpy.zeros(2), "none", beta=2.0), [0.25, 2.0]
    )
    # cross-entropy: logits log(1), log(2), log(3) are probabilities 1/6, 2/6, 3/6
    logits = numpy.log(numpy.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]))
    assert float(F.cross_entropy(logits, numpy.array([2, 0]))) == pytest.approx(
        (math.log(2) + math.log(6)) / 2, rel=1e-14
    )
    # class weights (0.5, 1, 2): weighted sum / sum of the targets' weights
    w = numpy.array([0.5, 1.0, 2.0])
    assert float(F.cross_entropy(logits, numpy.array([2, 0]), weight=w)) == pytest.approx(
        (2 * math.log(2) + 0.5 * math.log(6)) / 2.5, rel=1e-14
    )
    # ignore_index drops the second sample
    assert float(F.cross_entropy(logits, numpy.array([2, -100]))) == pytest.approx(
        math.log(2), rel=1e-14
    )
    # label smoothing 0.3 with 3 classes: (1 - 0.3) * nll + 0.3/3 * sum_c (-log p_c)
    smooth = 0.7 * math.log(2) + 0.1 * (math.log(6) + math.log(3) + math.log(2))
    assert float(
        F.cross_entropy(logits[:1], numpy.array([2]), label_smoothing=0.3)
    ) == pytest.approx(smooth, rel=1e-14)
    # probability targets (0.5, 0.5, 0): -(0.5 log 1/6 + 0.5 log 1/3)
    probs = numpy.array([[0.5, 0.5, 0.0]])
    assert float(F.cross_entropy(logits[:1], probs)) == pytest.approx(
        0.5 * math.log(6) + 0.5 * math.log(3), rel=1e-14
    )
    # nll on log-probabilities
    assert float(
        F.nll_loss(numpy.log(numpy.array([[0.25, 0.75]])), numpy.array([1]))
    ) == pytest.approx(-math.log(0.75), rel=1e-14)
    # binary cross-entropy on logits: x = 0 gives log 2; pos_weight 3 triples the positive term
    assert float(
        F.binary_cross_entropy_with_logits(numpy.zeros(1), numpy.ones(1))
    ) == pytest.approx(math.log(2), rel=1e-15)
    assert float(
        F.binary_cross_entropy_with_logits(
            numpy.zeros(1), numpy.ones(1), pos_weight=numpy.array([3.0])
        )
    ) == pytest.approx(3 * math.log(2), rel=1e-15)
    assert float(F.binary_cross_entropy(numpy.array([0.8]), numpy.array([1.0]))) == pytest.approx(
        -math.log(0.8), rel=1e-14
    )


def test_losses_are_exact_for_huge_logits():
    # class 1 has logit 0 against 1000: loss 1000, gradient softmax - onehot = (1, -1)
    x = cr.tensor([[1000.0, 0.0]], requires_grad=True)
    loss = F.cross_entropy(x, numpy.array([1]))
    loss.backward()
    assert float(loss) == 1000.0
    numpy.testing.assert_array_equal(x.grad, [[1.0, -1.0]])
    x = cr.tensor([[1e5, -1e5, 0.0]], requires_grad=True)
    F.cross_entropy(x, numpy.array([0])).backward()
    numpy.testing.assert_array_equal(x.grad, [[0.0, 0.0, 0.0]])
    # BCE with logits: loss |x| for the wrong label, gradient sigmoid(x) - t
    z = cr.tensor([-1000.0, 1000.0, 1000.0], requires_grad=True)
    t = numpy.array([1.0, 0.0, 1.0])
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    bce.sum().backward()
    numpy.testing.assert_array_equal(bce.data, [1000.0, 1000.0, 0.0])
    numpy.testing.assert_array_equal(z.grad, [-1.0, 1.0, 0.0])
    # probabilities at exactly 0 and 1: logs clamped at -100 (PyTorch)
    assert float(F.binary_cross_entropy(numpy.array([0.0]), numpy.array([1.0]))) == 100.0


LOSS_CASES = {
    "mse": (F.mse_loss, (3, 4), "float"),
    "l1": (F.l1_loss, (3, 4), "float"),
    "huber": (lambda a, t: F.huber_loss(a, t, delta=0.5), (3, 4), "float"),
    "smooth_l1": (lambda a, t: F.smooth_l1_loss(a, t, beta=0.5), (3, 4), "float"),
    "cross_entropy": (F.cross_entropy, (5, 4), "index"),
    "cross_entropy_weight_smooth": (
        lambda a, t: F.cross_entropy(
            a, t, weight=numpy.array([0.5, 1.0, 2.0, 1.5]), label_smoothing=0.2
        ),
        (5, 4),
        "index",
    ),
    "cross_entropy_probs": (F.cross_entropy, (5, 4), "probs"),
    "cross_entropy_3d": (F.cross_entropy, (2, 4, 3), "index3d"),
    "nll": (lambda a, t: F.nll_loss(F.log_softmax(a, 1), t, reduction="sum"), (5, 4), "index"),
    "bce_with_logits": (
        lambda a, t: F.binary_cross_entropy_with_logits(
            a, t, pos_weight=numpy.array([1.0, 2.0, 0.5, 3.0])
        ),
        (3, 4),
        "binary",
    ),
    "bce": (lambda a, t: F.binary_cross_entropy(F.sigmoid(a), t), (3, 4), "binary"),
}


@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_loss_gradients(name):
    f, shape, kind = LOSS_CASES[name]
    x = RNG.standard_normal(shape) * 2
    if kind == "float":
        t = x + RNG.choice([-1.5, -0.3, 0.2, 2.0], size=shape)  # away from the kinks
        cr.check_grads(f, x, t)  # both arguments
    elif kind == "index":
        labels = RNG.integers(0, shape[1], shape[0])
        cr.check_grads(lambda a: f(a, labels), x)
    elif kind == "index3d":
        cr.check_grads(lambda a: f(a, numpy.array([[0, 3, 1], [2, 2, 0]])), x)
    elif kind == "probs":
        p = RNG.random(shape)
        p /= p.sum(axis=1, keepdims=True)
        cr.check_grads(f, x, p)
    else:
        cr.check_grads(f, x, RNG.random(shape))


def test_loss_modules_and_errors():
    x, y = numpy.zeros((2, 3)), numpy.array([0, 2])
    assert float(nn.CrossEntropyLoss()(x, y)) == pytest.approx(math.log(3))
    assert float(nn.CrossEntropyLoss(reduction="sum")(x, y)) == pytest.approx(2 * math.log(3))
    assert float(nn.MSELoss()(numpy.ones(2), numpy.zeros(2))) == 1.0
    with pytest.raises(ValueError, match=r"reshape the target to \(N, 1\)"):
        F.mse_loss(numpy.zeros((4, 1)), numpy.zeros(4))
    with pytest.raises(ValueError, match=r"astype\(int\)"):
        F.cross_entropy(x, numpy.array([0.0, 2.0]))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(x, numpy.array([True, False]))
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(x, numpy.array([0, 3]))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


# =============================================================================================
# Initialisers
# =============================================================================================


def test_initialisers_bounds_spread_and_reproducibility():
    from chainrule.nn import init

    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert init.fan_in_and_fan_out((8, 3, 5, 5)) == (75, 200)
    w = init.kaiming_uniform((300, 200), nonlinearity="relu", rng=0)
    bound = math.sqrt(2) * math.sqrt(3 / 200)
    assert numpy.abs(w).max() <= bound and numpy.abs(w).max() > 0.99 * bound
    assert abs(w.std() - math.sqrt(2 / 200)) < 0.02 * math.sqrt(2 / 200)
    w = init.kaiming_normal((300, 200), mode="fan_out", nonlinearity="relu", rng=0)
    assert abs(w.std() - math.sqrt(2 / 300)) < 0.02 * math.sqrt(2 / 300)
    w = init.xavier_uniform((300, 200), rng=0)
    assert numpy.abs(w).max() <= math.sqrt(6 / 500)
    w = init.xavier_normal((300, 200), gain=2.0, rng=0)
    assert abs(w.std() - 2 * math.sqrt(2 / 500)) < 0.02 * 2 * math.sqrt(2 / 500)
    numpy.testing.assert_array_equal(
        init.he_uniform((3, 4), rng=5), init.kaiming_uniform((3, 4), rng=5)
    )
    g = numpy.random.default_rng(9)
    p = nn.Parameter(numpy.empty((4, 6), dtype=numpy.float32))
    assert init.xavier_uniform_(p, generator=g) is p and p.dtype == numpy.float32
    init.zeros_(p)
    assert not p.data.any()
    # PyTorch's Linear default: U(-1/sqrt(in), 1/sqrt(in)); reproducible from a seed
    lin = nn.Linear(400, 300, rng=1)
    assert numpy.abs(lin.weight.data).max() <= 1 / 20
    assert numpy.array_equal(nn.Linear(400, 300, rng=1).weight.data, lin.weight.data)

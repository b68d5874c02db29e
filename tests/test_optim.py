"""chainrule.optim: every optimizer against its published update rule, worked out by hand.

Each test runs two steps on x0 = [1, -2] with fixed gradients g1 = [0.5, -1] and g2 = [1, 2]
(set directly on ``.grad``, so autograd plays no part).  The intermediate values in the comments
are derived by hand from the update rule in the docstring of the optimizer (which follows
PyTorch); the assertions compare with those literals.
"""

from __future__ import annotations

import math
import os

import numpy
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.train.checkpoint import load, save

X0 = [1.0, -2.0]
G1 = numpy.array([0.5, -1.0])
G2 = numpy.array([1.0, 2.0])


def two_steps(make, x0=X0, grads=(G1, G2)):
    p = cr.tensor(x0, requires_grad=True)
    opt = make([p])
    states = []
    for g in grads:
        p.grad = numpy.array(g)
        opt.step()
        states.append(p.data.copy())
    return states, opt, p


def close(actual, expected, rtol=1e-12):
    numpy.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-15)


def test_sgd_plain():
    (x1, x2), _, _ = two_steps(lambda p: optim.SGD(p, lr=0.1))
    close(x1, [1 - 0.05, -2 + 0.1])  # x - 0.1 g1
    close(x2, [0.95 - 0.1, -1.9 - 0.2])  # x - 0.1 g2


def test_sgd_momentum_dampening_weight_decay():
    (x1, x2), opt, p = two_steps(
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
    )
    # step 1: g = g1 + 0.01 x0 = [0.51, -1.02]; buffer = g (no dampening on the first step)
    #         x1 = x0 - 0.1 * [0.51, -1.02] = [0.949, -1.898]
    close(x1, [0.949, -1.898])
    # step 2: g = g2 + 0.01 x1 = [1.00949, 1.98102]
    #         buffer = 0.9 [0.51, -1.02] + (1 - 0.1) g = [0.459 + 0.908541, -0.918 + 1.782918]
    #                = [1.367541, 0.864918];  x2 = x1 - 0.1 buffer = [0.8122459, -1.9844918]
    close(opt.state[p]["momentum_buffer"], [1.367541, 0.864918])
    close(x2, [0.8122459, -1.9844918])


def test_sgd_nesterov_and_maximize():
    (x1, x2), _, _ = two_steps(lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True))
    # step 1: b = g1 = [0.5, -1]; g = g1 + 0.9 b = [0.95, -1.9]; x1 = [0.905, -1.81]
    # step 2: b = 0.9 [0.5, -1] + g2 = [1.45, 1.1]; g = g2 + 0.9 b = [2.305, 2.99]
    #         x2 = [0.905 - 0.2305, -1.81 - 0.299] = [0.6745, -2.109]
    close(x1, [0.905, -1.81])
    close(x2, [0.6745, -2.109])
    (x1, _), _, _ = two_steps(lambda p: optim.SGD(p, lr=0.1, maximize=True))
    close(x1, [1.05, -2.1])  # x + 0.1 g1


def test_adam():
    (x1, x2), opt, p = two_steps(lambda p: optim.Adam(p, lr=0.1))
    # step 1: m = 0.1 g1 = [0.05, -0.1]; v = 0.001 g1^2 = [0.00025, 0.001]
    #         bias corrections 1 - 0.9 = 0.1 and 1 - 0.999 = 0.001
    #         sqrt(v) / sqrt(0.001) = [0.5, 1];  x1 = x0 - (0.1 / 0.1) m / ([0.5, 1] + 1e-8)
    close(x1, [1 - 0.05 / (0.5 + 1e-8), -2 + 0.1 / (1 + 1e-8)])
    # step 2: m = 0.9 [0.05, -0.1] + 0.1 [1, 2] = [0.145, 0.11]
    #         v = 0.999 [0.00025, 0.001] + 0.001 [1, 4] = [0.00124975, 0.004999]
    #         bias corrections 1 - 0.81 = 0.19 and 1 - 0.998001 = 0.001999
    state = opt.state[p]
    assert state["step"] == 2
    close(state["exp_avg"], [0.145, 0.11])
    close(state["exp_avg_sq"], [0.00124975, 0.004999])
    denom = [
        math.sqrt(0.00124975) / math.sqrt(0.001999) + 1e-8,
        math.sqrt(0.004999) / math.sqrt(0.001999) + 1e-8,
    ]
    close(x2, [x1[0] - 0.1 / 0.19 * 0.145 / denom[0], x1[1] - 0.1 / 0.19 * 0.11 / denom[1]])


def test_adam_coupled_weight_decay_and_amsgrad():
    (x1,), _, _ = two_steps(lambda p: optim.Adam(p, lr=0.1, weight_decay=0.2), grads=(G1,))
    # g = g1 + 0.2 x0 = [0.7, -1.4]: the first Adam step is lr * g / (|g| + eps)
    close(x1, [1 - 0.07 / (0.7 + 1e-8) * 1.0, -2 + 0.14 / (1.4 + 1e-8)])
    # AMSGrad: a gradient 2 then 0; v = [0.004], then 0.999 * 0.004 = 0.003996 < 0.004,
    # so the denominator keeps sqrt(0.004 / 0.001999); m = 0.9 * 0.2 = 0.18
    (_, x2), opt, p = two_steps(
        lambda p: optim.Adam(p, lr=0.1, amsgrad=True),
        x0=[0.0],
        grads=(numpy.array([2.0]), numpy.array([0.0])),
    )
    x1 = 0 - 0.2 / (2 + 1e-8)  # step 1: m = 0.2, v = 0.004 -> sqrt(v/0.001) = 2
    close(opt.state[p]["max_exp_avg_sq"], [0.004])
    close(x2, [x1 - 0.1 / 0.19 * 0.18 / (math.sqrt(0.004 / 0.001999) + 1e-8)])


def test_adamw_decoupled_weight_decay():
    (x1, x2), _, _ = two_steps(lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.5))
    # step 1: x0 * (1 - 0.1 * 0.5) = [0.95, -1.9], then the Adam step of test_adam
    close(x1, [0.95 - 0.05 / (0.5 + 1e-8), -1.9 + 0.1 / (1 + 1e-8)])
    denom = [
        math.sqrt(0.00124975) / math.sqrt(0.001999) + 1e-8,
        math.sqrt(0.004999) / math.sqrt(0.001999) + 1e-8,
    ]
    close(
        x2,
        [x1[0] * 0.95 - 0.1 / 0.19 * 0.145 / denom[0], x1[1] * 0.95 - 0.1 / 0.19 * 0.11 / denom[1]],
    )
    assert optim.AdamW([cr.tensor([1.0], requires_grad=True)]).defaults["weight_decay"] == 0.01


def test_rmsprop():
    (x1, x2), opt, p = two_steps(lambda p: optim.RMSprop(p, lr=0.01))
    # step 1: s = 0.01 g1^2 = [0.0025, 0.01]; sqrt = [0.05, 0.1]
    close(x1, [1 - 0.01 * 0.5 / (0.05 + 1e-8), -2 + 0.01 * 1 / (0.1 + 1e-8)])
    # step 2: s = 0.99 [0.0025, 0.01] + 0.01 [1, 4] = [0.012475, 0.0499]
    close(opt.state[p]["square_avg"], [0.012475, 0.0499])
    close(
        x2,
        [
            x1[0] - 0.01 * 1 / (math.sqrt(0.012475) + 1e-8),
            x1[1] - 0.01 * 2 / (math.sqrt(0.0499) + 1e-8),
        ],
    )


def test_rmsprop_centered_with_momentum_and_weight_decay():
    (x1,), opt, p = two_steps(
        lambda p: optim.RMSprop(
            p, lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1
        ),
        grads=(G1,),
    )
    # g = g1 + 0.1 x0 = [0.6, -1.2]; s = 0.1 g^2 = [0.036, 0.144]; a = 0.1 g = [0.06, -0.12]
    # d = sqrt(s - a^2) + eps = sqrt([0.0324, 0.1296]) + eps = [0.18, 0.36] + eps
    # buffer = g / d = [0.6 / 0.18, -1.2 / 0.36]; x1 = x0 - 0.01 buffer
    close(opt.state[p]["grad_avg"], [0.06, -0.12])
    close(x1, [1 - 0.01 * 0.6 / (0.18 + 1e-8), -2 + 0.01 * 1.2 / (0.36 + 1e-8)])


def test_adagrad():
    (x1, x2), opt, p = two_steps(
        lambda p: optim.Adagrad(p, lr=0.1, lr_decay=0.5, initial_accumulator_value=0.1)
    )
    # step 1: clr = 0.1; sum = 0.1 + g1^2 = [0.35, 1.1]
    close(x1, [1 - 0.1 * 0.5 / (math.sqrt(0.35) + 1e-10), -2 + 0.1 / (math.sqrt(1.1) + 1e-10)])
    # step 2: clr = 0.1 / (1 + 1 * 0.5); sum = [1.35, 5.1]
    close(opt.state[p]["sum"], [1.35, 5.1])
    clr = 0.1 / 1.5
    close(
        x2,
        [x1[0] - clr * 1 / (math.sqrt(1.35) + 1e-10), x1[1] - clr * 2 / (math.sqrt(5.1) + 1e-10)],
    )


def test_defaults_follow_pytorch():
    p = [cr.tensor([1.0], requires_grad=True)]
    assert optim.SGD(p).defaults["lr"] == 1e-3
    assert optim.Adam(p).defaults == {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
    }
    assert optim.RMSprop(p).defaults["lr"] == 1e-2 and optim.RMSprop(p).defaults["alpha"] == 0.99
    assert optim.Adagrad(p).defaults["eps"] == 1e-10


def test_param_groups_skip_missing_grads_zero_grad_and_errors():
    a = cr.tensor([1.0], requires_grad=True)
    b = cr.tensor([1.0], requires_grad=True)
    c = cr.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b, c], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = numpy.array([1.0]), numpy.array([1.0])  # c has no gradient
    opt.step()
    close(a.data, [0.9])
    close(b.data, [0.0])
    assert c.data[0] == 1.0
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    a.grad = numpy.array([5.0])
    opt.zero_grad(set_to_none=False)  # PyTorch: zeros where a gradient was
    assert a.grad is not None and not a.grad.any() and b.grad is None
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="model.parameters"):
        optim.Adam(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="more than one"):
        optim.Adam([a, a])
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([a], nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([a], lr=-1)


def test_step_closure_and_float32_parameters_stay_float32():
    w = cr.tensor(numpy.array([2.0, -1.0], dtype=numpy.float32), requires_grad=True)
    opt = optim.Adam([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == 5.0
    assert w.dtype == numpy.float32


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
        lambda p: optim.Adam(p, lr=0.05, amsgrad=True),
        lambda p: optim.AdamW(p, lr=0.05),
        lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
        lambda p: optim.Adagrad(p, lr=0.1),
    ],
    ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"],
)
def test_state_dict_round_trip_through_a_checkpoint_continues_identically(make, tmp_path):
    rng = numpy.random.default_rng(0)
    grads = [rng.standard_normal((2, 3)) for _ in range(6)]
    a = cr.tensor(numpy.ones((2, 3)), requires_grad=True)
    oa = make([a])
    for g in grads[:3]:
        a.grad = g
        oa.step()
    path = os.path.join(tmp_path, "opt.ckpt")
    save({"w": a.data, "opt": oa.state_dict()}, path)
    state = load(path)
    b = cr.tensor(state["w"], requires_grad=True)
    ob = make([b])
    ob.load_state_dict(state["opt"])
    for g in grads[3:]:
        a.grad, b.grad = g, g.copy()
        oa.step()
        ob.step()
    numpy.testing.assert_array_equal(a.data, b.data)  # bit for bit


def test_load_state_dict_mismatch_is_a_clear_error():
    a = optim.Adam([cr.tensor([1.0], requires_grad=True)])
    b = optim.Adam([cr.tensor([1.0], requires_grad=True), cr.tensor([2.0], requires_grad=True)])
    with pytest.raises(ValueError, match="group 0 has 1 parameters in the state, 2 here"):
        b.load_state_dict(a.state_dict())


def test_clip_grad_norm_and_value():
    a = cr.tensor([0.0, 0.0], requires_grad=True)
    b = cr.tensor([0.0], requires_grad=True)
    a.grad, b.grad = numpy.array([3.0, 4.0]), numpy.array([12.0])
    total = optim.clip_grad_norm_([a, b], 6.5)
    assert total == 13.0  # sqrt(9 + 16 + 144)
    coef = 6.5 / (13.0 + 1e-6)
    close(a.grad, [3 * coef, 4 * coef])
    close(b.grad, [12 * coef])
    a.grad, b.grad = numpy.array([3.0, -4.0]), numpy.array([1.0])
    assert optim.clip_grad_norm_([a, b], 100.0) == pytest.approx(math.sqrt(26))
    close(a.grad, [3.0, -4.0])  # under the limit: untouched
    assert optim.clip_grad_norm_([a, b], 2.0, norm_type=float("inf")) == 4.0
    close(a.grad, [3 * 2 / (4 + 1e-6), -4 * 2 / (4 + 1e-6)])
    a.grad = numpy.array([numpy.inf, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    a.grad = numpy.array([3.0, -0.5])
    optim.clip_grad_value_([a], 1.0)
    close(a.grad, [1.0, -0.5])


def _lrs(sched, opt, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        sched.step()
    return out


def test_schedules():
    def opt():
        return optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)

    o = opt()
    assert _lrs(optim.StepLR(o, 3, 0.5), o, 7) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    o = opt()
    assert _lrs(optim.MultiStepLR(o, [2, 4], 0.1), o, 5) == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    o = opt()
    assert _lrs(optim.ExponentialLR(o, 0.5), o, 3) == [1, 0.5, 0.25]
    # cosine, T_max 4, eta_min 0.2: 0.2 + 0.8 (1 + cos(pi e / 4)) / 2
    o = opt()
    assert _lrs(optim.CosineAnnealingLR(o, 4, eta_min=0.2), o, 5) == pytest.approx(
        [1.0, 0.2 + 0.4 * (1 + math.sqrt(0.5)), 0.6, 0.2 + 0.4 * (1 - math.sqrt(0.5)), 0.2]
    )
    o = opt()
    assert _lrs(optim.LinearLR(o, start_factor=0.5, total_iters=2), o, 4) == [0.5, 0.75, 1, 1]
    # warm-up 0.25 -> 1 over 3 epochs, then StepLR(2, 0.1) counted from the end of warm-up
    o = opt()
    step = optim.StepLR(o, 2, 0.1)
    warm = optim.LinearWarmup(o, 3, start_factor=0.25, after=step)
    assert _lrs(warm, o, 8) == pytest.approx([0.25, 0.5, 0.75, 1, 1, 0.1, 0.1, 0.01])
    assert warm.get_last_lr() == pytest.approx([0.01])
    o = opt()
    warm = optim.LinearWarmup(o, 2)
    assert _lrs(warm, o, 4) == pytest.approx([0.1, 0.55, 1.0, 1.0])


def test_scheduler_state_dict_resumes_the_sequence():
    o1 = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    s1 = optim.CosineAnnealingLR(o1, 10)
    for _ in range(4):
        s1.step()
    o2 = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    s2 = optim.CosineAnnealingLR(o2, 10)
    o2.load_state_dict(o1.state_dict())
    s2.load_state_dict(s1.state_dict())
    assert _lrs(s1, o1, 5) == _lrs(s2, o2, 5)


def test_optimizers_minimise_a_quadratic():
    target = numpy.array([3.0, -1.0, 0.5])
    for make in (
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: optim.Adam(p, lr=0.1),
        lambda p: optim.RMSprop(p, lr=0.01),
        lambda p: optim.Adagrad(p, lr=0.5),
        lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.0),
    ):
        w = cr.tensor(numpy.zeros(3), requires_grad=True)
        opt = make([w])
        for _ in range(500):
            opt.zero_grad()
            ((w - target) ** 2).sum().backward()
            opt.step()
        numpy.testing.assert_allclose(w.data, target, atol=2e-2)

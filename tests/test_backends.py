"""Other array libraries through NumPy's protocols: nothing goes to the host behind the user's
back, gradients come back in the input's array type and equal NumPy's.

Two backends run here without a GPU: ``standin.DeviceArray``, which behaves like CuPy (it refuses
to become a host array and refuses to mix with host floating-point arrays), and real Dask (lazy,
chunked; a local ``dask.distributed`` cluster on the loopback address for the GLM).
"""

from __future__ import annotations

import warnings

import numpy
import pytest
from op_cases import CASES
from standin import DeviceArray, HostConversionError, device

import chainrule as cr

rng = numpy.random.default_rng(21)


def _mlp_loss(w1, b1, w2, b2, x, y):
    h = numpy.tanh(x @ w1 + b1)
    z = numpy.maximum(0, h @ w2 + b2)
    return ((z - y) ** 2).mean() + 1e-3 * (w1 * w1).sum()


def _mlp_data():
    x = rng.standard_normal((16, 5))
    y = rng.standard_normal((16, 3))
    params = [
        rng.standard_normal((5, 8)),
        numpy.zeros(8),
        rng.standard_normal((8, 3)),
        numpy.zeros(3),
    ]
    return params, x, y


# ---------------------------------------------------------------------------------------------
# A CuPy-like device array
# ---------------------------------------------------------------------------------------------


def test_mlp_gradients_stay_on_the_device_and_equal_numpys():
    params, x, y = _mlp_data()
    want = cr.value_and_grad(_mlp_loss, argnums=(0, 1, 2, 3))(*params, x, y)
    before = DeviceArray.transfers
    dev = [device(p) for p in params]
    value, grads = cr.value_and_grad(_mlp_loss, argnums=(0, 1, 2, 3))(*dev, device(x), device(y))
    assert DeviceArray.transfers == before  # nothing was copied to the host
    assert isinstance(value, DeviceArray)
    for g, w in zip(grads, want[1]):
        assert isinstance(g, DeviceArray) and g.dtype == w.dtype and g.shape == w.shape
        numpy.testing.assert_allclose(g.get(), w, rtol=1e-12, atol=1e-12)
    assert float(value.get()) == pytest.approx(float(want[0]), rel=1e-12)


def test_backward_and_tensors_keep_the_device_array():
    params, x, y = _mlp_data()
    ts = [cr.tensor(device(p), requires_grad=True) for p in params]
    loss = _mlp_loss(*ts, device(x), device(y))
    loss.backward()
    want = cr.grad(_mlp_loss, argnums=(0, 1, 2, 3))(*params, x, y)
    for t, w in zip(ts, want):
        assert isinstance(t.data, DeviceArray) and isinstance(t.grad, DeviceArray)
        numpy.testing.assert_allclose(cr.to_host(t.grad), w, rtol=1e-12, atol=1e-12)
    assert "DeviceArray" in repr(ts[0])  # shown without a copy to the host


def test_second_order_on_the_device():
    x = numpy.array([0.3, -1.2, 2.0])
    d2 = cr.grad(lambda x: cr.grad(lambda x: (numpy.sin(x) * x).sum())(x).sum())
    got = d2(device(x))
    assert isinstance(got, DeviceArray)
    numpy.testing.assert_allclose(got.get(), 2 * numpy.cos(x) - x * numpy.sin(x), rtol=1e-12)


def test_the_stand_in_refuses_host_conversion():
    # what makes the tests above meaningful: the stand-in does fail on any host conversion
    d = device([1.0, 2.0])
    with pytest.raises(HostConversionError):
        numpy.asarray(d)
    with pytest.raises(HostConversionError):
        d + numpy.array([1.0, 2.0])


def _device_clean(case, inputs):
    """Whether the case's own function runs on device arrays (some mix in host constants)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.fun(*inputs)
    except (HostConversionError, TypeError, AttributeError):
        return False
    return True


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_rule_on_device_arrays(case):
    """Every op case whose own function runs on device arrays: chainrule's gradients stay on
    the device and equal the host computation's."""
    n = len(case.inputs)
    dev = [device(x) for x in case.inputs]
    if not _device_clean(case, dev):
        pytest.skip("the case's own function mixes host constants into device arrays")
    step = lambda *a: (case.fun(*a) * 1.0).sum()  # noqa: E731
    try:
        want = cr.grad(step, argnums=tuple(range(n)))(*case.inputs)
    except TypeError:
        pytest.skip("no real gradient on the host either (a complex output)")
    got = cr.grad(step, argnums=tuple(range(n)))(*dev)
    for g, w in zip(got, want):
        assert isinstance(g, DeviceArray), type(g)
        numpy.testing.assert_allclose(g.get(), w, rtol=1e-10, atol=1e-12)


def test_most_op_cases_run_on_device_arrays():
    # the skips above must stay the exception, or the test would prove little
    clean = sum(_device_clean(c, [device(x) for x in c.inputs]) for c in CASES)
    assert clean >= 0.85 * len(CASES), clean


# ---------------------------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------------------------


def test_dask_gradients_stay_lazy_and_equal_numpys():
    da = pytest.importorskip("dask.array")
    params, x, y = _mlp_data()
    want = cr.grad(_mlp_loss, argnums=(0, 1, 2, 3))(*params, x, y)
    chunked = [da.from_array(p, chunks=4) for p in params]
    grads = cr.grad(_mlp_loss, argnums=(0, 1, 2, 3))(
        *chunked, da.from_array(x, chunks=(4, 5)), da.from_array(y, chunks=(4, 3))
    )
    for g, w in zip(grads, want):
        assert isinstance(g, da.Array)  # a task graph, not yet computed
        numpy.testing.assert_allclose(cr.to_host(g), w, rtol=1e-12, atol=1e-12)


def test_glm_gradient_over_a_chunked_array_on_a_local_cluster():
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    n, d = 4000, 6
    x = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d)
    y = (x @ w_true + 0.1 * rng.standard_normal(n) > 0).astype(float)

    def nll(w, x, y):  # logistic regression, mean negative log-likelihood + L2
        z = x @ w
        return (numpy.logaddexp(0, z) - y * z).mean() + 0.01 * (w * w).sum()

    w = numpy.zeros(d)
    want = cr.grad(nll)(w, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's own start-up notices
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",  # the loopback address only
            dashboard_address=None,
        )
        client = distributed.Client(cluster)
    try:
        xc = da.from_array(x, chunks=(500, d))
        yc = da.from_array(y, chunks=500)
        g = cr.grad(nll)(w, xc, yc)
        got = client.compute(g).result()
    finally:
        client.close()
        cluster.close()
    numpy.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_to_host_copies_every_backend_to_numpy():
    da = pytest.importorskip("dask.array")
    out = cr.to_host({"dask": da.ones(3, chunks=2), "numpy": numpy.zeros(2), "n": 1})
    assert type(out["dask"]) is numpy.ndarray and out["n"] == 1
    numpy.testing.assert_array_equal(out["dask"], numpy.ones(3))


def test_an_operation_the_backend_lacks_names_the_operation_and_the_library():
    da = pytest.importorskip("dask.array")
    x = cr.tensor(da.from_array(numpy.arange(6.0), chunks=3), requires_grad=True)
    # repeated positions need numpy.add.at in the backward pass, which Dask does not implement
    y = x[numpy.array([0, 0, 2])].sum()
    with pytest.raises(TypeError, match=r"scatter_add.*dask.*chainrule.to_host"):
        y.backward()


def test_a_dask_constant_with_numpy_parameters_gives_a_lazy_gradient():
    da = pytest.importorskip("dask.array")
    x = rng.standard_normal((300, 4))
    xc = da.from_array(x, chunks=(100, 4))
    w = rng.standard_normal(4)

    def loss(w, x):
        return (numpy.tanh(x @ w) ** 2).mean()

    g = cr.grad(lambda w: loss(w, xc))(w)  # the data is a closure constant, chunked
    assert isinstance(g, da.Array)
    numpy.testing.assert_allclose(cr.to_host(g), cr.grad(loss)(w, x), rtol=1e-12)


@pytest.mark.parametrize("make", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_optimizers_update_device_parameters_in_place_of_numpys(make):
    params, x, y = _mlp_data()

    def run(ps, x, y):
        ts = [cr.tensor(p, requires_grad=True) for p in ps]
        kw = {"momentum": 0.9} if make == "SGD" else {}
        opt = getattr(cr.optim, make)(ts, lr=0.01, **kw)
        for _ in range(3):
            opt.zero_grad()
            _mlp_loss(*ts, x, y).backward()
            opt.step()
        return [t.data for t in ts]

    want = run(params, x, y)
    before = DeviceArray.transfers
    got = run([device(p) for p in params], device(x), device(y))
    assert DeviceArray.transfers == before
    for g, w in zip(got, want):
        assert isinstance(g, DeviceArray)
        numpy.testing.assert_allclose(g.get(), w, rtol=1e-12, atol=1e-12)


def test_a_module_moves_to_the_device_and_trains_there():
    from chainrule.nn import functional as F

    def build():
        return cr.nn.Sequential(cr.nn.Linear(5, 8), cr.nn.ReLU(), cr.nn.Linear(8, 3))

    x = rng.standard_normal((16, 5))
    labels = numpy.arange(16) % 3
    host, dev = build(), build()
    for a, b in zip(host.parameters(), dev.parameters()):  # same start, whatever the seeding
        b.data = a.data.copy()
    dev.to(device)
    assert all(isinstance(p.data, DeviceArray) for p in dev.parameters())
    before = DeviceArray.transfers
    for model, data, target in ((host, x, labels), (dev, device(x), device(labels))):
        opt = cr.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(data), target).backward()
            opt.step()
    assert DeviceArray.transfers == before
    for a, b in zip(host.parameters(), dev.parameters()):
        numpy.testing.assert_allclose(b.data.get(), a.data, rtol=1e-12, atol=1e-12)
    dev.to(cr.to_host)
    assert all(type(p.data) is numpy.ndarray for p in dev.parameters())


def test_jit_refuses_other_array_libraries_with_the_way_out():
    f = cr.jit(cr.grad(lambda w: (numpy.tanh(w) ** 2).sum()))
    with pytest.raises(TypeError, match=r"standin array.*without jit"):
        f(device(numpy.ones(3)))

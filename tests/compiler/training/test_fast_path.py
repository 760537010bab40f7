"""The trainer's float32 path (events, reused buffers, BLAS per step) against the float64
reference, and the float64 path bit for bit against the code it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.training import bptt
from compiler.training.bptt import backward, forward, time_major
from compiler.training.events import SpikeRows, Workspace, resolve_dtype
from compiler.training.kernels import kernel_spike, lif_backward, lif_forward
from compiler.training.losses import Loss
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.surrogates import SmoothStep, Surrogate
from compiler.training.trainer import FloatForward, TrainConfig, fit
from neurochip.core.errors import ConfigError

from .conftest import small_net


# ---------------------------------------------------------------- the replaced float64 code
# The float64 forward and backward passes as they were before the float32 path existed
# (kernel branch), kept here verbatim in substance as the reference for bit-identity.
def _ref_forward(net, x, fn):
    p, h, layers = net.params, x, []
    ks = kernel_spike(fn)
    for spec in net.layers:
        W = p[f"{spec.name}.W"]
        T, B, n_in = h.shape
        D = np.zeros((T, B, W.shape[0]))
        D[1:] = (h[:-1].reshape(-1, n_in) @ W.T).reshape(T - 1, B, W.shape[0])
        V = p.get(f"{spec.name}.V") if spec.recurrent else None
        b = p.get(f"{spec.name}.b") if spec.bias else None
        tr = bptt.LayerTrace(*lif_forward(D, V, b, alpha=spec.alpha, beta=spec.beta,
                                          theta=spec.threshold, spiking=spec.spiking,
                                          subtract=spec.reset == "subtract", spike=ks))
        layers.append(tr)
        h = tr.S
    return layers


def _ref_backward(net, x, layers, fn, dS, dP, detach):
    p, ks, grads, above = net.params, kernel_spike(fn), {}, None
    for k in range(net.depth - 1, -1, -1):
        spec, tr = net.layers[k], layers[k]
        gS = dS.get(spec.name)
        if above is not None:
            gS = above if gS is None else gS + above
        W = p[f"{spec.name}.W"]
        V = p.get(f"{spec.name}.V") if spec.recurrent else None
        gI, gPs = lif_backward(tr.P, tr.S, gS if spec.spiking else None, dP.get(spec.name), V,
                               alpha=spec.alpha, beta=spec.beta, theta=spec.threshold,
                               spiking=spec.spiking, subtract=spec.reset == "subtract",
                               detach_reset=detach, spike=ks)
        h = x if k == 0 else layers[k - 1].S
        T, B, n = tr.P.shape
        gflat = gI[1:].reshape(-1, n)
        grads[f"{spec.name}.W"] = gflat.T @ h[:-1].reshape(-1, h.shape[-1])
        if V is not None:
            grads[f"{spec.name}.V"] = gflat.T @ tr.S[:-1].reshape(-1, n)
        if spec.bias:
            grads[f"{spec.name}.b"] = gPs
        above = None
        if k > 0:
            above = np.zeros_like(h)
            above[:-1] = (gflat @ W).reshape(T - 1, B, h.shape[-1])
    return grads


_FNS = [Surrogate("fast_sigmoid", 5), Surrogate("piecewise", 2), Surrogate("exponential", 3),
        SmoothStep(3)]


@pytest.mark.parametrize("fn", _FNS, ids=str)
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_float64_is_bit_identical_to_the_replaced_code(fn, reset: str) -> None:
    net = small_net(reset, readout_spiking=True)
    rng = np.random.default_rng(7)
    x = time_major((rng.random((5, 20, 12)) < 0.3).astype(float), 12, 22)
    ref = _ref_forward(net, x, fn)
    for dtype in (None, "float64", np.float64):
        tr = forward(net, x, fn, dtype=dtype, workspace=Workspace())
        for a, b in zip(tr.layers, ref):
            for name in ("I", "P", "S"):
                assert np.array_equal(getattr(a, name), getattr(b, name)), name
        v = Loss("ce_count")(tr, np.arange(5), net)
        for detach in (True, False):
            got = backward(net, tr, fn, dS=v.dS, dP=v.dP, detach_reset=detach)
            want = _ref_backward(net, x, ref, fn, v.dS, v.dP, detach)
            assert set(got) == set(want)
            for k in want:
                assert got[k].dtype == np.float64
                assert np.array_equal(got[k], want[k]), k


def test_fit_float64_is_the_default_bit_for_bit(digits10) -> None:
    train, _ = digits10
    sub = train.subset(np.arange(200))
    nets = [SpikingNet.build(64, [LayerSpec("hid", 24, recurrent=True),
                                  LayerSpec("out", 10, spiking=False)], seed=3,
                             gain=[0.05, 0.05]) for _ in range(2)]
    fit(nets[0], Loss("ce_max"), sub, TrainConfig(epochs=2, seed=1), eval_train=False)
    fit(nets[1], Loss("ce_max"), sub, TrainConfig(epochs=2, seed=1, dtype="float64"),
        eval_train=False)
    for k in nets[0].params:
        assert np.array_equal(nets[0].params[k], nets[1].params[k])


# ---------------------------------------------------------------- float32 against float64
def _compare(net, x, fn, loss, target, detach=True, inputs=None):
    """float32 states and gradients against float64: spikes equal except where the float64
    membrane is within float32 rounding of the threshold, states and gradients to 1e-4."""
    a = forward(net, x, fn)
    b = forward(net, x if inputs is None else inputs, fn, dtype="float32",
                workspace=Workspace())
    for spec, la, lb in zip(net.layers, a.layers, b.layers):
        assert lb.P.dtype == np.float32
        scale = np.abs(la.P).max()
        np.testing.assert_allclose(lb.P, la.P, rtol=0, atol=1e-4 * scale)
        if np.isin(la.S, (0.0, 1.0)).all():
            flip = lb.S != la.S
            assert not np.any(flip & (np.abs(la.P - spec.threshold) > 1e-4 * scale))
        else:  # a graded (smooth) spike function
            np.testing.assert_allclose(lb.S, la.S, rtol=0, atol=1e-4)
    va, vb = loss(a, target, net), loss(b, target, net)
    assert vb.value == pytest.approx(va.value, rel=1e-4)
    ga = backward(net, a, fn, dS=va.dS, dP=va.dP, detach_reset=detach)
    gb = backward(net, b, fn, dS=vb.dS, dP=vb.dP, detach_reset=detach, workspace=Workspace())
    assert set(ga) == set(gb)
    for k in ga:
        assert gb[k].dtype == np.float32
        np.testing.assert_allclose(gb[k], ga[k], rtol=0, atol=2e-4 * np.abs(ga[k]).max())
    return a, b


@pytest.mark.parametrize("fn", _FNS, ids=str)
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("detach", [True, False])
def test_float32_equals_float64_within_rounding(fn, reset: str, detach: bool) -> None:
    net = small_net(reset, readout_spiking=True)
    rng = np.random.default_rng(3)
    x = time_major((rng.random((5, 20, 12)) < 0.3).astype(float), 12, 22)
    a, _ = _compare(net, x, fn, Loss("ce_count"), np.arange(5), detach)
    assert a.layers[0].S.sum() > 0


@pytest.mark.parametrize("density", [0.01, 0.5])
@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("loss", ["ce_max", "ce_count", "first_spike", "van_rossum"])
def test_sparse_and_dense_inputs(density: float, recurrent: bool, loss: str) -> None:
    """Events (SpikeRows) or dense arrays, sparse or dense: the same result."""
    rng = np.random.default_rng(int(100 * density))
    spiking = loss != "ce_max"
    net = small_net(recurrent=recurrent, readout_spiking=spiking, n_in=80, hidden=40,
                    seed=2)
    net.params["hid.W"] *= 0.3 / max(density, 0.05) ** 0.5 * 4
    xb = rng.random((6, 30, 80)) < density
    x = time_major(xb, 80, net.steps(30))
    target = (rng.random((6, 10, 5)) < 0.2).astype(float) if loss == "van_rossum" \
        else np.arange(6) % 5
    rows = SpikeRows.from_bool(xb, np.arange(6), net.steps(30))
    a, b = _compare(net, x, Surrogate(), Loss(loss), target, inputs=rows)  # type: ignore[arg-type]
    assert a.layers[0].S.sum() > 0
    np.testing.assert_array_equal(b.x, x)  # the dense input, made on demand
    _compare(net, x, Surrogate(), Loss(loss), target)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_event_and_blas_products_agree(threshold: float, monkeypatch) -> None:
    """Every projection by events (density threshold 1) or by BLAS (threshold 0)."""
    net = small_net(n_in=30, hidden=24, readout_spiking=True)
    rng = np.random.default_rng(5)
    x = time_major(rng.random((4, 25, 30)) < 0.2, 30, net.steps(25))
    monkeypatch.setattr(bptt, "SPARSE_DENSITY", threshold)
    _compare(net, x, Surrogate(), Loss("ce_count"), np.arange(4), inputs=SpikeRows.from_dense(x))


def test_graded_inputs_keep_their_values() -> None:
    net = small_net(n_in=12)
    rng = np.random.default_rng(9)
    x = time_major(rng.random((3, 15, 12)) * (rng.random((3, 15, 12)) < 0.1), 12, 17)
    rows = SpikeRows.from_dense(x)
    assert rows.val is not None and rows.density < 0.2
    np.testing.assert_array_equal(rows.dense(np.float32), x.astype(np.float32))
    np.testing.assert_array_equal(SpikeRows.from_dense(x, np.float64).dense(), x)
    _compare(net, x, Surrogate(), Loss("ce_max"), np.arange(3), inputs=rows)


def test_workspace_reuse_leaves_nothing_behind() -> None:
    """A second batch through the same buffers gives what fresh buffers give."""
    net = small_net(n_in=40, hidden=30, readout_spiking=True)
    rng = np.random.default_rng(11)
    xs = [rng.random((4, 20, 40)) < d for d in (0.3, 0.02)]
    ws = Workspace()
    fn, loss = Surrogate(), Loss("ce_count")
    for xb in xs + xs[::-1]:
        rows = SpikeRows.from_bool(xb, np.arange(4), net.steps(20), ws)
        a = forward(net, rows, fn, dtype="float32", workspace=ws)
        va = loss(a, np.arange(4), net)
        ga = {k: v.copy() for k, v in
              backward(net, a, fn, dS=va.dS, dP=va.dP, workspace=ws).items()}
        b = forward(net, SpikeRows.from_bool(xb, np.arange(4), net.steps(20)), fn,
                    dtype="float32")
        vb = loss(b, np.arange(4), net)
        gb = backward(net, b, fn, dS=vb.dS, dP=vb.dP)
        for la, lb in zip(a.layers, b.layers):
            assert np.array_equal(la.P, lb.P) and np.array_equal(la.S, lb.S)
        for k in gb:
            assert np.array_equal(ga[k], gb[k]), k
    assert ws.nbytes > 0


def test_spike_rows() -> None:
    rng = np.random.default_rng(0)
    xb = rng.random((5, 7, 9)) < 0.2
    order = np.array([3, 0, 4])
    rows = SpikeRows.from_bool(xb, order, 10)
    dense = time_major(xb[order], 9, 10)
    assert rows.shape == (10, 3, 9) and rows.val is None
    assert rows.nnz == int(xb[order].sum())
    np.testing.assert_array_equal(rows.dense(), dense)
    other = SpikeRows.from_dense(dense)
    np.testing.assert_array_equal(other.ptr, rows.ptr)
    np.testing.assert_array_equal(other.idx, rows.idx)
    with_ws = SpikeRows.from_bool(xb, order, 10, Workspace())
    np.testing.assert_array_equal(with_ws.idx, rows.idx)
    with pytest.raises(ConfigError, match="steps"):
        SpikeRows.from_bool(xb, order, 6)
    with pytest.raises(ConfigError, match="bool"):
        SpikeRows.from_bool(xb.astype(float), order, 10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="order"):
        SpikeRows.from_bool(xb, np.array([5]), 10)
    with pytest.raises(ConfigError, match="T, B, n"):
        SpikeRows.from_dense(np.zeros((3, 4)))


def test_dtype_choices_are_checked() -> None:
    assert resolve_dtype(None) == np.float64
    assert resolve_dtype("float32") == np.float32
    for bad in ("float16", "int32", "fast", np.complex128):
        with pytest.raises(ConfigError) as e:
            resolve_dtype(bad)
        assert e.value.field == "dtype"
    with pytest.raises(ConfigError, match="float64, float32"):
        TrainConfig(dtype="float16")
    with pytest.raises(ConfigError, match="dtype"):
        FloatForward("half")
    net = small_net()
    x = np.zeros((5, 2, 12))
    with pytest.raises(ConfigError, match="dtype"):
        forward(net, x, Surrogate(), dtype="bfloat16")
    with pytest.raises(ConfigError, match="time-major"):
        forward(net, SpikeRows.from_dense(np.zeros((5, 2, 7))), Surrogate(), dtype="float32")


def test_fit_float32_learns_like_float64(digits10) -> None:
    train, test = digits10
    sub = train.subset(np.arange(400))
    layers = [LayerSpec("hid", 32, recurrent=True), LayerSpec("out", 10, spiking=False)]
    res = {}
    for dtype in ("float64", "float32"):
        net = SpikingNet.build(64, layers, seed=0, gain=[0.05, 0.05])
        hist = fit(net, Loss("ce_max"), sub, TrainConfig(epochs=3, lr=3e-3, dtype=dtype),
                   test=test, eval_train=False)
        assert all(v.dtype == np.float64 for v in net.params.values())
        res[dtype] = hist
    l64, l32 = res["float64"].as_dict()["loss"], res["float32"].as_dict()["loss"]
    assert l32[0] == pytest.approx(l64[0], rel=1e-3)  # first epoch: nearly the same path
    np.testing.assert_allclose(l32, l64, rtol=0.05)
    assert res["float32"].final.test_metric == pytest.approx(res["float64"].final.test_metric,
                                                             abs=0.03)
    assert res["float32"].final.test_metric > 0.5  # it learns (chance: 0.1)


def test_train_task_and_command_take_a_dtype() -> None:
    from neurochip.commands.train_cmd import _command
    from neurochip.tasks.training import train_task

    res = train_task("xor", epochs=3, evaluate_chip=False, dtype="float32")
    assert res.settings["dtype"] == "float32"
    assert "dtype" not in train_task("xor", epochs=1, evaluate_chip=False).settings
    import argparse

    from neurochip.commands import train_cmd

    ap = argparse.ArgumentParser()
    train_cmd.register(ap.add_subparsers())
    args = ap.parse_args(["train", "xor", "--dtype", "float32", "-o", "x.nir"])
    assert args.dtype == "float32" and "--dtype float32" in _command(args)
    with pytest.raises(SystemExit):
        ap.parse_args(["train", "xor", "--dtype", "float16"])

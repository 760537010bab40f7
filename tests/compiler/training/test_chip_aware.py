from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neurochip
from compiler.training.bptt import backward, time_major
from compiler.training.chip_aware import ChipForward, quantize_net
from compiler.training.losses import Loss
from compiler.training.nir_io import export_nir
from compiler.training.surrogates import Surrogate
from compiler.training.trainer import TrainConfig, evaluate, fit
from neurochip.core.errors import ConfigError, HardwareSpecError
from neurochip.tasks.chip_eval import evaluate_on_chip
from neurochip.tasks.training import get_task, train_task


def _compile(net, tmp_path: Path, wb: int | None) -> neurochip.ChipImage:
    p = export_nir(net, tmp_path / "m.nir")
    return neurochip.compile(str(p), "loihi_like", weight_bits=wb)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("wb", [8, 4])
@pytest.mark.parametrize("readout_spiking", [False, True])
def test_chip_forward_is_bit_exact_with_the_emulator(reset, wb, readout_spiking, make_net,
                                                     tmp_path) -> None:
    # beta_out = 0.99 gives the readout a negative weight exponent (floored sums)
    net = make_net(reset, readout_spiking=readout_spiking, beta_out=0.99)
    regs = quantize_net(net, "loihi_like", weight_bits=wb)
    if not readout_spiking:
        assert regs["out"].regs.weight_exp[0] < 0
    image = _compile(net, tmp_path, wb)
    rng = np.random.default_rng(7)
    x = rng.random((6, 25, 12)) < 0.3
    res = neurochip.Emulator(image).run({"in": x}, steps=net.steps(25),
                                        probes=["hid.u", "out.u", "out.v"], spikes="all")
    tr, eff = ChipForward(weight_bits=wb)(net, time_major(x, 12, net.steps(25)), Surrogate())
    bm = lambda a: np.swapaxes(a, 0, 1)  # noqa: E731
    assert tr.layers[0].S.sum() > 0
    np.testing.assert_array_equal(res.spikes["hid"], bm(tr.layers[0].S) > 0)
    np.testing.assert_array_equal(res.spikes["out"], bm(tr.out.S) > 0)
    lam_h, lam_o = regs["hid"].regs.scale, regs["out"].regs.scale
    np.testing.assert_array_equal(res.probes["hid.u"], np.rint(bm(tr.layers[0].I) * lam_h))
    np.testing.assert_array_equal(res.probes["out.u"], np.rint(bm(tr.out.I) * lam_o))
    if not readout_spiking:
        np.testing.assert_array_equal(res.probes["out.v"], np.rint(bm(tr.out.P) * lam_o))
    # the effective network: the decays and weights the registers realise
    assert eff.layers[1].beta == (4096 - regs["out"].regs.dv) / 4096
    assert not np.array_equal(eff.params["hid.W"], net.params["hid.W"])


def test_registers_are_the_compilers(make_net, tmp_path) -> None:
    net = make_net()
    image = _compile(net, tmp_path, 6)
    regs = quantize_net(net, "loihi_like", weight_bits=6)
    pops = {p.name: p for p in image.populations}
    conns = {c.name: c for c in image.connections}
    for name, lr in regs.items():
        r = lr.regs
        assert (pops[name].du, pops[name].dv, pops[name].vth) == (r.du, r.dv, r.vth)
        np.testing.assert_array_equal(image.weights(f"{name}.w"), r.weights[0])
        assert conns[f"{name}.w"].weight_exp == r.weight_exp[0]
        assert conns[f"{name}.w"].num_weight_bits == 6
    np.testing.assert_array_equal(image.weights("hid.w_rec"), regs["hid"].regs.weights[1])


def test_straight_through_gradients(make_net) -> None:
    net = make_net(readout_spiking=False)
    rng = np.random.default_rng(0)
    x = time_major(rng.random((4, 15, 12)) < 0.4, 12, net.steps(15))
    fn = Surrogate()
    tr, eff = ChipForward(weight_bits=4)(net, x, fn)
    v = Loss("ce_max")(tr, np.array([0, 1, 2, 3]), net)
    g = backward(eff, tr, fn, dP=v.dP)
    assert set(g) == set(net.params)
    assert all(np.abs(g[k]).max() > 0 for k in ("hid.W", "out.W"))


def test_chip_forward_errors() -> None:
    for wb in (0, 9):
        with pytest.raises(ConfigError) as e:
            ChipForward(weight_bits=wb)
        assert e.value.field == "weight_bits"
    with pytest.raises(HardwareSpecError):
        ChipForward("no_such_chip")


def test_chip_aware_finetuning_improves_4bit_chip_accuracy(digits10, tmp_path) -> None:
    """PTQ's worst case: one large weight sets the 4-bit grid (on a pixel that is always
    dark, so the float network is unchanged). Fine-tuning on the chip's dynamics recovers
    the accuracy on the chip; measured on the emulator through NIR."""
    train, test = digits10
    task = get_task("digits")
    res = train_task(task, seed=1, hidden=32, steps=10, epochs=8, evaluate_chip=False)
    net = res.net
    W = net.params["hid.W"]
    assert train.x[:, :, 0].sum() == 0 and test.x[:, :, 0].sum() == 0
    W[:, 0] = 0.0
    W[0, 0] = 4 * np.abs(W).max()
    float_acc = evaluate(net, task.loss, test)
    ptq = evaluate_on_chip(net, task.loss, test, weight_bits=4, path=tmp_path / "ptq.nir")
    fit(net, task.loss, train, TrainConfig(epochs=5, lr=5e-4, lr_final=0.05, seed=1),
        fwd=ChipForward(weight_bits=4), eval_train=False)
    proxy = evaluate(net, task.loss, test, fwd=ChipForward(weight_bits=4))
    aware = evaluate_on_chip(net, task.loss, test, weight_bits=4, path=tmp_path / "qat.nir")
    assert aware.metric == pytest.approx(proxy)  # the fine-tuning forward is the chip
    assert float_acc > 0.93
    assert ptq.metric < float_acc - 0.03
    assert aware.metric > ptq.metric + 0.03

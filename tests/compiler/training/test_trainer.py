from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from compiler.training.bptt import forward, time_major
from compiler.training.data import SpikeData
from compiler.training.losses import Loss, RateRegularizer
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.surrogates import Surrogate
from compiler.training.trainer import History, TrainConfig, evaluate, fit
from neurochip.core.errors import ConfigError
from neurochip.tasks.training import get_task, train_task


def _digits_net(seed: int = 0, *, recurrent: bool = False, spiking_out: bool = False,
                hidden: int = 32) -> SpikingNet:
    layers = [LayerSpec("hid", hidden, recurrent=recurrent),
              LayerSpec("out", 10, spiking=spiking_out)]
    return SpikingNet.build(64, layers, seed=seed, gain=[0.05, 0.05 if not spiking_out else 0.1])


def test_fit_learns_digits_fast(digits10) -> None:
    train, test = digits10
    net = _digits_net()
    hist = fit(net, Loss("ce_max"), train, TrainConfig(epochs=5, lr=3e-3), test=test)
    assert len(hist.epochs) == 5
    assert hist.epochs[-1].loss < hist.epochs[0].loss
    assert hist.final.test_metric is not None and hist.final.test_metric > 0.9
    assert hist.final.train_metric is not None
    assert set(hist.as_dict()) == {"loss", "train_metric", "test_metric", "seconds"}


def test_training_is_reproducible(digits10) -> None:
    train, _ = digits10
    sub = train.subset(np.arange(300))
    cfg = TrainConfig(epochs=2, seed=4)
    a, b, c = _digits_net(1), _digits_net(1), _digits_net(1)
    fit(a, Loss("ce_max"), sub, cfg, eval_train=False)
    fit(b, Loss("ce_max"), sub, cfg, eval_train=False)
    fit(c, Loss("ce_max"), sub, replace(cfg, seed=5), eval_train=False)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["hid.W"], c.params["hid.W"])
    assert not np.array_equal(_digits_net(1).params["hid.W"], _digits_net(2).params["hid.W"])


def test_recurrent_and_spike_count_training(digits10) -> None:
    train, test = digits10
    sub = train.subset(np.arange(600))
    net = _digits_net(recurrent=True, spiking_out=True)
    hist = fit(net, Loss("ce_count"), sub, TrainConfig(epochs=4, lr=3e-3), test=test,
               eval_train=False)
    assert hist.final.loss < hist.epochs[0].loss
    assert hist.final.test_metric is not None and hist.final.test_metric > 0.6


def test_rate_regularisation_lowers_activity(digits10) -> None:
    train, test = digits10
    sub = train.subset(np.arange(400))

    def hidden_rate(reg: RateRegularizer | None) -> float:
        net = _digits_net(3)
        fit(net, Loss("ce_max"), sub, TrainConfig(epochs=3, regularizer=reg), eval_train=False)
        tr = forward(net, time_major(test.x[:200], 64, net.steps(10)), Surrogate())
        return float(tr.layers[0].S.mean())

    free = hidden_rate(None)
    held = hidden_rate(RateRegularizer(strength=50.0, upper=0.02, layers=("hid",)))
    assert held < 0.7 * free


def test_temporal_xor_first_to_spike_on_the_chip() -> None:
    """Fig. 6: 100 % on the four patterns, in float and on the chip (through NIR)."""
    res = train_task("xor", seed=0)
    assert res.float_metric == 1.0
    assert res.chip_metric == 1.0


def test_superspike_van_rossum_training() -> None:
    """Eq. 13: the outputs learn their target spike trains (distance far below silence)."""
    t = get_task("superspike")
    data = t.make_data(t.steps, 0)
    silent = t.loss.van_rossum_distance(np.zeros_like(data.test.y), data.test.y)
    res = train_task(t, epochs=200, evaluate_chip=False, data=data)
    assert res.float_metric < 0.6 * silent


def test_fit_errors(digits10) -> None:
    train, _ = digits10
    with pytest.raises(ConfigError, match="input channels"):
        fit(SpikingNet.build(3, [LayerSpec("o", 10, spiking=False)]), Loss("ce_max"), train)
    with pytest.raises(ConfigError, match="non-spiking"):
        fit(_digits_net(spiking_out=True), Loss("ce_max"), train)
    for kw in ({"epochs": 0}, {"batch_size": -1}, {"lr": 0.0}, {"lr_final": 2.0}):
        with pytest.raises(ConfigError):
            TrainConfig(**kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no epoch"):
        _ = History().final


def test_evaluate_van_rossum_is_a_distance() -> None:
    x = np.zeros((2, 10, 3), bool)
    y = np.zeros((2, 10, 1), bool)
    net = SpikingNet.build(3, [LayerSpec("o", 1)])
    assert evaluate(net, Loss("van_rossum"), SpikeData(x, y)) == 0.0

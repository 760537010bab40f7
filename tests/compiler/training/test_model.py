from __future__ import annotations

import numpy as np
import pytest

from compiler.training.model import LayerSpec, SpikingNet
from neurochip.core.errors import ConfigError
from neurochip.tasks.training import get_task, train_task


def test_build_shapes_and_steps() -> None:
    net = SpikingNet.build(5, [LayerSpec("a", 4, recurrent=True, bias=True),
                               LayerSpec("b", 3, spiking=False)], seed=1, gain=[1.0, 2.0])
    assert net.param_shapes() == {"a.W": (4, 5), "a.V": (4, 4), "a.b": (4,), "b.W": (3, 4)}
    assert net.depth == 2 and net.steps(10) == 12 and net.readout.name == "b"
    np.testing.assert_array_equal(net.params["a.b"], 0.0)
    c = net.copy()
    c.params["a.W"][0, 0] += 1
    assert net.params["a.W"][0, 0] != c.params["a.W"][0, 0]
    same = SpikingNet.build(5, net.layers, seed=1, gain=[1.0, 2.0])
    np.testing.assert_array_equal(same.params["b.W"], net.params["b.W"])


@pytest.mark.parametrize("kw, field", [
    ({"name": "a b"}, "name"), ({"size": 0}, "size"), ({"alpha": 1.5}, "alpha"),
    ({"beta": -0.1}, "beta"), ({"threshold": 0.0}, "threshold"), ({"reset": "hold"}, "reset"),
    ({"spiking": False, "recurrent": True}, "recurrent"),
])
def test_layer_spec_validation(kw: dict, field: str) -> None:
    args = {"name": "a", "size": 3} | kw
    with pytest.raises(ConfigError) as e:
        LayerSpec(**args)
    assert e.value.field == field and "layer" in str(e.value)


def test_network_validation() -> None:
    a, b = LayerSpec("a", 2), LayerSpec("b", 2, spiking=False)
    with pytest.raises(ConfigError, match="at least one layer"):
        SpikingNet(3, ())
    with pytest.raises(ConfigError, match="unique"):
        SpikingNet(3, (a, LayerSpec("a", 2)))
    with pytest.raises(ConfigError, match="unique"):
        SpikingNet(3, (LayerSpec("in", 2),))
    with pytest.raises(ConfigError, match="only the last"):
        SpikingNet(3, (b, a))
    with pytest.raises(ConfigError) as e:
        SpikingNet(3, (a,), {"a.W": np.zeros((2, 4))})
    assert e.value.field == "a.W"
    with pytest.raises(ConfigError, match="missing"):
        SpikingNet(3, (a, b), {"a.W": np.zeros((2, 3))})
    with pytest.raises(ConfigError, match="unexpected"):
        SpikingNet(3, (a,), {"a.W": np.zeros((2, 3)), "a.V": np.zeros((2, 2))})
    with pytest.raises(ConfigError, match="non-finite"):
        SpikingNet(3, (a,), {"a.W": np.full((2, 3), np.nan)})
    with pytest.raises(ConfigError):
        SpikingNet(0, (a,))
    with pytest.raises(ConfigError, match="gains"):
        SpikingNet.build(3, [a, b], gain=[1.0])


def test_train_task_errors() -> None:
    with pytest.raises(ConfigError, match="unknown task"):
        get_task("mnist")
    with pytest.raises(ConfigError) as e:
        train_task("xor", epochs=0)
    assert e.value.field == "epochs"
    init = SpikingNet.build(3, [LayerSpec("h", 4), LayerSpec("o", 2)])
    with pytest.raises(ConfigError, match="starting network"):
        train_task("xor", init=init, hidden=8, epochs=0)
    with pytest.raises(ConfigError, match="spiking readout"):
        train_task("xor", epochs=0,
                   init=SpikingNet.build(3, [LayerSpec("h", 4), LayerSpec("o", 2, spiking=False)]))

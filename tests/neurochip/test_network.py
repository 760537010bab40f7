"""The register-level builder: every out-of-range value is a typed, named error."""

import numpy as np
import pytest
import scipy.sparse as sp

import neurochip
from neurochip.core.errors import NetworkError, ParameterRangeError


def lif(net: neurochip.Network, name: str = "h", n: int = 3, **kw):
    args = {"du": 100, "dv": 100, "vth": 100}
    args.update(kw)
    return net.add_lif(name, n, **args)


@pytest.mark.parametrize(
    ("kw", "field", "limit"),
    [
        ({"du": 4096}, "du", (-1, 4095)),
        ({"du": -2}, "du", (-1, 4095)),
        ({"dv": 4097}, "dv", (0, 4096)),
        ({"vth": 131072}, "vth", (0, 131071)),
        ({"vth": -1}, "vth", (0, 131071)),
        ({"bias_mant": 4096}, "bias_mant", (-4096, 4095)),
        ({"bias_mant": [0, -4097, 0]}, "bias_mant", (-4096, 4095)),
        ({"bias_exp": 8}, "bias_exp", (0, 7)),
        ({"bias_exp": -1}, "bias_exp", (0, 7)),
    ],
)
def test_neuron_registers_out_of_range(kw: dict, field: str, limit: tuple) -> None:
    net = neurochip.Network()
    with pytest.raises(ParameterRangeError) as ei:
        lif(net, **kw)
    err = ei.value
    assert err.field == field and err.limit == limit and err.where == "population 'h'"
    assert isinstance(err, ValueError) and "h" in str(err) and field in str(err)
    assert "h" not in [p.name for p in net.populations]  # nothing half-added


def test_extreme_legal_registers_accepted() -> None:
    net = neurochip.Network()
    lif(net, du=-1, dv=4096, vth=131071, bias_mant=[-4096, 4095, 0], bias_exp=[0, 7, 3])
    p = net.population("h")
    assert p.du == -1 and p.dv == 4096 and p.bias_mant.tolist() == [-4096, 4095, 0]


@pytest.mark.parametrize(
    ("w", "kw", "match"),
    [
        ([[5, -4]], {}, r"weight\[0, 0\] = 5 would become 4"),  # odd mixed: Lava floors it
        ([[-5, 4]], {}, r"= -5 would become -6"),
        ([[256, 0]], {}, r"= 256 would become 255"),  # excitatory 8-bit magnitude
        ([[-256, 0]], {}, r"= -256 would become -255"),  # inhibitory
        ([[255, -2]], {}, r"= 255 would become 254"),  # mixed upper end
        ([[24, 8]], {"num_weight_bits": 4}, r"= 24 would become 16"),  # 4-bit: step 16
    ],
)
def test_weights_lava_would_alter_are_rejected(w, kw, match) -> None:
    net = neurochip.Network()
    net.add_input("in", 2)
    lif(net, n=1)
    with pytest.raises(ParameterRangeError, match=match) as ei:
        net.connect("in", "h", np.array(w), **kw)
    assert ei.value.where == "connection 'in->h'" and ei.value.field == "weights"
    assert net.connections == []


def test_connection_errors_are_named() -> None:
    net = neurochip.Network()
    net.add_input("in", 4)
    lif(net, n=2)
    with pytest.raises(NetworkError, match=r"shape \(3, 4\), expected \(post, pre\) = \(2, 4\)"):
        net.connect("in", "h", np.zeros((3, 4), int))
    with pytest.raises(ParameterRangeError, match="weight_exp"):
        net.connect("in", "h", np.zeros((2, 4), int), weight_exp=8)
    with pytest.raises(ParameterRangeError, match=r"delay.*63 is outside \[0, 62\]"):
        net.connect("in", "h", np.zeros((2, 4), int), delay=63)
    with pytest.raises(ParameterRangeError, match="delay"):
        net.connect("in", "h", np.zeros((2, 4), int), delay=np.full((2, 4), 70))
    with pytest.raises(NetworkError, match="integers"):
        net.connect("in", "h", np.full((2, 4), 0.5))
    with pytest.raises(NetworkError, match="no population named 'nope'"):
        net.connect("in", "nope", np.zeros((2, 4), int))
    with pytest.raises(NetworkError, match="is an input"):
        net.connect("h", "in", np.zeros((4, 2), int))
    with pytest.raises(NetworkError, match="storage"):
        net.connect("in", "h", np.zeros((2, 4), int), storage="csr")  # type: ignore[arg-type]
    with pytest.raises(NetworkError, match="sign_mode"):
        net.connect("in", "h", np.zeros((2, 4), int), sign_mode="both")
    with pytest.raises(ParameterRangeError, match="num_weight_bits"):
        net.connect("in", "h", np.zeros((2, 4), int), num_weight_bits=9)


def test_names_sizes_and_duplicates() -> None:
    net = neurochip.Network()
    net.add_input("in", 2)
    with pytest.raises(NetworkError, match="already used"):
        net.add_input("in", 3)
    with pytest.raises(NetworkError, match="invalid name"):
        net.add_input("bad name", 3)
    with pytest.raises(NetworkError, match="positive"):
        net.add_input("x", 0)
    with pytest.raises(NetworkError, match="integer"):
        lif(net, name="y", du=1.5)
    with pytest.raises(NetworkError, match="reset"):
        lif(net, name="z", reset="hold")


def test_storage_selection_delays_and_duplicate_connection_names() -> None:
    net = neurochip.Network()
    net.add_input("in", 10)
    lif(net, n=10)
    dense = net.connect("in", "h", np.full((10, 10), 2))
    assert dense.storage == "dense" and dense.n_synapses == 100
    w = np.zeros((10, 10), int)
    w[0, 1] = 4
    w[3, 2] = -2
    sparse = net.connect("in", "h", w, delay=np.where(w != 0, 3, 0))
    assert sparse.storage == "sparse" and sparse.n_synapses == 2
    assert sparse.name == "in->h#1" and sparse.delay == 3 and sparse.delays is None
    explicit = net.connect("in", "h", sp.csr_matrix(([0, 6], ([1, 2], [0, 0])), shape=(10, 10)),
                           storage="sparse", delay=np.array([1, 2]))
    assert explicit.n_synapses == 2  # an explicit zero weight is still a synapse
    assert explicit.delays is not None and explicit.delays.tolist() == [1, 2]
    assert explicit.dense_delays()[2, 0] == 2
    forced = net.connect("in", "h", w, storage="dense", name="forced")
    assert forced.n_synapses == 100 and forced.sign_mode == "mixed"
    assert net.n_synapses == 204


def test_sign_mode_detection_matches_lava() -> None:
    net = neurochip.Network()
    net.add_input("in", 2)
    lif(net, n=1)
    assert net.connect("in", "h", [[3, 0]]).sign_mode == "excitatory"
    assert net.connect("in", "h", [[-3, 0]]).sign_mode == "inhibitory"
    assert net.connect("in", "h", [[-4, 2]]).sign_mode == "mixed"
    assert net.connect("in", "h", [[0, 0]]).sign_mode == "excitatory"


def test_network_checks_against_target_chip() -> None:
    small = neurochip.load_hw("tiny4").model_copy(
        update={"formats": neurochip.load_hw("tiny4").formats.model_copy(update={"max_delay": 2})})
    net = neurochip.Network()
    net.add_input("in", 1)
    lif(net, n=1)
    net.connect("in", "h", [[2]], delay=5)
    with pytest.raises(ParameterRangeError, match=r"5 is outside \[0, 2\]"):
        net.check(small)

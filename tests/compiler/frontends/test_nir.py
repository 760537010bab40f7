"""NIR frontend: every node type, discretisation options and profiles, errors, the writer."""

from __future__ import annotations

import warnings
from pathlib import Path

import nir
import numpy as np
import pytest

import neurochip
from compiler.float_sim import simulate
from compiler.frontends.nir import NIRImportWarning, to_nir, write_nir
from compiler.frontends.nir import from_nir as nir_from_nir
from compiler.frontends.nir import read_nir as nir_read_nir
from compiler.ir import Conv, Dense, Graph, Input, Neurons, Projection, Sparse, layered_graph
from compiler.pipeline import compile_model
from neurochip.core.errors import ModelImportError

DT = 1e-4
HW = neurochip.load_hw("loihi_like")


def from_nir(graph, **kw):
    """The importer with ``reset='subtract'`` unless given: these graphs follow snnTorch's
    convention, whose files do not record the reset (tests of that call the importer
    directly)."""
    kw.setdefault("reset", "subtract")
    return nir_from_nir(graph, **kw)


def read_nir(path, **kw):
    return nir_read_nir(path, **kw)


def g_(nodes, edges, metadata=None):
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {}, type_check=False)


def arr(v, n):
    return np.full(n, float(v))


def cubalif(n, alpha=0.5, beta=0.9, th=1.0, dt=DT, v_reset=0.0, v_leak=0.0, w_in=None, r=None):
    ts, tm = dt / (1 - alpha), dt / (1 - beta)
    return nir.CubaLIF(tau_syn=arr(ts, n), tau_mem=arr(tm, n),
                       r=arr(tm / dt if r is None else r, n), v_leak=arr(v_leak, n),
                       v_threshold=arr(th, n), v_reset=arr(v_reset, n),
                       w_in=arr(ts / dt if w_in is None else w_in, n))


def lif(n, beta=0.9, th=1.0, dt=DT, r=None, v_leak=0.0):
    tau = dt / (1 - beta)
    return nir.LIF(tau=arr(tau, n), r=arr(tau / dt if r is None else r, n),
                   v_leak=arr(v_leak, n), v_threshold=arr(th, n), v_reset=np.zeros(n))


def li(n, beta=0.8, dt=DT):
    tau = dt / (1 - beta)
    return nir.LI(tau=arr(tau, n), r=arr(tau / dt, n), v_leak=np.zeros(n))


def chain(n_in, *layers, meta=None):
    """Input -> layers... -> Output, nodes named by the given (name, node) pairs."""
    nodes = {"in": nir.Input(np.array([n_in]))}
    edges = []
    prev = "in"
    for name, node in layers:
        nodes[name] = node
        edges.append((prev, name))
        prev = name
    nodes["out"] = nir.Output(np.array([1]))
    edges.append((prev, "out"))
    return g_(nodes, edges, meta)


def roundtrip(tmp_path: Path, graph, **kw) -> Graph:
    p = tmp_path / "m.nir"
    nir.write(str(p), graph)
    if not any(str(k).startswith("neurochip.") for k in graph.metadata):
        kw.setdefault("reset", "subtract")
    return read_nir(p, **kw)


# --------------------------------------------------------------------------------------
# Neuron nodes
# --------------------------------------------------------------------------------------


def test_affine_cubalif_snntorch_profile(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.5, (4, 3))
    g = chain(3, ("fc", nir.Affine(W, np.zeros(4))), ("lif", cubalif(4, 0.75, 0.85)))
    ir = roundtrip(tmp_path, g)
    p = ir.nodes["lif"]
    assert isinstance(p, Neurons) and p.spiking
    assert p.alpha == pytest.approx(0.75) and p.beta == pytest.approx(0.85)
    np.testing.assert_allclose(ir.edge("fc").synapses.values, W)  # unit gains
    imp = ir.metadata["import"]
    assert imp["profile"] == "snntorch" and imp["dt"] == pytest.approx(DT)
    assert imp["reset"] == "subtract" and imp["decay"] == "euler"
    assert ir.outputs == {"out": "lif"}


def test_affine_bias_into_filtered_synapse_is_carried_exactly_by_an_always_on_neuron() -> None:
    W = np.eye(2)
    b1, b2 = np.array([0.1, -0.2]), np.array([0.05, 0.3])
    g = chain(2, ("fc", nir.Affine(W, b1)), ("lif", cubalif(2, 0.5, 0.9, th=100.0)),
              ("fc2", nir.Affine(W, b2)), ("lif2", cubalif(2, 0.75, 0.9, th=100.0)))
    with pytest.warns(NIRImportWarning, match="always-on neuron 'bias_source'"):
        ir = from_nir(g)
    np.testing.assert_array_equal(ir.nodes["lif"].bias, 0.0)  # not on the membrane
    src = ir.metadata["import"]["bias_source"]
    assert src == "bias_source" and ir.nodes[src].size == 1
    e1, e2 = ir.edge("bias_source:lif"), ir.edge("bias_source:lif2")
    np.testing.assert_allclose(e1.synapses.values[:, 0], b1)  # snnTorch gain 1
    assert (e1.delay, e2.delay) == (0, 1)  # the bias starts with each layer's first input
    # No input spikes: I[n] = alpha I[n-1] + b from the layer's first step (1 for the first
    # layer, 2 for the second), as the framework adds b to its current from its step 0.
    T = 12
    fr = simulate(ir, {"in": np.zeros((T, 2), bool)}, steps=T)
    for name, b, a, first in (("lif", b1, 0.5, 1), ("lif2", b2, 0.75, 2)):
        n = np.arange(T) - first + 1
        want = np.where(n[:, None] > 0, b * (1 - a ** np.maximum(n, 0)[:, None]) / (1 - a), 0)
        np.testing.assert_allclose(fr.i[name], want, atol=1e-12)
    assert fr.spikes[src].all()  # one spike at every step
    # alpha = 0: the bias is a membrane bias, exactly.
    g0 = chain(2, ("fc", nir.Affine(W, b1)), ("lif", lif(2, 0.9)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ir0 = from_nir(g0)
    np.testing.assert_allclose(ir0.nodes["lif"].bias, b1)
    assert ir0.metadata["import"]["bias_source"] is None


def test_lif_gain_and_leak() -> None:
    g = chain(2, ("fc", nir.Linear(np.ones((2, 2)))),
              ("lif", lif(2, beta=0.8, r=2.0, v_leak=0.5)))
    ir = from_nir(g, dt=DT)
    p = ir.nodes["lif"]
    assert p.alpha == 0 and p.beta == pytest.approx(0.8)
    np.testing.assert_allclose(ir.edge("fc").synapses.values, 2.0 * 0.2)  # r (1 - beta)
    np.testing.assert_allclose(p.bias, 0.2 * 0.5)  # (1 - beta) v_leak


def test_if_i_li_cubali_threshold_nodes() -> None:
    n = 2
    nodes = {
        "in": nir.Input(np.array([n])),
        "w1": nir.Linear(np.eye(n)), "if": nir.IF(r=arr(1 / DT, n), v_threshold=arr(1.5, n)),
        "w2": nir.Linear(np.eye(n)), "th": nir.Threshold(threshold=arr(0.5, n)),
        "w3": nir.Linear(np.eye(n)), "i": nir.I(r=arr(3 / DT, n)),
        "w4": nir.Linear(np.eye(n)), "li": li(n, 0.8),
        "w5": nir.Linear(np.eye(n)),
        "cli": nir.CubaLI(tau_syn=arr(DT / 0.5, n), tau_mem=arr(DT / 0.1, n), r=arr(10, n),
                          v_leak=np.zeros(n), w_in=arr(2, n)),
        "o_i": nir.Output(np.array([n])), "o_li": nir.Output(np.array([n])),
        "o_cli": nir.Output(np.array([n])), "o_th": nir.Output(np.array([n])),
    }
    edges = [("in", "w1"), ("w1", "if"), ("if", "w2"), ("w2", "th"), ("th", "w3"), ("w3", "i"),
             ("th", "w4"), ("w4", "li"), ("th", "w5"), ("w5", "cli"), ("i", "o_i"),
             ("li", "o_li"), ("cli", "o_cli"), ("th", "o_th")]
    ir = from_nir(g_(nodes, edges, {"neurochip.dt": DT}))
    P = ir.populations
    assert (P["if"].alpha, P["if"].beta, P["if"].spiking) == (0.0, 1.0, True)
    np.testing.assert_allclose(ir.edge("w1").synapses.values, np.eye(n))  # r dt = 1
    assert (P["th"].alpha, P["th"].beta, P["th"].reset) == (0.0, 0.0, "zero")
    assert not P["i"].spiking and P["i"].beta == 1.0
    np.testing.assert_allclose(ir.edge("w3").synapses.values, 3 * np.eye(n))
    assert not P["li"].spiking and P["li"].beta == pytest.approx(0.8)
    assert P["cli"].alpha == pytest.approx(0.5) and P["cli"].beta == pytest.approx(0.9)
    np.testing.assert_allclose(ir.edge("w5").synapses.values, 2 * 0.5 * 10 * 0.1 * np.eye(n))
    assert ir.outputs == {"o_i": "i", "o_li": "li", "o_cli": "cli", "o_th": "th"}
    img = compile_model(ir, HW)
    sig = {k: v["signal"] for k, v in img.metadata["outputs"].items()}
    assert sig == {"o_i": "v", "o_li": "v", "o_cli": "v", "o_th": "spikes"}


def test_imported_cubalif_runs_the_semi_implicit_euler_of_the_ode() -> None:
    """Float simulation of the IR == a direct Euler integration of the NIR equations
    (current first, one step of latency per edge), for a snnTorch-style file."""
    rng = np.random.default_rng(3)
    W = rng.normal(0.3, 0.5, (5, 4))
    dt, ts, tm, th = DT, 4e-4, 1e-3, 1.0
    node = nir.CubaLIF(tau_syn=arr(ts, 5), tau_mem=arr(tm, 5), r=arr(tm / dt, 5),
                       v_leak=np.zeros(5), v_threshold=arr(th, 5), w_in=arr(ts / dt, 5))
    ir = from_nir(chain(4, ("fc", nir.Linear(W)), ("lif", node)))
    x = rng.random((80, 4)) < 0.5
    r = simulate(ir, {"in": x})
    I = np.zeros(5)
    v = np.zeros(5)
    spikes = []
    for n in range(80):
        drive = W @ x[n - 1] if n > 0 else np.zeros(5)
        I = I + dt / ts * (-I + (ts / dt) * drive)
        v = v + dt / tm * (-v + (tm / dt) * I)
        s = v > th
        v = np.where(s, v - th, v)
        spikes.append(s)
    np.testing.assert_array_equal(r.spikes["lif"], np.array(spikes))


# --------------------------------------------------------------------------------------
# Linear nodes
# --------------------------------------------------------------------------------------


def test_scale_folds_into_weights() -> None:
    g = chain(2, ("s", nir.Scale(np.array([2.0, 3.0]))), ("fc", nir.Linear(np.ones((1, 2)))),
              ("s2", nir.Scale(np.array([0.5]))), ("lif", lif(1)))
    ir = from_nir(g)
    (e,) = ir.edges
    np.testing.assert_allclose(e.synapses.to_csr().toarray(), [[1.0, 1.5]])
    assert e.name == "fc"  # named after its weight layers


def test_direct_neuron_to_neuron_edge_is_one_to_one() -> None:
    g = chain(3, ("a", lif(3)), ("b", lif(3, r=5 * 10.0)))
    ir = from_nir(g, dt=DT)
    e = ir.edge("a:b")
    assert isinstance(e.synapses, Sparse)
    np.testing.assert_allclose(e.synapses.to_csr().toarray(), 5 * np.eye(3))


def test_delay_nodes_become_synaptic_delays() -> None:
    n = 3
    g = chain(n, ("d", nir.Delay(arr(2 * DT, n))), ("fc", nir.Linear(np.eye(n))),
              ("lif", lif(n)))
    (e,) = from_nir(g).edges
    assert e.delay == 2 and e.delay_pre is None
    g2 = chain(n, ("d", nir.Delay(np.array([0.0, DT, 3 * DT]))),
               ("fc", nir.Linear(np.ones((2, n)))), ("d2", nir.Delay(np.array([DT, 0.0]))),
               ("lif", lif(2)))
    (e2,) = from_nir(g2).edges
    np.testing.assert_array_equal(e2.delay_pre, [0, 1, 3])
    np.testing.assert_array_equal(e2.delay_post, [1, 0])
    img = compile_model(from_nir(g2), HW)
    np.testing.assert_array_equal(img.delays(e2.name), [[1, 2, 4], [0, 1, 3]])


def test_delay_errors() -> None:
    g = chain(2, ("d", nir.Delay(arr(1.5 * DT, 2))), ("fc", nir.Linear(np.eye(2))),
              ("lif", lif(2)))
    with pytest.raises(ModelImportError, match="multiples of dt"):
        from_nir(g)
    mid = chain(2, ("fc", nir.Linear(np.eye(2))), ("d", nir.Delay(np.array([0.0, DT]))),
                ("fc2", nir.Linear(np.eye(2))), ("lif", lif(2)))
    with pytest.raises(ModelImportError, match="between two weight layers"):
        from_nir(mid)
    nodt = chain(2, ("d", nir.Delay(arr(1.0, 2))), ("fc", nir.Linear(np.eye(2))),
                 ("th", nir.Threshold(arr(0.5, 2))))
    with pytest.raises(ModelImportError, match="needs dt"):
        from_nir(nodt)
    assert from_nir(nodt, dt=0.5).edges[0].delay == 2


def conv_net(padding=1, stride=1, groups=1, with_pool="sum", flatten=True):
    rng = np.random.default_rng(7)
    c1 = nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0, 0.5, (4, 2 // groups, 3, 3)),
                    stride=stride, padding=padding, dilation=1, groups=groups,
                    bias=np.zeros(4))
    out_hw = (6 + 2 * padding - 3) // stride + 1 if isinstance(padding, int) else 6
    n1 = (4, out_hw, out_hw)
    nodes = {"in": nir.Input(np.array([2, 6, 6])), "conv": c1,
             "if1": nir.IF(r=np.full(n1, 1 / DT), v_threshold=np.full(n1, 1.0))}
    edges = [("in", "conv"), ("conv", "if1")]
    prev = "if1"
    shape = n1
    if with_pool:
        cls = nir.SumPool2d if with_pool == "sum" else nir.AvgPool2d
        nodes["pool"] = cls(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                            padding=np.array([0, 0]))
        edges.append((prev, "pool"))
        prev = "pool"
        shape = (4, out_hw // 2, out_hw // 2)
    if flatten:
        nodes["flat"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
        edges.append((prev, "flat"))
        prev = "flat"
    k = int(np.prod(shape))
    nodes["fc"] = nir.Affine(rng.normal(0, 0.3, (3, k)), np.zeros(3))
    nodes["lif"] = lif(3)
    nodes["out"] = nir.Output(np.array([3]))
    edges += [(prev, "fc"), ("fc", "lif"), ("lif", "out")]
    return g_(nodes, edges, {"neurochip.dt": DT})


@pytest.mark.parametrize("pool_kind", ["sum", "avg", None])
def test_conv2d_pool_flatten(pool_kind, tmp_path: Path) -> None:
    ir = roundtrip(tmp_path, conv_net(with_pool=pool_kind))
    e = ir.edge("conv")
    assert isinstance(e.synapses, Conv) and e.synapses.out_shape == (4, 6, 6)
    assert ir.nodes["if1"].shape == (4, 6, 6)
    fc = next(x for x in ir.edges if x.post == "lif")
    if pool_kind is None:
        assert fc.name == "fc" and fc.synapses.shape == (3, 144)
    else:
        assert fc.name == "pool:fc" and isinstance(fc.synapses, Sparse)
        # pool then dense == the composed matrix
        scale = 1.0 if pool_kind == "sum" else 0.25
        x = np.random.default_rng(1).random(144)
        W = conv_net(with_pool=pool_kind).nodes["fc"].weight
        pooled = scale * x.reshape(4, 3, 2, 3, 2).sum(axis=(2, 4)).reshape(-1)
        np.testing.assert_allclose(fc.synapses.to_csr() @ x, W @ pooled)
    img = compile_model(ir, HW)
    assert img.connection("conv").storage == "conv"  # shared weights: the kernel once
    assert compile_model(ir, HW, conv="expanded").connection("conv").storage == "sparse"


def test_conv_same_padding_groups_and_conv1d() -> None:
    ir = from_nir(conv_net(padding="same", groups=2, with_pool=None))
    c = ir.edge("conv").synapses
    assert isinstance(c, Conv) and c.groups == 2 and c.padding == ((1, 1), (1, 1))
    rng = np.random.default_rng(2)
    c1 = nir.Conv1d(input_shape=8, weight=rng.normal(size=(3, 2, 3)), stride=2, padding=1,
                    dilation=2, groups=1, bias=np.array([0.1, 0.0, 0.0]))
    g = g_({"in": nir.Input(np.array([2, 8])), "c": c1,
            "lif": nir.LIF(tau=np.full((3, 3), 1e-3), r=np.full((3, 3), 10.0),
                           v_leak=np.zeros((3, 3)), v_threshold=np.ones((3, 3))),
            "out": nir.Output(np.array([3, 3]))},
           [("in", "c"), ("c", "lif"), ("lif", "out")])
    ir1 = from_nir(g)
    c = ir1.edge("c").synapses
    assert isinstance(c, Conv) and c.out_shape == (3, 3) and c.dilation == (2,)
    np.testing.assert_allclose(ir1.nodes["lif"].bias, np.repeat([0.1, 0, 0], 3))


def test_conv_errors() -> None:
    with pytest.raises(ModelImportError, match="stride 1"):
        from_nir(conv_net(padding="same", stride=2, with_pool=None))
    bad = conv_net(with_pool=None)
    bad.nodes["conv"].input_shape = np.array([5, 5])
    with pytest.raises(ModelImportError, match="input_shape"):
        from_nir(bad)
    flat_pool = chain(8, ("pool", nir.SumPool2d(np.array([2, 2]), np.array([2, 2]),
                                                np.array([0, 0]))), ("lif", lif(2)))
    with pytest.raises(ModelImportError, match=r"\(C, H, W\)"):
        from_nir(flat_pool)


# --------------------------------------------------------------------------------------
# Graph structure: subgraphs, recurrence
# --------------------------------------------------------------------------------------


def rec_subgraph(n, wiring="input->lif", V=None):
    V = np.eye(n) * 0.5 if V is None else V
    inner = {"input": nir.Input(np.array([n])), "lif": cubalif(n), "w_rec": nir.Linear(V),
             "output": nir.Output(np.array([n]))}
    first = ("input", "lif") if wiring == "input->lif" else ("input", "w_rec")
    return g_(inner, [first, ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])


@pytest.mark.parametrize("form", ["flat", "subgraph", "input->w_rec"])
def test_recurrent_layer_forms_give_the_same_ir(form, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    W = rng.normal(0, 0.5, (3, 2))
    V = rng.normal(0, 0.3, (3, 3))
    if form == "flat":
        nodes = {"in": nir.Input(np.array([2])), "fc": nir.Linear(W),
                 "lif1": cubalif(3), "lif1.w_rec": nir.Linear(V), "out": nir.Output(np.array([3]))}
        edges = [("in", "fc"), ("fc", "lif1"), ("lif1", "lif1.w_rec"), ("lif1.w_rec", "lif1"),
                 ("lif1", "out")]
        g = g_(nodes, edges)
    else:
        sub = rec_subgraph(3, "input->lif" if form == "subgraph" else "input->w_rec", V)
        g = g_({"in": nir.Input(np.array([2])), "fc": nir.Linear(W), "lif1": sub,
                "out": nir.Output(np.array([3]))}, [("in", "fc"), ("fc", "lif1"), ("lif1", "out")])
    if form == "input->w_rec":
        with pytest.warns(NIRImportWarning, match="input -> w_rec"):
            ir = roundtrip(tmp_path, g)
    else:
        ir = roundtrip(tmp_path, g)
    assert set(ir.populations) == {"lif1"} and ir.outputs == {"out": "lif1"}
    by_pre = {e.pre: e for e in ir.edges}
    np.testing.assert_allclose(by_pre["in"].synapses.values, W)
    np.testing.assert_allclose(by_pre["lif1"].synapses.values, V)
    assert [e.post for e in ir.recurrent_edges()] == ["lif1"]


def test_nested_subgraph_with_several_neurons_keeps_dotted_names() -> None:
    inner = g_({"input": nir.Input(np.array([2])), "a": lif(2), "w": nir.Linear(np.eye(2)),
                "b": lif(2), "output": nir.Output(np.array([2]))},
               [("input", "a"), ("a", "w"), ("w", "b"), ("b", "output")])
    g = g_({"in": nir.Input(np.array([2])), "blk": inner, "out": nir.Output(np.array([2]))},
           [("in", "blk"), ("blk", "out")])
    ir = from_nir(g)
    assert set(ir.populations) == {"blk.a", "blk.b"} and ir.outputs == {"out": "blk.b"}
    assert ir.metadata["import"]["nodes"]["blk.a"]["nir_node"] == "blk.a"


def test_subgraph_port_errors() -> None:
    two_in = g_({"i1": nir.Input(np.array([2])), "i2": nir.Input(np.array([2])), "a": lif(2),
                 "o": nir.Output(np.array([2]))}, [("i1", "a"), ("i2", "a"), ("a", "o")])
    g = g_({"in": nir.Input(np.array([2])), "blk": two_in, "out": nir.Output(np.array([2]))},
           [("in", "blk"), ("blk", "out")])
    with pytest.raises(ModelImportError, match="2 Input nodes"):
        from_nir(g)


def test_duplicate_edges_are_dropped_with_a_note() -> None:
    g = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", lif(2)))
    g.edges.append(("in", "fc"))
    with pytest.warns(NIRImportWarning, match="duplicate edge"):
        ir = from_nir(g)
    assert len(ir.edges) == 1


def test_fan_in_sums_and_multiple_inputs() -> None:
    g = g_({"a": nir.Input(np.array([2])), "b": nir.Input(np.array([3])),
            "wa": nir.Linear(np.ones((2, 2))), "wb": nir.Linear(np.ones((2, 3))),
            "lif": lif(2), "out": nir.Output(np.array([2]))},
           [("a", "wa"), ("b", "wb"), ("wa", "lif"), ("wb", "lif"), ("lif", "out")])
    ir = from_nir(g)
    assert set(ir.inputs) == {"a", "b"} and {e.name for e in ir.edges} == {"wa", "wb"}
    shared = g_({"a": nir.Input(np.array([2])), "b": nir.Input(np.array([2])),
                 "fc": nir.Affine(np.ones((2, 2)), np.array([0.1, 0.1])), "lif": lif(2),
                 "out": nir.Output(np.array([2]))},
                [("a", "fc"), ("b", "fc"), ("fc", "lif"), ("lif", "out")])
    ir2 = from_nir(shared)
    assert {e.name for e in ir2.edges} == {"fc", "fc:b"}
    np.testing.assert_allclose(ir2.nodes["lif"].bias, 0.1)  # the bias counts once


# --------------------------------------------------------------------------------------
# Discretisation options and source profiles
# --------------------------------------------------------------------------------------


def test_metadata_is_honoured_and_caller_overrides(tmp_path: Path) -> None:
    g = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", cubalif(2, 0.5, 0.9, dt=2e-3)),
              meta={"neurochip.dt": 2e-3, "neurochip.reset": "zero",
                    "neurochip.decay": "euler", "neurochip.synaptic_delay": 1})
    ir = roundtrip(tmp_path, g)
    assert ir.nodes["lif"].reset == "zero" and ir.metadata["import"]["profile"] == "neurochip"
    assert ir.nodes["lif"].alpha == pytest.approx(0.5)
    with pytest.warns(NIRImportWarning, match="overrides"):
        ir2 = roundtrip(tmp_path, g, reset="subtract")
    assert ir2.nodes["lif"].reset == "subtract"
    assert ir2.metadata["import"]["option_sources"]["reset"] == "caller"


def test_exp_decay() -> None:
    g = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", cubalif(2, 0.5, 0.9)))
    ir = from_nir(g, decay="exp")
    p = ir.nodes["lif"]
    assert p.alpha == pytest.approx(np.exp(-0.5)) and p.beta == pytest.approx(np.exp(-0.1))
    # gain = (1 - decay) * literal factor
    g_syn = (1 - np.exp(-0.5)) * (DT / 0.5 / DT)
    g_mem = (1 - np.exp(-0.1)) * (DT / 0.1 / DT)
    np.testing.assert_allclose(ir.edge("fc").synapses.values, g_syn * g_mem * np.eye(2))


def test_reset_never_inferred_from_v_reset() -> None:
    g = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", cubalif(2)))
    assert from_nir(g).nodes["lif"].reset == "subtract"
    assert from_nir(g, reset="zero").nodes["lif"].reset == "zero"
    assert from_nir(g, reset="zero").metadata["import"]["option_sources"]["reset"] == "caller"
    bad = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", cubalif(2, v_reset=0.3)))
    with pytest.raises(ModelImportError, match="v_reset"):
        from_nir(bad)


def test_dt_given_by_the_caller_changes_the_decays() -> None:
    g = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", cubalif(2, 0.5, 0.9)))
    ir = from_nir(g, dt=DT / 2)
    assert ir.nodes["lif"].alpha == pytest.approx(0.75)
    assert ir.metadata["import"]["option_sources"]["dt"] == "caller"
    with pytest.raises(ModelImportError, match="exceeds"):
        from_nir(g, dt=10 * DT)
    with pytest.raises(ModelImportError):
        from_nir(g, dt=-1.0)


def test_profiles_sinabs_rockpool_spyx_norse() -> None:
    # Sinabs: IF with r = 1, tau in steps -> dt = 1, exponential decays.
    g = chain(2, ("fc", nir.Affine(np.eye(2), np.zeros(2))),
              ("lif", nir.LIF(tau=arr(20.0, 2), r=arr(1, 2), v_leak=np.zeros(2),
                              v_threshold=arr(1, 2))))
    ir = from_nir(g)
    assert ir.metadata["import"]["profile"] == "sinabs"
    assert ir.nodes["lif"].beta == pytest.approx(np.exp(-1 / 20))
    # Rockpool: r = tau exp(-dt/tau)/dt, dt = 1 ms.
    dt, ts, tm = 1e-3, 5e-3, 2e-2
    rock = nir.CubaLIF(tau_syn=arr(ts, 2), tau_mem=arr(tm, 2),
                       r=arr(tm * np.exp(-dt / tm) / dt, 2), v_leak=np.zeros(2),
                       v_threshold=arr(1, 2), w_in=arr(1, 2))
    with pytest.warns(NIRImportWarning, match="rockpool"):
        ir = from_nir(chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", rock)))
    imp = ir.metadata["import"]
    assert imp["profile"] == "rockpool" and imp["dt"] == pytest.approx(dt, rel=1e-6)
    assert imp["decay"] == "exp"
    # Spyx: r = beta = 1 - dt/tau with dt = 1 step, unit gains.
    spyx = nir.LIF(tau=arr(4.0, 2), r=arr(0.75, 2), v_leak=np.zeros(2), v_threshold=arr(1, 2))
    spyx2 = nir.LIF(tau=arr(10.0, 2), r=arr(0.9, 2), v_leak=np.zeros(2), v_threshold=arr(1, 2))
    with pytest.warns(NIRImportWarning, match="unit gains"):
        ir = from_nir(chain(2, ("a", nir.Linear(np.eye(2))), ("l1", spyx),
                            ("b", nir.Linear(2 * np.eye(2))), ("l2", spyx2)))
    assert ir.metadata["import"]["profile"] == "spyx"
    assert ir.nodes["l1"].beta == pytest.approx(0.75)
    np.testing.assert_allclose(ir.edge("b").synapses.values, 2 * np.eye(2))
    # Norse: r = 1, w_in = 1, tau in seconds -> dt must be given.
    norse = nir.CubaLIF(tau_syn=arr(5e-3, 2), tau_mem=arr(1e-2, 2), r=arr(1, 2),
                        v_leak=np.zeros(2), v_threshold=arr(1, 2), w_in=arr(1, 2))
    gn = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", norse))
    with pytest.raises(ModelImportError, match="dt"):
        from_nir(gn)
    with pytest.warns(NIRImportWarning, match="norse"):
        irn = nir_from_nir(gn, dt=1e-3)
    assert irn.metadata["import"]["profile"] == "norse" and irn.nodes["lif"].reset == "zero"


def test_no_profile_matches() -> None:
    odd = nir.LIF(tau=np.array([1e-3, 2e-3]), r=np.array([3.0, 7.0]), v_leak=np.zeros(2),
                  v_threshold=np.ones(2))
    with pytest.raises(ModelImportError, match="cannot infer dt"):
        from_nir(chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", odd)))


# --------------------------------------------------------------------------------------
# Errors name the node, its type and the reason
# --------------------------------------------------------------------------------------


def expect_error(graph, match, **kw):
    with pytest.raises(ModelImportError, match=match) as ei:
        from_nir(graph, **kw)
    return ei.value


def test_unsupported_node_type() -> None:
    ident = nir.ir.graph.Identity(input_type={"input": np.array([2])})
    err = expect_error(chain(2, ("id", ident), ("lif", lif(2))), "Identity is not supported")
    assert "node 'id' (Identity)" in str(err) and err.field == "type"


def test_output_must_read_a_population() -> None:
    expect_error(chain(2, ("lif", lif(2)), ("fc", nir.Linear(np.eye(2)))), "output must read")
    g = g_({"in": nir.Input(np.array([2])), "out": nir.Output(np.array([2]))}, [("in", "out")])
    expect_error(g, "output must read")
    two = g_({"in": nir.Input(np.array([2])), "a": lif(2), "b": lif(2),
              "out": nir.Output(np.array([2]))},
             [("in", "a"), ("in", "b"), ("a", "out"), ("b", "out")])
    expect_error(two, "several populations")


def test_readout_cannot_feed_other_nodes() -> None:
    expect_error(chain(2, ("li", li(2)), ("fc", nir.Linear(np.eye(2))), ("lif", lif(2))),
                 "never voltages")
    expect_error(chain(2, ("fc", nir.Linear(np.eye(2))), ("li", li(2)),
                       ("th", nir.Threshold(arr(1, 2)))), "never voltages")


def test_structural_errors() -> None:
    expect_error(g_({"a": lif(2), "o": nir.Output(np.array([2]))}, [("a", "o")]),
                 "no Input node")
    g = chain(2, ("lif", lif(2)))
    g.edges.append(("lif", "ghost"))
    expect_error(g, "not a node")
    dangling = chain(2, ("lif", lif(2)))
    dangling.nodes["fc"] = nir.Linear(np.eye(2))
    dangling.edges.append(("lif", "fc"))
    expect_error(dangling, "no outgoing edge")
    root = chain(2, ("lif", lif(2)))
    root.nodes["fc"] = nir.Linear(np.eye(2))
    root.edges.append(("fc", "lif"))
    expect_error(root, "no incoming edge")
    cyc = chain(2, ("a", nir.Linear(np.eye(2))), ("lif", lif(2)))
    cyc.nodes["b"] = nir.Linear(np.eye(2))
    cyc.edges += [("a", "b"), ("b", "a")]
    expect_error(cyc, "cycle")
    into_input = chain(2, ("lif", lif(2)))
    into_input.edges.append(("lif", "in"))
    expect_error(into_input, "Input node cannot have incoming")
    bad_name = g_({"in put": nir.Input(np.array([2])), "lif": lif(2),
                   "out": nir.Output(np.array([2]))}, [("in put", "lif"), ("lif", "out")])
    expect_error(bad_name, "name")


def test_parameter_errors() -> None:
    taus = nir.LIF(tau=np.array([1e-3, 2e-3]), r=np.array([10.0, 20.0]), v_leak=np.zeros(2),
                   v_threshold=np.ones(2))
    # (per-neuron taus are no error: each neuron keeps its own decay)
    ir = from_nir(chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", taus)))
    np.testing.assert_allclose(ir.nodes["lif"].beta, [0.9, 0.95])
    bad = nir.LIF(tau=np.array([1e-3, -2e-3]), r=np.array([10.0, 20.0]), v_leak=np.zeros(2),
                  v_threshold=np.ones(2))
    err = expect_error(chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", bad)), "> 0", dt=DT)
    assert "node 'lif' (LIF)" in str(err) and err.field == "tau"
    neg = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", lif(2, th=-1.0)))
    expect_error(neg, "unsigned")
    inf = nir.CubaLIF(tau_syn=arr(np.inf, 2), tau_mem=arr(1e-3, 2), r=arr(10, 2),
                      v_leak=np.zeros(2), v_threshold=arr(1, 2), w_in=arr(1, 2))
    expect_error(chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", inf)), "finite", dt=DT)
    stacked = nir.Affine(np.ones((2, 2, 2)), np.zeros(2))
    expect_error(chain(2, ("fc", stacked), ("lif", lif(2))), "stacked")
    wrong = chain(3, ("fc", nir.Linear(np.ones((2, 2)))), ("lif", lif(2)))
    expect_error(wrong, "expects 2 inputs")
    nan = chain(2, ("fc", nir.Linear(np.array([[np.nan, 0], [0, 1]]))), ("lif", lif(2)))
    expect_error(nan, "non-finite")
    meta = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", lif(2)),
                 meta={"neurochip.dt": DT, "neurochip.reset": "hold"})
    expect_error(meta, "neurochip.reset")
    lat = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", lif(2)),
                meta={"neurochip.dt": DT, "neurochip.synaptic_delay": 0})
    expect_error(lat, "one step")
    expect_error(chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", lif(2))), "decay",
                 decay="rk4")
    expect_error(chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", lif(2))), "reset",
                 reset="hold")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelImportError, match="does not exist"):
        read_nir(tmp_path / "none.nir")
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ModelImportError, match="not a readable NIR file"):
        read_nir(junk)
    with pytest.raises(ModelImportError):
        from_nir("not a graph")


# --------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------


def trained_like_graph(seed=0) -> Graph:
    rng = np.random.default_rng(seed)
    return layered_graph(n_in=6, layers=[
        dict(name="h1", weight=rng.normal(0, 0.5, (8, 6)), alpha=0.75, beta=0.875,
             threshold=1.0, bias=rng.normal(0, 0.05, 8), recurrent=rng.normal(0, 0.2, (8, 8))),
        dict(name="h2", weight=rng.normal(0, 0.5, (5, 8)), alpha=0.0, beta=0.5,
             threshold=0.8),
        dict(name="h3", weight=rng.normal(0, 0.5, (5, 5)), alpha=0.0, beta=1.0,
             threshold=1.2, bias=0.01),
        dict(name="out", weight=rng.normal(0, 0.5, (3, 5)), alpha=0.5, beta=0.9,
             threshold=None, bias=0.02)])


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert list(a.nodes) == list(b.nodes) or set(a.nodes) == set(b.nodes)
    for k, p in a.populations.items():
        q = b.populations[k]
        assert (p.spiking, p.reset) == (q.spiking, q.reset)
        assert p.alpha == pytest.approx(q.alpha, abs=1e-12)
        assert p.beta == pytest.approx(q.beta, abs=1e-12)
        np.testing.assert_allclose(p.bias, q.bias, atol=1e-12)
        if p.spiking:
            np.testing.assert_allclose(p.threshold, q.threshold)
    ea = {e.name: e for e in a.edges}
    eb = {e.name: e for e in b.edges}
    assert ea.keys() == eb.keys()
    for k, e in ea.items():
        np.testing.assert_allclose(e.synapses.to_csr().toarray(),
                                   eb[k].synapses.to_csr().toarray(), atol=1e-12)
        assert e.delay == eb[k].delay
    assert a.outputs == b.outputs


def test_write_read_roundtrip_and_identical_images(tmp_path: Path) -> None:
    g = trained_like_graph()
    p = write_nir(g, tmp_path / "net.nir", {"trained_with": "neurochip"})
    back = read_nir(p)
    assert_same_graph(g, back)
    meta = back.metadata["file_metadata"]
    assert meta["neurochip.reset"] == "subtract" and meta["trained_with"] == "neurochip"
    a, b = compile_model(g, HW), compile_model(p, HW)
    for pa, pb in zip(a.populations, b.populations):
        assert (pa.name, pa.du, pa.dv, pa.vth) == (pb.name, pb.du, pb.dv, pb.vth)
    for ca in a.connections:
        np.testing.assert_array_equal(a.weights(ca.name), b.weights(ca.name))
        assert ca.weight_exp == b.connection(ca.name).weight_exp


def test_write_from_a_layer_description(tmp_path: Path) -> None:
    layers = [dict(name="h", weight=np.ones((2, 3)) * 0.3, alpha=0.5, beta=0.9, threshold=1.0,
                   reset="zero"),
              dict(name="o", weight=np.ones((1, 2)), alpha=0.0, beta=0.9, threshold=None)]
    p = write_nir({"n_in": 3, "layers": layers, "input_name": "x"}, tmp_path / "l.nir")
    back = read_nir(p)
    assert set(back.inputs) == {"x"} and back.nodes["h"].reset == "zero"
    assert back.outputs == {"output": "o"}
    g = nir.read(str(p), type_check=True)  # a valid NIR file for other tools too
    assert type(g.nodes["h"]).__name__ == "CubaLIF" and type(g.nodes["o"]).__name__ == "LI"


def test_write_conv_and_delays(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    conv = Conv(rng.normal(0, 0.5, (3, 2, 3, 3)), (2, 5, 5), padding=1)
    nodes = {"in": Input((2, 5, 5)),
             "c": Neurons((3, 5, 5), alpha=0.0, beta=0.9, threshold=1.0),
             "o": Neurons((4,), alpha=0.5, beta=0.9, threshold=1.0)}
    edges = (Projection("conv", "in", "c", conv, delay=1),
             Projection("fc", "c", "o", Dense(rng.normal(0, 0.1, (4, 75))),
                        delay_post=[0, 1, 2, 3]))
    g = Graph(nodes, edges, {"spk": "o"})
    back = read_nir(write_nir(g, tmp_path / "c.nir"))
    e = back.edge("conv")
    assert isinstance(e.synapses, Conv) and e.delay == 1
    np.testing.assert_allclose(e.synapses.weight, conv.weight)
    np.testing.assert_array_equal(back.edge("fc").delay_post, [0, 1, 2, 3])


def test_writer_errors(tmp_path: Path) -> None:
    def one(alpha, beta, bias=0.0, spiking=True):
        return Graph({"in": Input((2,)), "p": Neurons((2,), alpha=alpha, beta=beta,
                                                       threshold=1.0 if spiking else None,
                                                       bias=bias, spiking=spiking)},
                     (Projection("w", "in", "p", Dense(np.eye(2))),))
    with pytest.raises(ModelImportError, match="alpha = 1"):
        to_nir(one(1.0, 0.5))
    with pytest.raises(ModelImportError, match="no NIR form"):
        to_nir(one(0.5, 1.0))
    lone = Graph({"in": Input((2,)), "p": Neurons((2,), alpha=0, beta=1.0, threshold=1.0,
                                                   bias=0.1)})
    with pytest.raises(ModelImportError, match="bias"):
        to_nir(lone)
    g = to_nir(one(0.0, 1.0, bias=0.1))  # the IF bias rides on the Affine
    assert type(g.nodes["w"]).__name__ == "Affine"
    mixed = layered_graph(n_in=2, layers=[
        dict(name="a", weight=np.eye(2), alpha=0.5, beta=0.5, threshold=1.0, reset="zero"),
        dict(name="b", weight=np.eye(2), alpha=0.5, beta=0.5, threshold=1.0)])
    with pytest.raises(ModelImportError, match="reset"):
        to_nir(mixed)
    with pytest.raises(ModelImportError, match="dt"):
        to_nir(one(0.5, 0.5), dt=0.0)
    with pytest.raises(ModelImportError, match="contradicts"):
        to_nir(one(0.5, 0.5), metadata={"neurochip.reset": "zero"})
    asym = Graph({"in": Input((1, 4)), "p": Neurons((1, 4), alpha=0, beta=0.5, threshold=1.0)},
                 (Projection("c", "in", "p", Conv(np.ones((1, 1, 2)), (1, 4),
                                                  padding=((0, 1),))),))
    with pytest.raises(ModelImportError, match="asymmetric"):
        to_nir(asym)
    from compiler.passes.quantize import quantize_graph

    with pytest.raises(ModelImportError, match="float graph"):
        to_nir(quantize_graph(one(0.5, 0.5), HW))


def test_files_nir_itself_rejects_are_read_leniently(tmp_path: Path) -> None:
    """nir.read type-checks nested graphs even with type_check=False; scalar parameters
    then fail its shape inference although the file is valid."""
    inner = g_({"input": nir.Input(np.array([3])),
                "if": nir.IF(r=np.array(1.0), v_threshold=np.array(1.0)),
                "output": nir.Output(np.array([3]))}, [("input", "if"), ("if", "output")])
    g = g_({"in": nir.Input(np.array([3])), "fc": nir.Linear(np.eye(3)), "blk": inner,
            "out": nir.Output(np.array([3]))}, [("in", "fc"), ("fc", "blk"), ("blk", "out")])
    p = tmp_path / "scalar.nir"
    nir.write(str(p), g, compression=None)
    with pytest.raises(ValueError):
        nir.read(str(p), type_check=False)
    with pytest.warns(NIRImportWarning, match="type checks"):
        ir = read_nir(p)
    assert ir.nodes["blk"].shape == (3,) and ir.metadata["import"]["profile"] == "sinabs"


# --------------------------------------------------------------------------------------
# Layouts and conventions of real exporter versions
# --------------------------------------------------------------------------------------


def _rec_dotted(with_ports: bool):
    """A recurrent layer written flat as dotted nodes, edges naming the group 'lif1'."""
    n = 3
    nodes = {"in": nir.Input(np.array([2])), "fc1": nir.Linear(np.ones((n, 2))),
             "lif1.lif": cubalif(n), "lif1.w_rec": nir.Linear(0.5 * np.eye(n)),
             "fc2": nir.Linear(np.ones((2, n))), "lif2": cubalif(2),
             "out": nir.Output(np.array([2]))}
    edges = [("in", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "out"), ("lif1.lif", "lif1.w_rec"), ("lif1.w_rec", "lif1.lif")]
    if with_ports:
        nodes["lif1.input"] = nir.Input(np.array([n]))
        nodes["lif1.output"] = nir.Output(np.array([n]))
        edges += [("lif1.input", "lif1.lif"), ("lif1.lif", "lif1.output")]
    return g_(nodes, edges)


@pytest.mark.parametrize("with_ports", [False, True])
def test_dotted_subgraph_layout_with_edges_naming_the_group(with_ports: bool) -> None:
    ir = from_nir(_rec_dotted(with_ports))
    assert list(ir.inputs) == ["in"] and ir.outputs == {"out": "lif2"}
    pre_post = {(e.pre, e.post) for e in ir.edges}
    hidden = next(k for k in ir.populations if k.startswith("lif1"))
    assert pre_post == {("in", hidden), (hidden, hidden), (hidden, "lif2")}


def test_dotted_group_of_several_neurons_is_ambiguous() -> None:
    g = _rec_dotted(False)
    g.nodes["lif1.other"] = cubalif(3)
    g.edges.append(("lif1.lif", "lif1.other"))
    err = expect_error(g, "ambiguous")
    assert err.field == "edges" and "lif1" in str(err)


def test_older_snntorch_w_in_1_gives_the_input_in_full_to_the_current() -> None:
    old = cubalif(2, 0.5, 0.9, w_in=1.0)  # r = tau_mem/dt, but w_in = 1
    g = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", old),
              ("fc2", nir.Linear(np.eye(2))), ("lif2", cubalif(2, 0.75, 0.8, w_in=1.0)))
    with pytest.warns(NIRImportWarning, match="older export"):
        ir = from_nir(g)
    imp = ir.metadata["import"]
    assert imp["profile"] == "snntorch" and imp["dt"] == pytest.approx(DT)
    np.testing.assert_allclose(ir.edge("fc").synapses.values, np.eye(2))  # gain 1
    assert ir.nodes["lif2"].alpha == pytest.approx(0.75)


def test_swapped_time_constants_are_detected_and_warned() -> None:
    good = cubalif(2, 0.5, 0.9)
    bad = cubalif(2, 0.5, 0.9)
    bad.tau_syn, bad.tau_mem = bad.tau_mem.copy(), bad.tau_syn.copy()
    g = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", bad))
    with pytest.warns(NIRImportWarning, match="tau_syn and tau_mem read swapped"):
        ir = from_nir(g)
    ref = from_nir(chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", good)))
    assert ir.nodes["lif"].alpha == pytest.approx(ref.nodes["lif"].alpha)
    assert ir.nodes["lif"].beta == pytest.approx(ref.nodes["lif"].beta)


def test_decay_factors_written_as_time_constants_are_read_as_decays() -> None:
    # In steps (dt = 1), tau = 0.8 < dt can only be a retention factor.
    node = nir.LIF(tau=arr(0.8, 2), r=arr(1, 2), v_leak=np.zeros(2), v_threshold=arr(1, 2),
                   v_reset=np.zeros(2))
    g = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", node))
    with pytest.warns(NIRImportWarning, match="read as a decay factor"):
        ir = from_nir(g, dt=1.0)
    assert ir.nodes["lif"].beta == pytest.approx(0.8)


def per_neuron_net(n_in=6, n=40, seed=0):
    """Linear -> CubaLIF with a different tau_syn and tau_mem per neuron -> Linear -> LI."""
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(0.3, 0.95, n)
    beta = rng.uniform(0.6, 0.97, n)
    ts, tm = DT / (1 - alpha), DT / (1 - beta)
    node = nir.CubaLIF(tau_syn=ts, tau_mem=tm, r=tm / DT, v_leak=np.zeros(n),
                       v_threshold=np.full(n, 1.0), v_reset=np.zeros(n), w_in=ts / DT)
    W1 = rng.normal(0.4, 0.6, (n, n_in))
    W2 = rng.normal(0, 0.3, (3, n))
    g = chain(n_in, ("fc", nir.Linear(W1)), ("lif", node), ("fc2", nir.Linear(W2)),
              ("ro", li(3, beta=0.9)))
    return g, alpha, beta


def test_per_neuron_time_constants_become_per_neuron_decays(tmp_path: Path) -> None:
    g, alpha, beta = per_neuron_net()
    ir = roundtrip(tmp_path, g)
    p = ir.nodes["lif"]
    assert p.per_neuron_decays and not ir.nodes["ro"].per_neuron_decays
    np.testing.assert_allclose(p.alpha, alpha, rtol=1e-12)
    np.testing.assert_allclose(p.beta, beta, rtol=1e-12)
    # The float model runs each neuron with its own decays: neuron j of a population with
    # per-neuron decays equals a one-neuron population with that neuron's scalar decays.
    x = (np.random.default_rng(1).random((60, 6)) < 0.3).astype(float)
    ref = simulate(ir, {"in": x})
    for j in (0, 7, 23):
        one = Graph({"in": Input((6,)),
                     "lif": p.with_(shape=(1,), alpha=float(alpha[j]), beta=float(beta[j]),
                                    threshold=p.threshold[j:j + 1], bias=p.bias[j:j + 1])},
                    (Projection("fc", "in", "lif",
                                Dense(np.asarray(ir.edge("fc").synapses.weight)[j:j + 1])),),
                    {"out": "lif"})
        r1 = simulate(one, {"in": x})
        np.testing.assert_array_equal(r1.v["lif"][:, 0], ref.v["lif"][:, j])
        np.testing.assert_array_equal(r1.spikes["lif"][:, 0], ref.spikes["lif"][:, j])


def test_per_neuron_decays_compile_to_per_neuron_registers_and_keep_behaviour() -> None:
    g, alpha, beta = per_neuron_net(seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = neurochip.compile(g, HW, reset="subtract")
    pop = next(p for p in image.populations if p.name == "lif")
    assert pop.model == "lif_per_neuron"
    du, dv = image.arrays["neurons/du"], image.arrays["neurons/dv"]
    sl = slice(pop.offset, pop.offset + pop.size)
    unity = 1 << HW.formats.decay_bits
    np.testing.assert_array_equal(du[sl], np.rint(unity - 1 - unity * alpha))
    np.testing.assert_array_equal(dv[sl], np.rint(unity * (1 - beta)))
    # the chip's spikes follow the float model's
    rng = np.random.default_rng(3)
    x = (rng.random((8, 80, 6)) < 0.3)
    ir = from_nir(g)
    ref = simulate(ir, {"in": x.astype(float)})
    em = neurochip.Emulator(image)
    r = em.run({"in": x}, steps=80, spikes=["lif"])
    chip, flt = r.spikes["lif"].astype(bool), ref.spikes["lif"]
    assert flt.sum() > 500
    assert np.mean(chip == flt) >= 0.97
    # and the compile report describes the per-neuron registers
    q = image.metadata["quantization"]["lif"]
    assert q["per_neuron_decays"] is True
    assert q["du"] == f"{int(du[sl].min())}..{int(du[sl].max())}"
    assert q["alpha_range"] == pytest.approx([alpha.min(), alpha.max()])
    assert q["alpha_max_abs_error"] <= 0.5 / unity + 1e-12
    assert image.metadata["quantization"]["ro"].get("per_neuron_decays") is None


def test_per_neuron_decays_write_back_to_nir(tmp_path: Path) -> None:
    g, alpha, beta = per_neuron_net(seed=4)
    ir = from_nir(g)
    back = from_nir(to_nir(ir, dt=DT))
    np.testing.assert_allclose(back.nodes["lif"].alpha, alpha, rtol=1e-9)
    np.testing.assert_allclose(back.nodes["lif"].beta, beta, rtol=1e-9)


def test_reset_is_asked_for_with_the_node_named() -> None:
    g = chain(2, ("fc", nir.Linear(np.eye(2))), ("lif", cubalif(2)))
    with pytest.raises(ModelImportError, match="reset='zero' or reset='subtract'") as e:
        nir_from_nir(g)
    assert e.value.field == "reset" and "node 'lif' (CubaLIF)" in str(e.value)
    # A memoryless Threshold node does not depend on the mode: nothing to ask.
    th = nir.Threshold(threshold=arr(0.5, 2))
    ir = nir_from_nir(chain(2, ("fc", nir.Linear(np.eye(2))), ("th", th)), dt=DT)
    assert "irrelevant" in ir.metadata["import"]["option_sources"]["reset"]

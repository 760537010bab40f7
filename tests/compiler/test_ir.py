"""compiler.ir: validated nodes, convolution expansion, the verifier, the register table."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurochip
from compiler.ir import (
    REGISTER_TABLE,
    Conv,
    Dense,
    Graph,
    Input,
    IRError,
    NeuronRegisters,
    Neurons,
    Projection,
    Sparse,
    format_graph,
    layered_graph,
    pool,
    verify,
)
from compiler.passes.normalize import normalize
from compiler.passes.quantize import quantize_graph

HW = neurochip.load_hw("loihi_like")


def lif(n=3, **kw):
    args = dict(alpha=0.5, beta=0.9, threshold=1.0)
    args.update(kw)
    return Neurons((n,), **args)


def naive_conv(x, w, stride, pad, dil, groups):
    """Direct PyTorch-style cross-correlation, channels first, 1-D or 2-D."""
    nd = w.ndim - 2
    c_out, c_in_g = w.shape[:2]
    xp = np.pad(x, [(0, 0)] + [tuple(p) for p in pad])
    k = w.shape[2:]
    out_sp = [(xp.shape[1 + d] - dil[d] * (k[d] - 1) - 1) // stride[d] + 1 for d in range(nd)]
    out = np.zeros((c_out, *out_sp))
    per_g = c_out // groups
    for o in range(c_out):
        g = o // per_g
        for y in itertools.product(*[range(n) for n in out_sp]):
            acc = 0.0
            for c in range(c_in_g):
                for kk in itertools.product(*[range(n) for n in k]):
                    pos = tuple(y[d] * stride[d] + kk[d] * dil[d] for d in range(nd))
                    acc += w[(o, c, *kk)] * xp[(g * c_in_g + c, *pos)]
            out[(o, *y)] = acc
    return out


# --------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------


def test_neurons_store_per_neuron_arrays_read_only() -> None:
    p = lif(4, threshold=[1, 2, 3, 4], bias=0.5)
    assert p.size == 4 and p.threshold is not None
    np.testing.assert_array_equal(p.bias, 0.5)
    with pytest.raises(ValueError):
        p.bias[0] = 1.0
    r = lif(2, threshold=None, spiking=False)
    assert r.threshold is None and not r.spiking


@pytest.mark.parametrize(("kw", "fld"), [
    (dict(alpha=1.2), "alpha"), (dict(beta=-0.5), "beta"), (dict(alpha="x"), "alpha"),
    (dict(threshold=None), "threshold"), (dict(threshold=-1.0), "threshold"),
    (dict(threshold=[1.0, 2.0]), "threshold"), (dict(bias=[1.0, 2.0]), "bias"),
    (dict(bias=np.nan), "bias"), (dict(reset="hold"), "reset"),
    (dict(spiking=False), "threshold"),
    (dict(registers="r"), "registers"),
])
def test_neurons_validation_names_the_field(kw, fld) -> None:
    with pytest.raises(IRError) as ei:
        lif(3, **kw)
    assert ei.value.field == fld


def test_input_shape_validation() -> None:
    assert Input((2, 3, 4)).size == 24
    assert Input(5).shape == (5,)
    for bad in [(0,), (), (-1, 2), "x"]:
        with pytest.raises(IRError):
            Input(bad)


def test_with_revalidates_and_registers_shape_checked() -> None:
    p = lif(3)
    assert p.with_(beta=1.0).beta == 1.0
    with pytest.raises(IRError):
        p.with_(beta=2.0)
    regs = NeuronRegisters(10.0, 0, 0, 1, np.zeros(2, np.int64), np.zeros(2, np.int64))
    with pytest.raises(IRError):
        p.with_(registers=regs)
    with pytest.raises(IRError):
        NeuronRegisters(0.0, 0, 0, 1, np.zeros(3), np.zeros(3))


def test_dense_and_sparse_synapses() -> None:
    d = Dense(np.ones((2, 3)))
    assert d.shape == (2, 3) and d.to_csr().nnz == 6
    s = Sparse(sp.coo_matrix(([1.0, 2.0, 3.0], ([0, 0, 1], [1, 1, 2])), shape=(2, 3)))
    assert s.weight.nnz == 2 and s.weight[0, 1] == 3.0  # duplicates summed
    assert s.with_values(np.array([7, 8])).weight[1, 2] == 8
    with pytest.raises(IRError):
        Dense(np.ones(3))
    with pytest.raises(IRError):
        Dense(np.array([[np.nan]]))
    with pytest.raises(IRError):
        Sparse(np.ones((2, 2)))


@pytest.mark.parametrize(("in_shape", "w_shape", "stride", "pad", "dil", "groups"), [
    ((2, 7), (3, 2, 3), (1,), ((0, 0),), (1,), 1),
    ((4, 9), (6, 2, 2), (2,), ((1, 2),), (2,), 2),
    ((2, 5, 6), (3, 2, 3, 2), (1, 1), ((1, 1), (0, 0)), (1, 1), 1),
    ((4, 6, 7), (4, 1, 3, 3), (2, 1), ((1, 0), (2, 1)), (1, 2), 4),
    ((3, 4, 4), (6, 1, 2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), 3),
])
def test_conv_expansion_matches_direct_convolution(in_shape, w_shape, stride, pad, dil,
                                                   groups) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=w_shape)
    c = Conv(w, in_shape, stride=stride, padding=pad, dilation=dil, groups=groups)
    x = rng.normal(size=in_shape)
    expect = naive_conv(x, w, stride, pad, dil, groups)
    assert c.out_shape == expect.shape
    got = (c.to_csr() @ x.reshape(-1)).reshape(c.out_shape)
    np.testing.assert_allclose(got, expect, atol=1e-12)
    np.testing.assert_allclose(c.row_abs_sum(),
                               np.asarray(abs(c.to_csr()).sum(axis=1)).reshape(-1))


def test_conv_validation() -> None:
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(IRError) as ei:
        Conv(w, (3, 5, 5))
    assert ei.value.field == "groups"
    with pytest.raises(IRError):
        Conv(w, (2, 2, 2))  # too small
    with pytest.raises(IRError):
        Conv(np.ones((2, 2)), (2, 5))
    with pytest.raises(IRError):
        Conv(w, (2, 5))  # wrong number of spatial dims
    with pytest.raises(IRError):
        Conv(w, (2, 5, 5), padding=((1, 2, 3),))
    with pytest.raises(IRError):
        Conv(w, (2, 5, 5), stride=0)
    assert Conv(w, (2, 5, 5), padding=1).padding == ((1, 1), (1, 1))


def test_pooling_is_a_depthwise_convolution() -> None:
    x = np.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4)
    s = pool("sum", (2, 4, 4), (2, 2))
    a = pool("avg", (2, 4, 4), 2, stride=2)
    out = (s.to_csr() @ x.reshape(-1)).reshape(s.out_shape)
    assert out[0, 0, 0] == 0 + 1 + 4 + 5 and s.out_shape == (2, 2, 2)
    np.testing.assert_allclose((a.to_csr() @ x.reshape(-1)).reshape(2, 2, 2), out / 4)
    with pytest.raises(IRError):
        pool("max", (2, 4, 4), (2, 2))  # type: ignore[arg-type]


def test_projection_validation() -> None:
    syn = Dense(np.ones((3, 2)))
    with pytest.raises(IRError) as ei:
        Projection("a b", "x", "y", syn)
    assert ei.value.field == "name"
    with pytest.raises(IRError):
        Projection("p", "x", "y", syn, delay=-1)
    with pytest.raises(IRError):
        Projection("p", "x", "y", syn, delay_pre=[1, 2, 3])
    with pytest.raises(IRError):
        Projection("p", "x", "y", syn, delay_post=[1.5, 0, 0])
    with pytest.raises(IRError):
        Projection("p", "x", "y", syn, weight_exp=1)
    with pytest.raises(IRError):
        Projection("p", "x", "y", np.ones((3, 2)))  # type: ignore[arg-type]
    p = Projection("p", "x", "y", syn, delay=2, delay_pre=[0, 3], delay_post=[1, 0, 0])
    assert p.max_delay == 6 and p.has_delays
    np.testing.assert_array_equal(p.synapse_delays(np.array([0, 1]), np.array([1, 0])), [6, 2])


def test_graph_structure_is_checked() -> None:
    nodes = {"in": Input((2,)), "h": lif(3)}
    ok = Projection("w", "in", "h", Dense(np.ones((3, 2))))
    g = Graph(nodes, (ok,), {"out": "h"})
    assert g.inputs.keys() == {"in"} and g.populations.keys() == {"h"}
    assert g.incoming("h") == [ok] and g.outgoing("in") == [ok] and g.edge("w") is ok
    cases = [
        ((Projection("w", "in", "zz", Dense(np.ones((3, 2)))),), {}, "post"),
        ((Projection("w", "qq", "h", Dense(np.ones((3, 2)))),), {}, "pre"),
        ((Projection("w", "h", "in", Dense(np.ones((2, 3)))),), {}, "post"),
        ((Projection("w", "in", "h", Dense(np.ones((2, 2)))),), {}, "synapses"),
        ((Projection("h", "in", "h", Dense(np.ones((3, 2)))),), {}, "name"),
        ((ok, ok), {}, "name"),
        ((), {"out": "in"}, "source"),
    ]
    for edges, outs, fld in cases:
        with pytest.raises(IRError) as ei:
            Graph(nodes, edges, outs)
        assert ei.value.field == fld
    with pytest.raises(IRError):
        Graph({"bad name": Input((1,))})
    with pytest.raises(IRError):
        Graph({"x": "not a node"})  # type: ignore[dict-item]


def test_recurrent_edges_found() -> None:
    g = layered_graph(n_in=3, layers=[
        dict(name="a", weight=np.ones((4, 3)), alpha=0.5, beta=0.9, threshold=1.0,
             recurrent=np.ones((4, 4))),
        dict(name="b", weight=np.ones((2, 4)), alpha=0.5, beta=0.9, threshold=1.0)])
    fb = Projection("fb", "b", "a", Dense(np.ones((4, 2))))
    g2 = Graph(g.nodes, (*g.edges, fb), g.outputs)
    assert {e.name for e in g2.recurrent_edges()} == {"a.w_rec", "fb"}
    text = format_graph(g2)
    assert "a.w_rec: a -> a dense" in text and "recurrent" in text and "output  output <- b" in text


def test_layered_graph_validation() -> None:
    with pytest.raises(IRError):
        layered_graph(n_in=2, layers=[])
    with pytest.raises(IRError):
        layered_graph(n_in=2, layers=[dict(name="a", weight=np.ones(2), alpha=0, beta=0,
                                           threshold=1.0)])
    with pytest.raises(IRError):
        layered_graph(n_in=2, layers=[dict(name="a", weight=np.ones((1, 2)), alpha=0, beta=0,
                                           threshold=1.0, tau=3)])


def test_register_table_names_every_descriptive_field() -> None:
    floats = {row[0] for row in REGISTER_TABLE}
    assert {"alpha", "beta", "threshold", "weights", "bias", "reset"} <= floats
    assert dict((r[0], r[1]) for r in REGISTER_TABLE)["alpha"] == "du"


# --------------------------------------------------------------------------------------
# The verifier
# --------------------------------------------------------------------------------------


def small_graph() -> Graph:
    rng = np.random.default_rng(0)
    return layered_graph(n_in=4, layers=[
        dict(name="h", weight=rng.normal(0, 0.5, (5, 4)), alpha=0.5, beta=0.9, threshold=1.0),
        dict(name="o", weight=rng.normal(0, 0.5, (2, 5)), alpha=0.0, beta=0.9,
             threshold=None)])


def test_verify_rejects_projection_from_a_readout() -> None:
    g = small_graph()
    bad = Graph(g.nodes, (*g.edges, Projection("x", "o", "h", Dense(np.ones((5, 2))))), g.outputs)
    with pytest.raises(IRError) as ei:
        verify(bad)
    assert "non-spiking" in str(ei.value)


def test_verify_rejects_partial_quantization_and_float_weights() -> None:
    g = small_graph()
    q = quantize_graph(g, HW)
    verify(q, HW)
    half = Graph({**q.nodes, "h": g.nodes["h"]}, q.edges, q.outputs)
    with pytest.raises(IRError) as ei:
        verify(half)
    assert "partly quantized" in str(ei.value)
    e0 = q.edges[0]
    floaty = Projection(e0.name, e0.pre, e0.post, Dense(np.full(e0.synapses.shape, 0.5)),
                        weight_exp=0, sign_mode="excitatory", num_weight_bits=8)
    with pytest.raises(IRError):
        verify(Graph(q.nodes, (floaty, *q.edges[1:]), q.outputs))


def test_verify_with_hardware_checks_registers() -> None:
    q = quantize_graph(small_graph(), HW)
    e0 = q.edges[0]
    odd = Projection(e0.name, e0.pre, e0.post, Dense(np.full(e0.synapses.shape, 3)),
                     weight_exp=0, sign_mode="mixed", num_weight_bits=8)
    with pytest.raises(IRError) as ei:
        verify(Graph(q.nodes, (odd, *q.edges[1:]), q.outputs), HW)
    assert ei.value.field == "weights"
    far = Projection(e0.name, e0.pre, e0.post, e0.synapses, delay=100,
                     weight_exp=e0.weight_exp, sign_mode=e0.sign_mode, num_weight_bits=8)
    with pytest.raises(IRError) as ei:
        verify(Graph(q.nodes, (far, *q.edges[1:]), q.outputs), HW)
    assert ei.value.field == "delay"
    h = q.nodes["h"]
    assert isinstance(h, Neurons) and h.registers is not None
    r = h.registers
    bad_regs = NeuronRegisters(r.scale, r.du, 5000, r.vth, r.bias_mant, r.bias_exp)
    with pytest.raises(IRError) as ei:
        verify(Graph({**q.nodes, "h": h.with_(registers=bad_regs)}, q.edges, q.outputs), HW)
    assert ei.value.field == "dv"
    bad_exp = Projection(e0.name, e0.pre, e0.post, e0.synapses, weight_exp=9,
                         sign_mode=e0.sign_mode, num_weight_bits=8)
    with pytest.raises(IRError):
        verify(Graph(q.nodes, (bad_exp, *q.edges[1:]), q.outputs), HW)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=4), seed=st.integers(0, 999),
       recurrent=st.booleans(), per_neuron_th=st.booleans(), weight_bits=st.integers(3, 8))
def test_passes_keep_the_ir_valid(sizes, seed, recurrent, per_neuron_th, weight_bits) -> None:
    rng = np.random.default_rng(seed)
    layers = []
    prev = 5
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        th = None if last else (rng.uniform(0.5, 2.0, n) if per_neuron_th else 1.0)
        layers.append(dict(name=f"l{i}", weight=rng.normal(0, 0.5, (n, prev)),
                           alpha=float(rng.uniform(0, 1)), beta=float(rng.uniform(0, 1)),
                           threshold=th, bias=rng.normal(0, 0.05, n),
                           recurrent=rng.normal(0, 0.2, (n, n)) if recurrent and not last
                           else None))
        prev = n
    g = verify(layered_graph(n_in=5, layers=layers))
    n = verify(normalize(g))
    for p in n.populations.values():
        if p.spiking:
            assert p.threshold is not None and np.all(p.threshold == p.threshold[0])
    q = verify(quantize_graph(n, HW, weight_bits=weight_bits), HW)
    assert q.quantized and not n.quantized

"""The pass list is what compile_model runs: front passes over a FrontState, in list order."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import neurochip
from compiler import pipeline
from compiler.ir import Dense, Graph, IRError, Neurons, Projection, layered_graph
from compiler.pipeline import (
    CALIBRATE_PASS,
    FRONT_PASSES,
    FrontOptions,
    FrontState,
    compile_model,
    compile_network,
)
from neurochip.errors import ConfigError

HW = neurochip.load_hw("loihi_like")


def graph() -> Graph:
    rng = np.random.default_rng(3)
    return layered_graph(n_in=6, layers=[
        dict(name="hid", weight=rng.normal(0.2, 0.5, (8, 6)), alpha=0.5, beta=0.9,
             threshold=rng.uniform(0.8, 1.2, 8)),
        dict(name="out", weight=rng.normal(0, 0.5, (2, 8)), alpha=0.0, beta=0.8,
             threshold=None)])


def test_front_passes_run_by_hand_give_the_image_compile_model_gives() -> None:
    state = FrontState(model=graph(), spec=HW, options=FrontOptions())
    for _, run_pass in FRONT_PASSES:
        state = run_pass(state)
    assert state.network is not None and state.graph is not None and state.graph.quantized
    assert set(state.report) == {"hid", "out"}
    by_hand = compile_network(state.network, HW)
    image = compile_model(graph(), HW)
    for k, a in image.arrays.items():
        np.testing.assert_array_equal(by_hand.arrays[k], a, err_msg=k)


def test_a_pass_added_to_the_list_runs_in_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    def set_bias(state: FrontState) -> FrontState:
        assert state.graph is not None
        g = state.graph.replace_nodes(
            hid=state.graph.populations["hid"].with_(bias=np.full(8, 0.25)))
        return replace(state, graph=g, float_graph=g, result=g)

    plain = compile_model(graph(), HW)
    assert not plain.arrays["neurons/bias_mant"].any()
    passes = list(FRONT_PASSES)
    passes.insert(2, ("bias", set_bias))
    monkeypatch.setattr(pipeline, "FRONT_PASSES", passes)
    seen: list[str] = []
    image = compile_model(graph(), HW, on_pass=lambda n, _: seen.append(n))
    assert seen[:5] == ["import", "normalize", "bias", "quantize", "lower"]
    assert image.metadata["compiler"]["front_passes"] == ["import", "normalize", "bias",
                                                           "quantize", "lower"]
    hid = image.population("hid")
    assert image.arrays["neurons/bias_mant"][hid.offset: hid.offset + hid.size].all()


def test_the_verifier_runs_after_a_pass_that_yields_a_graph(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def readout_feeds_back(state: FrontState) -> FrontState:
        assert state.graph is not None
        g = state.graph
        e = Projection("out.back", "out", "hid", Dense(np.zeros((8, 2))))
        bad = Graph(g.nodes, (*g.edges, e), g.outputs, g.metadata)
        return replace(state, graph=bad, result=bad)

    passes = list(FRONT_PASSES)
    passes.insert(1, ("feedback", readout_feeds_back))
    monkeypatch.setattr(pipeline, "FRONT_PASSES", passes)
    with pytest.raises(IRError, match="non-spiking readout"):
        compile_model(graph(), HW)


def test_calibrate_is_scheduled_before_quantize_only_with_calibration() -> None:
    seen: list[str] = []
    x = np.random.default_rng(0).random((40, 6)) < 0.3
    compile_model(graph(), HW, calibration={"in": x}, on_pass=lambda n, _: seen.append(n))
    assert seen[:5] == ["import", "normalize", CALIBRATE_PASS[0], "quantize", "lower"]
    state = FrontState(model=graph(), spec=HW, options=FrontOptions())
    with pytest.raises(ConfigError, match="calibration data"):
        CALIBRATE_PASS[1](FRONT_PASSES[0][1](state))


def test_a_pass_out_of_order_raises_a_typed_error() -> None:
    state = FrontState(model=graph(), spec=HW, options=FrontOptions())
    quantize = dict(FRONT_PASSES)["quantize"]
    with pytest.raises(ConfigError, match="needs an IR graph"):
        quantize(state)
    assert isinstance(dict(FRONT_PASSES)["import"](state).result.populations["hid"], Neurons)

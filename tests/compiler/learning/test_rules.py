"""Rule language, locality check (Box 3) and every width limit of the learning engine."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import neurochip
from compiler.learning.rules import LOCAL_VARIABLES, builtin_rule
from neurochip.core.errors import LearningConfigError, LocalityError, PlacementError
from neurochip.learning import (
    BUILTIN_RULES,
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    TraceParams,
    add_learning,
    compiled_learning,
    parse_rule,
)


def two_layer(hw: str = "loihi_like") -> neurochip.ChipImage:
    net = neurochip.Network(hw)
    net.add_input("in", 6)
    net.add_lif("hid", 5, du=4095, dv=512, vth=20)
    net.add_lif("out", 3, du=4095, dv=512, vth=20)
    net.connect("in", "hid", np.full((5, 6), 20))
    net.connect("hid", "out", np.full((3, 5), -10), sign_mode="mixed")
    return neurochip.compile(net, hw)


def cfg(rule: str = "dfa", params: dict[str, int] | None = None, **kw: object) -> LearningConfig:
    hid = NeuronLearning("hid", surrogate=SurrogateParams(),
                         third_factor=ThirdFactor("dfa", source="out", shift=6))
    out = NeuronLearning("out", third_factor=ThirdFactor("error"))
    syn = (SynapseLearning("in->hid", rule, params or {}),
           SynapseLearning("hid->out", "delta", {"lr": 10}))
    base = {"synapses": syn, "neurons": (hid, out), "epoch": 2, "seed": 1}
    base.update(kw)
    return LearningConfig(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ grammar
def test_parse_sum_of_products_with_shifts_constants_and_offsets() -> None:
    r = parse_rule("de = -2^-3 * e + 3 * 2**-6 * sg * (x1 - 4)  # eligibility\n"
                   "dw = 2^-20 * m * e; ", name="mine")
    assert [str(t) for t in r.de] == ["-2^-3 * e", "3 * 2^-6 * sg * (x1 - 4)"]
    assert r.dw[0].shift == -20 and r.dw[0].mantissa == 1
    assert r.variables() == {"e", "sg", "x1", "m"}
    assert r.canonical() == "dw = 2^-20 * m * e; de = -2^-3 * e + 3 * 2^-6 * sg * (x1 - 4)"
    # spellings of local variables
    r2 = parse_rule("dw = 2^-4 * post.v * syn.w * hid.sg", post="hid")
    assert r2.variables() == {"v", "w", "sg"}


@pytest.mark.parametrize("text, msg", [
    ("dw = ", "expected a variable"),
    ("dx = x1", "'dw' (weight) or 'de'"),
    ("dw = x1 +", "expected a variable"),
    ("dw = x1 x2", "expected ';'"),
    ("dw = x1 $ 2", "unexpected character"),
    ("dw = 2^-3", "has no variable"),
    ("dw = 0 * x1", "multiplied by 0"),
    ("dw = x1; dw = x2", "assigned twice"),
    ("dw = (x1 * 3)", "'(variable + constant)'"),
    ("", "at least one statement"),
    ("dw = 2^-2 * voltage", "unknown variable 'voltage'"),
])
def test_syntax_errors_are_typed_and_name_the_rule(text: str, msg: str) -> None:
    with pytest.raises(LearningConfigError, match=re.escape(msg)) as ei:
        parse_rule(text, name="bad")
    assert ei.value.rule == "bad"


def test_every_builtin_rule_parses_and_passes_the_checks() -> None:
    img = two_layer()
    for name in BUILTIN_RULES:
        text = builtin_rule(name)
        assert parse_rule(text, name=name).dw
        if name in ("stdp",):
            c = LearningConfig((SynapseLearning("in->hid", name),), (), 1)
        elif name == "rstdp":
            c = LearningConfig((SynapseLearning("in->hid", name),),
                               (NeuronLearning("hid", third_factor=ThirdFactor("reward")),), 1)
        else:
            c = cfg(name)
        cl = compiled_learning(add_learning(img, c))
        assert cl.synapses[0].rule.name == name
    with pytest.raises(LearningConfigError, match="unknown built-in rule"):
        builtin_rule("backprop")
    with pytest.raises(LearningConfigError, match="unknown parameter"):
        builtin_rule("dfa", {"eta": 3})


# ------------------------------------------------------------------------------ locality
@pytest.mark.parametrize("var", ["pre.v", "pre.u", "pre.m", "out.v", "in.x1", "target",
                                 "reward", "wT", "w_fb", "delta"])
def test_non_local_variables_are_rejected_naming_them(var: str) -> None:
    img = two_layer()
    with pytest.raises(LocalityError) as ei:
        add_learning(img, cfg(f"dw = 2^-10 * {var} * x1"))
    assert ei.value.field == var and var in str(ei.value)
    assert "connection 'in->hid'" in str(ei.value)


def test_every_local_variable_is_accepted() -> None:
    assert set(LOCAL_VARIABLES) == {"x0", "x1", "x2", "y0", "y1", "y2", "sg", "m", "v", "u",
                                    "w", "e"}
    img = two_layer()
    rule = "dw = 2^-10 * x0 * y0 + 2^-12 * x1 * y1 + 2^-12 * x2 * y2 + 2^-16 * sg * m * w"
    add_learning(img, cfg(rule + "; de = -2^-2 * e + x1"))


def test_third_factor_must_reach_the_core() -> None:
    img = two_layer()
    c = cfg("dw = 2^-10 * m * x1")
    c = dataclasses.replace(c, neurons=(NeuronLearning("out", third_factor=ThirdFactor("error")),))
    with pytest.raises(LocalityError, match=r"'m'.*does not reach core"):
        add_learning(img, c)


def test_exact_backprop_is_rejected_as_weight_transport() -> None:
    img = two_layer()
    c = cfg()
    hid = NeuronLearning("hid", surrogate=SurrogateParams(),
                         third_factor=ThirdFactor("bp", source="out"))  # type: ignore[arg-type]
    with pytest.raises(LocalityError, match=r"transposed forward weights.*hid->out"):
        add_learning(img, dataclasses.replace(c, neurons=(hid, c.neurons[1])))


def test_dcll_readout_must_sit_on_one_core() -> None:
    net = neurochip.Network("tiny4")
    net.add_input("in", 4)
    net.add_lif("hid", 100, du=4095, dv=512, vth=20)  # two cores of 64
    net.add_lif("out", 2, du=4095, dv=512, vth=20)
    net.connect("in", "hid", np.full((100, 4), 10))
    net.connect("hid", "out", np.full((2, 100), 10))
    img = neurochip.compile(net, "tiny4")
    c = LearningConfig((SynapseLearning("in->hid", "dcll"),),
                       (NeuronLearning("hid", surrogate=SurrogateParams(),
                                       third_factor=ThirdFactor("dcll", target="out")),), 1)
    with pytest.raises(LocalityError, match="spans cores"):
        add_learning(img, c)


def test_sg_needs_a_lookup_table() -> None:
    img = two_layer()
    c = cfg()
    hid = NeuronLearning("hid", third_factor=ThirdFactor("dfa", source="out"))
    with pytest.raises(LearningConfigError, match="'sg' needs a surrogate"):
        add_learning(img, dataclasses.replace(c, neurons=(hid, c.neurons[1])))


# ------------------------------------------------------------------------------ widths
def test_width_limits_of_a_term() -> None:
    img = two_layer()
    # product wider than the multiplier (2 x 16 bits): v is 24-bit
    with pytest.raises(LearningConfigError, match="multiplier") as ei:
        add_learning(img, cfg("dw = 2^-14 * v * m * x1"))
    assert ei.value.field == "dw.product" and ei.value.limit == (1 << 31) - 1
    # a term that can overflow the accumulator
    with pytest.raises(LearningConfigError, match="accumulator") as ei:
        add_learning(img, cfg("dw = 2^-4 * m * sg * x1"))
    assert ei.value.field == "dw.accumulator" and ei.value.rule == "custom"
    # the datapath shift (rule shift plus 7 fraction bits) beyond max_shift = 15
    with pytest.raises(LearningConfigError, match="max_shift") as ei:
        add_learning(img, cfg("dw = 2^-30 * m * x1"))
    assert ei.value.field == "dw.shift" and ei.value.limit == 15
    # a constant wider than constant_bits = 8 (signed)
    with pytest.raises(LearningConfigError, match="8-bit signed") as ei:
        add_learning(img, cfg("dw = 300 * 2^-20 * m * x1"))
    assert ei.value.limit == (-127, 127)
    with pytest.raises(LearningConfigError, match="offset 200"):
        add_learning(img, cfg("dw = 2^-20 * m * (x1 + 200)"))


def test_term_and_factor_counts() -> None:
    img = two_layer()
    five = " + ".join(["2^-12 * x1 * y1"] * 5)
    with pytest.raises(LearningConfigError, match="max_terms") as ei:
        add_learning(img, cfg(f"dw = {five}"))
    assert ei.value.limit == 4
    with pytest.raises(LearningConfigError, match="max_factors") as ei:
        add_learning(img, cfg("dw = 2^-15 * x0 * y0 * x0 * y0 * x0"))
    assert ei.value.limit == 4


@pytest.mark.parametrize("epoch", [0, 64])
def test_epoch_limit(epoch: int) -> None:
    with pytest.raises(LearningConfigError, match="max_epoch") as ei:
        add_learning(two_layer(), cfg(epoch=epoch))
    assert ei.value.field == "epoch" and ei.value.limit == (1, 63)


def test_trace_third_factor_lut_and_matrix_limits() -> None:
    img = two_layer()
    c = cfg()
    bad_trace = dataclasses.replace(c.synapses[0], x1=TraceParams(impulse=128))
    with pytest.raises(LearningConfigError, match="trace_bits=7") as ei:
        add_learning(img, dataclasses.replace(c, synapses=(bad_trace, c.synapses[1])))
    assert ei.value.field == "x1.impulse" and ei.value.limit == (0, 127)
    bad_decay = dataclasses.replace(c.synapses[0], x2=TraceParams(decay=5000))
    with pytest.raises(LearningConfigError, match="decay register") as ei:
        add_learning(img, dataclasses.replace(c, synapses=(bad_decay, c.synapses[1])))
    assert ei.value.limit == (0, 4096)
    hid = c.neurons[0]
    for tf, fld in ((ThirdFactor("dfa", source="out", shift=16), "third_factor.shift"),
                    (ThirdFactor("dfa", source="out", matrix=np.full((5, 3), 128)),
                     "third_factor.matrix"),
                    (ThirdFactor("dfa", source="out", matrix=np.ones((3, 5), int)),
                     "third_factor.matrix")):
        with pytest.raises(LearningConfigError) as ei:
            add_learning(img, dataclasses.replace(
                c, neurons=(dataclasses.replace(hid, third_factor=tf), c.neurons[1])))
        assert ei.value.field == fld and "population 'hid'" in str(ei.value)
    big_lut = dataclasses.replace(hid, surrogate=SurrogateParams(size=128))
    with pytest.raises(LearningConfigError, match="surrogate_lut_size") as ei:
        add_learning(img, dataclasses.replace(c, neurons=(big_lut, c.neurons[1])))
    assert ei.value.limit == (2, 64)


def test_seed_fits_the_prng() -> None:
    img = add_learning(two_layer(), cfg())
    seeds = {int(k): v for k, v in img.learning["core_seeds"].items()}  # type: ignore[index]
    assert all(0 <= v < (1 << 16) for v in seeds.values())
    img.learning["core_seeds"] = {"0": 1 << 16}  # type: ignore[index]
    with pytest.raises(LearningConfigError, match="prng_bits=16") as ei:
        compiled_learning(img)
    assert ei.value.field == "prng_seed"


def test_hardware_spec_consistency(tmp_path: object) -> None:
    img = two_layer()
    ls = img.hw.learning.model_copy(update={"tag_bits": 20})
    hw = img.hw.model_copy(update={"learning": ls})
    with pytest.raises(LearningConfigError, match="tag_bits=20 exceeds accumulator_bits"):
        add_learning(dataclasses.replace(img, hw=hw), cfg())
    ls = img.hw.learning.model_copy(update={"accumulator_bits": 8, "tag_bits": 8})
    hw = img.hw.model_copy(update={"learning": ls, "formats": img.hw.formats})
    with pytest.raises(LearningConfigError, match="do not fit the 8-bit accumulator"):
        add_learning(dataclasses.replace(img, hw=hw), cfg())


def test_learning_memory_rule() -> None:
    # a core with room for its weights but not for tags, traces and tables
    net = neurochip.Network("tiny4")
    net.add_input("in", 60)
    net.add_lif("a", 60, du=4095, dv=512, vth=20)
    net.connect("in", "a", np.full((60, 60), 2))
    img = neurochip.compile(net, "tiny4")
    assert img.cores[0].synapse_bits <= img.hw.core.synapse_memory_bits
    c = LearningConfig((SynapseLearning("in->a", "superspike"),),
                       (NeuronLearning("a", surrogate=SurrogateParams(),
                                       third_factor=ThirdFactor("error")),), 1)
    with pytest.raises(PlacementError) as ei:
        add_learning(img, c)
    assert ei.value.rule == "learning_memory" and ei.value.limit == 32768
    assert "core 0" in str(ei.value)


def test_config_errors_name_what_is_wrong() -> None:
    img = two_layer()
    with pytest.raises(LearningConfigError, match="no connection 'x->y'"):
        add_learning(img, LearningConfig((SynapseLearning("x->y", "stdp"),)))
    with pytest.raises(LearningConfigError, match="listed twice"):
        add_learning(img, LearningConfig((SynapseLearning("in->hid", "stdp"),) * 2))
    with pytest.raises(LearningConfigError, match="no plastic connection"):
        LearningConfig(())
    with pytest.raises(LearningConfigError, match="DFA feeds back the output error"):
        c = cfg()
        bad = NeuronLearning("hid", surrogate=SurrogateParams(),
                             third_factor=ThirdFactor("dfa", source="out"))
        out = NeuronLearning("out", third_factor=ThirdFactor("reward"))
        add_learning(img, dataclasses.replace(c, neurons=(bad, out)))
    with pytest.raises(LearningConfigError, match="positive threshold"):
        net = neurochip.Network()
        net.add_input("in", 2)
        net.add_lif("z", 2, du=0, dv=0, vth=0)
        net.connect("in", "z", np.full((2, 2), 4))
        add_learning(neurochip.compile(net), LearningConfig(
            (SynapseLearning("in->z", "three_factor"),),
            (NeuronLearning("z", surrogate=SurrogateParams(),
                            third_factor=ThirdFactor("reward")),)))


def test_add_learning_returns_a_new_image_and_round_trips(tmp_path: object) -> None:
    import pathlib

    img = two_layer()
    before = img.manifest()
    limg = add_learning(img, cfg())
    assert img.manifest() == before and img.learning is None
    assert [c.plastic for c in limg.connections] == [True, True]
    assert "learn/matrix/hid" in limg.arrays and "learn/lut/hid" in limg.arrays
    p = pathlib.Path(str(tmp_path)) / "l.nchip"
    limg.save(p)
    again = neurochip.ChipImage.load(p)
    assert again.equals(limg)
    a, b = compiled_learning(limg), compiled_learning(again)
    assert a.core_seeds == b.core_seeds
    np.testing.assert_array_equal(np.asarray(a.population("hid").matrix),
                                  np.asarray(b.population("hid").matrix))

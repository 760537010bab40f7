"""The resolved learning record is chip data: the image stores it, it reads back as the
compiler resolved it, and the emulator learns from it without the rule checker."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest

import compiler.learning.compile as learning_compiler
import neurochip
from compiler.learning.compile import resolve_learning
from neurochip.core.errors import LearningConfigError
from neurochip.core.learning import (
    LEARNING_FORMAT,
    CompiledLearning,
    compiled_learning,
    with_rate_shift,
)
from neurochip.learning import (
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    add_learning,
)


def _image() -> neurochip.ChipImage:
    net = neurochip.Network("loihi_like")
    net.add_input("in", 6)
    net.add_lif("hid", 5, du=4095, dv=512, vth=20)
    net.add_lif("out", 3, du=4095, dv=512, vth=20)
    net.connect("in", "hid", np.full((5, 6), 20))
    net.connect("hid", "out", np.full((3, 5), -10), sign_mode="mixed")
    return neurochip.compile(net, "loihi_like")


def _config(rate_shift: int = 0) -> LearningConfig:
    hid = NeuronLearning("hid", surrogate=SurrogateParams(size=16),
                         third_factor=ThirdFactor("dfa", source="out", shift=6))
    out = NeuronLearning("out", third_factor=ThirdFactor("error"))
    syn = (SynapseLearning("in->hid", "de = -2^-2 * e + 2^-2 * (x1 - 3) * sg; "
                                      "dw = 2^-14 * m * e"),
           SynapseLearning("hid->out", "delta", {"lr": 6}))
    return LearningConfig(syn, (hid, out), epoch=2, seed=5, rate_shift=rate_shift)


def _same(a: CompiledLearning, b: CompiledLearning) -> None:
    assert a.config.to_dict() == b.config.to_dict()
    assert a.synapses == b.synapses
    assert [p.name for p in a.populations] == [p.name for p in b.populations]
    for p, q in zip(a.populations, b.populations):
        for f in dataclasses.fields(p):
            x, y = getattr(p, f.name), getattr(q, f.name)
            if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
                np.testing.assert_array_equal(x, y)
                assert x.dtype == y.dtype == np.int64
            elif f.name == "third":
                assert (x.kind, x.source, x.target, x.shift, x.readout_shift, x.seed) == \
                    (y.kind, y.source, y.target, y.shift, y.readout_shift, y.seed)
            else:
                assert x == y, f.name
    assert a.core_seeds == b.core_seeds
    assert (a.epoch, a.target_channels, a.target_sizes) == (b.epoch, b.target_channels,
                                                            b.target_sizes)
    assert (a.trace_bits, a.tag_bits, a.tf_bits, a.lut_bits, a.acc_bits, a.prng_bits,
            a.decay_bits) == (b.trace_bits, b.tag_bits, b.tf_bits, b.lut_bits, b.acc_bits,
                              b.prng_bits, b.decay_bits)


def test_the_image_stores_the_record_the_compiler_resolved(tmp_path: pathlib.Path) -> None:
    img = _image()
    resolved = resolve_learning(img, _config())
    limg = add_learning(img, _config())
    assert limg.learning is not None and limg.learning["format"] == LEARNING_FORMAT == 2
    terms = limg.learning["record"]["synapses"][0]["dw"]
    assert terms == [[t.mantissa, t.dshift, list(t.vars), list(t.offsets), t.bound, t.label]
                     for t in resolved.synapses[0].dw]
    limg.save(tmp_path / "l.nchip")
    again = neurochip.ChipImage.load(tmp_path / "l.nchip")
    assert again.equals(limg)
    _same(compiled_learning(again), resolved)
    assert compiled_learning(again).synapses[0].rule.name == "custom"
    assert compiled_learning(again).synapses[1].rule.canonical() == \
        limg.learning["rules"]["hid->out"]


def test_the_emulator_learns_without_the_rule_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    img = add_learning(_image(), _config())
    x = np.random.default_rng(0).random((4, 12, 6)) < 0.4
    y = np.zeros((4, 12, 3), bool)
    y[:, :, 1] = True
    free = neurochip.Emulator(img)
    free.set_rate_shift(1)
    free.learn({"in": x}, {"out": y}, epochs=2)

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the rule checker ran")

    monkeypatch.setattr(learning_compiler, "_compile", refuse)
    monkeypatch.setattr(learning_compiler, "parse_rule", refuse)
    for backend in ("numba", "reference"):
        em = neurochip.Emulator(img, backend=backend)  # type: ignore[arg-type]
        em.set_rate_shift(1)
        em.learn({"in": x}, {"out": y}, epochs=2)
        for c in img.connections:
            np.testing.assert_array_equal(em.weights(c.name), free.weights(c.name))
        assert not np.array_equal(em.weights("hid->out"), img.weights("hid->out"))
        assert em.learned_image().learning["config"]["rate_shift"] == 1  # type: ignore[index]


def test_a_rate_shift_gives_the_record_the_compiler_would_give() -> None:
    img = _image()
    base = resolve_learning(img, _config())
    for shift in (0, 1, 3, 7):
        _same(with_rate_shift(base, shift, img.hw), resolve_learning(img, _config(shift)))
    # beyond the shifter: typed, naming the connection, the term and the limit
    with pytest.raises(LearningConfigError, match="max_shift") as ei:
        with_rate_shift(base, 40, img.hw)
    assert ei.value.field == "dw.shift" and ei.value.where == "connection 'in->hid'"
    assert "2^-14 * m * e" in str(ei.value)
    with pytest.raises(LearningConfigError, match="accumulator") as ei:
        with_rate_shift(base, -2, img.hw)
    assert ei.value.field == "dw.accumulator"


def test_a_bad_record_is_a_typed_error() -> None:
    limg = add_learning(_image(), _config())
    assert limg.learning is not None
    old = dataclasses.replace(limg, learning={**limg.learning, "format": 1})
    with pytest.raises(LearningConfigError, match="add_learning") as ei:
        compiled_learning(old)
    assert ei.value.field == "learning.format" and ei.value.value == 1
    rec = dict(limg.learning["record"])
    del rec["populations"]
    broken = dataclasses.replace(limg, learning={**limg.learning, "record": rec})
    with pytest.raises(LearningConfigError, match="malformed learning record") as ei:
        compiled_learning(broken)
    assert ei.value.field == "learning.record"
    no_seed = dataclasses.replace(limg, learning={**limg.learning, "core_seeds": {}})
    with pytest.raises(LearningConfigError, match="no PRNG seed for core 0"):
        neurochip.Emulator(no_seed).learn({"in": np.zeros((1, 3, 6), bool)})

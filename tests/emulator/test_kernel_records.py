"""The kernels' shared definitions: one weight decoder, one path cost, named codes, records."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
from numba.core.registry import CPUDispatcher

import emulator.kernels
import emulator.learning.kernels
from emulator.kernels.routing import message_cycles
from emulator.kernels.weights import decode_weight, raw_weight, scale_weight
from emulator.paths import PathCosts, path_cycles
from neurochip.core import fixedpoint as fx
from neurochip.core.fixedpoint import WeightDecode


def test_kernel_weight_decoder_equals_core_on_every_byte_mode_and_shift() -> None:
    """The njit decode rule equals fixedpoint.decode_weight_bytes on all 256 bytes, every
    mode and shifts 0..8; a sum of raw bytes scales to the sum of the decoded weights."""
    rng = np.random.default_rng(0)
    allb = np.arange(256, dtype=np.uint8)
    for mode in WeightDecode:
        for shift in range(9):
            want = fx.decode_weight_bytes(allb, mode, shift)
            got = np.array([decode_weight(b, mode, shift) for b in allb], np.int64)
            np.testing.assert_array_equal(got, want, err_msg=f"{mode.name} << {shift}")
            rows = rng.integers(0, 256, (50, 7)).astype(np.uint8)
            raw_sum = int(sum(raw_weight(b, mode) for b in rows.reshape(-1)))
            assert scale_weight(raw_sum, mode, shift) == \
                int(fx.decode_weight_bytes(rows, mode, shift).sum())
    # the encoder names its modes, and bytes round-trip
    for sign, mode in ((fx.SIGN_MIXED, WeightDecode.SIGNED),
                       (fx.SIGN_EXCITATORY, WeightDecode.UNSIGNED),
                       (fx.SIGN_INHIBITORY, WeightDecode.NEGATED)):
        w = fx.effective_weights(rng.integers(-300, 300, 200), sign, 8)
        b, m, sh = fx.encode_weight_bytes(w, sign)
        assert m == mode and type(m) is int
        np.testing.assert_array_equal(fx.decode_weight_bytes(b, m, sh), w)


def test_one_path_cost_for_kernels_and_reference_models() -> None:
    """The kernels' compiled message cost is the reference models' path_cycles, and the
    reference models take their costs from the hardware spec through it."""
    import neurochip
    from emulator.learning.reference import LearningReference
    from emulator.paths import path_costs
    from emulator.reference import ReferenceModel
    from neurochip.testing_learning import random_learning

    rng = np.random.default_rng(1)
    for _ in range(50):
        c = PathCosts(*(np.int64(x) for x in rng.integers(0, 50, 4)))
        dx, dy, dl = (np.int64(x) for x in rng.integers(0, 20, 3))
        assert message_cycles(c, dx, dy, dl) == path_cycles(c, dx, dy, dl) == \
            c.spike_out + dx * c.hop_ew + dy * c.hop_ns + dl * c.chip_link
    hw = neurochip.load_hw("loihi_like")
    t = hw.timing
    assert path_costs(hw) == (t.cycles("spike_out"), t.cycles("hop_ew"), t.cycles("hop_ns"),
                              t.cycles("chip_link"))
    net = neurochip.Network(name="tiny")
    net.add_input("in", 2)
    net.add_lif("lif", 2, du=100, dv=100, vth=10)
    net.connect("in", "lif", np.array([[2, 4], [6, 8]]))
    img = neurochip.compile(net, hw)
    assert ReferenceModel(img).costs == path_costs(hw)
    assert LearningReference(random_learning(img, 0)).costs == path_costs(hw)


def test_integer_codes_are_named_once() -> None:
    """The learning tables' codes agree with the codes the learning compiler writes."""
    from emulator.learning.tables import (
        NT,
        GroupCol,
        NeuronReg,
        Param,
        PopCol,
        TermCol,
    )
    from neurochip.core.learning import (
        KIND_CODES,
        THIRD_FACTOR_KINDS,
        VAR_CODES,
        ThirdFactorCode,
        Var,
    )

    assert {v.name.lower(): int(v) for v in Var} == VAR_CODES
    assert [k.name.lower() for k in ThirdFactorCode] == list(THIRD_FACTOR_KINDS)
    assert {k.name.lower(): int(k) for k in ThirdFactorCode} == KIND_CODES
    assert [r.name.lower() for r in NeuronReg] == ["y1", "y2", "sg", "m", "yt"]
    for table in (GroupCol, PopCol, Param):  # columns 0..n-1, each named once
        assert sorted(int(c) for c in table) == list(range(len(table)))
    assert TermCol.OFF + (TermCol.OFF - TermCol.VAR) == NT


def _kernels() -> list[tuple[str, CPUDispatcher]]:
    mods = [importlib.import_module(f"emulator.kernels.{m.name}")
            for m in pkgutil.iter_modules(emulator.kernels.__path__)]
    mods.append(emulator.learning.kernels)
    out = []
    for mod in mods:
        for name, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == mod.__name__:
                out.append((f"{mod.__name__}.{name}", obj))
    return out


def test_kernels_take_few_parameters() -> None:
    """No kernel takes more than 9 parameters, except the batch-parallel loop (and its
    helper), which takes the parts of the Network because a parallel loop cannot hand a
    record holding records to its threads."""
    kernels = _kernels()
    assert len(kernels) > 40
    wide = {name: len(inspect.signature(k.py_func).parameters) for name, k in kernels
            if len(inspect.signature(k.py_func).parameters) > 9}
    assert wide == {"emulator.kernels.step.run_batch_par": 12,
                    "emulator.kernels.step._run_one_parts": 13}


def test_network_record_fields_are_the_tables() -> None:
    """Every array of the kernels' Network record is the tables' own array (no copies),
    C-contiguous; the segment and format fields are those of the tables."""
    import neurochip
    from emulator.kernels import kernel_network
    from emulator.tables import build_tables

    rng = np.random.default_rng(2)
    net = neurochip.Network(name="rec")
    net.add_input("in", 5)
    net.add_lif("a", 7, du=100, dv=200, vth=50)
    net.add_lif("b", 3, du=100, dv=200, vth=50)
    net.connect("in", "a", rng.integers(-100, 100, (7, 5)) * 2)
    net.connect("a", "b", rng.integers(0, 200, (3, 7)))
    tb = build_tables(neurochip.compile(net, "loihi_like"))
    rec = kernel_network(tb)
    assert rec.neurons.bias is tb.bias and rec.conns.kind is tb.c_kind
    assert rec.syn.dws.base is tb.dw or rec.syn.dws.base is tb.dw.base
    for part in rec[:5]:
        for name, val in part._asdict().items():
            if isinstance(val, np.ndarray):
                assert val.flags.c_contiguous, name
    assert (rec.neurons.decay_shift, rec.neurons.u_bits, rec.neurons.v_bits,
            rec.neurons.input_shift) == tb.fmt
    assert rec.ring_slots == tb.ring_slots
    assert tuple(rec.routes[-4:]) == tb.route_costs

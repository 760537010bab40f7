"""How the step loop reads each segment's spikes: listed (it sends, or learns) or copied
from its flags into the record (recorded only); the record is the same either way."""

from __future__ import annotations

import numpy as np
import pytest

import neurochip
from emulator.kernels.records import COPIED, LISTED, segments_to_list
from neurochip.testing import assert_same_results


def _net() -> neurochip.Network:
    rng = np.random.default_rng(5)
    net = neurochip.Network("loihi_like", name="record")
    net.add_input("in", 40)
    net.add_lif("h", 1500, du=200, dv=300, vth=40)  # sends to o, spread over cores
    net.add_lif("o", 1200, du=100, dv=500, vth=30)  # sends nothing: only recorded
    net.connect("in", "h", rng.integers(-20, 40, (1500, 40)) * 2)
    net.connect("h", "o", rng.integers(-10, 20, (1200, 1500)) * 2 * (
        rng.random((1200, 1500)) < 0.05), storage="sparse")
    return net


def test_recorded_only_segments_are_copied_and_the_record_equals_listing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import emulator.kernels.run as run

    img = neurochip.compile(_net(), "loihi_like")
    x = np.random.default_rng(0).random((3, 30, 40)) < 0.3
    em = neurochip.Emulator(img)
    tb = em.tables
    h, o = img.population("h"), img.population("o")
    seg_of = np.repeat(np.arange(tb.seg_slot.size), np.diff(tb.seg_g0))
    rec_col = np.arange(tb.n_neurons)  # every population recorded, in order
    kinds = segments_to_list(tb, rec_col)
    assert set(kinds[seg_of[h.offset: h.offset + h.size]]) == {LISTED}
    assert set(kinds[seg_of[o.offset: o.offset + o.size]]) == {COPIED}
    assert (segments_to_list(tb, None) == LISTED).all()  # the learning engine lists all
    only_h = np.where(np.arange(tb.n_neurons) < h.offset + h.size, rec_col, -1)
    assert (segments_to_list(tb, only_h)[seg_of[o.offset:o.offset + o.size]] == 0).all()

    copied = em.run({"in": x}, probes=["o.v"])
    assert copied.spikes["o"].any()
    monkeypatch.setattr(run, "segments_to_list", lambda tb, rc: np.where(
        segments_to_list(tb, rc) == COPIED, LISTED, segments_to_list(tb, rc)).astype(np.uint8))
    listed = neurochip.Emulator(img).run({"in": x}, probes=["o.v"])
    assert_same_results(copied, listed)
    for threads in (1, 2):  # and the reference model's record
        ref = neurochip.Emulator(img, backend="reference").run({"in": x[0]}, probes=["o.v"])
        one = neurochip.Emulator(img, threads=threads).run({"in": x[0]}, probes=["o.v"])
        assert_same_results(one, ref)


def test_a_small_population_gets_its_own_spikes_and_a_large_one_a_view() -> None:
    """Keeping one population's spikes must not keep a much larger record alive: a
    population filling half the record or more is a view of it (no copy), a smaller one a
    copy of its own."""
    img = neurochip.compile(_net(), "loihi_like")
    x = np.random.default_rng(1).random((2, 10, 40)) < 0.3
    r = neurochip.Emulator(img).run({"in": x})
    h, o = r.spikes["h"], r.spikes["o"]  # 1,500 and 1,200 of 2,700 recorded neurons
    assert h.dtype == o.dtype == np.bool_
    assert h.base is not None and h.base.shape[-1] == 2700  # a view of the whole record
    assert o.base is None or o.base.size == o.size  # its own bytes
    ref = neurochip.Emulator(img, backend="reference").run({"in": x[0]})
    np.testing.assert_array_equal(h[0], ref.spikes["h"])
    np.testing.assert_array_equal(o[0], ref.spikes["o"])

"""The Numba kernels equal the pure-Python reference model bit for bit (property tests)."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurochip
from neurochip.testing import assert_same_results as assert_same
from neurochip.testing import random_inputs, random_network


def _random_case(seed: int, hw: str, steps: int, rate: float
                 ) -> tuple[neurochip.ChipImage, np.ndarray, list[str]]:
    """A random network compiled for hw (or loihi_like when it does not fit), random
    inputs, and probes of every u and v."""
    net = random_network(seed, hw, max_size=40 if hw == "tiny4" else 30)
    try:
        img = neurochip.compile(net, hw)
    except neurochip.core.errors.PlacementError:
        img = neurochip.compile(net, "loihi_like")
    probes = [f"{p.name}.{v}" for p in img.lif_populations for v in "uv"]
    return img, random_inputs(seed, steps, 12, rate), probes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), hw=st.sampled_from(["loihi_like", "tiny4"]),
       rate=st.sampled_from([0.05, 0.3, 0.8]))
def test_kernels_equal_reference_on_random_networks(seed: int, hw: str, rate: float) -> None:
    img, x, probes = _random_case(seed, hw, 50, rate)
    a = neurochip.Emulator(img).run({"in": x}, probes=probes)
    b = neurochip.Emulator(img, backend="reference").run({"in": x}, probes=probes)
    assert_same(a, b)


def test_multi_core_networks_match_and_route_between_cores() -> None:
    hit_multi = 0
    for seed in range(8):
        img = neurochip.compile(random_network(seed, "tiny4", max_size=45), "tiny4")
        hit_multi += len(img.cores) > 1
        x = random_inputs(seed, 40, 12, 0.4)
        probes = [f"{p.name}.v" for p in img.lif_populations]
        a = neurochip.Emulator(img).run({"in": x}, probes=probes)
        b = neurochip.Emulator(img, backend="reference").run({"in": x}, probes=probes)
        assert_same(a, b)
    assert hit_multi >= 4


def test_state_carries_over_between_runs_and_batches_are_independent() -> None:
    img = neurochip.compile(random_network(11, max_size=20), "loihi_like")
    x = random_inputs(3, 60, 12, 0.4, batch=3)
    probes = [f"{p.name}.v" for p in img.lif_populations]
    whole = neurochip.Emulator(img).run({"in": x}, probes=probes)
    em = neurochip.Emulator(img)
    first = em.run({"in": x[:, :25]}, probes=probes)
    second = em.run({"in": x[:, 25:]}, probes=probes)
    assert em.t == 60 and second.t_start == 25
    for k in whole.probes:
        np.testing.assert_array_equal(whole.probes[k],
                                      np.concatenate([first.probes[k], second.probes[k]], 1))
    ref = neurochip.Emulator(img, backend="reference")
    for b in range(3):
        single = neurochip.Emulator(img).run({"in": x[b]}, probes=probes)
        for k in whole.probes:
            np.testing.assert_array_equal(whole.probes[k][b], single.probes[k])
        np.testing.assert_array_equal(whole.cycles[b], single.cycles)
    r = ref.run({"in": x}, probes=probes)
    for k in whole.probes:
        np.testing.assert_array_equal(whole.probes[k], r.probes[k])


def test_sparse_rows_wider_than_16_bits_keep_full_indices() -> None:
    import scipy.sparse as sp

    n = 70_000
    net = neurochip.Network()
    net.add_input("in", 2)
    net.add_lif("big", n, du=4095, dv=4096, vth=10)
    rows = np.array([0, 5, 69_999, 12, 65_536])
    cols = np.array([0, 0, 0, 1, 1])
    delays = np.zeros((n, 2), np.int64)
    delays[rows, cols] = [0, 2, 1, 0, 3]
    net.connect("in", "big", sp.csr_matrix((np.array([40, 40, 40, -40, 40]), (rows, cols)),
                                           shape=(n, 2)), storage="sparse", delay=delays)
    img = neurochip.compile(net, "loihi_like")
    em = neurochip.Emulator(img)
    assert em.tables.swide.size == 5  # wide connection: full indices kept
    x = np.zeros((6, 2), bool)
    x[0] = True
    a = em.run({"in": x})
    b = neurochip.Emulator(img, backend="reference").run({"in": x})
    assert_same(a, b)
    fired = {int(i): int(t) for t, i in zip(*np.nonzero(a.spikes["big"]))}
    assert fired == {0: 1, 5: 3, 69_999: 2, 65_536: 4}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), hw=st.sampled_from(["loihi_like", "tiny4"]),
       rate=st.sampled_from([0.1, 0.5]))
def test_threaded_single_sample_equals_serial_and_reference(seed: int, hw: str,
                                                           rate: float) -> None:
    """A large network's single sample spreads its segments, routing and connections over
    the threads; here the thresholds are lowered so small random networks take that path."""
    import numba
    import pytest

    from emulator.kernels import run as kernels

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    img, x, probes = _random_case(seed, hw, 40, rate)
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(kernels, "THREADED_MIN_NEURONS", 0)
        mp.setattr(kernels, "THREADED_MIN_EVENTS", 0)
        mp.setattr(kernels, "THREADED_MIN_SOURCES", 0)
        calls = []
        threaded = kernels.run_threaded
        mp.setattr(kernels, "run_threaded", lambda *a: (calls.append(a[-1].threads),
                                                        threaded(*a)))
        em = neurochip.Emulator(img, threads=2)
        a = em.run({"in": x[:15]}, probes=probes)
        a2 = em.run({"in": x[15:]}, probes=probes)
    finally:
        mp.undo()
    assert calls == [2, 2]  # both runs took the threaded path, on two threads
    b = neurochip.Emulator(img, backend="reference").run({"in": x}, probes=probes)
    s = neurochip.Emulator(img, threads=1).run({"in": x}, probes=probes)
    assert_same(s, b)
    for k in b.probes:
        np.testing.assert_array_equal(np.concatenate([a.probes[k], a2.probes[k]]), b.probes[k])
    for k in b.spikes:
        np.testing.assert_array_equal(np.concatenate([a.spikes[k], a2.spikes[k]]), b.spikes[k])
    for k in b.counters:
        np.testing.assert_array_equal(np.concatenate([a.counters[k], a2.counters[k]]),
                                      b.counters[k])


def test_threads_out_of_range_is_a_typed_error() -> None:
    import numba
    import pytest

    img = neurochip.compile(random_network(1, max_size=10), "loihi_like")
    with pytest.raises(neurochip.core.errors.EmulatorInputError, match="threads"):
        neurochip.Emulator(img, threads=numba.config.NUMBA_NUM_THREADS + 1).run(
            {"in": random_inputs(1, 5, 12, 0.3)})


def test_host_spike_lists_match_numpy_for_any_width_and_batch() -> None:
    """The word-at-a-time spike compaction equals a plain per-row nonzero, including rows
    that are not a multiple of 64 inputs wide and empty shapes."""
    from emulator.kernels import spike_lists

    rng = np.random.default_rng(0)
    for shape in [(1, 300, 1024), (3, 7, 5), (2, 0, 4), (4, 13, 130), (1, 3, 64), (2, 5, 0),
                  (0, 4, 8), (2, 9, 200)]:
        for p in (0.02, 0.5, 1.0):
            x = rng.random(shape) < p
            ptr, src = spike_lists(x)
            want_ptr = np.zeros((shape[0], shape[1] + 1), np.int64)
            want: list[int] = []
            for b in range(shape[0]):
                for t in range(shape[1]):
                    want_ptr[b, t] = len(want)
                    want += np.flatnonzero(x[b, t]).tolist()
                want_ptr[b, shape[1]] = len(want)
            np.testing.assert_array_equal(ptr, want_ptr)
            np.testing.assert_array_equal(src, np.array(want, np.int64))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), du=st.integers(0, 4095), dv=st.integers(0, 4096),
       mode=st.sampled_from([0, 1, 2]), in_shift=st.integers(0, 16),
       bits=st.sampled_from([(24, 24), (29, 28), (30, 30), (20, 16), (8, 7)]))
def test_neuron_update_in_32_bit_lanes_equals_64_bit(seed: int, du: int, dv: int, mode: int,
                                                     in_shift: int,
                                                     bits: tuple[int, int]) -> None:
    """Wherever narrow_formats_ok allows it, the 32-bit neuron update equals the 64-bit one
    on extreme registers: inputs over the whole int32 range (the input sum wraps, and the
    current keeps what its single wrap leaves), currents at the wrap edges, saturating
    voltages, the largest biases allowed, both signs of every product."""
    from emulator.kernels import Formats, Population, _update_range, narrow_formats_ok

    u_bits, v_bits = bits
    rng = np.random.default_rng(seed)
    n = 300
    uh, vh = 1 << (u_bits - 1), (1 << (v_bits - 1)) - 1
    bias_max = (1 << u_bits) - vh - 1  # the largest |bias| the 32-bit form takes
    theta = int(rng.integers(0, min(vh, (1 << 30) - 1) + 1))
    assert narrow_formats_ok(12, u_bits, v_bits, in_shift, bias_max, theta)
    assert not narrow_formats_ok(12, u_bits, v_bits, in_shift, bias_max + 1, theta)
    u0 = rng.integers(-(2**31), 2**31, n).astype(np.int32)  # any current a wrap can leave
    u0[:6] = [-uh, uh - 1, -1, 0, -(2**31), 2**31 - 1]
    u0[6::2] = rng.integers(-uh, uh, u0[6::2].size)
    v0 = rng.integers(-vh, vh + 1, n).astype(np.int32)
    v0[:4] = [-vh, vh, 1, -4095]
    a0 = rng.integers(-(2**31), 2**31, n).astype(np.int32)
    a0[::3] = rng.integers(-3000, 3000, a0[::3].size)
    a0[5::7] = 0
    bias = rng.integers(-bias_max, bias_max + 1, n).astype(np.int32)
    bias[:2] = [bias_max, -bias_max]
    out = []
    for narrow in (True, False):
        u, v, a, flag = u0.copy(), v0.copy(), a0.copy(), np.zeros(n, np.uint8)
        _update_range(u, v, a, bias, flag,
                      Population(np.int64(du), np.int64(dv), np.int64(theta), np.int8(mode)),
                      Formats(np.int64(12), np.int64(u_bits), np.int64(v_bits),
                              np.int64(in_shift), np.int64(narrow)))
        out.append((u, v, a, flag))
    for x32, x64 in zip(*out):
        np.testing.assert_array_equal(x32, x64)


def test_networks_outside_the_32_bit_neuron_update_use_64_bit_lanes() -> None:
    """narrow_ok holds for Loihi's formats and fails for wider registers, another decay
    width, a current register too narrow for the voltage, or large biases; such networks
    still equal the reference model."""
    from emulator.kernels import narrow_ok
    from emulator.tables import build_tables
    from neurochip.core.hw import HardwareSpec

    def spec_with(**formats: int) -> HardwareSpec:
        d = neurochip.load_hw("loihi_like").to_dict()
        d["name"] = "variant"
        d["formats"].update(formats)
        return HardwareSpec.from_dict(d)

    net = random_network(5, max_size=20)
    assert narrow_ok(build_tables(neurochip.compile(net, "loihi_like")))
    for formats in ({"u_bits": 31}, {"v_bits": 32}, {"decay_bits": 13},
                    {"u_bits": 16, "v_bits": 20}):  # a once-wrapped current + v overflows
        img = neurochip.compile(net, spec_with(**formats))
        assert not narrow_ok(build_tables(img)), formats
        x = random_inputs(5, 40, 12, 0.5)
        probes = [f"{p.name}.{v}" for p in img.lif_populations for v in "uv"]
        assert_same(neurochip.Emulator(img).run({"in": x}, probes=probes),
                    neurochip.Emulator(img, backend="reference").run({"in": x}, probes=probes))
    tb = build_tables(neurochip.compile(net, "loihi_like"))
    tb.bias[0] = (1 << 24) - (1 << 23) + 1  # 2^24 > v_max + |bias| no longer holds
    assert not narrow_ok(tb)

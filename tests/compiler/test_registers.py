"""compiler.registers: one scale per population, chip-representable registers, dequantization."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurochip
from compiler.registers import (
    HEADROOM,
    PopulationRegisters,
    ProjectionStats,
    decay_registers,
    dequantize_population,
    dequantize_weights,
    effective_decays,
    fake_quantize_population,
    quantize_bias,
    quantize_population,
    quantize_weights,
    state_bound,
    weight_exponent,
    weight_fill,
    weight_grid,
)
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import QuantizationError
from neurochip.core.network import Network

HW = neurochip.load_hw("loihi_like")
F = HW.formats
REG_MAX = (1 << 23) - 1


def quant(**kw):
    args = dict(alpha=0.9, beta=0.8, threshold=1.0, bias=0.0, weights=[], hw=HW)
    args.update(kw)
    return quantize_population(**args)


def assert_chip_accepts(regs: PopulationRegisters, shapes, spiking=True, reset="subtract",
                        weight_bits=None):
    """The registers pass the register-level builder's own range and representability checks."""
    net = Network(HW)
    n = regs.bias_mant.size
    for c, w in enumerate(regs.weights):
        net.add_input(f"in{c}", w.shape[1])
    net.add_lif("p", n, du=regs.du, dv=regs.dv, vth=regs.vth, bias_mant=regs.bias_mant,
                bias_exp=regs.bias_exp, reset=reset, spiking=spiking)
    for c, (w, e, mode) in enumerate(zip(regs.weights, regs.weight_exp, regs.sign_mode)):
        net.connect(f"in{c}", "p", weights=w, weight_exp=e, sign_mode=mode,
                    num_weight_bits=weight_bits)
    net.check()


def test_dataclass_fields_are_the_published_api() -> None:
    names = [f for f in PopulationRegisters.__dataclass_fields__]
    assert names == ["scale", "du", "dv", "vth", "bias_mant", "bias_exp", "weights",
                     "weight_exp", "sign_mode"]


@pytest.mark.parametrize(("alpha", "du"), [(1.0, -1), (0.0, 4095), (0.5, 2047),
                                             (4095 / 4096, 0), (0.75, 1023)])
def test_current_decay_register(alpha: float, du: int) -> None:
    assert decay_registers(alpha, 0.5, HW)[0] == du
    assert effective_decays(du, 0, HW)[0] == pytest.approx(alpha, abs=1 / 8192)


@pytest.mark.parametrize(("beta", "dv"), [(1.0, 0), (0.0, 4096), (0.5, 2048), (0.9, 410)])
def test_voltage_decay_register(beta: float, dv: int) -> None:
    assert decay_registers(0.5, beta, HW)[1] == dv
    assert abs(effective_decays(0, dv, HW)[1] - beta) <= 1 / 8192


def test_decays_rounded_to_nearest_12_bit_value() -> None:
    for a in np.linspace(0, 1, 97):
        du, dv = decay_registers(float(a), float(a), HW)
        ea, eb = effective_decays(du, dv, HW)
        assert abs(ea - a) <= 0.5 / 4096 + 1e-12
        assert abs(eb - a) <= 0.5 / 4096 + 1e-12


def test_threshold_realised_exactly_and_registers_in_range() -> None:
    rng = np.random.default_rng(0)
    W = [rng.normal(0, 0.3, (12, 7)), np.abs(rng.normal(0, 0.1, (12, 12)))]
    regs = quant(threshold=0.7, bias=rng.normal(0, 0.05, 12), weights=W)
    assert regs.vth * 64 == pytest.approx(regs.scale * 0.7, rel=1e-12)
    assert 1 <= regs.vth <= F.vth_range[1]
    eff = dequantize_population(regs, HW)
    assert eff.threshold == pytest.approx(0.7, rel=1e-12)
    assert_chip_accepts(regs, [w.shape for w in W])


def test_each_projection_gets_its_own_exponent_and_fills_the_range() -> None:
    rng = np.random.default_rng(1)
    big = rng.normal(0, 1.0, (10, 6))
    small = rng.normal(0, 0.004, (10, 6))
    regs = quant(weights=[big, small], state_max=20.0)
    assert regs.weight_exp[0] - regs.weight_exp[1] >= 6
    for w, mode in zip(regs.weights, regs.sign_mode):
        lo, hi, _ = weight_grid(mode, 8, HW)
        assert np.abs(w).max() > 0.5 * max(hi, -lo)  # at least half of the grid used
    eff = dequantize_population(regs, HW)
    for W, Wq in zip([big, small], eff.weights):
        assert np.linalg.norm(Wq - W) / np.linalg.norm(W) < 0.01


@pytest.mark.parametrize("weight_bits", [4, 6, 8])
@pytest.mark.parametrize("sign", ["mixed", "excitatory", "inhibitory"])
def test_low_precision_weights_stay_on_a_grid_lava_keeps(weight_bits: int, sign: str) -> None:
    rng = np.random.default_rng(weight_bits)
    W = rng.normal(0, 0.5, (9, 11))
    if sign == "excitatory":
        W = np.abs(W)
    elif sign == "inhibitory":
        W = -np.abs(W)
    regs = quant(weights=[W], weight_bits=weight_bits)
    (w,) = regs.weights
    assert regs.sign_mode == (sign,)
    np.testing.assert_array_equal(fx.effective_weights(w, sign, weight_bits, 8), w)
    lo, hi, step = weight_grid(sign, weight_bits, HW)
    assert step == 1 << fx.weight_lsb_shift(sign, weight_bits, 8)
    assert np.all(w % step == 0) and w.min() >= lo and w.max() <= hi
    levels = np.unique(w).size
    assert levels <= (1 << weight_bits) + 1
    assert_chip_accepts(regs, [W.shape], weight_bits=weight_bits)
    (Wd,) = dequantize_population(regs, HW).weights
    float_step = dequantize_weights(np.array([step]), regs.scale, regs.weight_exp[0], HW)[0]
    assert np.abs(Wd - W).max() <= float_step / 2 * (1 + 1e-9)


def test_excitatory_weights_use_the_odd_values_too() -> None:
    regs = quant(weights=[np.linspace(0.01, 1.0, 40).reshape(4, 10)])
    assert regs.sign_mode == ("excitatory",)
    assert np.any(regs.weights[0] % 2 == 1)
    assert regs.weights[0].max() == 255


def test_state_max_bounds_the_scale() -> None:
    W = [np.full((3, 4), 0.5)]
    regs = quant(weights=W, state_max=1000.0)
    assert regs.scale * 1000.0 <= HEADROOM * REG_MAX
    loose = quant(weights=W, state_max=2.0)
    assert loose.scale > regs.scale


def test_conservative_bound_when_no_calibration() -> None:
    W = np.full((2, 50), 0.4)
    stats = [ProjectionStats.of(W)]
    bound = state_bound(alpha=0.5, beta=0.9, threshold=1.0, bias=np.zeros(2),
                        projections=stats, spiking=True)
    # every input spiking every step: I <= 50 * 0.4 / (1 - 0.5) = 40; U <= 1 + 40
    assert bound == pytest.approx(41.0, rel=1e-6)
    readout = state_bound(alpha=0.0, beta=0.5, threshold=0.0, bias=np.zeros(2),
                          projections=stats, spiking=False)
    assert readout == pytest.approx(40.0, rel=1e-6)
    regs = quant(alpha=0.5, weights=[W])
    assert regs.scale * bound <= HEADROOM * REG_MAX * (1 + 1e-12)


def test_conservative_bound_prevents_current_wrap_on_the_emulator() -> None:
    """Worst case: every input spikes at every step. u must not wrap, v must track U."""
    n_in = 64
    W = np.full((3, n_in), 0.9)
    regs = quant(alpha=0.95, beta=0.99, threshold=100.0, weights=[W])
    net = Network(HW)
    net.add_input("in", n_in)
    net.add_lif("p", 3, du=regs.du, dv=regs.dv, vth=regs.vth, bias_mant=regs.bias_mant,
                bias_exp=regs.bias_exp, reset="subtract")
    net.connect("in", "p", weights=regs.weights[0], weight_exp=regs.weight_exp[0],
                sign_mode=regs.sign_mode[0])
    img = neurochip.compile(net, HW)
    r = neurochip.Emulator(img).run({"in": np.ones((300, n_in), bool)}, probes=["p.u"])
    u = r.probes["p.u"].astype(np.int64)
    assert np.all(np.diff(u[:, 0]) >= 0)  # monotone build-up, never wraps negative
    i_float = n_in * 0.9 * (1 - 0.95 ** np.arange(1, 300)) / (1 - 0.95)
    np.testing.assert_allclose(u[1:, 0] / regs.scale, i_float, rtol=0.02)


def test_bias_mantissa_and_exponent() -> None:
    b = np.array([0.0, 1e-3, -0.5, 2.0, -2.0])
    regs = quant(bias=b, threshold=4.0)
    assert np.all((regs.bias_mant >= -4096) & (regs.bias_mant <= 4095))
    assert np.all((regs.bias_exp >= 0) & (regs.bias_exp <= 7))
    eff = dequantize_population(regs, HW).bias
    step = 2.0 ** regs.bias_exp / regs.scale
    assert np.all(np.abs(eff - b) <= step / 2 + 1e-15)
    mant, exp = quantize_bias([5e5], 1.0, HW)
    assert exp[0] == 7 and mant[0] == round(5e5 / 128)
    with pytest.raises(QuantizationError) as ei:
        quantize_bias([1e6], 1.0, HW)
    assert ei.value.field == "bias"


def test_readout_has_no_threshold_constraint() -> None:
    W = [np.full((2, 3), 1e4)]  # would force vth to 0 for a spiking population
    regs = quant(weights=W, threshold=1.0, spiking=False)
    assert regs.vth == 0
    with pytest.raises(QuantizationError) as ei:
        quant(weights=W, threshold=1.0)
    assert ei.value.field == "vth" and "weights" in str(ei.value)


@pytest.mark.parametrize(("kw", "fld"), [
    (dict(alpha=1.5), "alpha"),
    (dict(beta=-0.1), "beta"),
    (dict(alpha=float("nan")), "alpha"),
    (dict(threshold=-1.0), "threshold"),
    (dict(reset="hold"), "reset"),
    (dict(weight_bits=9), "weight_bits"),
    (dict(weight_bits=0), "weight_bits"),
    (dict(weight_bits=2.5), "weight_bits"),
    (dict(state_max=-1.0), "state_max"),
    (dict(weights=[np.zeros(3)]), "weights[0]"),
    (dict(weights=[np.array([[np.inf]])]), "weights[0]"),
    (dict(weights=[np.zeros((2, 3)), np.zeros((3, 3))]), "weights"),
    (dict(weights=[np.zeros((2, 3))], bias=np.zeros(5)), "bias"),
    (dict(bias=np.zeros((2, 2))), "bias"),
    (dict(bias=[np.nan]), "bias"),
])
def test_invalid_inputs_name_the_field(kw, fld) -> None:
    with pytest.raises(QuantizationError) as ei:
        quant(name="hid", **kw)
    assert ei.value.field == fld
    assert "population 'hid'" in str(ei.value)


def test_bias_too_large_for_the_threshold() -> None:
    with pytest.raises(QuantizationError) as ei:
        quant(bias=[1e6], threshold=1.0, name="b")
    assert ei.value.field == "vth" and "'bias'" in str(ei.value)


def test_weights_that_all_round_to_zero_are_an_error() -> None:
    with pytest.raises(QuantizationError) as ei:
        quant(weights=[np.full((2, 2), 1e-9)], threshold=1.0)
    assert ei.value.field == "weights[0]"


def test_zero_projection_and_empty_population() -> None:
    regs = quant(weights=[np.zeros((4, 2))], bias=0.0)
    assert regs.sign_mode == ("excitatory",) and not regs.weights[0].any()
    lone = quant(weights=[], bias=np.zeros(3), threshold=0.0)
    assert lone.vth == 0 and lone.bias_mant.shape == (3,)


def test_sparse_input_is_accepted() -> None:
    import scipy.sparse as sp

    W = sp.random(20, 30, density=0.1, random_state=3, format="csr")
    regs = quant(weights=[W])
    assert regs.weights[0].shape == (20, 30)
    assert np.count_nonzero(regs.weights[0]) <= W.nnz


def test_fake_quantize_equals_quantize_then_dequantize() -> None:
    rng = np.random.default_rng(5)
    kw = dict(alpha=0.7, beta=0.95, threshold=1.3, bias=rng.normal(0, 0.1, 6),
              weights=[rng.normal(0, 0.4, (6, 5))], hw=HW, weight_bits=6)
    a = fake_quantize_population(**kw)
    b = dequantize_population(quantize_population(**kw), HW)
    assert a.alpha == b.alpha and a.beta == b.beta and a.threshold == b.threshold
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    np.testing.assert_array_equal(a.bias, b.bias)


def test_small_pieces_are_consistent() -> None:
    W = np.array([[0.3, -0.1], [0.05, 0.2]])
    st_ = ProjectionStats.of(W)
    assert st_.sign_mode == "mixed" and st_.max_pos == 0.3 and st_.max_neg == 0.1
    e = weight_exponent(st_.max_pos, st_.max_neg, 5000.0, "mixed", 8, HW)
    q = quantize_weights(W, 5000.0, e, "mixed", 8, HW)
    np.testing.assert_array_equal(fx.effective_weights(q, "mixed", 8, 8), q)
    assert 0.5 < weight_fill(5000.0, st_, 8, HW) <= 1.0
    assert np.abs(dequantize_weights(q, 5000.0, e, HW) - W).max() <= 2 * 2.0 ** (e + 6) / 5000


# --------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------

matrices = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(0, 10_000),
                     st.floats(-4, 2), st.sampled_from(["mixed", "excitatory", "inhibitory"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mats=st.lists(matrices, min_size=1, max_size=3), weight_bits=st.integers(2, 8),
       alpha=st.floats(0, 1), beta=st.floats(0, 1), threshold=st.floats(0.05, 20),
       spiking=st.booleans(), bias_scale=st.floats(-6, 0))
def test_quantized_weights_always_chip_representable(mats, weight_bits, alpha, beta,
                                                     threshold, spiking, bias_scale) -> None:
    n_post = mats[0][0]
    Ws = []
    for _, n_pre, seed, log_scale, sign in mats:
        rng = np.random.default_rng(seed)
        W = rng.normal(0, 10.0 ** log_scale, (n_post, n_pre))
        if sign == "excitatory":
            W = np.abs(W)
        elif sign == "inhibitory":
            W = -np.abs(W)
        Ws.append(W)
    bias = np.random.default_rng(mats[0][2]).normal(0, 10.0 ** bias_scale, n_post)
    try:
        regs = quantize_population(alpha=alpha, beta=beta, threshold=threshold, bias=bias,
                                   weights=Ws, hw=HW, weight_bits=weight_bits,
                                   spiking=spiking)
    except QuantizationError as exc:
        # Only an honest "cannot be represented": a projection too small next to the others.
        assert exc.field is not None and exc.field.startswith(("weights", "vth"))
        return
    eff = dequantize_population(regs, HW)
    for W, w, e, mode, Wd in zip(Ws, regs.weights, regs.weight_exp, regs.sign_mode,
                                 eff.weights):
        np.testing.assert_array_equal(fx.effective_weights(w, mode, weight_bits, 8), w)
        assert F.weight_exp_min <= e <= F.weight_exp_max
        _, _, step = weight_grid(mode, weight_bits, HW)
        half = step * 2.0 ** (e + 6) / regs.scale / 2
        assert np.all(np.abs(Wd - W) <= half * (1 + 1e-9) + 1e-300)
    assert F.du_range[0] <= regs.du <= F.du_range[1]
    assert F.dv_range[0] <= regs.dv <= F.dv_range[1]
    assert 0 <= regs.vth <= F.vth_range[1]
    assert np.all((regs.bias_mant >= -4096) & (regs.bias_mant <= 4095))
    assert np.all((regs.bias_exp >= 0) & (regs.bias_exp <= 7))
    if spiking:
        assert regs.vth >= 1
        assert math.isclose(regs.vth * 64, regs.scale * threshold, rel_tol=1e-9)
    bound = state_bound(alpha=alpha, beta=beta, threshold=threshold if spiking else 0.0,
                        bias=bias, projections=[ProjectionStats.of(W) for W in Ws],
                        spiking=spiking)
    assert regs.scale * bound <= HEADROOM * REG_MAX * (1 + 1e-9)


def test_one_bit_mixed_weights_name_what_cannot_be_represented() -> None:
    hw = neurochip.load_hw("loihi_like")
    w = np.array([[0.5, -0.25], [0.1, 0.2]])
    with pytest.raises(QuantizationError, match=r"1-bit mixed weights .* positive weights") as ei:
        quantize_population(alpha=0.5, beta=0.9, threshold=1.0, bias=0.0, weights=[w], hw=hw,
                            weight_bits=1, name="hid")
    assert ei.value.field == "weights[0]" and ei.value.where == "population 'hid'"
    # all-negative weights are representable with one bit (the inhibitory grid)
    regs = quantize_population(alpha=0.5, beta=0.9, threshold=1.0, bias=0.0,
                               weights=[-np.abs(w)], hw=hw, weight_bits=1, name="hid")
    assert np.all(regs.weights[0] <= 0)

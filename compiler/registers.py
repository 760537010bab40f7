"""Float neuron populations -> chip registers, and back (docs/conventions.md section 2).

The arithmetic of the quantize pass (:mod:`compiler.passes.quantize`, which applies it to
every population of an IR graph), usable alone (the trainer's fake quantization uses it).

A population is quantized with **one scale** ``lambda`` (chip voltage units per float unit):
``u ~ lambda * I`` and ``v ~ lambda * U``. With the chip's number formats (``hw.formats``;
widths below are those of ``loihi_like``)::

    alpha = (4095 - du) / 4096            du in [-1, 4095]   (du = -1: alpha = 1)
    beta  = (4096 - dv) / 4096            dv in [0, 4096]
    vth * 2**6                = lambda * theta        vth in [0, 2**17 - 1]
    w * 2**weight_exp * 2**6  = lambda * W_c          per projection c, w on the chip's grid
    bias_mant * 2**bias_exp   = lambda * b            mant in [-4096, 4095], exp in [0, 7]

How lambda is chosen (every constraint is an *upper* bound; precision of the threshold,
the bias and the integer state grows with lambda, the weights' relative precision does
not depend on it because each projection picks its own exponent):

1. ``vth <= 2**17 - 1``                    (spiking populations only);
2. every ``|bias_mant| * 2**bias_exp`` fits with ``bias_exp <= 7``;
3. every projection's largest weight fits the weight grid with ``weight_exp <= 7``;
4. the current and voltage registers (24 bits) cannot overflow:
   ``lambda * state_bound <= HEADROOM * (2**23 - 1)``, where ``state_bound`` is ``state_max``
   when the caller gives one (calibration data), otherwise the conservative bound of
   :func:`state_bound` (every presynaptic neuron spiking at every step);
5. for a spiking population lambda is then lowered to ``64 * vth / theta`` with
   ``vth = floor(lambda * theta / 64)``, so the threshold is realised *exactly*.

Decays are rounded to the nearest 12-bit register value. Weights are rounded to the nearest
value the chip keeps unchanged (``neurochip.core.fixedpoint.effective_weights``): mixed-sign
projections use even values in [-256, 254] (multiples of ``2**(9 - weight_bits)``),
excitatory ones [0, 255] and inhibitory ones [-255, 0] (multiples of ``2**(8 - weight_bits)``).

When no valid mapping exists a :class:`~neurochip.core.errors.QuantizationError` names the
population, the field and the limit that failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from compiler.ir import NeuronRegisters
from compiler.ir.fields import Decay
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import QuantizationError
from neurochip.core.hw import HardwareSpec, NumberFormats

__all__ = [
    "HEADROOM",
    "HORIZON_STEPS",
    "EffectivePopulation",
    "PopulationRegisters",
    "ProjectionStats",
    "ScaleChoice",
    "check_weight_bits",
    "choose_scale",
    "decay_registers",
    "dequantize_population",
    "dequantize_weights",
    "effective_bias",
    "effective_decays",
    "effective_threshold",
    "fake_quantize_population",
    "map_population",
    "quantize_bias",
    "quantize_population",
    "quantize_weights",
    "state_bound",
    "weight_exponent",
    "weight_fill",
    "weight_grid",
]

#: Fraction of the signed 24-bit range the scaled state may use (1/16 kept as margin for
#: rounding of weights and decays).
HEADROOM = 15 / 16
#: Steps over which the conservative state bound sums a geometric series (only matters for
#: decays close to 1, where the infinite sum is huge or unbounded).
HORIZON_STEPS = 256


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PopulationRegisters(NeuronRegisters):
    """Chip registers of one population and its incoming projections.

    The population's own registers are those of :class:`~compiler.ir.NeuronRegisters`
    (``scale`` is lambda: chip v units per float unit, v ~ lambda U, u ~ lambda I; du, dv,
    vth, bias_mant, bias_exp); ``weights[c]`` (post, pre) holds the integer weights of
    incoming projection c, which the chip keeps unchanged, with ``weight_exp[c]`` and
    ``sign_mode[c]`` ("mixed" / "excitatory" / "inhibitory").
    """

    weights: tuple[NDArray[np.int64], ...]
    weight_exp: tuple[int, ...]
    sign_mode: tuple[str, ...]

    def neuron_registers(self) -> NeuronRegisters:
        """The population's own registers (what an IR population carries)."""
        return NeuronRegisters(self.scale, self.du, self.dv, self.vth, self.bias_mant,
                               self.bias_exp)


@dataclass(frozen=True)
class EffectivePopulation:
    """The float parameters a chip population realises (registers divided by lambda).

    ``weights[c]`` is ``w * 2**weight_exp * 2**6 / lambda`` per synapse. (A projection with
    a negative exponent floors its *summed* input on the chip; that arithmetic effect is
    not a property of single weights and is not included.)
    """

    alpha: float
    beta: float
    threshold: float
    bias: NDArray[np.float64]
    weights: tuple[NDArray[np.float64], ...]


@dataclass(frozen=True)
class ProjectionStats:
    """What the scale choice needs to know about one incoming projection.

    ``max_pos`` / ``max_neg``: largest positive weight and largest magnitude of a negative
    weight (0 when there are none); ``row_abs_sum``: per post neuron, the sum of |W| over
    its synapses (the input when every presynaptic neuron spikes).
    """

    max_pos: float
    max_neg: float
    row_abs_sum: NDArray[np.float64]

    @property
    def sign_mode(self) -> str:
        if self.max_neg == 0.0:
            return fx.SIGN_EXCITATORY
        if self.max_pos == 0.0:
            return fx.SIGN_INHIBITORY
        return fx.SIGN_MIXED

    @classmethod
    def of(cls, W: Any) -> ProjectionStats:
        """Statistics of a (post, pre) matrix, dense array or scipy sparse."""
        if sp.issparse(W):
            m = sp.csr_matrix(W)
            vals = np.asarray(m.data, np.float64)
            rows = np.asarray(abs(m).sum(axis=1), np.float64).reshape(-1)
        else:
            a = np.asarray(W, np.float64)
            vals = a.reshape(-1)
            rows = np.abs(a).sum(axis=1) if a.ndim == 2 else np.zeros(0)
        return cls.from_values(vals, rows)

    @classmethod
    def from_values(cls, values: ArrayLike, row_abs_sum: ArrayLike) -> ProjectionStats:
        v = np.asarray(values, np.float64)
        mp = float(v.max()) if v.size else 0.0
        mn = float(-v.min()) if v.size else 0.0
        return cls(max(mp, 0.0), max(mn, 0.0), np.asarray(row_abs_sum, np.float64))


@dataclass(frozen=True)
class ScaleChoice:
    """The scale of a population and which constraint bounded it."""

    scale: float
    vth: int
    bound_by: str
    state_bound: float
    limits: dict[str, float]


# --------------------------------------------------------------------------------------
# Small pieces (each usable alone, e.g. by the trainer's fake quantization)
# --------------------------------------------------------------------------------------


def _fmt(hw: HardwareSpec | NumberFormats) -> NumberFormats:
    return hw.formats if isinstance(hw, HardwareSpec) else hw


def _err(where: str, fld: str, msg: str, value: Any = None, limit: Any = None) -> QuantizationError:
    return QuantizationError(msg, where=where, field=fld, value=value, limit=limit)


def decay_registers(alpha: Decay, beta: Decay, hw: HardwareSpec | NumberFormats, *,
                    where: str = "population") -> tuple[Any, Any]:
    """(du, dv) nearest to alpha = (4095 - du)/4096 and beta = (4096 - dv)/4096.

    Floats give ints; per-neuron arrays give (n,) int64 arrays (a float beside an array is
    broadcast to it only when the other is an array).
    """
    f = _fmt(hw)
    unity = 1 << f.decay_bits
    for name, x in (("alpha", alpha), ("beta", beta)):
        a = np.asarray(x, np.float64)
        if not (np.all(np.isfinite(a)) and np.all(a >= 0.0) and np.all(a <= 1.0)):
            raise _err(where, name, f"must be in [0, 1], got {x!r}", x, (0.0, 1.0))
    if np.ndim(alpha) or np.ndim(beta):
        a = np.asarray(alpha, np.float64)
        b = np.asarray(beta, np.float64)
        # np.rint rounds half to even, as Python's round() does for the scalar case
        du_a = np.clip(np.rint((unity - 1) - unity * a), -1, unity - 1).astype(np.int64)
        dv_a = np.clip(np.rint(unity * (1.0 - b)), 0, unity).astype(np.int64)
        n = max(du_a.size, dv_a.size)
        return (np.broadcast_to(du_a, (n,)).copy() if du_a.ndim else np.full(n, du_a),
                np.broadcast_to(dv_a, (n,)).copy() if dv_a.ndim else np.full(n, dv_a))
    du = int(np.clip(round((unity - 1) - unity * float(alpha)), -1, unity - 1))
    dv = int(np.clip(round(unity * (1.0 - float(beta))), 0, unity))
    return du, dv


def effective_decays(du: Any, dv: Any, hw: HardwareSpec | NumberFormats) -> tuple[Any, Any]:
    """(alpha, beta) that the registers (du, dv) realise (arrays for per-neuron registers)."""
    unity = 1 << _fmt(hw).decay_bits
    if np.ndim(du) or np.ndim(dv):
        return ((unity - 1 - np.asarray(du, np.float64)) / unity,
                (unity - np.asarray(dv, np.float64)) / unity)
    return (unity - 1 - du) / unity, (unity - dv) / unity


def weight_grid(sign_mode: str, weight_bits: int, hw: HardwareSpec | NumberFormats
                ) -> tuple[int, int, int]:
    """(lowest, highest, step) of the integer weights the chip keeps unchanged."""
    f = _fmt(hw)
    lo, hi = fx.weight_range(sign_mode, f.weight_bits)
    step = 1 << fx.weight_lsb_shift(sign_mode, weight_bits, f.weight_bits)
    return -((-lo) // step) * step, (hi // step) * step, step


def weight_exponent(max_pos: float, max_neg: float, scale: float, sign_mode: str,
                    weight_bits: int, hw: HardwareSpec | NumberFormats) -> int:
    """Smallest exponent at which ``scale * W`` fits the weight grid (full range used)."""
    f = _fmt(hw)
    lo, hi, _ = weight_grid(sign_mode, weight_bits, f)
    unit = float(1 << f.input_shift)
    need = 0.0
    if max_pos > 0:
        need = max(need, scale * max_pos / (unit * hi)) if hi > 0 else math.inf
    if max_neg > 0:
        need = max(need, scale * max_neg / (unit * -lo)) if lo < 0 else math.inf
    if need == 0.0:
        return 0
    e = math.ceil(math.log2(need)) if math.isfinite(need) else f.weight_exp_max + 1
    e = max(e, f.weight_exp_min)
    # Guard against log2 rounding: step up while the largest value does not fit.
    while e <= f.weight_exp_max and (
            scale * max_pos / (unit * 2.0 ** e) > hi + 1e-9 * hi
            or scale * max_neg / (unit * 2.0 ** e) > -lo + 1e-9 * -lo):
        e += 1
    return e


def quantize_weights(W: ArrayLike, scale: float, weight_exp: int, sign_mode: str,
                     weight_bits: int, hw: HardwareSpec | NumberFormats) -> NDArray[np.int64]:
    """Integer weights (same shape) nearest to ``scale * W / 2**(weight_exp + 6)`` on the grid."""
    f = _fmt(hw)
    lo, hi, step = weight_grid(sign_mode, weight_bits, f)
    x = np.asarray(W, np.float64) * (scale / 2.0 ** (weight_exp + f.input_shift))
    q = np.rint(x / step) * step
    return np.clip(q, lo, hi).astype(np.int64)


def dequantize_weights(w: ArrayLike, scale: float, weight_exp: int,
                       hw: HardwareSpec | NumberFormats) -> NDArray[np.float64]:
    """Float weights an integer weight matrix realises: ``w * 2**(weight_exp + 6) / scale``."""
    f = _fmt(hw)
    return np.asarray(w, np.float64) * (2.0 ** (weight_exp + f.input_shift) / scale)


def quantize_bias(b: ArrayLike, scale: float, hw: HardwareSpec | NumberFormats, *,
                  where: str = "population") -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per neuron (bias_mant, bias_exp) nearest to ``scale * b``, smallest exponent that fits."""
    f = _fmt(hw)
    mlo, mhi = f.bias_mant_range
    elo, ehi = f.bias_exp_range
    x = np.asarray(b, np.float64).reshape(-1) * scale
    mant = np.zeros(x.shape, np.int64)
    exp = np.zeros(x.shape, np.int64)
    pending = np.ones(x.shape, bool)
    for e in range(elo, ehi + 1):
        m = np.rint(x / 2.0 ** e)
        take = pending & (m >= mlo) & (m <= mhi)
        mant[take] = m[take].astype(np.int64)
        exp[take] = e
        pending &= ~take
        if not pending.any():
            break
    if pending.any():
        i = int(np.flatnonzero(pending)[0])
        raise _err(where, "bias", f"bias[{i}] = {float(np.asarray(b).reshape(-1)[i])!r} at scale "
                   f"{scale:.6g} needs {x[i]:.6g} chip units; the largest is {mhi} * 2**{ehi}",
                   float(x[i]), (mlo * 2 ** ehi, mhi * 2 ** ehi))
    return mant, exp


def effective_bias(bias_mant: ArrayLike, bias_exp: ArrayLike, scale: float) -> NDArray[np.float64]:
    """Float bias the registers realise: ``bias_mant * 2**bias_exp / scale``."""
    return fx.bias_value(bias_mant, bias_exp).astype(np.float64) / scale


def effective_threshold(vth: int, scale: float, hw: HardwareSpec | NumberFormats) -> float:
    """Float threshold the register realises: ``vth * 2**6 / scale``."""
    return vth * float(1 << _fmt(hw).vth_shift) / scale


def _geometric(x: Decay, n: int = HORIZON_STEPS) -> float:
    """1 + x + ... + x**(n-1): the gain of a leaky accumulator over n steps (of the
    slowest-decaying neuron for per-neuron retentions: the bound holds for every neuron)."""
    x = float(np.max(x))
    if x >= 1.0:
        return float(n)
    return (1.0 - x ** n) / (1.0 - x)


def state_bound(*, alpha: Decay, beta: Decay, threshold: float, bias: ArrayLike,
                projections: Sequence[ProjectionStats], spiking: bool) -> float:
    """Conservative bound on |I| and |U| (float units) used when no ``state_max`` is given.

    With A = max over neurons of the sum over incoming projections of sum_j |W_ij| (every
    presynaptic neuron spiking at every step) and G(x) = 1 + x + ... + x**255:

    * |I| <= A * G(alpha);
    * spiking: U <= theta + A * G(alpha) + max(b, 0) (the largest value reached before a
      reset). Large negative U is not bounded: the voltage register saturates there, it
      does not wrap;
    * non-spiking readouts: |U| <= (A * G(alpha) + max|b|) * G(beta).
    """
    n = 0
    for p in projections:
        n = max(n, p.row_abs_sum.size)
    b = np.asarray(bias, np.float64).reshape(-1)
    n = max(n, b.size, 1)
    total = np.zeros(n)
    for p in projections:
        if p.row_abs_sum.size:
            total[: p.row_abs_sum.size] += p.row_abs_sum
    A = float(total.max()) if total.size else 0.0
    i_max = A * _geometric(alpha)
    b_pos = float(max(b.max(), 0.0)) if b.size else 0.0
    b_abs = float(np.abs(b).max()) if b.size else 0.0
    u_max = (threshold + i_max + b_pos) if spiking else (i_max + b_abs) * _geometric(beta)
    return max(i_max, u_max)


def choose_scale(*, threshold: float, bias: ArrayLike, projections: Sequence[ProjectionStats],
                 hw: HardwareSpec | NumberFormats, weight_bits: int, spiking: bool,
                 state: float, where: str = "population") -> ScaleChoice:
    """The largest lambda that satisfies every constraint (module docstring, steps 1-5)."""
    f = _fmt(hw)
    b = np.asarray(bias, np.float64).reshape(-1)
    limits: dict[str, float] = {}
    vth_max = f.vth_range[1]
    unit_th = float(1 << f.vth_shift)
    if spiking and threshold > 0:
        limits["vth"] = unit_th * vth_max / threshold
    b_pos = float(b.max()) if b.size else 0.0
    b_neg = float(-b.min()) if b.size else 0.0
    mlo, mhi = f.bias_mant_range
    ehi = f.bias_exp_range[1]
    if b_pos > 0:
        limits["bias"] = mhi * 2.0 ** ehi / b_pos
    if b_neg > 0:
        limits["bias"] = min(limits.get("bias", math.inf), -mlo * 2.0 ** ehi / b_neg)
    unit_w = float(1 << f.input_shift)
    for c, p in enumerate(projections):
        lo, hi, _ = weight_grid(p.sign_mode, weight_bits, f)
        if (p.max_pos > 0 and hi <= 0) or (p.max_neg > 0 and lo >= 0):
            raise _err(where, f"weights[{c}]",
                       f"{weight_bits}-bit {p.sign_mode} weights can only take values in "
                       f"[{lo}, {hi}], so this projection's "
                       f"{'positive' if p.max_pos > 0 and hi <= 0 else 'negative'} weights "
                       f"cannot be represented; use more weight bits", weight_bits, 2)
        lim = math.inf
        if p.max_pos > 0:
            lim = min(lim, unit_w * 2.0 ** f.weight_exp_max * hi / p.max_pos)
        if p.max_neg > 0:
            lim = min(lim, unit_w * 2.0 ** f.weight_exp_max * -lo / p.max_neg)
        if math.isfinite(lim):
            limits[f"weights[{c}]"] = lim
    reg_max = float((1 << (min(f.u_bits, f.v_bits) - 1)) - 1)
    if state > 0:
        limits["state"] = HEADROOM * reg_max / state
    # Nothing binds (no weights, no bias, no threshold): one float unit = the full range.
    limits.setdefault("state", HEADROOM * reg_max)
    bound_by = min(limits, key=lambda k: limits[k])
    lam_max = limits[bound_by]
    if not (math.isfinite(lam_max) and lam_max > 0):
        raise _err(where, "scale", f"no positive scale satisfies the constraints {limits}")
    vth = 0
    if spiking and threshold > 0 and math.floor(lam_max * threshold / unit_th) < 1:
        raise _err(where, "vth",
                   f"threshold {threshold:.6g} would quantize to 0: it needs a scale of at "
                   f"least {unit_th / threshold:.6g} chip units per float unit, but "
                   f"'{bound_by}' limits the scale to {lam_max:.6g}. " + _advice(bound_by),
                   lam_max * threshold / unit_th, 1)
    lam = _best_scale(lam_max, projections, weight_bits, f,
                      min_scale=unit_th / threshold if spiking and threshold > 0 else 0.0)
    if spiking and threshold > 0:
        vth = min(math.floor(lam * threshold / unit_th), vth_max)
        lam = unit_th * vth / threshold  # exact threshold; lambda only shrinks
    return ScaleChoice(float(lam), vth, bound_by, float(state), limits)


def weight_fill(scale: float, p: ProjectionStats, weight_bits: int,
                hw: HardwareSpec | NumberFormats) -> float:
    """Fraction of the weight grid's range the largest quantized weight of ``p`` uses."""
    f = _fmt(hw)
    mode = p.sign_mode
    lo, hi, _ = weight_grid(mode, weight_bits, f)
    e = weight_exponent(p.max_pos, p.max_neg, scale, mode, weight_bits, f)
    unit = float(1 << f.input_shift) * 2.0 ** e
    fill = 0.0
    if p.max_pos > 0 and hi > 0:
        fill = max(fill, scale * p.max_pos / unit / hi)
    if p.max_neg > 0 and lo < 0:
        fill = max(fill, scale * p.max_neg / unit / -lo)
    return fill


def _best_scale(lam_max: float, projections: Sequence[ProjectionStats], weight_bits: int,
                f: NumberFormats, min_scale: float) -> float:
    """Within [lam_max/2, lam_max], the scale that best fills the weight grids.

    Weight exponents are powers of two, so at ``lam_max`` a projection's largest weight may
    use as little as half its range. Candidates are ``lam_max`` and the scales at which a
    projection's largest weight exactly reaches its grid's end; the winner maximises
    ``sum_c log2(fill_c) + log2(scale / lam_max)`` (relative weight precision of every
    projection plus the relative precision of the state).
    """
    active = [p for p in projections if p.max_pos > 0 or p.max_neg > 0]
    if not active:
        return lam_max
    unit = float(1 << f.input_shift)
    cands = [lam_max]
    for p in active:
        lo, hi, _ = weight_grid(p.sign_mode, weight_bits, f)
        for m, lim in ((p.max_pos, hi), (p.max_neg, -lo)):
            if m <= 0 or lim <= 0:
                continue
            e = math.floor(math.log2(lam_max * m / (unit * lim)))
            for ee in (e, e - 1):
                if f.weight_exp_min <= ee <= f.weight_exp_max:
                    c = unit * 2.0 ** ee * lim / m
                    if lam_max / 2 <= c <= lam_max and c >= min_scale:
                        cands.append(c)

    def score(lam: float) -> float:
        return sum(math.log2(max(weight_fill(lam, p, weight_bits, f), 1e-300))
                   for p in active) + math.log2(lam / lam_max)

    return max(cands, key=score)


def _advice(bound_by: str) -> str:
    if bound_by == "state":
        return ("The state bound is too large relative to the threshold; pass calibration "
                "data (state_max) or lower the weights/fan-in.")
    if bound_by == "bias":
        return "The bias is too large relative to the threshold."
    if bound_by.startswith("weights"):
        return "A weight is too large relative to the threshold (more than 2**15 times it)."
    return ""


# --------------------------------------------------------------------------------------
# The population mapping
# --------------------------------------------------------------------------------------


def check_weight_bits(weight_bits: int | None, f: NumberFormats, where: str) -> int:
    """The weight precision to use: the chip's when None, else checked against it."""
    if weight_bits is None:
        return f.weight_bits
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, (int, np.integer)):
        raise _err(where, "weight_bits", f"must be an integer, got {weight_bits!r}")
    if not 1 <= int(weight_bits) <= f.weight_bits:
        raise _err(where, "weight_bits", f"{weight_bits} is outside [1, {f.weight_bits}] "
                   "(the chip's weight width)", weight_bits, (1, f.weight_bits))
    return int(weight_bits)


def _check_common(alpha: Decay, beta: Decay, threshold: float, reset: str, spiking: bool,
                  state_max: float | None, where: str) -> None:
    for name, x in (("alpha", alpha), ("beta", beta)):
        ok = isinstance(x, (int, float, np.floating, np.integer)) or (
            isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype.kind in "fiu")
        if not (ok and np.all(np.isfinite(x)) and np.all(np.asarray(x) >= 0.0)
                and np.all(np.asarray(x) <= 1.0)):
            raise _err(where, name, f"must be a number in [0, 1] (or one per neuron), got "
                       f"{x!r}", x, (0.0, 1.0))
    if spiking and not (math.isfinite(threshold) and threshold >= 0):
        raise _err(where, "threshold", f"must be finite and >= 0 for a spiking population "
                   f"(the chip's threshold is unsigned), got {threshold!r}", threshold, 0)
    if reset not in ("zero", "subtract"):
        raise _err(where, "reset", f"must be 'zero' or 'subtract', got {reset!r}")
    if state_max is not None and not (math.isfinite(state_max) and state_max >= 0):
        raise _err(where, "state_max", f"must be finite and >= 0, got {state_max!r}")


def quantize_population(*, alpha: float, beta: float, threshold: float, bias: ArrayLike,
                        weights: Sequence[Any], hw: HardwareSpec,
                        weight_bits: int | None = None, reset: str = "subtract",
                        spiking: bool = True, state_max: float | None = None,
                        name: str = "population") -> PopulationRegisters:
    """Registers of one float population (docs/conventions.md section 2).

    alpha, beta: float decays in [0, 1]; threshold: theta (ignored when ``spiking`` is
    False); bias: scalar or per neuron; weights: one (post, pre) float matrix per incoming
    projection (numpy arrays; scipy sparse matrices are accepted and densified);
    weight_bits: weight precision (default and maximum: the chip's); reset: "zero" or
    "subtract" (checked; the mapping is the same for both); spiking: False for a readout
    (no threshold constraint, ``vth = 0``); state_max: largest |I| or |U| expected (from
    calibration data), else a conservative bound (:func:`state_bound`). ``name`` only
    labels errors.

    Raises :class:`~neurochip.core.errors.QuantizationError` naming the field that cannot be
    represented.
    """
    where = f"population '{name}'"
    f = hw.formats
    wb = check_weight_bits(weight_bits, f, where)
    _check_common(alpha, beta, threshold, reset, spiking, state_max, where)
    mats: list[NDArray[np.float64]] = []
    for c, W in enumerate(weights):
        a = np.asarray(W.toarray() if sp.issparse(W) else W, dtype=np.float64)
        if a.ndim != 2:
            raise _err(where, f"weights[{c}]", f"must be 2-D (post, pre), got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise _err(where, f"weights[{c}]", "must be finite")
        mats.append(a)
    sizes = {m.shape[0] for m in mats}
    b = np.asarray(bias, np.float64)
    if b.ndim > 1:
        raise _err(where, "bias", f"must be a scalar or 1-D, got shape {b.shape}")
    if len(sizes) > 1:
        raise _err(where, "weights", f"projections disagree on the population size: {sizes}")
    n = sizes.pop() if sizes else (b.size if b.ndim == 1 else 1)
    if b.ndim == 0:
        b = np.full(n, float(b))
    if b.shape != (n,):
        raise _err(where, "bias", f"has shape {b.shape}, the population has {n} neurons")
    if not np.all(np.isfinite(b)):
        raise _err(where, "bias", "must be finite")
    regs, _ = map_population(alpha=float(alpha), beta=float(beta), threshold=float(threshold),
                             bias=b, values=mats, stats=[ProjectionStats.of(m) for m in mats],
                             hw=hw, weight_bits=wb, spiking=spiking, state_max=state_max,
                             where=where)
    return regs


def map_population(*, alpha: Decay, beta: Decay, threshold: float, bias: NDArray[np.float64],
                   values: Sequence[NDArray[Any]], stats: Sequence[ProjectionStats],
                   hw: HardwareSpec | NumberFormats, weight_bits: int, spiking: bool,
                   state_max: float | None, where: str) -> tuple[PopulationRegisters, ScaleChoice]:
    """The mapping itself, on already checked inputs.

    ``values[c]`` are the stored float weights of projection c in any layout (a (post, pre)
    matrix, the data of a sparse matrix, a convolution kernel): each is quantized
    elementwise; ``stats[c]`` describes the projection as a (post, pre) matrix.
    """
    f = _fmt(hw)
    du, dv = decay_registers(alpha, beta, f, where=where)
    state = (float(state_max) if state_max is not None else
             state_bound(alpha=alpha, beta=beta, threshold=threshold if spiking else 0.0,
                         bias=bias, projections=stats, spiking=spiking))
    choice = choose_scale(threshold=threshold if spiking else 0.0, bias=bias,
                          projections=stats, hw=f, weight_bits=weight_bits, spiking=spiking,
                          state=state, where=where)
    lam = choice.scale
    bm, be = quantize_bias(bias, lam, f, where=where)
    qw: list[NDArray[np.int64]] = []
    exps: list[int] = []
    modes: list[str] = []
    for c, (m, st) in enumerate(zip(values, stats)):
        mode = st.sign_mode
        e = weight_exponent(st.max_pos, st.max_neg, lam, mode, weight_bits, f)
        if e > f.weight_exp_max:  # cannot happen: the scale limit guarantees it fits
            raise _err(where, f"weight_exp[{c}]", f"needs {e} > {f.weight_exp_max}", e,
                       f.weight_exp_max)
        q = quantize_weights(m, lam, e, mode, weight_bits, f)
        if np.any(np.asarray(m) != 0) and not np.any(q != 0):
            big = max(st.max_pos, st.max_neg)
            raise _err(where, f"weights[{c}]",
                       f"every weight rounds to 0 (largest |W| = {big:.3g}, scale {lam:.6g}; "
                       f"weight_exp {e} is the smallest the chip has)", big, f.weight_exp_min)
        qw.append(q)
        exps.append(int(e))
        modes.append(mode)
    regs = PopulationRegisters(scale=lam, du=du, dv=dv, vth=choice.vth if spiking else 0,
                               bias_mant=bm, bias_exp=be, weights=tuple(qw),
                               weight_exp=tuple(exps), sign_mode=tuple(modes))
    return regs, choice


def dequantize_population(regs: PopulationRegisters, hw: HardwareSpec | NumberFormats
                          ) -> EffectivePopulation:
    """Effective float parameters of a chip population (for straight-through training)."""
    a, b = effective_decays(regs.du, regs.dv, hw)
    return EffectivePopulation(
        alpha=a, beta=b, threshold=effective_threshold(regs.vth, regs.scale, hw),
        bias=effective_bias(regs.bias_mant, regs.bias_exp, regs.scale),
        weights=tuple(dequantize_weights(w, regs.scale, e, hw)
                      for w, e in zip(regs.weights, regs.weight_exp)))


def fake_quantize_population(**kwargs: Any) -> EffectivePopulation:
    """``dequantize_population(quantize_population(**kwargs), hw)`` in one call.

    Takes exactly the keyword arguments of :func:`quantize_population`.
    """
    regs = quantize_population(**kwargs)
    return dequantize_population(regs, kwargs["hw"])

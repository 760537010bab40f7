"""The chip's neuron models: each model's registers, their formats, and its update.

Every neuron population runs one model, chosen by name when it is built
(``Network.add_neurons(name, size, model=..., **registers)``). A model is a row of
:data:`MODELS`: its register fields (bits, signed or not, one per population or one per
neuron, default), the names of its state variables (what ``"<population>.<name>"`` probes
read), whether its spikes are graded (carry an integer payload), and the Lava 0.10 process
whose fixed-point model it equals bit for bit. The numpy functions here are the
specification of each update; the emulator's reference model calls them and its kernels
are tested against them.

One step of a population, with ``a`` the summed synaptic input that arrives at the step
(every product weight x payload, floored by each connection's weight exponent), ``t`` the
step number counted from 0 (Lava's ``time_step`` is ``t + 1``), and every sum taken in
Lava's int32 datapath (``wrap32``):

``lif`` (Lava ``LIF``, ``PyLifModelBitAcc``)
    u <- wrap_once(wrap32(trunc0(u * (4095 - du) / 2^12) + a * 2^6))
    v <- sat24(trunc0(v * (4096 - dv) / 2^12) + u + bias_mant * 2^bias_exp)
    spike where v > vth * 2^6; then v <- 0 (or v - vth * 2^6 with reset="subtract")

``lif_per_neuron`` (Lava ``LIF`` with one du and dv per neuron)
    the ``lif`` update with per-neuron du and dv (``add_lif`` with du or dv arrays that
    are not all equal builds it; reset and spiking as ``lif``)

``lif_reset`` (Lava ``LIFReset``, ``PyLifResetModelBitAcc``)
    where (t + 1) mod reset_interval == reset_offset, u <- 0 and v <- 0 first;
    then the ``lif`` update (reset to zero)

``ternary_lif`` (Lava ``TernaryLIF``, ``PyTernLifModelFixed``), graded spikes of +1/-1
    the ``lif`` update of u and v; payload +1 where v > vth_hi * 2^6, -1 where
    v < vth_lo * 2^6 (0 when both hold, as in Lava); v <- 0 where the payload is not 0

``sigma`` (Lava ``Sigma``, ``PySigmaModelFixed``), graded
    sigma <- wrap32(sigma + a); payload sigma

``delta`` (Lava ``Delta``, ``PyDeltaModelFixed``), graded; E = spike_exp + state_exp
    x <- wrap32(a * 2^E); delta <- x - act + residue
    error <- error + delta (cum_error only); test |error| (cum_error) or |delta| >= vth * 2^E
    s <- delta where the test holds, else 0; error <- 0 where s != 0 (cum_error)
    residue <- delta - s; act <- x; payload floor(s / 2^state_exp)

``sigma_delta`` (Lava ``SigmaDelta``, ``PySigmaDeltaModelFixed``), graded
    sigma <- wrap32(sigma + a); x <- sigma + bias * 2^E, ReLU'd with act_mode=1;
    then the ``delta`` encoder on x (the input itself is not scaled by 2^E)

``atrlif`` (Lava ``ATRLIF``, ``PyATRLIFModelFixed``); state i, v, theta, r
    i and v: the ``lif`` update of u and v (du, dv, bias as there); at t = 0 first
    theta <- theta_0 * 2^6 (Lava sets it at its first step); then
    theta <- wrap32(trunc0(wrap32(theta - theta_0 * 2^6) * (4096 - delta_theta) / 2^12)
    + theta_0 * 2^6), r <- trunc0(r * (4096 - delta_r) / 2^12);
    spike where wrap32(v - r) >= theta; there r <- wrap32(r + 2 theta) and
    theta <- wrap32(theta + theta_step * 2^6) (v is not reset)

``rf`` (Lava ``RF``, ``PyRFModelFixed``); state real, imag; two inputs: a (real), b (imag)
    x <- wrap32(a * 2^state_exp), y <- wrap32(b * 2^state_exp);
    real' <- clip23(trunc0(cos_decay * real / 2^decay_bits)
                    - trunc0(sin_decay * imag / 2^decay_bits) + x)
    imag' <- clip23(trunc0(sin_decay * real / 2^decay_bits)
                    + trunc0(cos_decay * imag / 2^decay_bits) + y)
    (clip23: to [-(2^23 - 1), 2^23 - 1]); spike where real' >= vth * 2^state_exp,
    imag' >= 0 and imag < 0 (the imaginary part crosses zero upwards); no reset

``rf_iz`` (Lava ``RF_IZ``, ``PyRF_IZModelFixed``); state real, imag; inputs as ``rf``
    real' and imag' as ``rf``; spike where imag' >= vth * 2^state_exp; there
    real' <- 0 and imag' <- vth * 2^state_exp - 1

``rf_zero`` (Lava ``RFZero``, ``PyRFZeroModelFixed``), graded; state u, v; inputs a (u), b (v)
    u' <- wrap32(floor(wrap32(u * lct) / 2^15) - floor(wrap32(v * lst) / 2^15) + a)
    v' <- wrap32(floor(wrap32(v * lct) / 2^15) + floor(wrap32(u * lst) / 2^15) + b)
    payload u' where u' > uth, v' >= 0 and v < 0, else 0 (every product in int32, as
    Lava's int32 arrays compute it)

A two-input model's second input (``b``) is fed by connections made with
``Network.connect(..., port="imag")``; every other connection feeds ``a``.

A graded population sends a message only where its payload is non-zero (a zero payload
adds nothing anywhere); its targets add weight x payload. Payloads are carried as Lava's
CPU models carry them (int32); the chip's ``graded_payload_bits`` bounds the payloads of
host inputs and says whether graded models are available at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core import fixedpoint as fx
from neurochip.core.errors import NetworkError, ParameterRangeError

if TYPE_CHECKING:
    from neurochip.core.hw import NumberFormats

__all__ = ["AUX_SLOTS", "INPUT_PORTS", "MODELS", "MODEL_IDS", "STATE_SLOTS", "THETA_NEVER",
           "NeuronModel", "RegisterField", "check_model_registers", "get_model",
           "model_payload_bits", "model_step", "normalize_registers", "payload_range",
           "rf_decays", "rf_zero_decays"]

I64 = NDArray[np.int64]
#: Lava's datapath width (sums wrap in two's complement there)
DATAPATH_BITS = fx.DATAPATH_BITS
#: a threshold no voltage reaches (the LIF update of models that spike by their own rule)
THETA_NEVER = 1 << 62


@dataclass(frozen=True)
class RegisterField:
    """One register of a model beyond the LIF core's du, dv, vth, bias_mant, bias_exp.

    bits/signed: its format (two's complement when signed); per_neuron: one value per
    neuron (else one per population); default: None when the register must be given."""

    name: str
    bits: int
    signed: bool
    per_neuron: bool
    default: int | None
    doc: str
    fmt_range: str | None = None  # the range is NumberFormats.<fmt_range> (chip formats)

    @property
    def range(self) -> tuple[int, int]:
        if self.signed:
            h = 1 << (self.bits - 1)
            return -h, h - 1
        return 0, (1 << self.bits) - 1


@dataclass(frozen=True)
class NeuronModel:
    """A neuron model (see the module doc for each update).

    lif_core: the model uses the LIF registers du, dv, bias_mant, bias_exp (and vth unless
    it has its own thresholds) with their chip formats; fields: its other registers;
    state: its state variables, in the order of the emulator's state slots (u, v, then two
    auxiliary slots); graded: its spikes carry payloads; payload_bits: their width (0: the
    chip's graded_payload_bits); lava: the Lava 0.10 process it equals; inputs: its
    synaptic inputs (2: a second input fed through port "imag", see INPUT_PORTS)."""

    name: str
    id: int
    lava: str
    lif_core: bool
    uses_vth: bool
    fields: tuple[RegisterField, ...]
    state: tuple[str, ...]
    graded: bool
    payload_bits: int = 0
    inputs: int = 1

    def field(self, name: str) -> RegisterField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


_EXP = (RegisterField("spike_exp", 3, False, False, 0, "payload scale exponent"),
        RegisterField("state_exp", 3, False, False, 0, "state scale exponent"))
_CUM = RegisterField("cum_error", 1, False, False, 0, "1: test the accumulated error")
_DVTH = RegisterField("vth", 24, False, False, None,
                      "delta threshold (x 2^(spike_exp + state_exp) must fit 24 bits)")

MODELS: dict[str, NeuronModel] = {m.name: m for m in (
    NeuronModel("lif", 0, "LIF", True, True, (), ("u", "v"), False),
    NeuronModel("lif_per_neuron", 6, "LIF", True, True, (
        RegisterField("du", 12, False, True, None, "current decay per neuron (-1: none)",
                      "du_range"),
        RegisterField("dv", 12, False, True, None, "voltage decay per neuron", "dv_range"),
    ), ("u", "v"), False),
    NeuronModel("lif_reset", 1, "LIFReset", True, True, (
        RegisterField("reset_interval", 16, False, False, None,
                      "u and v are zeroed every reset_interval steps (>= 1)"),
        RegisterField("reset_offset", 16, False, False, 0,
                      "... at the steps t with (t + 1) mod reset_interval == reset_offset"),
    ), ("u", "v"), False),
    NeuronModel("ternary_lif", 2, "TernaryLIF", True, False, (
        RegisterField("vth_hi", 18, True, False, None, "upper threshold (+1 spikes)"),
        RegisterField("vth_lo", 18, True, False, None, "lower threshold (-1 spikes)"),
    ), ("u", "v"), True, 2),
    NeuronModel("sigma", 3, "Sigma", False, False, (), ("sigma",), True),
    NeuronModel("delta", 4, "Delta", False, False, (_DVTH, _CUM, *_EXP),
                ("act", "residue", "error"), True),
    NeuronModel("sigma_delta", 5, "SigmaDelta", False, False, (
        _DVTH,
        RegisterField("bias", 16, True, True, 0,
                      "bias (x 2^(spike_exp + state_exp) must fit 24 bits)"),
        RegisterField("act_mode", 1, False, False, 1, "0: unit, 1: ReLU"),
        _CUM, *_EXP), ("sigma", "act", "residue", "error"), True),
)}
_RF = (RegisterField("cos_decay", 14, True, False, None,
                     "(1 - alpha) cos(2 pi / period) * 2^decay_bits, truncated"),
       RegisterField("sin_decay", 14, True, False, None,
                     "(1 - alpha) sin(2 pi / period) * 2^decay_bits, truncated"),
       RegisterField("decay_bits", 4, False, False, 12, "decay precision (>= 1)"),
       RegisterField("state_exp", 3, False, False, 0, "input and threshold scale exponent"),
       RegisterField("vth", 24, False, False, None,
                     "threshold (x 2^state_exp must fit 24 bits)"))
MODELS.update({m.name: m for m in (
    NeuronModel("atrlif", 7, "ATRLIF", True, False, (
        RegisterField("delta_theta", 13, False, False, None,
                      "threshold decay (x 2^-12 of the excess over theta_0)", "dv_range"),
        RegisterField("delta_r", 13, False, False, None,
                      "refractory state decay (x 2^-12)", "dv_range"),
        RegisterField("theta_0", 12, False, False, None, "baseline threshold mantissa"),
        RegisterField("theta_step", 12, False, False, 0,
                      "threshold increase per spike (mantissa)"),
    ), ("i", "v", "theta", "r"), False),
    NeuronModel("rf", 8, "RF", False, False, _RF, ("real", "imag"), False, inputs=2),
    NeuronModel("rf_iz", 9, "RF_IZ", False, False, _RF, ("real", "imag"), False, inputs=2),
    NeuronModel("rf_zero", 10, "RFZero", False, False, (
        RegisterField("lct", 17, True, True, None,
                      "exp(-dt / tau) cos(2 pi f dt) * 2^15, truncated, per neuron"),
        RegisterField("lst", 17, True, True, None,
                      "exp(-dt / tau) sin(2 pi f dt) * 2^15, truncated, per neuron"),
        RegisterField("uth", 24, True, False, 1, "threshold of u"),
    ), ("u", "v"), True, inputs=2),
)})
MODEL_IDS: dict[str, int] = {m.name: m.id for m in MODELS.values()}
#: the input ports of a connection's target (Network.connect(port=...)): "imag" feeds
#: the second input of a two-input model
INPUT_PORTS = ("real", "imag")

#: the state slot of each model's state variables: u, v, aux 0, aux 1
STATE_SLOTS: dict[str, dict[str, int]] = {
    "lif": {"u": 0, "v": 1}, "lif_per_neuron": {"u": 0, "v": 1}, "lif_reset": {"u": 0, "v": 1},
    "ternary_lif": {"u": 0, "v": 1},
    "sigma": {"sigma": 0},
    "delta": {"act": 1, "residue": 2, "error": 3},
    "sigma_delta": {"sigma": 0, "act": 1, "residue": 2, "error": 3},
    "atrlif": {"i": 0, "v": 1, "theta": 2, "r": 3},
    "rf": {"real": 0, "imag": 1}, "rf_iz": {"real": 0, "imag": 1},
    "rf_zero": {"u": 0, "v": 1},
}
#: words of the two auxiliary state slots a model needs per neuron
AUX_SLOTS = {"lif": 0, "lif_per_neuron": 0, "lif_reset": 0, "ternary_lif": 0, "sigma": 0,
             "delta": 2, "sigma_delta": 2, "atrlif": 2, "rf": 0, "rf_iz": 0, "rf_zero": 0}
_ACT_MODES = {"unit": 0, "relu": 1}


def rf_decays(period: Any, alpha: Any, decay_bits: int) -> tuple[int, int]:
    """(cos_decay, sin_decay) registers of an ``rf``/``rf_iz`` population from Lava's
    ``RF(period=..., alpha=..., decay_bits=...)`` parameters, computed as that process
    computes them: (1 - alpha) cos(2 pi / period) (and sin) in float64, scaled by
    2^decay_bits and truncated toward zero."""
    k = 1.0 - np.float64(alpha)
    w = np.pi * 2 * 1 / np.float64(period)
    one = np.int64(1) << decay_bits
    return (int(np.int32(k * np.cos(w) * one)), int(np.int32(k * np.sin(w) * one)))


def rf_zero_decays(freqs: Any, decay_tau: Any, dt: float = 0.001
                   ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per-neuron (lct, lst) registers of an ``rf_zero`` population from Lava's
    ``RFZero(freqs=..., decay_tau=..., dt=...)`` parameters (Hz, seconds), computed as that
    process computes them: exp(-dt / tau) cos(2 pi f dt) (and sin) in float64, scaled by
    2^15 and truncated toward zero."""
    f = np.asarray(freqs, np.float64)
    damp = np.exp(dt * (-1 / np.asarray(decay_tau, np.float64)))
    lct = np.asarray(damp * np.cos(dt * f * np.pi * 2)) * 2**15
    lst = np.asarray(damp * np.sin(dt * f * np.pi * 2)) * 2**15
    return lct.astype(np.int32).astype(np.int64), lst.astype(np.int32).astype(np.int64)


def get_model(name: Any, where: str) -> NeuronModel:
    """The model called ``name``, or a NetworkError listing the known ones."""
    if not isinstance(name, str) or name not in MODELS:
        raise NetworkError(f"unknown neuron model {name!r}; known: {sorted(MODELS)}",
                           where=where, field="model", value=name)
    return MODELS[name]


def model_payload_bits(model: NeuronModel, fmt: NumberFormats) -> int:
    """Payload width of a model's spikes on a chip (0: binary)."""
    if not model.graded:
        return 0
    return model.payload_bits or fmt.graded_payload_bits


def payload_range(bits: int) -> tuple[int, int]:
    """The signed range of a ``bits``-wide payload."""
    h = 1 << (bits - 1)
    return -h, h - 1


def _fail_range(where: str, fld: str, value: int, lo: int, hi: int, why: str = ""
                ) -> ParameterRangeError:
    return ParameterRangeError(f"{value} is outside [{lo}, {hi}]{why}", where=where,
                               field=fld, value=value, limit=(lo, hi))


def check_model_registers(model: NeuronModel, registers: Mapping[str, Any], size: int,
                          fmt: NumberFormats, where: str) -> None:
    """Every model-specific register is present, of the right shape and in its format
    (builder, compiler and image verifier all call this). The LIF core registers are
    checked by ``network.check_lif_registers``."""
    if model.graded and (fmt.graded_payload_bits == 0
                         or model.payload_bits > fmt.graded_payload_bits):
        raise NetworkError(
            f"model {model.name!r} sends graded spikes; this chip sends binary spikes only "
            f"(graded_payload_bits = {fmt.graded_payload_bits})", where=where, field="model",
            value=model.name, limit=fmt.graded_payload_bits)
    extra = sorted(set(registers) - set(model.field_names))
    if extra:
        raise NetworkError(f"model {model.name!r} has no register {extra[0]!r}; its "
                           f"registers are {list(model.field_names)}", where=where,
                           field=extra[0])
    for f in model.fields:
        if f.name not in registers:
            raise NetworkError(f"model {model.name!r} needs register {f.name!r}",
                               where=where, field=f.name)
        lo, hi = getattr(fmt, f.fmt_range) if f.fmt_range else f.range
        val = registers[f.name]
        if f.per_neuron:
            arr = np.asarray(val)
            if arr.shape != (size,) or arr.dtype.kind not in "iu":
                raise NetworkError(f"must be an integer array of shape ({size},), got "
                                   f"{arr.dtype} {arr.shape}", where=where, field=f.name)
            bad = np.flatnonzero((arr < lo) | (arr > hi))
            if bad.size:
                i = int(bad[0])
                raise ParameterRangeError(
                    f"element {i} is {int(arr[i])}, outside [{lo}, {hi}] ({f.bits}-bit "
                    f"{'signed' if f.signed else 'unsigned'}; {bad.size} elements out of "
                    "range)", where=where, field=f.name, value=int(arr[i]), limit=(lo, hi))
        else:
            if isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, np.integer)):
                raise NetworkError(f"must be an integer, got {val!r}", where=where,
                                   field=f.name)
            if not lo <= int(val) <= hi:
                raise _fail_range(where, f.name, int(val), lo, hi,
                                  f" ({f.bits}-bit {'signed' if f.signed else 'unsigned'})")
    if model.name == "lif_per_neuron" and np.all(np.asarray(registers["du"]) ==
                                                 np.asarray(registers["du"])[:1]) \
            and np.all(np.asarray(registers["dv"]) == np.asarray(registers["dv"])[:1]):
        raise NetworkError("every neuron has the same du and dv; that is a 'lif' population",
                           where=where, field="du")
    # rules between registers
    if model.name == "lif_reset":
        ri, ro = int(registers["reset_interval"]), int(registers["reset_offset"])
        if ri < 1:
            raise _fail_range(where, "reset_interval", ri, 1, (1 << 16) - 1)
        if ro >= ri:
            raise _fail_range(where, "reset_offset", ro, 0, ri - 1,
                              " (must be below reset_interval)")
    if model.name in ("rf", "rf_iz"):
        db, se = int(registers["decay_bits"]), int(registers["state_exp"])
        if db < 1:
            raise _fail_range(where, "decay_bits", db, 1, 15,
                              " (Lava's fixed-point RF needs integer decays)")
        if int(registers["vth"]) << se >= 1 << 24:
            raise _fail_range(where, "vth", int(registers["vth"]), 0, ((1 << 24) - 1) >> se,
                              f" (vth * 2^{se} must fit 24 bits)")
    if model.name in ("delta", "sigma_delta"):
        e = int(registers["spike_exp"]) + int(registers["state_exp"])
        vs = int(registers["vth"]) << e
        if vs >= 1 << 24:
            raise _fail_range(where, "vth", int(registers["vth"]), 0, ((1 << 24) - 1) >> e,
                              f" (vth * 2^{e} must fit 24 bits)")
        if model.name == "sigma_delta":
            b = np.asarray(registers["bias"], np.int64) << e
            lo, hi = payload_range(24)
            bad = np.flatnonzero((b < lo) | (b > hi))
            if bad.size:
                i = int(bad[0])
                raise ParameterRangeError(
                    f"element {i} is {int(b[i]) >> e}; bias * 2^{e} must fit 24 bits signed",
                    where=where, field="bias", value=int(b[i]) >> e, limit=(lo >> e, hi >> e))


def normalize_registers(model: NeuronModel, registers: Mapping[str, Any], size: int,
                        where: str) -> dict[str, Any]:
    """Defaults filled in, per-neuron registers as int64 arrays of shape (size,), act_mode
    names ("unit", "relu") as their numbers; nothing else is changed."""
    out: dict[str, Any] = {}
    for f in model.fields:
        if f.name in registers:
            val = registers[f.name]
        elif f.default is not None:
            val = f.default
        else:
            raise NetworkError(f"model {model.name!r} needs register {f.name!r}",
                               where=where, field=f.name)
        if f.name == "act_mode" and isinstance(val, str):
            if val.lower() not in _ACT_MODES:
                raise NetworkError(f"must be 'unit', 'relu', 0 or 1, got {val!r}",
                                   where=where, field="act_mode")
            val = _ACT_MODES[val.lower()]
        if f.name == "cum_error" and isinstance(val, (bool, np.bool_)):
            val = int(val)
        if f.per_neuron:
            arr = np.asarray(val)
            if arr.ndim == 0:
                arr = np.full(size, arr)
            if arr.dtype.kind == "f":
                if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                    raise NetworkError("must hold integers", where=where, field=f.name)
            elif arr.dtype.kind not in "iub":
                raise NetworkError(f"must hold integers, got dtype {arr.dtype}",
                                   where=where, field=f.name)
            if arr.shape != (size,):
                raise NetworkError(f"expected a scalar or shape ({size},), got {arr.shape}",
                                   where=where, field=f.name)
            val = arr.astype(np.int64)
        elif isinstance(val, (float, np.floating)) and float(val).is_integer():
            val = int(val)
        elif isinstance(val, np.integer):
            val = int(val)
        out[f.name] = val
    extra = sorted(set(registers) - set(model.field_names))
    if extra:
        raise NetworkError(f"model {model.name!r} has no register {extra[0]!r}; its "
                           f"registers are {list(model.field_names)}", where=where,
                           field=extra[0])
    return out


# --------------------------------------------------------------------------------------
# The updates (the specification the emulator's kernels are tested against)
# --------------------------------------------------------------------------------------


def _w32(x: Any) -> I64:
    return fx.wrap(x, DATAPATH_BITS)


def _trunc_shift(x: I64, bits: int) -> I64:
    """sign(x) * (|x| >> bits): a decay's product truncated toward zero."""
    return np.sign(x) * (np.abs(x) >> bits)


def model_step(model: str, state: list[I64], a: I64, *, registers: Mapping[str, Any],
               du: int, dv: int, vth: int, bias: I64, t: int, fmt: NumberFormats,
               b: I64 | None = None) -> tuple[list[I64], I64]:
    """One step of a population of a non-``lif`` model (``lif`` is
    :func:`neurochip.core.fixedpoint.lif_step`).

    state: the four state slots (u, v, aux 0, aux 1; int64 arrays, updated copies are
    returned); a: the summed synaptic input; bias: bias_mant * 2^bias_exp of the LIF
    core (or the model's per-neuron bias register); t: the step (0 first); b: the second
    input of a two-input model (port "imag"). Returns the new state and the payloads (0/1
    for binary models)."""
    u, v, x2, x3 = (np.asarray(s, np.int64).copy() for s in state)
    a = np.asarray(a, np.int64)
    b = np.zeros_like(a) if b is None else np.asarray(b, np.int64)
    r = registers
    if model == "atrlif":
        sh, ds = fmt.vth_shift, fmt.decay_bits
        theta0, step = int(r["theta_0"]) << sh, int(r["theta_step"]) << sh
        thr, ref = x2, x3
        if t == 0:  # Lava scales theta_0 and sets the threshold to it at its first step
            thr[:] = theta0
        u, v, _, _ = fx.lif_step(
            u, v, a, du=du, dv=dv, bias=bias, theta=THETA_NEVER, reset="zero", spiking=False,
            decay_bits=ds, input_shift=fmt.input_shift, u_bits=fmt.u_bits, v_bits=fmt.v_bits)
        unity = 1 << ds
        thr = _w32(_trunc_shift(_w32(thr - theta0) * (unity - int(r["delta_theta"])), ds)
                     + theta0)
        ref = _trunc_shift(ref * (unity - int(r["delta_r"])), ds)
        s = _w32(v - ref) >= thr
        ref = np.where(s, _w32(ref + 2 * thr), ref)
        thr = np.where(s, _w32(thr + step), thr)
        return [u, v, thr, ref], s.astype(np.int64)
    if model in ("rf", "rf_iz"):
        db, se = int(r["decay_bits"]), int(r["state_exp"])
        cos, sin = int(r["cos_decay"]), int(r["sin_decay"])
        lim = (1 << 23) - 1  # Lava's 24-bit real and imaginary parts
        x, y = _w32(a << se), _w32(b << se)
        re = np.clip(_trunc_shift(cos * u, db) - _trunc_shift(sin * v, db) + x, -lim, lim)
        im = np.clip(_trunc_shift(sin * u, db) + _trunc_shift(cos * v, db) + y, -lim, lim)
        th = int(r["vth"]) << se
        if model == "rf":
            s = (re >= th) & (im >= 0) & (v < 0)
        else:
            s = im >= th
            re = np.where(s, 0, re)
            im = np.where(s, th - 1, im)
        return [re, im, x2, x3], s.astype(np.int64)
    if model == "rf_zero":
        lct, lst = np.asarray(r["lct"], np.int64), np.asarray(r["lst"], np.int64)
        # Lava's int32 arrays: each product wraps, // 2^15 floors
        nu = _w32(_w32((_w32(u * lct) >> 15) - (_w32(v * lst) >> 15)) + a)
        nv = _w32(_w32((_w32(v * lct) >> 15) + (_w32(u * lst) >> 15)) + b)
        out = np.where((nu > int(r["uth"])) & (nv >= 0) & (v < 0), nu, 0)
        return [nu, nv, x2, x3], out.astype(np.int64)
    if model in ("lif_reset", "ternary_lif"):
        if model == "lif_reset" and (t + 1) % int(r["reset_interval"]) == int(r["reset_offset"]):
            u[:] = 0
            v[:] = 0
        sh = fmt.vth_shift
        theta = (vth << sh) if model == "lif_reset" else 1 << 62
        u, v, s, v_pre = fx.lif_step(
            u, v, a, du=du, dv=dv, bias=bias, theta=theta, reset="zero", spiking=True,
            decay_bits=fmt.decay_bits, input_shift=fmt.input_shift, u_bits=fmt.u_bits,
            v_bits=fmt.v_bits)
        if model == "lif_reset":
            return [u, v, x2, x3], s.astype(np.int64)
        pos = v_pre > (int(r["vth_hi"]) << sh)
        neg = v_pre < (int(r["vth_lo"]) << sh)
        out = pos.astype(np.int64) - neg.astype(np.int64)
        v = np.where(out != 0, 0, v_pre)
        return [u, v, x2, x3], out
    if model == "sigma":
        u = _w32(u + a)
        return [u, v, x2, x3], u.copy()
    if model in ("delta", "sigma_delta"):
        e = int(r["spike_exp"]) + int(r["state_exp"])
        vth_s = int(r["vth"]) << e
        if model == "delta":
            x = _w32(a << e)
        else:
            u = _w32(u + a)
            x = _w32(u + (np.asarray(r["bias"], np.int64) << e))
            if int(r["act_mode"]) == 1:
                x = np.maximum(x, 0)
        act, residue, error = v, x2, x3
        delta = _w32(_w32(x - act) + residue)
        if int(r["cum_error"]):
            error = _w32(error + delta)
            s = np.where(np.abs(error) >= vth_s, delta, 0)
            error = np.where(s != 0, 0, error)
        else:
            s = np.where(np.abs(delta) >= vth_s, delta, 0)
        residue = _w32(delta - s)
        out = s >> int(r["state_exp"])
        return [u, x, residue, error], out.astype(np.int64)
    raise ValueError(f"model_step does not run model {model!r}")

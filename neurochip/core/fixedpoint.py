"""Fixed-point arithmetic of the chip, each operation defined once.

These are the numpy (array) definitions used by the compiler, the pure-Python reference
model and the tests. The Numba kernels in ``emulator.kernels`` re-implement the very same
expressions scalar by scalar and are tested against these.

Conventions follow Lava 0.10's ``PyLifModelBitAcc`` / ``PyDenseModelBitAcc`` (see the
reference notes): decays truncate toward zero, the current register wraps *once*, the
voltage register saturates, weight exponents shift the *summed* synaptic input with a
floor.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

I64 = NDArray[np.int64]

# Sign modes of a synapse group (Lava's SignMode values, kept for readability).
SIGN_MIXED = "mixed"
SIGN_EXCITATORY = "excitatory"
SIGN_INHIBITORY = "inhibitory"
SIGN_MODES = (SIGN_MIXED, SIGN_EXCITATORY, SIGN_INHIBITORY)


def as_i64(x: ArrayLike) -> I64:
    return np.asarray(x, dtype=np.int64)


def trunc_shift(x: ArrayLike, shift: int) -> I64:
    """Divide by 2**shift truncating toward zero: sign(x) * (|x| >> shift).

    The hardware decays magnitudes, so negative states round toward zero (-96.7 -> -96),
    unlike an arithmetic shift (which would give -97).
    """
    xi = as_i64(x)
    return np.sign(xi) * (np.abs(xi) >> shift)


def floor_shift(x: ArrayLike, exp: int) -> I64:
    """Scale by 2**exp: a left shift for exp >= 0, an arithmetic (floor) right shift else.

    This is how a weight exponent acts on the summed synaptic input of one connection.
    """
    xi = as_i64(x)
    return xi << exp if exp >= 0 else xi >> (-exp)


def wrap_once(x: ArrayLike, bits: int) -> I64:
    """Lava's current-register overflow: one two's-complement wrap, not a full modulo.

    x > 2**(bits-1) loses 2**bits; x <= -2**(bits-1) gains 2**bits. Exactly +2**(bits-1)
    therefore stays (one above the signed maximum) and -2**(bits-1) becomes +2**(bits-1),
    as measured on Lava 0.10.
    """
    xi = as_i64(x).copy()
    half = np.int64(1) << (bits - 1)
    full = np.int64(1) << bits
    hi = xi > half
    lo = xi <= -half
    xi[hi] -= full
    xi[lo] += full
    return xi


# Lava's CPU models hold the current and its synaptic input in int32: the update of the
# current register is computed in 32-bit two's complement before the register's own wrap.
DATAPATH_BITS = 32


def wrap(x: ArrayLike, bits: int) -> I64:
    """Full two's-complement wrap to ``bits`` (modular), e.g. the 32-bit datapath."""
    half = np.int64(1) << (bits - 1)
    mask = (np.int64(1) << bits) - 1
    return ((as_i64(x) + half) & mask) - half


def saturate(x: ArrayLike, bits: int) -> I64:
    """Clip to the symmetric signed range +-(2**(bits-1) - 1) (the voltage register)."""
    m = (np.int64(1) << (bits - 1)) - 1
    return np.clip(as_i64(x), -m, m)


def decay(x: ArrayLike, keep: ArrayLike, shift: int) -> I64:
    """x * keep / 2**shift, truncated toward zero, computed in 64 bits."""
    return trunc_shift(as_i64(x) * as_i64(keep), shift)


def bias_value(mant: ArrayLike, exp: ArrayLike) -> I64:
    """bias_mant * 2**bias_exp (no x64 input scaling; negative exps floor, as Lava does)."""
    m = as_i64(mant)
    e = as_i64(exp)
    return np.where(e >= 0, m << np.maximum(e, 0), m >> np.maximum(-e, 0))


def lif_step(u: ArrayLike, v: ArrayLike, a: ArrayLike, *, du: int, dv: int, bias: ArrayLike,
             theta: int, reset: str, spiking: bool, decay_bits: int, input_shift: int,
             u_bits: int, v_bits: int) -> tuple[I64, I64, NDArray[np.bool_], I64]:
    """One step of a population of the chip's LIF neurons: (u, v, spikes, v before reset).

    Current first (Lava's hidden +1 on the current decay; the sum is taken in the 32-bit
    datapath, then the register wraps once), then the voltage from the *new* current
    (saturating), a strict threshold, and reset to zero or by subtraction. ``a`` is the
    summed synaptic input of the step; ``theta`` = vth * 2**vth_shift.
    """
    unity = 1 << decay_bits
    x = decay(u, unity - 1 - du, decay_bits) + (as_i64(a) << input_shift)
    u_new = wrap_once(wrap(x, DATAPATH_BITS), u_bits)
    v_new = saturate(decay(v, unity - dv, decay_bits) + u_new + as_i64(bias), v_bits)
    s = (v_new > theta) if spiking else np.zeros(v_new.shape, bool)
    v_out = np.where(s, 0 if reset == "zero" else v_new - theta, v_new)
    return u_new, v_out, s, v_new


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------


def detect_sign_mode(w: ArrayLike) -> str:
    """Lava's automatic sign mode: all >= 0 excitatory, all <= 0 inhibitory, else mixed."""
    wi = as_i64(w)
    if wi.size == 0 or wi.min() >= 0:
        return SIGN_EXCITATORY
    if wi.max() <= 0:
        return SIGN_INHIBITORY
    return SIGN_MIXED


def weight_lsb_shift(sign_mode: str, num_weight_bits: int, weight_bits: int = 8) -> int:
    """Low bits Lava drops from every weight: weight_bits - num_weight_bits + [mixed]."""
    return weight_bits - num_weight_bits + (1 if sign_mode == SIGN_MIXED else 0)


def weight_range(sign_mode: str, weight_bits: int = 8) -> tuple[int, int]:
    """Range a weight is clipped to before LSB truncation (8-bit magnitude plus sign)."""
    full = 1 << weight_bits
    if sign_mode == SIGN_MIXED:
        return -full, full - 1
    if sign_mode == SIGN_EXCITATORY:
        return 0, full - 1
    return -(full - 1), 0


def effective_weights(
    w: ArrayLike, sign_mode: str, num_weight_bits: int, weight_bits: int = 8
) -> I64:
    """What Lava's Dense makes of a weight matrix: clip, then drop the low bits.

    Mixed mode floors the signed value (5 -> 4, -5 -> -6); inhibitory truncates the
    magnitude. The compiler uses this to *reject* weights Lava would alter, and the
    quantizer uses it to produce weights that survive unchanged.
    """
    lo, hi = weight_range(sign_mode, weight_bits)
    k = weight_lsb_shift(sign_mode, num_weight_bits, weight_bits)
    wc = np.clip(as_i64(w), lo, hi)
    if sign_mode == SIGN_INHIBITORY:
        return -((-wc >> k) << k)
    return (wc >> k) << k


class WeightDecode(IntEnum):
    """How a stored weight byte becomes a weight (a connection's decode rule).

    A weight is ``scale(raw(byte))``: the byte read as int8 (SIGNED) or uint8 (the
    others), shifted left by the connection's shift, and negated for NEGATED. The two
    parts are linear, so a sum of raw bytes decodes as the sum of the weights (the
    emulator's row adds rely on it).
    """

    SIGNED = 0  # w = int8(byte) << shift      (mixed sign: even values in [-256, 254])
    UNSIGNED = 1  # w = uint8(byte) << shift   (excitatory)
    NEGATED = 2  # w = -(uint8(byte) << shift) (inhibitory)


def encode_weight_bytes(w: ArrayLike, sign_mode: str) -> tuple[NDArray[np.uint8], int, int]:
    """Encode effective weights as one byte each plus a decode rule (mode, shift).

    Returns (bytes, decode_mode, shift), decode_mode a :class:`WeightDecode` value (as a
    plain int). The caller guarantees ``w`` is already representable (see
    :func:`effective_weights`).
    """
    wi = as_i64(w)
    if sign_mode == SIGN_MIXED:
        shift = 1
        m = wi >> shift
        return m.astype(np.int8).view(np.uint8), int(WeightDecode.SIGNED), shift
    if sign_mode == SIGN_EXCITATORY:
        return wi.astype(np.uint8), int(WeightDecode.UNSIGNED), 0
    return (-wi).astype(np.uint8), int(WeightDecode.NEGATED), 0


def decode_weight_bytes(b: ArrayLike, decode_mode: int, shift: int) -> I64:
    """Weights of stored bytes under a decode rule (:class:`WeightDecode`): the inverse of
    :func:`encode_weight_bytes`. This is the definition; the emulator's kernels compile the
    same rule scalar by scalar (``emulator.kernels.weights``), tested equal on every byte."""
    bb = np.asarray(b, dtype=np.uint8)
    raw = bb.view(np.int8) if decode_mode == WeightDecode.SIGNED else bb
    w = raw.astype(np.int64) << shift
    return -w if decode_mode == WeightDecode.NEGATED else w

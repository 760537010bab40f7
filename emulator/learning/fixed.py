"""Fixed-point arithmetic of the learning engine, each operation defined once (numpy).

The pure-Python learning reference model uses these; the Numba kernels in
``emulator.learning.kernels`` re-implement them scalar by scalar and must agree bit for bit.

Per-core PRNG. Each core has a ``prng_bits``-wide seed (stored in the image). A random
number is a function of (core seed, learning clock, stream, index): a counter-based
generator (the splitmix64 finaliser applied to the key), so every draw is reproducible and
independent of the order in which a core visits its synapses::

    base(seed, clock, stream) = mix(mix(seed ^ (stream << 32)) + clock * G)
    draw(base, index)         = mix(base + (index + 1) * G)     # 64 random bits

A 64-bit draw holds ``F`` numbers of ``prng_bits`` bits, F the largest power of two with
``F * prng_bits <= 64`` (field f = bits ``f*prng_bits ...``); random number d of a stream is
field ``d % F`` of draw ``d // F``.
Streams name what the numbers are for (:data:`STREAM_X1` ...).

Stochastic rounding of ``x / 2^k`` with a ``prng_bits``-bit random number r::

    sround(x, k, r) = (x + (r >> (prng_bits - k))) >> k      for 0 < k <= prng_bits
                    = (x + (r << (k - prng_bits))) >> k      for k > prng_bits
                    = x << -k                                for k <= 0 (exact)

``>>`` is the arithmetic (floor) shift, so the expectation is exactly x / 2^k for
k <= prng_bits. Deterministic rounding (third-factor arithmetic) is round-half-up:
``rhalf(x, k) = (x + 2^(k-1)) >> k``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "STREAM_RT",
    "STREAM_TAG",
    "STREAM_WGT",
    "STREAM_X1",
    "STREAM_X2",
    "STREAM_Y1",
    "STREAM_Y2",
    "STREAM_YT",
    "base",
    "draw",
    "field",
    "fields_per_draw",
    "mix",
    "number",
    "rhalf",
    "sround",
]

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]

G = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)

# Streams: one per kind of random number.
STREAM_X1, STREAM_X2, STREAM_Y1, STREAM_Y2, STREAM_YT, STREAM_RT = 1, 2, 3, 4, 5, 6
STREAM_TAG, STREAM_WGT = 7, 8


def mix(z: ArrayLike) -> U64:
    """splitmix64 finaliser (wrapping 64-bit arithmetic)."""
    with np.errstate(over="ignore"):
        x = np.asarray(z, dtype=np.uint64)
        x = (x ^ (x >> np.uint64(30))) * M1
        x = (x ^ (x >> np.uint64(27))) * M2
        return np.asarray(x ^ (x >> np.uint64(31)))


def base(seed: ArrayLike, clock: int, stream: int) -> U64:
    """Per-core key of one (clock, stream): seeds may be an array (one per core)."""
    with np.errstate(over="ignore"):
        s = np.asarray(seed, dtype=np.uint64) ^ (np.uint64(stream) << np.uint64(32))
        return mix(mix(s) + np.uint64(clock) * G)


def draw(b: ArrayLike, index: ArrayLike) -> U64:
    """64 random bits for each index under key(s) b."""
    with np.errstate(over="ignore"):
        i = np.asarray(index, dtype=np.int64).astype(np.uint64)
        return mix(np.asarray(b, dtype=np.uint64) + (i + np.uint64(1)) * G)


def field(h: ArrayLike, f: ArrayLike, bits: int) -> I64:
    """The f-th ``bits``-wide random number of 64-bit draws h (f: scalar or per draw)."""
    mask = np.uint64((1 << bits) - 1)
    sh = np.asarray(f, dtype=np.uint64) * np.uint64(bits)
    return ((np.asarray(h, dtype=np.uint64) >> sh) & mask).astype(np.int64)


def fields_per_draw(bits: int) -> int:
    """F: the largest power of two with F * bits <= 64."""
    return 1 << ((64 // bits).bit_length() - 1)


def number(seeds: ArrayLike, clock: int, stream: int, d: ArrayLike, bits: int) -> I64:
    """Random number(s) d of a stream: field d % F of draw d // F."""
    nf = fields_per_draw(bits)
    di = np.asarray(d, dtype=np.int64)
    return field(draw(base(seeds, clock, stream), di // nf), di % nf, bits)


def sround(x: ArrayLike, k: int, r: ArrayLike, bits: int) -> I64:
    """Stochastic rounding of x / 2^k with random numbers r of ``bits`` bits."""
    xi = np.asarray(x, dtype=np.int64)
    if k <= 0:
        return xi << -k
    ri = np.asarray(r, dtype=np.int64)
    add = ri >> (bits - k) if k <= bits else ri << (k - bits)
    return (xi + add) >> k


def rhalf(x: ArrayLike, k: int) -> I64:
    """Round-half-up of x / 2^k (k > 0), or x << -k."""
    xi = np.asarray(x, dtype=np.int64)
    if k <= 0:
        return xi << -k
    return (xi + (np.int64(1) << (k - 1))) >> k

"""The weight decode rule in kernel form: ``neurochip.core.fixedpoint.decode_weight_bytes``
scalar by scalar (the tests check both on every byte, mode and shift).

A weight is ``scale_weight(raw_weight(byte, mode), mode, shift)``. Both parts are linear,
so the row adds may sum raw bytes first and scale the sum.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from neurochip.core.fixedpoint import WeightDecode

__all__ = ["decode_weight", "raw_weight", "scale_weight"]

SIGNED = WeightDecode.SIGNED
NEGATED = WeightDecode.NEGATED


@njit(cache=True, inline="always")
def raw_weight(byte, mode):
    """The stored byte as an integer: int8 for SIGNED, else uint8 (as int64)."""
    b = np.int64(byte)
    if mode == SIGNED and b >= 128:  # two's complement byte
        b -= 256
    return b


@njit(cache=True, inline="always")
def scale_weight(x, mode, shift):
    """A raw byte (or a sum of raw bytes) as weight: shifted, negated for NEGATED. The
    result has x's integer type (shift must not be wider)."""
    y = x << shift
    if mode == NEGATED:
        return -y
    return y


@njit(cache=True, inline="always")
def decode_weight(byte, mode, shift):
    """The weight of one stored byte under decode rule ``mode`` (WeightDecode), int64."""
    return scale_weight(raw_weight(byte, mode), mode, np.int64(shift))

"""LLVM intrinsics the kernels use: prefetch, 64-byte masks (nonzero bytes, bit 0 of bytes),
trailing zeros."""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros as _trailing_zeros
from numba.extending import intrinsic

__all__ = ["bit0_mask64", "nonzero_mask64", "prefetch", "prefetch_range", "trailing_zeros"]


def _byte_pointer(context: Any, builder: Any, signature: Any, args: Any) -> Any:
    """LLVM code of an intrinsic (arr, idx): the address of arr[idx], as a byte pointer."""
    aryty = signature.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
    return builder.bitcast(ptr, ir.IntType(8).as_pointer())


@intrinsic
def _prefetch_intrinsic(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Hint the CPU to bring arr[idx] into the cache (LLVM's prefetch: read, keep)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        i8p = _byte_pointer(context, builder, signature, args)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _nonzero_mask64_intrinsic(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Bit i set where arr[idx + i] != 0, for i < 64 (a byte array; the caller keeps
    idx + 64 within it): one 64-byte vector compare (AVX-512: a mask register)."""
    sig = types.uint64(arr, idx)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        vty = ir.VectorType(ir.IntType(8), 64)
        ptr = _byte_pointer(context, builder, signature, args)
        vec = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=1)
        nz = builder.icmp_unsigned("!=", vec, ir.Constant(vty, None))
        return builder.bitcast(nz, ir.IntType(64))

    return sig, codegen


@intrinsic
def _bit0_mask64_intrinsic(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Bit i set where bit 0 of arr[idx + i] is, for i < 64 (a byte array; the caller
    keeps idx + 64 within it): one 64-byte vector AND and compare."""
    sig = types.uint64(arr, idx)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        vty = ir.VectorType(ir.IntType(8), 64)
        ptr = _byte_pointer(context, builder, signature, args)
        vec = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=1)
        low = builder.and_(vec, ir.Constant(vty, [1] * 64))
        nz = builder.icmp_unsigned("!=", low, ir.Constant(vty, None))
        return builder.bitcast(nz, ir.IntType(64))

    return sig, codegen


prefetch: Any = _prefetch_intrinsic
bit0_mask64: Any = _bit0_mask64_intrinsic
nonzero_mask64: Any = _nonzero_mask64_intrinsic
trailing_zeros: Any = _trailing_zeros


@njit(cache=True, inline="always")
def prefetch_range(arr, k0, k1, step):
    """Prefetch arr[k0:k1], one element per cache line (step elements apart)."""
    if k1 > k0:
        for k in range(k0, k1, step):
            prefetch(arr, k)
        prefetch(arr, k1 - 1)

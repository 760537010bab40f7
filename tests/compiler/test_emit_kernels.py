"""Emit's fan-out lists against SciPy's CSR -> CSC conversion."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from compiler.passes.emit import connection_arrays
from compiler.passes.emit_kernels import fan_out_lists
from neurochip.core import fixedpoint as fx


def _random_csr(rng: np.random.Generator, trial: int) -> sp.csr_matrix:
    n_post, n_pre = int(rng.integers(1, 300)), int(rng.integers(1, 300))
    W = sp.random(n_post, n_pre, density=float(rng.uniform(0.0, 0.3)), random_state=trial,
                  format="csr", data_rvs=lambda k: rng.integers(-64, 64, k) * 2)
    return W.astype(np.int64)


def test_fan_out_lists_equal_a_csc_conversion() -> None:
    rng = np.random.default_rng(5)
    for trial in range(30):
        W = _random_csr(rng, trial)
        n_pre = W.shape[1]
        w = rng.integers(0, 256, W.nnz).astype(np.uint8)
        d = rng.integers(0, 63, W.nnz).astype(np.uint8) if trial % 2 else None
        ptr, post, wt, dt = fan_out_lists(W.indptr, W.indices, n_pre, w, d)
        num = sp.csr_matrix((np.arange(W.nnz), W.indices, W.indptr), shape=W.shape).tocsc()
        np.testing.assert_array_equal(ptr, num.indptr)
        np.testing.assert_array_equal(post, num.indices)
        np.testing.assert_array_equal(wt, w[num.data])
        assert post.dtype == np.uint32 and wt.dtype == np.uint8 and ptr.dtype == np.int64
        if d is None:
            assert dt is None
        else:
            assert dt is not None
            np.testing.assert_array_equal(dt, d[num.data])
    with pytest.raises(ValueError, match="synapses"):
        fan_out_lists(np.array([0, 2]), np.array([0, 1]), 2, np.zeros(3, np.uint8), None)


@pytest.mark.parametrize("sign_mode", fx.SIGN_MODES)
def test_sparse_connection_arrays_are_the_encoded_weights_per_pre(sign_mode: str) -> None:
    rng = np.random.default_rng(6)
    W = _random_csr(rng, 1)
    if sign_mode == fx.SIGN_EXCITATORY:
        W.data = np.abs(W.data)
    elif sign_mode == fx.SIGN_INHIBITORY:
        W.data = -np.abs(W.data)
    delays = rng.integers(0, 7, W.nnz)
    out, decode, shift = connection_arrays(W, delays, "sparse", sign_mode)
    C = sp.csr_matrix((np.arange(W.nnz), W.indices, W.indptr), shape=W.shape).tocsc()
    b, decode_w, shift_w = fx.encode_weight_bytes(W.data[C.data], sign_mode)
    assert (decode, shift) == (decode_w, shift_w)
    np.testing.assert_array_equal(out["ptr"], C.indptr)
    np.testing.assert_array_equal(out["post"], C.indices)
    np.testing.assert_array_equal(out["w"], b)
    np.testing.assert_array_equal(out["delay"], delays[C.data].astype(np.uint8))

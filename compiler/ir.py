"""The compiler's intermediate representation: a graph of populations and projections.

Small frozen dataclasses, validated when built (a malformed node raises
:class:`IRError`, never an ``assert``). A :class:`Graph` is a ``nodes`` dict (inputs and
neuron populations) plus an ``edges`` list (projections), the names of its outputs and
free metadata. The IR is *discrete*: time constants and ``dt`` are gone (the frontends
turn them into decays), and every float model in neurochip runs exactly this update, the
chip's order of operations (docs/conventions.md section 1), per neuron and step n::

    I[n] = alpha * I[n-1] + sum_c W_c @ S_c[n-1-d_c]        # current first, one-step latency
    U[n] = beta  * U[n-1] + I[n] + b                          # the membrane uses the NEW current
    S[n] = U[n] > theta                                       # strict; never for readouts
    reset "zero": U[n] <- 0 where S[n];  "subtract": U[n] <- U[n] - theta where S[n]

with ``I = U = 0`` at the start. ``S_c`` are the spikes of projection c's presynaptic node
(host inputs included) and ``d_c`` its extra delay in steps.

After the quantize pass every population carries :class:`NeuronRegisters` and every
projection integer weights, a weight exponent and a sign mode; :data:`REGISTER_TABLE` is
the one mapping from the descriptive names above to the chip's registers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from neurochip.core import fixedpoint as fx
from neurochip.core.errors import ConfigError

__all__ = [
    "REGISTER_TABLE",
    "Conv",
    "Dense",
    "Graph",
    "IRError",
    "Input",
    "NeuronRegisters",
    "Neurons",
    "Node",
    "Projection",
    "Sparse",
    "Synapses",
    "format_graph",
    "layered_graph",
    "pool",
    "verify",
]

Shape = tuple[int, ...]
ResetMode = Literal["zero", "subtract"]
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")

#: Descriptive (float) name -> chip register, and the relation between them (lambda is the
#: population's scale, chip voltage units per float unit). The quantizer implements it;
#: docs/conventions.md section 2 explains it.
REGISTER_TABLE: tuple[tuple[str, str, str], ...] = (
    ("alpha", "du", "alpha = (4095 - du) / 4096   (du = -1: alpha = 1)"),
    ("beta", "dv", "beta = (4096 - dv) / 4096"),
    ("threshold", "vth", "vth * 2**6 = lambda * threshold"),
    ("weights", "weights, weight_exp", "w * 2**weight_exp * 2**6 = lambda * W"),
    ("bias", "bias_mant, bias_exp", "bias_mant * 2**bias_exp = lambda * bias"),
    ("reset", "reset", "same ('zero' / 'subtract')"),
    ("spiking", "spiking", "same (False: a non-spiking readout, v is probed)"),
    ("delay", "delay", "same (extra steps beyond the one-step latency)"),
)


class IRError(ConfigError):
    """An IR node, projection or graph is malformed; names the node and field."""


def _err(where: str, fld: str | None, msg: str, **kw: Any) -> IRError:
    return IRError(msg, where=where, field=fld, **kw)


def _frozen_array(x: ArrayLike, dtype: Any) -> NDArray[Any]:
    a = np.array(x, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


def _shape(value: Any, where: str, fld: str = "shape") -> Shape:
    try:
        shp = tuple(int(s) for s in np.atleast_1d(np.asarray(value)).tolist())
    except (TypeError, ValueError):
        raise _err(where, fld, f"must be a tuple of positive ints, got {value!r}") from None
    if not shp or any(s <= 0 for s in shp):
        raise _err(where, fld, f"must be a non-empty tuple of positive ints, got {value!r}")
    return shp


def _per_neuron(value: ArrayLike, n: int, where: str, fld: str) -> NDArray[np.float64]:
    a = np.asarray(value, dtype=np.float64)
    if a.size == 1:
        a = np.full(n, float(a.reshape(-1)[0]))
    a = a.reshape(-1) if a.size == n else a
    if a.shape != (n,):
        raise _err(where, fld, f"must be a scalar or hold {n} values (one per neuron), got "
                   f"shape {np.asarray(value).shape}")
    if not np.all(np.isfinite(a)):
        raise _err(where, fld, "must be finite")
    return _frozen_array(a, np.float64)


# --------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Input:
    """Host spike source: ``S[n]`` in {0, 1}^shape, given by the caller at every step.

    ``shape`` is the logical layout ((n,) or channels-first (C, H, W)); on the chip the
    elements are numbered in C order.
    """

    shape: Shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _shape(self.shape, "input"))

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True, eq=False)
class NeuronRegisters:
    """Chip registers of a quantized population (set by the quantize pass).

    ``scale`` is lambda, chip voltage units per float unit (v ~ lambda U, u ~ lambda I).
    """

    scale: float
    du: int
    dv: int
    vth: int
    bias_mant: NDArray[np.int64]
    bias_exp: NDArray[np.int64]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise _err("registers", "scale", f"must be finite and > 0, got {self.scale!r}")
        object.__setattr__(self, "bias_mant", _frozen_array(self.bias_mant, np.int64))
        object.__setattr__(self, "bias_exp", _frozen_array(self.bias_exp, np.int64))


@dataclass(frozen=True, eq=False)
class Neurons:
    """A population of current-based LIF neurons (or non-spiking readouts).

    Per neuron and step (the chip's order; see the module docstring)::

        I[n] = alpha * I[n-1] + (synaptic input, one step late)
        U[n] = beta * U[n-1] + I[n] + bias
        S[n] = U[n] > threshold;  reset "zero": U <- 0,  "subtract": U <- U - threshold

    alpha: synaptic current retention in [0, 1] (0: no synaptic memory, 1: no decay).
    beta: membrane retention in [0, 1] (1: integrate-and-fire). Both are per population
    (the chip has one du and one dv per population).
    threshold: per neuron (or scalar), >= 0; must be None for readouts.
    bias: constant membrane input per neuron (not filtered by the synapse).
    spiking: False makes a non-spiking readout (a leaky integrator whose U is observed).
    """

    shape: Shape
    alpha: float
    beta: float
    threshold: NDArray[np.float64] | None
    bias: NDArray[np.float64]
    reset: ResetMode = "subtract"
    spiking: bool = True
    registers: NeuronRegisters | None = None

    def __init__(self, shape: Shape | int, *, alpha: float, beta: float,
                 threshold: ArrayLike | None = None, bias: ArrayLike = 0.0,
                 reset: ResetMode = "subtract", spiking: bool = True,
                 registers: NeuronRegisters | None = None) -> None:
        where = "population"
        shp = _shape(shape, where)
        n = math.prod(shp)
        for name, x in (("alpha", alpha), ("beta", beta)):
            if not (isinstance(x, (int, float, np.integer, np.floating))
                    and math.isfinite(float(x)) and 0.0 <= float(x) <= 1.0):
                raise _err(where, name, f"must be a number in [0, 1], got {x!r}")
        if reset not in ("zero", "subtract"):
            raise _err(where, "reset", f"must be 'zero' or 'subtract', got {reset!r}")
        th: NDArray[np.float64] | None
        if spiking:
            if threshold is None:
                raise _err(where, "threshold", "a spiking population needs a threshold")
            th = _per_neuron(threshold, n, where, "threshold")
            if np.any(th < 0):
                raise _err(where, "threshold", f"must be >= 0 (the chip's threshold is "
                           f"unsigned), got min {float(th.min())!r}")
        else:
            if threshold is not None:
                raise _err(where, "threshold", "a non-spiking readout has no threshold; "
                           "pass threshold=None")
            th = None
        object.__setattr__(self, "shape", shp)
        object.__setattr__(self, "alpha", float(alpha))
        object.__setattr__(self, "beta", float(beta))
        object.__setattr__(self, "threshold", th)
        object.__setattr__(self, "bias", _per_neuron(bias, n, where, "bias"))
        object.__setattr__(self, "reset", reset)
        object.__setattr__(self, "spiking", bool(spiking))
        if registers is not None and not isinstance(registers, NeuronRegisters):
            raise _err(where, "registers", f"must be NeuronRegisters, got {type(registers)}")
        if registers is not None and registers.bias_mant.shape != (n,):
            raise _err(where, "registers", f"bias registers have shape "
                       f"{registers.bias_mant.shape}, the population has {n} neurons")
        object.__setattr__(self, "registers", registers)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def with_(self, **changes: Any) -> Neurons:
        """A copy with some fields changed (validated again)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(changes)
        shape = kw.pop("shape")
        return Neurons(shape, **kw)


Node = Input | Neurons


# --------------------------------------------------------------------------------------
# Synapses (what a projection does between its two populations)
# --------------------------------------------------------------------------------------


def _check_values(a: NDArray[Any], where: str) -> None:
    if a.dtype.kind not in "iuf":
        raise _err(where, "weight", f"must be numeric, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise _err(where, "weight", "must be finite")


@dataclass(frozen=True, eq=False)
class Dense:
    """All-to-all weights ``weight`` of shape (post, pre): ``input = W @ S``."""

    weight: NDArray[Any]

    def __post_init__(self) -> None:
        a = np.asarray(self.weight)
        if a.ndim != 2:
            raise _err("dense synapses", "weight", f"must be 2-D (post, pre), got {a.shape}")
        _check_values(a, "dense synapses")
        object.__setattr__(self, "weight", _frozen_array(a, a.dtype))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.weight.shape[0]), int(self.weight.shape[1]))

    @property
    def values(self) -> NDArray[Any]:
        """The distinct stored weights (what quantization acts on)."""
        return self.weight

    def to_csr(self) -> sp.csr_matrix:
        return sp.csr_matrix(self.weight)

    def with_values(self, values: NDArray[Any]) -> Dense:
        return Dense(np.asarray(values).reshape(self.weight.shape))


@dataclass(frozen=True, eq=False)
class Sparse:
    """Weights on listed (post, pre) pairs: a scipy CSR matrix, explicit entries = synapses."""

    weight: sp.csr_matrix

    def __post_init__(self) -> None:
        if not sp.issparse(self.weight):
            raise _err("sparse synapses", "weight", "must be a scipy.sparse matrix")
        m = sp.csr_matrix(self.weight, copy=True)
        m.sum_duplicates()
        m.sort_indices()
        _check_values(np.asarray(m.data), "sparse synapses")
        object.__setattr__(self, "weight", m)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.weight.shape[0]), int(self.weight.shape[1]))

    @property
    def values(self) -> NDArray[Any]:
        return np.asarray(self.weight.data)

    def to_csr(self) -> sp.csr_matrix:
        return self.weight

    def with_values(self, values: NDArray[Any]) -> Sparse:
        m = self.weight
        return Sparse(sp.csr_matrix((np.asarray(values).reshape(-1), m.indices, m.indptr),
                                    shape=m.shape))


def _pair(v: Any, nd: int, where: str, fld: str, lo: int) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).astype(np.int64).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, nd)
    if a.size != nd or np.any(a < lo):
        raise _err(where, fld, f"must be an int >= {lo} or {nd} of them, got {v!r}")
    return tuple(int(x) for x in a)


@dataclass(frozen=True, eq=False)
class Conv:
    """Convolution (PyTorch cross-correlation) between channels-first layouts, 1-D or 2-D.

    ``weight`` (C_out, C_in/groups, *kernel); ``in_shape`` (C_in, *spatial); ``stride``,
    ``dilation`` per spatial dim; ``padding`` as (before, after) zero padding per spatial
    dim; ``groups`` divides C_in and C_out. Output element (o, *y) receives
    ``sum_{c, k} weight[o, c, k] * S[g*C_in/groups + c, y*stride - pad + k*dilation]``.
    On the chip every output neuron gets its own synapses sharing the kernel's values.
    """

    weight: NDArray[Any]
    in_shape: Shape
    stride: tuple[int, ...] = (1,)
    padding: tuple[tuple[int, int], ...] = ((0, 0),)
    dilation: tuple[int, ...] = (1,)
    groups: int = 1

    def __post_init__(self) -> None:
        where = "conv synapses"
        w = np.asarray(self.weight)
        _check_values(w, where)
        if w.ndim not in (3, 4):
            raise _err(where, "weight", f"must be (C_out, C_in/groups, *kernel) with 1 or 2 "
                       f"spatial dims, got shape {w.shape}")
        nd = w.ndim - 2
        ins = _shape(self.in_shape, where, "in_shape")
        if len(ins) != nd + 1:
            raise _err(where, "in_shape", f"must be (C_in, *spatial) with {nd} spatial dims, "
                       f"got {ins}")
        g = int(self.groups)
        if g < 1 or ins[0] % g or w.shape[0] % g or ins[0] // g != w.shape[1]:
            raise _err(where, "groups", f"groups={g} does not fit C_in={ins[0]}, "
                       f"C_out={w.shape[0]}, weight C_in/groups={w.shape[1]}")
        stride = _pair(self.stride, nd, where, "stride", 1)
        dil = _pair(self.dilation, nd, where, "dilation", 1)
        pad_in = np.asarray(self.padding, dtype=np.int64)
        if pad_in.size == 1:
            pad_in = np.full((nd, 2), int(pad_in.reshape(-1)[0]))
        elif pad_in.shape == (nd,):
            pad_in = np.stack([pad_in, pad_in], axis=1)
        if pad_in.shape != (nd, 2) or np.any(pad_in < 0):
            raise _err(where, "padding", f"must be (before, after) >= 0 per spatial dim, got "
                       f"{self.padding!r}")
        pad = tuple((int(a), int(b)) for a, b in pad_in)
        object.__setattr__(self, "weight", _frozen_array(w, w.dtype))
        object.__setattr__(self, "in_shape", ins)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "dilation", dil)
        object.__setattr__(self, "padding", pad)
        object.__setattr__(self, "groups", g)
        out = self.out_shape
        if any(s <= 0 for s in out):
            raise _err(where, "in_shape", f"input {ins} is too small for the kernel "
                       f"{w.shape[2:]} (output would be {out})")

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.weight.shape[2:])

    @property
    def out_shape(self) -> Shape:
        sp_out = []
        for n, k, s, d, (pa, pb) in zip(self.in_shape[1:], self.kernel, self.stride,
                                         self.dilation, self.padding):
            sp_out.append((n + pa + pb - d * (k - 1) - 1) // s + 1)
        return (int(self.weight.shape[0]), *sp_out)

    @property
    def shape(self) -> tuple[int, int]:
        return (math.prod(self.out_shape), math.prod(self.in_shape))

    @property
    def values(self) -> NDArray[Any]:
        return self.weight

    def with_values(self, values: NDArray[Any]) -> Conv:
        return replace(self, weight=np.asarray(values).reshape(self.weight.shape))

    def coords(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(post, pre, kernel index) of every synapse (kernel index into weight.ravel())."""
        w = self.weight
        c_out, c_in_g = int(w.shape[0]), int(w.shape[1])
        g = self.groups
        out_sp = self.out_shape[1:]
        in_sp = self.in_shape[1:]
        nd = len(out_sp)
        # Every combination of (o, c, *k, *y), then drop those that fall into the padding.
        ks = [np.arange(k) for k in self.kernel]
        ys = [np.arange(n) for n in out_sp]
        kgrid = np.stack([a.reshape(-1) for a in np.meshgrid(*ks, indexing="ij")])  # (nd, K)
        ygrid = np.stack([a.reshape(-1) for a in np.meshgrid(*ys, indexing="ij")])  # (nd, Y)
        pos = (ygrid[:, None, :] * np.asarray(self.stride)[:, None, None]
               - np.asarray([p[0] for p in self.padding])[:, None, None]
               + kgrid[:, :, None] * np.asarray(self.dilation)[:, None, None])  # (nd, K, Y)
        ok = np.all((pos >= 0) & (pos < np.asarray(in_sp)[:, None, None]), axis=0)  # (K, Y)
        k_idx, y_idx = np.nonzero(ok)
        in_flat = np.zeros(k_idx.size, np.int64)
        out_flat = np.zeros(k_idx.size, np.int64)
        for d in range(nd):
            in_flat = in_flat * in_sp[d] + pos[d, k_idx, y_idx]
            out_flat = out_flat * out_sp[d] + ygrid[d, y_idx]
        n_in_sp = math.prod(in_sp)
        n_out_sp = math.prod(out_sp)
        K = kgrid.shape[1]
        o = np.arange(c_out, dtype=np.int64)
        c = np.arange(c_in_g, dtype=np.int64)
        grp = o // (c_out // g)
        # post = o * n_out_sp + out_flat ; pre = (grp*c_in_g + c) * n_in_sp + in_flat
        post = (o[:, None, None] * n_out_sp + out_flat[None, None, :])
        pre = ((grp[:, None] * c_in_g + c[None, :])[:, :, None] * n_in_sp
               + in_flat[None, None, :])
        kidx = ((o[:, None] * c_in_g + c[None, :])[:, :, None] * K + k_idx[None, None, :])
        shape3 = (c_out, c_in_g, k_idx.size)
        return (np.broadcast_to(post, shape3).reshape(-1),
                np.broadcast_to(pre, shape3).reshape(-1),
                np.broadcast_to(kidx, shape3).reshape(-1))

    def to_csr(self) -> sp.csr_matrix:
        post, pre, kidx = self.coords()
        vals = self.weight.reshape(-1)[kidx]
        m = sp.csr_matrix((vals, (post, pre)), shape=self.shape)
        m.sum_duplicates()
        m.sort_indices()
        return m

    def row_abs_sum(self) -> NDArray[np.float64]:
        post, _, kidx = self.coords()
        w = np.abs(self.weight.reshape(-1)[kidx]).astype(np.float64)
        return np.asarray(np.bincount(post, weights=w, minlength=self.shape[0]), np.float64)


Synapses = Dense | Sparse | Conv


def pool(kind: Literal["sum", "avg"], in_shape: Shape, kernel: Sequence[int],
         stride: Sequence[int] | None = None, padding: Any = 0) -> Conv:
    """Sum or average pooling as a depthwise convolution with a constant kernel.

    Average pooling divides by the kernel area, padding included (PyTorch's default
    ``count_include_pad=True``).
    """
    ins = _shape(in_shape, "pool", "in_shape")
    nd = len(ins) - 1
    k = _pair(kernel, nd, "pool", "kernel", 1)
    s = _pair(stride if stride is not None else k, nd, "pool", "stride", 1)
    value = 1.0 if kind == "sum" else 1.0 / math.prod(k)
    if kind not in ("sum", "avg"):
        raise _err("pool", "kind", f"must be 'sum' or 'avg', got {kind!r}")
    w = np.full((ins[0], 1, *k), value)
    return Conv(w, ins, stride=s, padding=padding, groups=ins[0])


# --------------------------------------------------------------------------------------
# Projections and the graph
# --------------------------------------------------------------------------------------


def _delay_array(v: Any, n: int, where: str, fld: str) -> NDArray[np.int64] | None:
    if v is None:
        return None
    a = np.asarray(v)
    if a.dtype.kind == "f" and not np.all(a == np.round(a)):
        raise _err(where, fld, "delays must be whole steps")
    a = a.astype(np.int64).reshape(-1)
    if a.shape != (n,):
        raise _err(where, fld, f"must hold {n} delays, got shape {np.asarray(v).shape}")
    if np.any(a < 0):
        raise _err(where, fld, f"delays must be >= 0, got min {int(a.min())}")
    return _frozen_array(a, np.int64)


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from node ``pre`` to population ``post``, delivered ``1 + delay`` steps late.

    The delay of synapse (i, j) is ``delay + delay_pre[j] + delay_post[i]`` (the optional
    arrays come from delay nodes before or after the weights). After quantization
    ``synapses`` holds integers and ``weight_exp``, ``sign_mode`` and ``num_weight_bits``
    are set: the chip adds ``floor_shift(sum_j w_ij S_j, weight_exp) * 2**6`` to u.
    """

    name: str
    pre: str
    post: str
    synapses: Synapses
    delay: int = 0
    delay_pre: NDArray[np.int64] | None = None
    delay_post: NDArray[np.int64] | None = None
    weight_exp: int | None = None
    sign_mode: str | None = None
    num_weight_bits: int | None = None

    def __post_init__(self) -> None:
        where = f"projection '{self.name}'"
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise _err(where, "name", "use letters, digits, '_', '.', ':' or '-'")
        if not isinstance(self.synapses, (Dense, Sparse, Conv)):
            raise _err(where, "synapses", f"must be Dense, Sparse or Conv, got "
                       f"{type(self.synapses).__name__}")
        if isinstance(self.delay, bool) or not isinstance(self.delay, (int, np.integer)) \
                or self.delay < 0:
            raise _err(where, "delay", f"must be an int >= 0, got {self.delay!r}")
        object.__setattr__(self, "delay", int(self.delay))
        n_post, n_pre = self.synapses.shape
        object.__setattr__(self, "delay_pre", _delay_array(self.delay_pre, n_pre, where,
                                                           "delay_pre"))
        object.__setattr__(self, "delay_post", _delay_array(self.delay_post, n_post, where,
                                                            "delay_post"))
        q = (self.weight_exp, self.sign_mode, self.num_weight_bits)
        if any(x is not None for x in q) and any(x is None for x in q):
            raise _err(where, "weight_exp", "weight_exp, sign_mode and num_weight_bits are set "
                       "together (by the quantize pass)")
        if self.sign_mode is not None and self.sign_mode not in fx.SIGN_MODES:
            raise _err(where, "sign_mode", f"must be one of {fx.SIGN_MODES}")

    @property
    def quantized(self) -> bool:
        return self.weight_exp is not None

    @property
    def max_delay(self) -> int:
        d = self.delay
        if self.delay_pre is not None and self.delay_pre.size:
            d += int(self.delay_pre.max())
        if self.delay_post is not None and self.delay_post.size:
            d += int(self.delay_post.max())
        return d

    @property
    def has_delays(self) -> bool:
        """True when synapses differ in delay."""
        return any(a is not None and a.size and a.min() != a.max()
                   for a in (self.delay_pre, self.delay_post))

    def synapse_delays(self, post: NDArray[np.int64], pre: NDArray[np.int64]
                       ) -> NDArray[np.int64]:
        """Delay of each listed synapse (post[k], pre[k])."""
        d = np.full(post.shape, self.delay, np.int64)
        if self.delay_pre is not None:
            d = d + self.delay_pre[pre]
        if self.delay_post is not None:
            d = d + self.delay_post[post]
        return d


@dataclass(frozen=True, eq=False)
class Graph:
    """Nodes (inputs and populations, by name), projections, outputs and metadata.

    ``outputs`` maps an output name to the population it reads: its spikes when the
    population spikes, its voltage U (``v`` on the chip) for a non-spiking readout.
    Construction checks the structure (names, endpoints, sizes); :func:`verify` checks
    everything else.
    """

    nodes: Mapping[str, Node]
    edges: tuple[Projection, ...] = ()
    outputs: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        nodes = dict(self.nodes)
        edges = tuple(self.edges)
        outputs = dict(self.outputs)
        for name, node in nodes.items():
            where = f"node '{name}'"
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise _err(where, "name", "use letters, digits, '_', '.', ':' or '-'")
            if not isinstance(node, (Input, Neurons)):
                raise _err(where, None, f"must be an Input or Neurons, got "
                           f"{type(node).__name__}")
        seen: set[str] = set()
        for e in edges:
            where = f"projection '{getattr(e, 'name', e)}'"
            if not isinstance(e, Projection):
                raise _err(where, None, f"edges must be Projections, got {type(e).__name__}")
            if e.name in nodes or e.name in seen:
                raise _err(where, "name", "is already used by a node or another projection")
            seen.add(e.name)
            if e.pre not in nodes:
                raise _err(where, "pre", f"no node named {e.pre!r}")
            if e.post not in nodes:
                raise _err(where, "post", f"no node named {e.post!r}")
            post, pre = nodes[e.post], nodes[e.pre]
            if not isinstance(post, Neurons):
                raise _err(where, "post", f"'{e.post}' is an input; only populations receive "
                           "synapses")
            if e.synapses.shape != (post.size, pre.size):
                raise _err(where, "synapses", f"shape (post, pre) = {e.synapses.shape}, but "
                           f"'{e.post}' has {post.size} and '{e.pre}' has {pre.size} neurons")
            if isinstance(e.synapses, Conv) and math.prod(e.synapses.in_shape) != pre.size:
                raise _err(where, "synapses", "conv input shape does not match the source")
        for oname, src in outputs.items():
            if not isinstance(oname, str) or not oname:
                raise _err("outputs", None, f"output names must be non-empty strings, "
                           f"got {oname!r}")
            if src not in nodes or not isinstance(nodes[src], Neurons):
                raise _err(f"output '{oname}'", "source", f"{src!r} is not a population")
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ------------------------------------------------------------------ access
    @property
    def inputs(self) -> dict[str, Input]:
        return {k: v for k, v in self.nodes.items() if isinstance(v, Input)}

    @property
    def populations(self) -> dict[str, Neurons]:
        return {k: v for k, v in self.nodes.items() if isinstance(v, Neurons)}

    @property
    def quantized(self) -> bool:
        """True when every population and projection carries registers."""
        pops = self.populations.values()
        return bool(pops) and all(p.registers is not None for p in pops) and all(
            e.quantized for e in self.edges)

    def incoming(self, name: str) -> list[Projection]:
        return [e for e in self.edges if e.post == name]

    def outgoing(self, name: str) -> list[Projection]:
        return [e for e in self.edges if e.pre == name]

    def edge(self, name: str) -> Projection:
        for e in self.edges:
            if e.name == name:
                return e
        raise KeyError(f"no projection named {name!r}")

    def recurrent_edges(self) -> list[Projection]:
        """Projections that close a cycle (back edges of a depth-first walk from the inputs)."""
        order: dict[str, int] = {}
        state: dict[str, int] = {}
        back: set[str] = set()
        out: dict[str, list[Projection]] = {k: [] for k in self.nodes}
        for e in self.edges:
            out[e.pre].append(e)

        def walk(start: str) -> None:
            stack: list[tuple[str, Iterator[Projection]]] = [(start, iter(out[start]))]
            state[start] = 1
            order[start] = len(order)
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                    continue
                st = state.get(nxt.post, 0)
                if st == 1:
                    back.add(nxt.name)
                elif st == 0:
                    state[nxt.post] = 1
                    order[nxt.post] = len(order)
                    stack.append((nxt.post, iter(out[nxt.post])))

        roots = list(self.inputs) + [k for k in self.nodes if k not in self.inputs]
        for r in roots:
            if state.get(r, 0) == 0:
                walk(r)
        return [e for e in self.edges if e.name in back]

    def replace_nodes(self, **changes: Node) -> Graph:
        nodes = dict(self.nodes)
        nodes.update(changes)
        return replace(self, nodes=nodes)

    def dump(self) -> str:
        return format_graph(self)


def layered_graph(*, n_in: int, layers: Sequence[Mapping[str, Any]], input_name: str = "in",
                  output_name: str = "output", metadata: Mapping[str, Any] | None = None
                  ) -> Graph:
    """A layered network: input -> dense -> population (-> dense -> population ...).

    Each layer is a mapping with ``name``, ``weight`` (post, pre), ``alpha``, ``beta``,
    ``threshold`` (None makes a non-spiking readout) and optionally ``bias`` (membrane bias
    per neuron), ``recurrent`` (post, post) weights, ``reset`` ("subtract" by default).
    Projections are named ``<layer>.w`` and ``<layer>.w_rec``; the last layer is the graph's
    output ``output_name``.
    """
    if not layers:
        raise _err("layered_graph", "layers", "needs at least one layer")
    nodes: dict[str, Node] = {input_name: Input((int(n_in),))}
    edges: list[Projection] = []
    prev = input_name
    for i, spec in enumerate(layers):
        spec = dict(spec)
        name = spec.get("name", f"layer{i}")
        unknown = set(spec) - {"name", "weight", "alpha", "beta", "threshold", "bias",
                               "recurrent", "reset"}
        if unknown:
            raise _err(f"layer '{name}'", None, f"unknown keys {sorted(unknown)}")
        W = np.asarray(spec["weight"], np.float64)
        if W.ndim != 2:
            raise _err(f"layer '{name}'", "weight", f"must be 2-D (post, pre), got {W.shape}")
        th = spec.get("threshold")
        nodes[name] = Neurons((W.shape[0],), alpha=spec["alpha"], beta=spec["beta"],
                              threshold=th, bias=spec.get("bias", 0.0),
                              reset=spec.get("reset", "subtract"), spiking=th is not None)
        edges.append(Projection(f"{name}.w", prev, name, Dense(W)))
        if spec.get("recurrent") is not None:
            edges.append(Projection(f"{name}.w_rec", name, name,
                                    Dense(np.asarray(spec["recurrent"], np.float64))))
        prev = name
    return Graph(nodes, tuple(edges), {output_name: prev}, dict(metadata or {}))


# --------------------------------------------------------------------------------------
# Verification between passes
# --------------------------------------------------------------------------------------


def verify(graph: Graph, hw: Any = None) -> Graph:
    """Check the invariants every pass must keep; return the graph unchanged.

    * structure (checked again: a pass may have built the graph with ``replace``);
    * no projection leaves a non-spiking readout (it never emits spikes);
    * quantization is all-or-nothing: either no population/projection carries registers
      or all do, with integer weights;
    * with ``hw`` (a :class:`~neurochip.core.hw.HardwareSpec`): every register fits the chip's
      formats, weights are values the chip keeps unchanged, delays <= the chip's maximum.
    """
    Graph(graph.nodes, graph.edges, graph.outputs, graph.metadata)
    pops = graph.populations
    for e in graph.edges:
        pre = graph.nodes[e.pre]
        if isinstance(pre, Neurons) and not pre.spiking:
            raise _err(f"projection '{e.name}'", "pre", f"'{e.pre}' is a non-spiking readout; "
                       "it emits no spikes to project")
    n_q = sum(p.registers is not None for p in pops.values()) + sum(
        e.quantized for e in graph.edges)
    total = len(pops) + len(graph.edges)
    if 0 < n_q < total:
        missing = [k for k, p in pops.items() if p.registers is None] + [
            e.name for e in graph.edges if not e.quantized]
        raise _err("graph", "registers", f"partly quantized: {missing[:5]} lack registers")
    if n_q and n_q == total:
        for e in graph.edges:
            v = np.asarray(e.synapses.values)
            if v.dtype.kind not in "iu":
                raise _err(f"projection '{e.name}'", "synapses",
                           f"quantized weights must be integers, got {v.dtype}")
    if hw is not None:
        _verify_hw(graph, hw)
    return graph


def _verify_hw(graph: Graph, hw: Any) -> None:
    f = hw.formats
    for e in graph.edges:
        where = f"projection '{e.name}'"
        if e.max_delay > f.max_delay:
            raise _err(where, "delay", f"{e.max_delay} steps exceed the chip's maximum "
                       f"{f.max_delay}", value=e.max_delay, limit=f.max_delay)
        if not e.quantized:
            continue
        assert e.weight_exp is not None and e.sign_mode is not None  # narrowed for mypy
        lo, hi = f.weight_exp_range
        if not lo <= e.weight_exp <= hi:
            raise _err(where, "weight_exp", f"{e.weight_exp} outside [{lo}, {hi}]",
                       value=e.weight_exp, limit=(lo, hi))
        nwb = int(e.num_weight_bits or f.weight_bits)
        if not 1 <= nwb <= f.weight_bits:
            raise _err(where, "num_weight_bits", f"{nwb} outside [1, {f.weight_bits}]")
        w = np.asarray(e.synapses.values, np.int64).reshape(-1)
        if w.size:
            eff = fx.effective_weights(w, e.sign_mode, nwb, f.weight_bits)
            bad = np.flatnonzero(eff != w)
            if bad.size:
                raise _err(where, "weights", f"{bad.size} weights are not kept unchanged by the "
                           f"chip (e.g. {int(w[bad[0]])} -> {int(eff[bad[0]])}, "
                           f"{e.sign_mode}, {nwb}-bit)")
    for name, p in graph.populations.items():
        r = p.registers
        if r is None:
            continue
        where = f"population '{name}'"
        for fld, val, (lo, hi) in (("du", r.du, f.du_range), ("dv", r.dv, f.dv_range),
                                   ("vth", r.vth, f.vth_range)):
            if not lo <= val <= hi:
                raise _err(where, fld, f"{val} outside [{lo}, {hi}]", value=val, limit=(lo, hi))
        for fld, arr, (lo, hi) in (("bias_mant", r.bias_mant, f.bias_mant_range),
                                   ("bias_exp", r.bias_exp, f.bias_exp_range)):
            if arr.size and (arr.min() < lo or arr.max() > hi):
                raise _err(where, fld, f"values outside [{lo}, {hi}]", limit=(lo, hi))


# --------------------------------------------------------------------------------------
# Text dump
# --------------------------------------------------------------------------------------


def _arr_summary(a: NDArray[Any] | None) -> str:
    if a is None:
        return "-"
    if a.size == 0:
        return "[]"
    if np.all(a == a.reshape(-1)[0]):
        return f"{a.reshape(-1)[0]:.6g}"
    return f"[{float(a.min()):.4g}..{float(a.max()):.4g}]"


def format_graph(graph: Graph) -> str:
    """A readable text dump of the graph (what ``dump_ir`` prints)."""
    stage = "quantized" if graph.quantized else "float"
    lines = [f"graph ({stage}): {len(graph.inputs)} inputs, {len(graph.populations)} "
             f"populations, {len(graph.edges)} projections"]
    for name, node in graph.nodes.items():
        if isinstance(node, Input):
            lines.append(f"  input   {name} shape={node.shape}")
            continue
        kind = "lif" if node.spiking else "readout"
        s = (f"  {kind:<8}{name} shape={node.shape} alpha={node.alpha:.6g} "
             f"beta={node.beta:.6g} threshold={_arr_summary(node.threshold)} "
             f"bias={_arr_summary(node.bias)} reset={node.reset}")
        r = node.registers
        if r is not None:
            s += (f" | scale={r.scale:.6g} du={r.du} dv={r.dv} vth={r.vth} "
                  f"bias_mant={_arr_summary(r.bias_mant)} bias_exp={_arr_summary(r.bias_exp)}")
        lines.append(s)
    rec = {e.name for e in graph.recurrent_edges()}
    for e in graph.edges:
        syn = e.synapses
        kind = type(syn).__name__.lower()
        extra = ""
        if isinstance(syn, Conv):
            extra = (f" kernel={syn.kernel} stride={syn.stride} pad={syn.padding} "
                     f"dil={syn.dilation} groups={syn.groups}")
        s = (f"  proj    {e.name}: {e.pre} -> {e.post} {kind}{extra} shape={syn.shape} "
             f"w={_arr_summary(np.asarray(syn.values))} delay={e.delay}"
             + ("+per-synapse" if e.delay_pre is not None or e.delay_post is not None else "")
             + (" recurrent" if e.name in rec else ""))
        if e.quantized:
            s += f" | weight_exp={e.weight_exp} {e.sign_mode} {e.num_weight_bits}-bit"
        lines.append(s)
    for oname, src in graph.outputs.items():
        p = graph.nodes[src]
        sig = "spikes" if isinstance(p, Neurons) and p.spiking else "v"
        lines.append(f"  output  {oname} <- {src} ({sig})")
    return "\n".join(lines)

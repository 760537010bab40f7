"""Register-level network builder: populations and connections in the chip's own units.

Names here are register names (``du``, ``dv``, ``vth``, ``bias_mant``, ``bias_exp``,
``weight_exp``). Every value is checked against the chip's number formats when it is
added (against ``loihi_like`` unless the network was created with another spec) and again
when the network is compiled for a particular chip. Values Lava would silently alter
(odd weights in mixed sign mode, for instance) are rejected, never adjusted.

Neuron model per step (current first; v uses the new u; see ``emulator.reference``)::

    u <- wrap_once(wrap32(trunc0(u * (2**12 - 1 - du) / 2**12) + a * 2**6))
    v <- sat(trunc0(v * (2**12 - dv) / 2**12) + u + bias_mant * 2**bias_exp)
    spike if v > vth * 2**6, then v <- 0 (reset="zero") or v <- v - vth * 2**6 ("subtract")

Other neuron models (``add_neurons(..., model=...)``: LIFReset, TernaryLIF, Sigma, Delta,
SigmaDelta) and their registers are listed in :mod:`neurochip.core.neuron_models`. A
population of a graded model, or an input with ``payload_bits > 0``, sends integer
payloads; its targets add weight x payload (Lava's Dense/Sparse with num_message_bits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from neurochip.core import fixedpoint as fx
from neurochip.core import neuron_models as nm
from neurochip.core.conv import ConvGeometry, conv_geometry
from neurochip.core.errors import NetworkError, ParameterRangeError

if TYPE_CHECKING:
    from neurochip.core.hw import HardwareSpec, NumberFormats

__all__ = ["Connection", "Network", "Population", "check_connection",
           "check_connection_registers", "check_delays", "check_lif_registers",
           "check_payload_bits", "check_population", "check_port", "weights_altered"]

ResetMode = Literal["zero", "subtract"]
#: neurons (or input channels) of one population: 2**16 cores of 1024 neurons
MAX_POPULATION_SIZE = 1 << 26
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")


@dataclass(frozen=True, eq=False)
class Population:
    """A group of neurons of one kind. ``kind`` is "input" (spike source) or "lif" (neurons
    of the model named by ``model``; see :mod:`neurochip.core.neuron_models`).

    registers: the model's registers beyond du, dv, vth, bias_mant, bias_exp (ints, or
    int64 arrays of shape (size,) for per-neuron ones); payload_bits: width of the
    payloads its spikes carry (0: binary spikes).
    """

    name: str
    size: int
    kind: Literal["input", "lif"]
    du: int = 0
    dv: int = 0
    vth: int = 0
    bias_mant: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    bias_exp: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    reset: ResetMode = "zero"
    spiking: bool = True
    model: str = "lif"
    registers: dict[str, Any] = field(default_factory=dict)
    payload_bits: int = 0

    def __len__(self) -> int:
        return self.size

    @property
    def graded(self) -> bool:
        """Whether its spikes carry payloads."""
        return self.payload_bits > 0

    def __repr__(self) -> str:
        if self.kind == "input":
            pay = f", payload_bits={self.payload_bits}" if self.payload_bits else ""
            return f"Population({self.name!r}, input, n={self.size}{pay})"
        if self.model != "lif":
            regs = ", ".join(f"{k}={v if np.ndim(v) == 0 else '[...]'}"
                             for k, v in self.registers.items())
            return f"Population({self.name!r}, {self.model}, n={self.size}, {regs})"
        return (
            f"Population({self.name!r}, lif, n={self.size}, du={self.du}, dv={self.dv}, "
            f"vth={self.vth}, reset={self.reset!r}, spiking={self.spiking})"
        )


@dataclass(frozen=True, eq=False)
class Connection:
    """Synapses from ``pre`` to ``post``.

    ``weights`` is a CSR matrix of shape (post, pre) holding the effective integer weights
    (explicit entries are synapses, also when 0). ``storage`` says how the chip holds
    them: "dense" (a weight for every pair) or "sparse" (fan-out lists with indices).
    ``delays`` is None (every synapse has ``delay``) or an array aligned with
    ``weights.data``. Storage "conv" (:meth:`Network.connect_conv`): the chip stores
    ``kernel`` once per core and generates the synapses from the geometry ``conv``
    (:class:`~neurochip.core.conv.ConvGeometry`); ``weights`` is then the expanded view.
    """

    name: str
    pre: str
    post: str
    _weights: sp.csr_matrix | None
    weight_exp: int
    delay: int
    delays: NDArray[np.int64] | None
    storage: Literal["dense", "sparse", "conv"]
    sign_mode: str
    num_weight_bits: int
    #: storage "conv": the shared kernel (C_out, C_in/groups, kh, kw) and its geometry
    kernel: NDArray[np.int64] | None = None
    conv: ConvGeometry | None = None
    #: the target's input it feeds: 0 its (first) input, 1 the second input of a
    #: two-input model (port "imag", neuron_models.INPUT_PORTS)
    port: int = 0

    @property
    def weights(self) -> sp.csr_matrix:
        """The (post, pre) CSR matrix of effective weights; for a conv connection the
        expanded form (one entry per synapse, zeros included), built on first use."""
        if self._weights is None:
            assert self.conv is not None and self.kernel is not None
            object.__setattr__(self, "_weights", self.conv.expand(self.kernel))
        assert self._weights is not None
        return self._weights

    @property
    def shape(self) -> tuple[int, int]:
        if self.conv is not None:
            return (self.conv.n_post, self.conv.n_pre)
        return self.weights.shape  # type: ignore[return-value]

    @property
    def n_synapses(self) -> int:
        if self.conv is not None:
            return self.conv.n_synapses
        return int(self.weights.nnz)

    @property
    def max_delay(self) -> int:
        if self.delays is not None and self.delays.size:
            return int(self.delays.max())
        return self.delay

    def dense_weights(self) -> NDArray[np.int64]:
        return np.asarray(self.weights.toarray(), dtype=np.int64)

    def dense_delays(self) -> NDArray[np.int64]:
        """Per-synapse delays as a (post, pre) array (0 where there is no synapse)."""
        if self.delays is None:
            out = np.zeros(self.shape, np.int64)
            rows, cols = _csr_coords(self.weights)
            out[rows, cols] = self.delay
            return out
        rows, cols = _csr_coords(self.weights)
        out = np.zeros(self.shape, np.int64)
        out[rows, cols] = self.delays
        return out

    def __repr__(self) -> str:
        if self.conv is not None:
            g = self.conv
            return (f"Connection({self.name!r}, {self.pre}->{self.post}, conv "
                    f"{g.in_shape}->{g.out_shape}, kernel={g.kernel_shape}, "
                    f"stride={g.stride}, padding={g.padding}, dilation={g.dilation}, "
                    f"groups={g.groups}, nnz={self.n_synapses}, weight_exp={self.weight_exp}, "
                    f"sign={self.sign_mode}, delay={self.delay})")
        return (
            f"Connection({self.name!r}, {self.pre}->{self.post}, shape={self.shape}, "
            f"{self.storage}, nnz={self.n_synapses}, weight_exp={self.weight_exp}, "
            f"sign={self.sign_mode}, delay<={self.max_delay})"
        )


def _csr_coords(m: sp.csr_matrix) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return rows, m.indices.astype(np.int64)


def _check_int(value: Any, where: str, fld: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise NetworkError(f"must be an integer, got {value!r}", where=where, field=fld)
    return int(value)


def _check_range(value: int, lo: int, hi: int, where: str, fld: str, why: str = "") -> None:
    if not lo <= value <= hi:
        raise ParameterRangeError(
            f"{value} is outside [{lo}, {hi}]{why}", where=where, field=fld, value=value,
            limit=(lo, hi),
        )


def _int_array(value: ArrayLike, n: int, where: str, fld: str) -> NDArray[np.int64]:
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,):
        raise NetworkError(f"expected a scalar or shape ({n},), got {arr.shape}", where=where,
                           field=fld)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise NetworkError("must hold integers", where=where, field=fld)
    elif arr.dtype.kind not in "iub":
        raise NetworkError(f"must hold integers, got dtype {arr.dtype}", where=where, field=fld)
    return arr.astype(np.int64)


def _check_array_range(arr: NDArray[np.int64], lo: int, hi: int, where: str, fld: str) -> None:
    if arr.size == 0:
        return
    bad = np.flatnonzero((arr < lo) | (arr > hi))
    if bad.size:
        i = int(bad[0])
        raise ParameterRangeError(
            f"element {i} is {int(arr[i])}, outside [{lo}, {hi}] "
            f"({bad.size} elements out of range)",
            where=where, field=fld, value=int(arr[i]), limit=(lo, hi),
        )


class Network:
    """Register-level SNN: ``add_input``, ``add_lif``, ``connect``.

    >>> import numpy as np, neurochip
    >>> net = neurochip.Network()
    >>> a = net.add_input("in", 4)
    >>> b = net.add_lif("hid", 2, du=4095, dv=0, vth=10)
    >>> c = net.connect(a, b, weights=np.full((2, 4), 20))
    >>> [p.name for p in net.populations]
    ['in', 'hid']
    """

    def __init__(self, hw: HardwareSpec | str | None = None, name: str = "network") -> None:
        from neurochip.core.hw import load_hw

        self.name = name
        self.hw = load_hw(hw if hw is not None else "loihi_like")
        self._pops: dict[str, Population] = {}
        self._conns: dict[str, Connection] = {}

    # ------------------------------------------------------------------ access
    @property
    def populations(self) -> list[Population]:
        return list(self._pops.values())

    @property
    def connections(self) -> list[Connection]:
        return list(self._conns.values())

    def population(self, name: str | Population) -> Population:
        key = name.name if isinstance(name, Population) else name
        if key not in self._pops:
            raise NetworkError(f"no population named {key!r}; have {list(self._pops)}",
                               where="network")
        return self._pops[key]

    def connection(self, name: str) -> Connection:
        if name not in self._conns:
            raise NetworkError(f"no connection named {name!r}; have {list(self._conns)}",
                               where="network")
        return self._conns[name]

    def __repr__(self) -> str:
        return (f"Network({self.name!r}, populations={len(self._pops)}, "
                f"connections={len(self._conns)}, synapses={self.n_synapses})")

    @property
    def n_synapses(self) -> int:
        return sum(c.n_synapses for c in self._conns.values())

    # ------------------------------------------------------------------ building
    def _new_name(self, name: str) -> str:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise NetworkError(
                f"invalid name {name!r}: use letters, digits, '_', '.', ':' or '-'",
                where="network", field="name")
        if name in self._pops or name in self._conns:
            raise NetworkError(f"name {name!r} is already used", where="network", field="name")
        return name

    @staticmethod
    def _check_size(n: Any, where: str) -> int:
        n = _check_int(n, where, "size")
        if n <= 0:
            raise NetworkError(f"must be positive, got {n}", where=where, field="size")
        if n > MAX_POPULATION_SIZE:
            raise NetworkError(f"{n} neurons; at most {MAX_POPULATION_SIZE} in one population",
                               where=where, field="size", value=n, limit=MAX_POPULATION_SIZE)
        return n

    def add_input(self, name: str, size: int, payload_bits: int = 0) -> Population:
        """A spike source of ``size`` channels, fed by the host at run time.

        payload_bits: 0 for binary spikes; else each spike carries a signed integer payload
        of that many bits (at most the chip's ``graded_payload_bits``)."""
        where = f"population '{name}'"
        self._new_name(name)
        n = self._check_size(size, where)
        pb = _check_int(payload_bits, where, "payload_bits")
        check_payload_bits(where, self.hw.formats, pb)
        pop = Population(name, n, "input", payload_bits=pb)
        self._pops[name] = pop
        return pop

    def add_neurons(self, name: str, size: int, model: str = "lif", **registers: Any
                    ) -> Population:
        """Neurons of any model of :data:`neurochip.core.neuron_models.MODELS`.

        registers: the model's registers by name. LIF-family models (``lif``,
        ``lif_reset``, ``ternary_lif``) take du, dv, bias_mant, bias_exp (and vth, except
        ``ternary_lif``, which has vth_hi and vth_lo) as :meth:`add_lif` does, plus their own
        (``lif_reset``: reset_interval, reset_offset); ``sigma`` has none; ``delta`` takes
        vth, cum_error, spike_exp, state_exp; ``sigma_delta`` also bias (per neuron) and
        act_mode (0/"unit" or 1/"relu"). Every register is checked against its format.
        """
        where = f"population '{name}'"
        mdl = nm.get_model(model, where)
        if mdl.name in ("lif", "lif_per_neuron"):
            return self.add_lif(name, size, **registers)
        self._new_name(name)
        n = self._check_size(size, where)
        core: dict[str, Any] = {}
        if mdl.lif_core:
            names = ("du", "dv", "vth", "bias_mant", "bias_exp") if mdl.uses_vth else \
                ("du", "dv", "bias_mant", "bias_exp")
            for k in names:
                if k in registers:
                    core[k] = registers.pop(k)
            for k in ("du", "dv") + (("vth",) if mdl.uses_vth else ()):
                if k not in core:
                    raise NetworkError(f"model {mdl.name!r} needs register {k!r}",
                                       where=where, field=k)
        regs = nm.normalize_registers(mdl, registers, n, where)
        return self._add_model(name, n, mdl, regs, core)

    def _add_model(self, name: str, n: int, mdl: nm.NeuronModel, regs: dict[str, Any],
                   core: dict[str, Any], reset: ResetMode = "zero", spiking: bool = True
                   ) -> Population:
        where = f"population '{name}'"
        pop = Population(
            name, n, "lif",
            du=_check_int(core.get("du", 0), where, "du"),
            dv=_check_int(core.get("dv", 0), where, "dv"),
            vth=_check_int(core.get("vth", 0), where, "vth"),
            bias_mant=_int_array(core.get("bias_mant", 0), n, where, "bias_mant"),
            bias_exp=_int_array(core.get("bias_exp", 0), n, where, "bias_exp"),
            reset=reset, spiking=spiking, model=mdl.name, registers=regs,
            payload_bits=nm.model_payload_bits(mdl, self.hw.formats))
        check_population(pop, self.hw.formats)
        self._pops[name] = pop
        return pop

    def add_lif(
        self,
        name: str,
        size: int,
        *,
        du: int | ArrayLike,
        dv: int | ArrayLike,
        vth: int,
        bias_mant: ArrayLike = 0,
        bias_exp: ArrayLike = 0,
        reset: ResetMode = "zero",
        spiking: bool = True,
    ) -> Population:
        """Current-based LIF neurons with register-level parameters.

        du, dv: 12-bit decays (du = -1: no current decay; dv = 4096: no voltage memory);
        scalars, or arrays of shape (size,) for one decay per neuron (a "lif_per_neuron"
        population unless every neuron has the same value).
        vth: 17-bit threshold mantissa (threshold = vth * 2**6).
        bias_mant, bias_exp: 13-bit signed mantissa and 3-bit exponent, scalar or per neuron.
        reset: "zero" (Lava LIF) or "subtract" (v -= threshold; our core's extra mode).
        spiking: False makes a non-spiking readout (the threshold is never tested).
        """
        where = f"population '{name}'"
        self._new_name(name)
        n = self._check_size(size, where)
        if reset not in ("zero", "subtract"):
            raise NetworkError(f"must be 'zero' or 'subtract', got {reset!r}", where=where,
                               field="reset")
        if np.ndim(du) or np.ndim(dv):
            du_a = _int_array(du, n, where, "du")
            dv_a = _int_array(dv, n, where, "dv")
            if not (np.all(du_a == du_a[0]) and np.all(dv_a == dv_a[0])):
                mdl = nm.MODELS["lif_per_neuron"]
                regs = nm.normalize_registers(mdl, {"du": du_a, "dv": dv_a}, n, where)
                return self._add_model(name, n, mdl, regs, {
                    "vth": vth, "bias_mant": bias_mant, "bias_exp": bias_exp},
                    reset, spiking)
            du, dv = int(du_a[0]), int(dv_a[0])
        pop = Population(
            name, n, "lif",
            du=_check_int(du, where, "du"), dv=_check_int(dv, where, "dv"),
            vth=_check_int(vth, where, "vth"),
            bias_mant=_int_array(bias_mant, n, where, "bias_mant"),
            bias_exp=_int_array(bias_exp, n, where, "bias_exp"),
            reset=reset, spiking=bool(spiking),
        )
        check_population(pop, self.hw.formats)
        self._pops[name] = pop
        return pop

    def connect(
        self,
        pre: str | Population,
        post: str | Population,
        weights: Any,
        weight_exp: int = 0,
        delay: Any = 0,
        *,
        name: str | None = None,
        storage: Literal["auto", "dense", "sparse"] = "auto",
        sign_mode: str | None = None,
        num_weight_bits: int | None = None,
        port: str = "real",
    ) -> Connection:
        """Connect ``pre`` to ``post`` with integer weights of shape (post, pre).

        weights: a dense integer array or a scipy.sparse matrix (explicit entries are the
        synapses). storage: "dense", "sparse", or "auto" (sparse when at most a quarter of
        the pairs are synapses). delay: an int for every synapse, an array of shape
        (post, pre), or a 1-D array aligned with the synapses in row-major (CSR) order.
        sign_mode: "mixed", "excitatory" or "inhibitory" (detected like Lava when None).
        num_weight_bits: weight precision (default: the chip's weight_bits); weights must
        be multiples of the resulting step, exactly as Lava would keep them.
        port: the target's input: "real" (every model's input; the real part of a
        resonate-and-fire model), or "imag" (the second input of a two-input model:
        ``rf``, ``rf_iz``, ``rf_zero``).
        """
        fmt = self.hw.formats
        pre_p, post_p = self.population(pre), self.population(post)
        cname, where = self._conn_name(pre_p, post_p, name)
        port_i = check_port(where, port, post_p)
        shape = (post_p.size, pre_p.size)
        if storage not in ("auto", "dense", "sparse"):
            raise NetworkError(f"must be 'auto', 'dense' or 'sparse', got {storage!r}",
                               where=where, field="storage")
        W = _as_csr(weights, shape, where, dense_all=(storage == "dense"))
        if storage == "auto":
            storage = "sparse" if W.nnz <= 0.25 * shape[0] * shape[1] else "dense"
            if storage == "dense":
                W = _as_csr(weights, shape, where, dense_all=True)
        wexp, sign_mode, nwb = _weight_format(W.data, weight_exp, sign_mode, num_weight_bits,
                                              fmt, where)
        d_scalar, d_arr = _delays(delay, W, shape, where, fmt.max_delay)
        conn = Connection(cname, pre_p.name, post_p.name, W, wexp, d_scalar, d_arr,
                          storage, sign_mode, nwb, port=port_i)
        check_connection(conn, fmt)
        self._conns[cname] = conn
        return conn

    def _conn_name(self, pre_p: Population, post_p: Population, name: str | None
                   ) -> tuple[str, str]:
        cname = name if name is not None else f"{pre_p.name}->{post_p.name}"
        if name is None and cname in self._conns:
            k = 1
            while f"{cname}#{k}" in self._conns:
                k += 1
            cname = f"{cname}#{k}"
        where = f"connection '{cname}'"
        if name is not None:
            self._new_name(name)
        if post_p.kind != "lif":
            raise NetworkError(f"target population '{post_p.name}' is an input; only LIF "
                               "populations receive synapses", where=where, field="post")
        return cname, where

    def connect_conv(
        self,
        pre: str | Population,
        post: str | Population,
        kernel: ArrayLike,
        in_shape: tuple[int, int, int],
        *,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        weight_exp: int = 0,
        delay: int = 0,
        name: str | None = None,
        sign_mode: str | None = None,
        num_weight_bits: int | None = None,
        layout: Literal["chw", "xyc"] = "chw",
    ) -> Connection:
        """A shared-weight 2-D convolution from ``pre`` (shape ``in_shape`` = (C, H, W))
        to ``post`` (its size must be C_out * H_out * W_out).

        Both populations are laid out channels first in C order (neuron (c, y, x) is
        ``c * H * W + y * W + x``); see :mod:`neurochip.core.conv` for the exact rule.
        kernel: integer array (C_out, C_in / groups, kh, kw), PyTorch cross-correlation.
        stride, dilation: an int or (y, x); padding: an int, (y, x) or (top, bottom,
        left, right) of zero padding. Every tap inside the input is a synapse (zeros
        too); the chip stores the kernel once per core and generates the targets of each
        spike from the geometry, so this takes far less synapse memory than
        :meth:`connect` with the expanded weights, and computes exactly the same.
        delay: one delay for every synapse. sign_mode, num_weight_bits: as
        :meth:`connect`, applied to the kernel values. layout: "xyc" numbers both
        populations (x, y, c) in C order instead (Lava's and netx's order).
        """
        fmt = self.hw.formats
        pre_p, post_p = self.population(pre), self.population(post)
        cname, where = self._conn_name(pre_p, post_p, name)
        k = np.asarray(kernel)
        if k.dtype.kind not in "biuf":
            raise NetworkError(f"kernel must be integers, got dtype {k.dtype}", where=where,
                               field="kernel")
        if k.dtype.kind == "f" and (not np.all(np.isfinite(k)) or not np.all(k == np.round(k))):
            raise NetworkError("kernel must hold integers (quantize float models with "
                               "neurochip.compile on an IR/NIR graph)", where=where,
                               field="kernel")
        geom = conv_geometry(in_shape, k.shape, stride=stride, padding=padding,
                             dilation=dilation, groups=groups, layout=layout, where=where)
        if geom.n_pre != pre_p.size:
            raise NetworkError(
                f"in_shape {geom.in_shape} has {geom.n_pre} neurons but population "
                f"'{pre_p.name}' has {pre_p.size}", where=where, field="in_shape",
                value=geom.n_pre, limit=pre_p.size)
        if geom.n_post != post_p.size:
            raise NetworkError(
                f"the output shape {geom.out_shape} has {geom.n_post} neurons but population "
                f"'{post_p.name}' has {post_p.size}", where=where, field="post",
                value=geom.n_post, limit=post_p.size)
        kv = np.ascontiguousarray(k.astype(np.int64))
        kv.setflags(write=False)
        wexp, sign_mode, nwb = _weight_format(kv.reshape(-1), weight_exp, sign_mode,
                                              num_weight_bits, fmt, where)
        if np.ndim(delay) != 0:
            raise NetworkError("a conv connection has one delay for every synapse; got an "
                               f"array of shape {np.shape(delay)}", where=where, field="delay")
        d = _check_int(delay.item() if isinstance(delay, np.ndarray) else delay, where, "delay")
        conn = Connection(cname, pre_p.name, post_p.name, None, wexp, d, None, "conv",
                          sign_mode, nwb, kv, geom)
        check_connection(conn, fmt)
        self._conns[cname] = conn
        return conn

    # ------------------------------------------------------------------ checks
    def check(self, hw: HardwareSpec | None = None) -> None:
        """Re-check every value against ``hw``'s number formats (default: the network's)."""
        fmt = (hw or self.hw).formats
        for p in self._pops.values():
            if p.kind == "lif":
                check_population(p, fmt)
            else:
                check_payload_bits(f"population '{p.name}'", fmt, p.payload_bits)
        for c in self._conns.values():
            check_connection(c, fmt)


def _as_csr(weights: Any, shape: tuple[int, int], where: str, dense_all: bool) -> sp.csr_matrix:
    if sp.issparse(weights):
        W = sp.csr_matrix(weights, copy=True)
        W.sum_duplicates()
        if dense_all:
            W = _full_csr(np.asarray(W.toarray()))
    else:
        arr = np.asarray(weights)
        if arr.dtype.kind not in "biuf":
            raise NetworkError(f"weights must be integers, got dtype {arr.dtype}", where=where,
                               field="weights")
        if arr.ndim != 2:
            raise NetworkError(f"weights must be 2-D (post, pre), got shape {arr.shape}",
                               where=where, field="weights")
        if dense_all:
            W = _full_csr(arr)
        else:
            W = sp.csr_matrix(arr)
    if W.shape != shape:
        raise NetworkError(
            f"weights have shape {W.shape}, expected (post, pre) = {shape}",
            where=where, field="weights", value=W.shape, limit=shape)
    data = np.asarray(W.data)
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
            raise NetworkError("weights must be integers (quantize float models with "
                               "neurochip.compile on an IR/NIR graph)", where=where,
                               field="weights")
    elif data.dtype.kind not in "iub":
        raise NetworkError(f"weights must be integers, got dtype {data.dtype}", where=where,
                           field="weights")
    W = sp.csr_matrix((data.astype(np.int64), W.indices.astype(np.int32),
                       W.indptr.astype(np.int64)), shape=shape)
    W.has_sorted_indices = False
    W.sort_indices()
    return W


def _full_csr(arr: NDArray[Any]) -> sp.csr_matrix:
    """A CSR matrix with an explicit entry for every (post, pre) pair (a dense matrix)."""
    n, m = arr.shape
    indptr = np.arange(0, n * m + 1, m, dtype=np.int64)
    indices = np.tile(np.arange(m, dtype=np.int32), n)
    return sp.csr_matrix((arr.reshape(-1), indices, indptr), shape=(n, m))



def _weight_format(values: NDArray[Any], weight_exp: Any, sign_mode: str | None,
                   num_weight_bits: Any, fmt: NumberFormats, where: str
                   ) -> tuple[int, str, int]:
    """The checked (weight_exp, sign_mode, num_weight_bits) of a connection whose weight
    values are ``values``: the sign mode detected from them when not given, the weight
    width the chip's when not given."""
    wexp = _check_int(weight_exp, where, "weight_exp")
    _check_range(wexp, *fmt.weight_exp_range, where, "weight_exp")
    if sign_mode is None:
        sign_mode = fx.detect_sign_mode(values)
    if sign_mode not in fx.SIGN_MODES:
        raise NetworkError(f"must be one of {fx.SIGN_MODES}, got {sign_mode!r}",
                           where=where, field="sign_mode")
    nwb = fmt.weight_bits if num_weight_bits is None else _check_int(
        num_weight_bits, where, "num_weight_bits")
    _check_range(nwb, 1, fmt.weight_bits, where, "num_weight_bits")
    return wexp, sign_mode, nwb

def _delays(delay: Any, W: sp.csr_matrix, shape: tuple[int, int], where: str, max_delay: int
            ) -> tuple[int, NDArray[np.int64] | None]:
    arr = np.asarray(delay)
    if arr.ndim == 0:
        return _check_int(delay if not isinstance(delay, np.ndarray) else delay.item(),
                          where, "delay"), None
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise NetworkError("delays must be integers", where=where, field="delay")
    if arr.shape == shape:
        # Delays given for every pair are checked whole, also where there is no synapse.
        _check_array_range(arr.reshape(-1).astype(np.int64), 0, max_delay, where, "delay")
        rows, cols = _csr_coords(W)
        d = arr[rows, cols].astype(np.int64)
    elif arr.shape == (W.nnz,):
        d = arr.astype(np.int64)
    else:
        raise NetworkError(f"delay must be a scalar, shape {shape} or ({W.nnz},) aligned with "
                           f"the synapses; got {arr.shape}", where=where, field="delay")
    if d.size and np.all(d == d[0]):
        return int(d[0]), None
    return (int(d.max()) if d.size else 0), d


def check_population(pop: Population, fmt: NumberFormats) -> None:
    """Range rules of a neuron population's registers (the LIF core's, then the model's)."""
    where = f"population '{pop.name}'"
    check_lif_registers(where, fmt, pop.du, pop.dv, pop.vth, pop.bias_mant, pop.bias_exp)
    if pop.model != "lif":
        nm.check_model_registers(nm.get_model(pop.model, where), pop.registers, pop.size,
                                 fmt, where)


def check_payload_bits(where: str, fmt: NumberFormats, payload_bits: int) -> None:
    """A graded input's payload width: 0 (binary) or 2 .. the chip's graded_payload_bits."""
    if payload_bits == 0:
        return
    if fmt.graded_payload_bits == 0:
        raise ParameterRangeError(
            f"{payload_bits}-bit payloads; this chip sends binary spikes only "
            "(graded_payload_bits = 0)", where=where, field="payload_bits",
            value=payload_bits, limit=0)
    _check_range(payload_bits, 2, fmt.graded_payload_bits, where, "payload_bits",
                 " (signed payload width; 0 = binary)")


def check_lif_registers(where: str, fmt: NumberFormats, du: int, dv: int, vth: int,
                        bias_mant: NDArray[Any] | None = None,
                        bias_exp: NDArray[Any] | None = None) -> None:
    """The LIF register rules (builder, compiler and image verifier all call this)."""
    _check_range(du, *fmt.du_range, where, "du", " (12-bit decay; -1 = no decay)")
    _check_range(dv, *fmt.dv_range, where, "dv", " (12-bit decay)")
    _check_range(vth, *fmt.vth_range, where, "vth", f" ({fmt.vth_bits}-bit threshold)")
    if bias_mant is not None:
        _check_array_range(bias_mant, *fmt.bias_mant_range, where, "bias_mant")
    if bias_exp is not None:
        _check_array_range(bias_exp, *fmt.bias_exp_range, where, "bias_exp")


def check_port(where: str, port: Any, post: Population) -> int:
    """The index of input port ``port`` ("real" or "imag", neuron_models.INPUT_PORTS) of
    population ``post``, or a NetworkError when ``post``'s model has no such input."""
    if port not in nm.INPUT_PORTS:
        raise NetworkError(f"must be one of {list(nm.INPUT_PORTS)}, got {port!r}",
                           where=where, field="port", value=port)
    i = nm.INPUT_PORTS.index(port)
    n_in = nm.MODELS[post.model].inputs if post.kind == "lif" else 1
    if i >= n_in:
        raise NetworkError(f"population '{post.name}' ({post.model}) has one input; port "
                           f"{port!r} feeds the second input of a two-input model "
                           f"({', '.join(m.name for m in nm.MODELS.values() if m.inputs > 1)})",
                           where=where, field="port", value=port)
    return i


def check_connection(conn: Connection, fmt: NumberFormats) -> None:
    """Range rules of a connection: weights Lava keeps unchanged, exponent, delays."""
    where = f"connection '{conn.name}'"
    check_connection_registers(where, fmt, conn.weight_exp, conn.num_weight_bits,
                               conn.sign_mode)
    if conn.kernel is not None:
        kw = conn.kernel.reshape(-1)
        bad = weights_altered(kw, conn.sign_mode, conn.num_weight_bits, fmt)
        if bad.size:
            i = int(bad[0])
            idx = tuple(int(x) for x in np.unravel_index(i, conn.kernel.shape))
            raise ParameterRangeError(
                f"kernel{list(idx)} = {int(kw[i])} would become "
                f"{weight_rule_text(kw[i:i + 1], conn.sign_mode, conn.num_weight_bits, fmt)}; "
                f"{bad.size} kernel values affected)",
                where=where, field="kernel", value=int(kw[i]),
                limit=fx.weight_range(conn.sign_mode, fmt.weight_bits))
        check_delays(where, fmt, conn.delay, None)
        return
    w = np.asarray(conn.weights.data, dtype=np.int64)
    bad = weights_altered(w, conn.sign_mode, conn.num_weight_bits, fmt)
    if bad.size:
        i = int(bad[0])
        rows, cols = _csr_coords(conn.weights)
        raise ParameterRangeError(
            f"weight[{int(rows[i])}, {int(cols[i])}] = {int(w[i])} would become "
            f"{weight_rule_text(w[i:i + 1], conn.sign_mode, conn.num_weight_bits, fmt)}; "
            f"{bad.size} weights affected)",
            where=where, field="weights", value=int(w[i]),
            limit=fx.weight_range(conn.sign_mode, fmt.weight_bits))
    check_delays(where, fmt, conn.delay, conn.delays)


def check_connection_registers(where: str, fmt: NumberFormats, weight_exp: int,
                               num_weight_bits: int, sign_mode: str) -> None:
    """A connection's scalar register rules (builder, compiler and image verifier)."""
    _check_range(weight_exp, *fmt.weight_exp_range, where, "weight_exp")
    if sign_mode not in fx.SIGN_MODES:
        raise NetworkError(f"must be one of {fx.SIGN_MODES}, got {sign_mode!r}",
                           where=where, field="sign_mode")
    _check_range(num_weight_bits, 1, fmt.weight_bits, where, "num_weight_bits")


def check_delays(where: str, fmt: NumberFormats, delay: int,
                 delays: NDArray[Any] | None) -> None:
    """Synaptic delays fit the chip's delay field."""
    if delays is None:
        _check_range(delay, 0, fmt.max_delay, where, "delay")
    else:
        _check_array_range(delays, 0, fmt.max_delay, where, "delay")


def weights_altered(w: NDArray[np.int64], sign_mode: str, num_weight_bits: int,
                    fmt: NumberFormats) -> NDArray[np.intp]:
    """Indices of the weights Lava would alter (clip or drop low bits); empty if none.
    Checked in blocks: the temporaries stay small however many weights there are."""
    if w.size == 0:
        return np.zeros(0, np.intp)
    flat = np.asarray(w).reshape(-1)
    step = 1 << 22
    bad = []
    for a in range(0, flat.size, step):
        blk = flat[a:a + step]
        eff = fx.effective_weights(blk, sign_mode, num_weight_bits, fmt.weight_bits)
        hit = np.flatnonzero(eff != blk)
        if hit.size:
            bad.append(hit + a)
    return np.concatenate(bad) if bad else np.zeros(0, np.intp)


def weight_rule_text(w: NDArray[np.int64], sign_mode: str, num_weight_bits: int,
                     fmt: NumberFormats) -> str:
    """'<effective> on the chip (<the rule>' for one weight, for error messages."""
    eff = fx.effective_weights(w, sign_mode, num_weight_bits, fmt.weight_bits)
    lo, hi = fx.weight_range(sign_mode, fmt.weight_bits)
    step = 1 << fx.weight_lsb_shift(sign_mode, num_weight_bits, fmt.weight_bits)
    return (f"{int(eff[0])} on the chip ({sign_mode} weights must be multiples of "
            f"{step} in [{lo}, {hi}] with {num_weight_bits}-bit weights")

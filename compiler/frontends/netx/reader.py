"""Read a lava-dl netx ``.net`` file into a register-level Network, as netx maps it.

Names: the population of group ``layer/<i>`` is ``str(i)``; flatten layers have none.
Neuron k of a population is element k of Lava's array for that layer: netx's (x, y,
channel) shape flattened in C order. ``"input"`` is the input port (an input population):
for a network whose first layer is an input block it feeds the input layer's neurons one
to one (weight 1; netx's Input block leaves its port unconnected, so Lava networks are
driven through the input layer's bias, ``Emulator.run(..., bias={"0": b})``); otherwise it
is the first synapses' source, where Lava's ``net.inp`` delivers.

Weights are what Lava's processes compute with: dense weights go through netx's
``optimize_weight_bits`` (weights * 2^s, weight_exp -s, num_weight_bits), then Lava's clip
and low-bit truncation; conv weights are used as stored (Lava's Conv has no clip, no
truncation, no exponent). When the chip's 8-bit weight format cannot hold those values as
they are, an exactly equivalent form is chosen (weights * 2^j with the exponent lowered by
j, or divided by 2^j with it raised), which gives the same summed input bit for bit; a
layer with no such form is refused with ModelImportError.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.ir.synapses import Conv
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import ModelImportError, NeurochipError
from neurochip.core.hw import HardwareSpec
from neurochip.core.network import Network

__all__ = ["NETX_LAYER_TYPES", "NetxImportWarning", "read_netx"]

#: layer types of the netx format this reader maps (others get ModelImportError)
NETX_LAYER_TYPES = ("input", "dense", "dense_rec", "conv", "pool", "flatten")
#: neuron types mapped as Lava's LIF (LIFReset with reset_interval), as netx does; "SDNN"
#: maps to Delta / Sigma / SigmaDelta
LIF_TYPES = ("LOIHI", "CUBA")
#: netx's input block gain and bias when the file gives none
INPUT_WEIGHT, INPUT_BIAS = 64, 0
#: bias exponent netx gives every LIF layer
NETX_BIAS_EXP = 6
#: netx clamps dense delays to this
NETX_MAX_DELAY = 62
#: spike and state exponents netx gives sigma-delta neurons (its defaults)
NETX_SPIKE_EXP, NETX_STATE_EXP = 6, 6
#: largest file read (bytes)
MAX_NETX_BYTES = 1 << 31


class NetxImportWarning(UserWarning):
    """Something in a netx file that netx itself ignores or changes (announced, followed)."""


@dataclass
class _Prev:
    pop: str  # population (or the input port) feeding the next layer
    shape: tuple[int, ...]  # Lava (x, y, c) / (n,) shape
    flatten: bool = False


def _err(group: str, kind: str, why: str, field: str | None = None) -> ModelImportError:
    return ModelImportError(f"layer type {kind!r}: {why}", where=f"netx group {group}",
                            field=field)


def _str(x: Any) -> str:
    v = x[()] if hasattr(x, "shape") else x
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def _arr(g: Any, key: str) -> NDArray[Any]:
    return np.asarray(g[key][()])


def _int_values(g: Any, key: str, group: str, kind: str) -> NDArray[np.int64]:
    """A dataset as int64, cast like netx (``astype(int)``, toward zero); announced when
    that drops fractions."""
    a = _arr(g, key)
    if a.dtype.kind not in "iuf":
        raise _err(group, kind, f"{key} must be numeric, got dtype {a.dtype}", key)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise _err(group, kind, f"{key} holds NaN or infinite values", key)
        if np.any(a != np.trunc(a)):
            warnings.warn(f"netx group {group}: {key} holds fractional values; netx casts them "
                          "to int (toward zero) and so does neurochip", NetxImportWarning,
                          stacklevel=4)
    return a.astype(np.int64)


def _shape(g: Any, group: str, kind: str) -> tuple[int, ...]:
    if "shape" not in g:
        raise _err(group, kind, "has no 'shape'", "shape")
    s = tuple(int(x) for x in np.asarray(g["shape"][()]).reshape(-1))[::-1]  # -> (x, y, c)
    if not s or any(x <= 0 for x in s) or len(s) > 3:
        raise _err(group, kind, f"shape {s[::-1]} is not (C, H, W), (H, W) or (N,)", "shape")
    return s


def _pair(g: Any, key: str, default: int) -> tuple[int, int]:
    """A stored (y, x) pair (or scalar) -> (y, x)."""
    if key not in g:
        return default, default
    a = np.asarray(g[key][()]).astype(np.int64).reshape(-1)
    if a.size == 1:
        return int(a[0]), int(a[0])
    return int(a[0]), int(a[1])


def _our_of_torch(shape: tuple[int, ...]) -> NDArray[np.int64]:
    """Index of our (x, y, c) C-order neuron at each position of torch's (c, y, x) order."""
    n = math.prod(shape)
    if len(shape) == 1:
        return np.arange(n, dtype=np.int64)
    s3 = shape if len(shape) == 3 else (*shape, 1)
    return np.arange(n, dtype=np.int64).reshape(s3).transpose(2, 1, 0).reshape(-1)


def _scalar(ng: Any, key: str) -> int:
    return int(np.asarray(ng[key][()]).reshape(-1)[0])


def _neuron(g: Any, group: str, kind: str, hw: HardwareSpec, *, is_input: bool = False,
            reset: tuple[int, int] | None = None) -> dict[str, Any]:
    """The chip model and registers of a layer's neuron group, as netx builds it:
    LOIHI/CUBA -> Lava LIF (LIFReset with reset_interval), SDNN -> Delta (input layer),
    Sigma (``sigma_output``) or SigmaDelta. reset: (interval, offset) of this layer."""
    if "neuron" not in g:
        raise _err(group, kind, "has no 'neuron' group; netx's default integrator (vThMant "
                   "2^17) does not fit the chip's 17-bit threshold", "neuron")
    ng = g["neuron"]
    ntype = _str(ng["type"]) if "type" in ng else "?"
    if ntype == "SDNN":
        return _sdnn(ng, group, kind, is_input, reset is not None)
    if "RF" in ntype:
        raise _err(group, kind, f"neuron type {ntype!r}: netx builds it as Lava's "
                   f"{'RF' if 'PHASE' in ntype else 'RF_IZ'} from slayer's float "
                   "period/decay (a float round trip of sinDecay and cosDecay, truncated "
                   "again), which this reader does not reproduce; build the layer with the "
                   "chip's 'rf' / 'rf_iz' models instead (neuron_models.rf_decays)",
                   "neuron/type")
    if ntype not in LIF_TYPES:
        raise _err(group, kind, f"neuron type {ntype!r} is not supported (supported: "
                   f"{', '.join((*LIF_TYPES, 'SDNN'))})", "neuron/type")
    for key in ("iDecay", "vDecay", "vThMant"):
        if key not in ng:
            raise _err(group, kind, f"neuron has no {key!r}", f"neuron/{key}")
    i_decay, v_decay, vth = (_scalar(ng, k) for k in ("iDecay", "vDecay", "vThMant"))
    fmt = hw.formats
    checks = (("iDecay", i_decay, 0, 1 << fmt.decay_bits), ("vDecay", v_decay, *fmt.dv_range),
              ("vThMant", vth, *fmt.vth_range))
    for key, val, lo, hi in checks:
        if not lo <= val <= hi:
            raise _err(group, kind, f"neuron {key} = {val} is outside the chip's range "
                       f"[{lo}, {hi}]", f"neuron/{key}")
    if "refDelay" in ng and _scalar(ng, "refDelay") > 1:
        warnings.warn(f"netx group {group}: refDelay > 1 is ignored by netx (Lava's LIF has no "
                      "refractory period); neurochip follows netx", NetxImportWarning,
                      stacklevel=3)
    if "wgtExp" in ng and _scalar(ng, "wgtExp") != 0:
        warnings.warn(f"netx group {group}: neuron wgtExp is ignored by netx (weights are "
                      "used as stored); neurochip follows netx", NetxImportWarning, stacklevel=3)
    # netx: du = iDecay - 1 (Lava's current decay has a +1 offset), dv = vDecay, vth = vThMant
    regs: dict[str, Any] = {"du": i_decay - 1, "dv": v_decay, "vth": vth}
    model = "lif"
    if reset is not None:
        model = "lif_reset"
        regs.update(reset_interval=reset[0], reset_offset=reset[1] % reset[0])
    return {"type": ntype, "model": model, "registers": regs, "lif": True}


def _sdnn(ng: Any, group: str, kind: str, is_input: bool, reset: bool) -> dict[str, Any]:
    if reset:
        warnings.warn(f"netx group {group}: netx does not reset sigma-delta neurons "
                      "(reset_interval is ignored for them); neurochip follows netx",
                      NetxImportWarning, stacklevel=4)
    if "sigma_output" in ng and not is_input:
        return {"type": "SDNN", "model": "sigma", "registers": {}, "lif": False}
    if "vThMant" not in ng:
        raise _err(group, kind, "SDNN neuron has no 'vThMant'", "neuron/vThMant")
    regs: dict[str, Any] = {"vth": _scalar(ng, "vThMant"), "spike_exp": NETX_SPIKE_EXP,
                            "state_exp": NETX_STATE_EXP, "cum_error": 0}
    if is_input:
        return {"type": "SDNN", "model": "delta", "registers": regs, "lif": False}
    regs["act_mode"] = 1  # Lava's SigmaDelta default: ReLU
    return {"type": "SDNN", "model": "sigma_delta", "registers": regs, "lif": False}


def netx_optimize_weights(w: NDArray[np.int64], group: str
                          ) -> tuple[NDArray[np.int64], int, int]:
    """netx's choice of (weights, num_weight_bits, weight_exp) for a dense matrix: the
    weights scaled by 2^s to fill the 8-bit range, weight_exp = -s, and the bits that
    are left once the common power-of-two factor is known."""
    if (w.max() > 254 and w.min() < 0) or (w.min() < -256 and w.max() > 0):
        warnings.warn(f"netx group {group}: mixed-sign weights in [{int(w.min())}, "
                      f"{int(w.max())}] do not fit the synapse; netx clips them to [-256, 254] "
                      "and so does neurochip", NetxImportWarning, stacklevel=3)
        w = np.clip(w, -256, 254)
    hi, lo = int(w.max()), int(w.min())
    if hi < 0:
        scale, signed = -256 / lo, 0
    elif lo >= 0:
        if hi == 0:
            return w, 8, 0
        scale, signed = 255 / hi, 0
    else:
        scale, signed = min(127 / hi, -128 / lo), 1
    s = math.floor(math.log2(scale)) + signed
    n = 8
    while n > 0 and np.any(w % (1 << n)):
        n -= 1
    n -= signed
    nwb = 8 - s - n
    ws = w << s if s >= 0 else w >> (-s)
    return ws.astype(np.int64), int(nwb), int(-s)


def _chip_form(w: NDArray[np.int64], exp: int, hw: HardwareSpec, group: str, kind: str
               ) -> tuple[NDArray[np.int64], int, str]:
    """Weights and exponent the chip holds unchanged and that sum to floor(sum(w) * 2^exp)
    exactly: w * 2^j with exponent exp - j (j >= 0), or w / 2^j with exp + j."""
    fmt = hw.formats
    lo_e, hi_e = fmt.weight_exp_range
    mode = fx.detect_sign_mode(w)

    def kept(wj: NDArray[np.int64]) -> bool:
        eff = fx.effective_weights(wj, mode, fmt.weight_bits, fmt.weight_bits)
        return bool(np.array_equal(eff, wj))

    for j in range(0, 9):
        wj = w << j
        e = exp - j
        if e < lo_e:
            break
        if e <= hi_e and kept(wj):
            return wj, e, mode
    for j in range(1, 24):
        if np.any(w % (1 << j)):
            break
        wj, e = w >> j, exp + j
        if lo_e <= e <= hi_e and kept(wj):
            return wj, e, mode
    lo, hi = fx.weight_range(mode, fmt.weight_bits)
    raise _err(group, kind, f"weights in [{int(w.min())}, {int(w.max())}] with exponent {exp} "
               f"have no exact form in the chip's {mode} weights ({lo}..{hi}, exponent "
               f"{lo_e}..{hi_e})", "weight")


def _dense_weights(w: NDArray[np.int64], group: str, kind: str, hw: HardwareSpec,
                   nwb: int, exp: int) -> tuple[NDArray[np.int64], int, str]:
    """What Lava's Dense computes with after netx (clip, truncate with num_weight_bits),
    in the chip's form."""
    mode = fx.detect_sign_mode(w)
    if fx.weight_lsb_shift(mode, nwb) < 0:
        raise _err(group, kind, f"netx chose {nwb} weight bits, more than Lava's synapse "
                   "keeps", "weight")
    eff = fx.effective_weights(w, mode, nwb)
    return _chip_form(eff, exp, hw, group, kind)


def _bias(g: Any, n_shape: tuple[int, ...], group: str, kind: str, hw: HardwareSpec
          ) -> NDArray[np.int64]:
    n = math.prod(n_shape)
    if "bias" not in g:
        return np.zeros(n, np.int64)
    b = _int_values(g, "bias", group, kind).reshape(-1)
    if b.size == n:
        out = b
    elif len(n_shape) > 1 and b.size == n_shape[-1]:
        out = np.tile(b, n // b.size)  # per channel; channel is the fastest axis
    elif b.size == 1:
        out = np.full(n, int(b[0]))
    else:
        raise _err(group, kind, f"bias of {b.size} values fits neither the {n} neurons nor "
                   "their channels", "bias")
    lo, hi = hw.formats.bias_mant_range
    if out.size and (out.min() < lo or out.max() > hi):
        raise _err(group, kind, f"bias in [{int(out.min())}, {int(out.max())}] does not fit "
                   f"the chip's {hw.formats.bias_mant_bits}-bit bias mantissa [{lo}, {hi}]",
                   "bias")
    return out


def _add_pop(net: Network, name: str, size: int, nrn: dict[str, Any],
             bias: NDArray[np.int64]) -> None:
    regs = dict(nrn["registers"])
    if nrn["lif"]:
        regs.update(bias_mant=bias, bias_exp=NETX_BIAS_EXP)
    elif nrn["model"] == "sigma_delta":
        regs["bias"] = bias
    elif bias.any():
        raise ModelImportError(f"a {nrn['model']} neuron has no bias", where=f"population {name}")
    try:
        net.add_neurons(name, size, model=nrn["model"], **regs)
    except NeurochipError as exc:
        raise ModelImportError(f"layer '{name}': {exc}", where=f"netx group layer/{name}") \
            from None


def _dense_delay(g: Any, shape: tuple[int, int], group: str, kind: str) -> NDArray[np.int64]:
    d = _int_values(g, "delay", group, kind)
    if d.size and d.max() > NETX_MAX_DELAY:
        warnings.warn(f"netx group {group}: delays up to {int(d.max())}; netx clamps them to "
                      f"{NETX_MAX_DELAY} and so does neurochip", NetxImportWarning, stacklevel=4)
        d = np.clip(d, 0, NETX_MAX_DELAY)
    if d.size and d.min() < 0:
        raise _err(group, kind, "negative delay", "delay")
    if d.ndim == 0 or d.size == 1:
        return np.full(shape, int(d.reshape(-1)[0]), np.int64)
    if d.ndim == 1:
        if d.size == shape[0]:
            return np.repeat(d.reshape(-1, 1), shape[1], axis=1)
        if d.size == shape[1]:
            return np.repeat(d.reshape(1, -1), shape[0], axis=0)
    if d.shape == shape:
        return d
    raise _err(group, kind, f"delay of shape {d.shape} does not fit weights {shape}", "delay")


def _conv_matrix(weight: NDArray[np.int64], in_shape: tuple[int, ...], g: Any, group: str,
                 kind: str, groups: int) -> tuple[sp.csr_matrix, tuple[int, ...], dict[str, Any]]:
    """Synapses of a netx conv/pool as a (post, pre) matrix in our neuron order."""
    if len(in_shape) != 3:
        raise _err(group, kind, f"input of shape {in_shape} is not (x, y, channel)", "shape")
    W, H, C = in_shape
    stride = _pair(g, "stride", 1)
    pad = _pair(g, "padding", 0)
    dil = _pair(g, "dilation", 1)
    try:
        conv = Conv(weight, (C, H, W), stride=stride, padding=((pad[0], pad[0]), (pad[1], pad[1])),
                    dilation=dil, groups=groups)
    except NeurochipError as exc:
        raise _err(group, kind, str(exc), "weight") from None
    o, ho, wo = conv.out_shape
    out_shape = (int(wo), int(ho), int(o))
    post_t, pre_t, kidx = conv.coords()
    vals = np.asarray(conv.weight).reshape(-1)[kidx].astype(np.int64)
    post = _our_of_torch(out_shape)[post_t]
    pre = _our_of_torch(in_shape)[pre_t]
    keep = vals != 0
    m = sp.csr_matrix((vals[keep], (post[keep], pre[keep])),
                      shape=(math.prod(out_shape), math.prod(in_shape)))
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    info = {"kernel": [int(weight.shape[3]), int(weight.shape[2])],
            "stride": [stride[1], stride[0]], "padding": [pad[1], pad[0]],
            "dilation": [dil[1], dil[0]], "groups": int(groups)}
    return m, out_shape, info


def _conv_args(in_shape: tuple[int, ...], g: Any) -> dict[str, Any]:
    """connect_conv's geometry of a netx conv/pool layer (shape checked by _conv_matrix)."""
    W, H, C = in_shape
    pad = _pair(g, "padding", 0)
    return {"in_shape": (C, H, W), "stride": _pair(g, "stride", 1),
            "padding": (pad[0], pad[0], pad[1], pad[1]), "dilation": _pair(g, "dilation", 1)}


def read_netx(path: str | Path, hw: HardwareSpec, *, reset_interval: int | None = None,
              conv: str = "shared") -> tuple[Network, dict[str, Any]]:
    """Read a netx file: the register-level Network and its ``netx`` metadata (layer table,
    input transform, ports). conv: "shared" (conv and pool layers keep their kernel,
    ``connect_conv``) or "expanded" (one stored synapse per pair)."""
    import h5py

    p = Path(path)
    where = f"netx file {p}"
    if reset_interval is not None and (isinstance(reset_interval, bool) or not isinstance(
            reset_interval, (int, np.integer)) or reset_interval < 1):
        raise ModelImportError(f"reset_interval must be an int >= 1, got {reset_interval!r}",
                               where=where, field="reset_interval")

    def _reset(block: int) -> tuple[int, int] | None:
        # netx: block j (in the order netx builds them) resets at phase j + 1
        return None if reset_interval is None else (int(reset_interval), block + 1)

    block = 0
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ModelImportError(f"cannot read file: {exc.strerror}", where=where) from None
    if size > MAX_NETX_BYTES:
        raise ModelImportError(f"file is {size} bytes; at most {MAX_NETX_BYTES}", where=where,
                               value=size, limit=MAX_NETX_BYTES)
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise ModelImportError(f"not an HDF5 file ({exc})", where=where) from None
    with f:
        if "layer" not in f:
            raise ModelImportError("no 'layer' group: not a netx file", where=where)
        layers = f["layer"]
        keys = sorted(layers.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if not keys or any(not k.isdigit() for k in keys) or \
                [int(k) for k in keys] != list(range(len(keys))):
            raise ModelImportError(f"layer groups must be 0..n-1, got {keys}", where=where)
        net = Network(hw, name=p.stem)
        table: list[dict[str, Any]] = []
        prev: _Prev | None = None
        transform: dict[str, int] | None = None
        for key in keys:
            group = f"layer/{key}"
            g = layers[key]
            kind = _str(g["type"]) if "type" in g else "?"
            row: dict[str, Any] = {"group": group, "type": kind, "population": None}
            if kind == "input":
                shape = _shape(g, group, kind)
                if prev is not None:
                    raise _err(group, kind, "an input layer must come first", "type")
                n = math.prod(shape)
                if "neuron" in g:
                    nrn = _neuron(g, group, kind, hw, is_input=True, reset=_reset(block))
                    block += 1
                    transform = {
                        "weight": int(_int_values(g, "weight", group, kind).reshape(-1)[0])
                        if "weight" in g else INPUT_WEIGHT,
                        "bias": int(_int_values(g, "bias", group, kind).reshape(-1)[0])
                        if "bias" in g else INPUT_BIAS}
                    net.add_input("input", n)
                    _add_pop(net, key, n, nrn, np.zeros(n, np.int64))
                    net.connect("input", key, weights=sp.identity(n, np.int64, format="csr"),
                                storage="sparse")
                    row.update(population=key, neuron=nrn["type"], model=nrn["model"])
                    prev = _Prev(key, shape)
                else:
                    net.add_input("input", n)
                    prev = _Prev("input", shape)
                row["shape"] = list(shape)
            elif kind in ("dense", "dense_rec"):
                rec = kind == "dense_rec"
                if prev is None:
                    if "weight" not in g:
                        raise _err(group, kind, "has no 'weight'", "weight")
                    n_in = int(_arr(g, "weight").reshape(math.prod(_shape(g, group, kind)),
                                                         -1).shape[1])
                    net.add_input("input", n_in)
                    prev = _Prev("input", (n_in,))
                shape = (math.prod(_shape(g, group, kind)),)
                n, n_in = shape[0], math.prod(prev.shape)
                if len(prev.shape) > 1 and not prev.flatten:
                    raise _err(group, kind, f"follows a layer of shape {prev.shape} without a "
                               "flatten layer", "shape")
                nrn = _neuron(g, group, kind, hw, reset=_reset(block))
                block += 1
                w = _int_values(g, "weight", group, kind).reshape(n, -1)
                if w.shape[1] != n_in:
                    raise _err(group, kind, f"weight has {w.shape[1]} inputs; the layer before "
                               f"has {n_in} neurons", "weight")
                if rec:
                    if "weight_rec" not in g:
                        raise _err(group, kind, "has no 'weight_rec'", "weight_rec")
                    wr = _int_values(g, "weight_rec", group, kind).reshape(n, -1)
                    if wr.shape[1] != n:
                        raise _err(group, kind, f"weight_rec has shape {wr.shape}; expected "
                                   f"({n}, {n})", "weight_rec")
                    both, nwb, exp = netx_optimize_weights(np.hstack([w, wr]), group)
                    w, wr = both[:, :n_in], both[:, n_in:]
                else:
                    w, nwb, exp = netx_optimize_weights(w, group)
                if rec and "delay" in g:
                    raise _err(group, kind, "netx builds a delayed recurrent layer without its "
                               "weight exponent and with the input delays on the recurrent "
                               "synapses; such a layer is not supported", "delay")
                delay = (_dense_delay(g, (int(w.shape[0]), int(w.shape[1])), group, kind)
                         if "delay" in g else None)
                if prev.flatten:  # netx flattens (x, y, c) as torch's (c, y, x)
                    cols = _our_of_torch(prev.shape)
                    wo = np.zeros_like(w)
                    wo[:, cols] = w
                    w = wo
                    if delay is not None:
                        do = np.zeros_like(delay)
                        do[:, cols] = delay
                        delay = do
                _add_pop(net, key, n, nrn, _bias(g, shape, group, kind, hw))
                wc, e, mode = _dense_weights(w, group, kind, hw, nwb, exp)
                net.connect(prev.pop, key, weights=wc, weight_exp=e, sign_mode=mode,
                            delay=delay if delay is not None else 0)
                if rec:
                    wcr, er, moder = _dense_weights(wr, group, kind, hw, nwb, exp)
                    net.connect(key, key, weights=wcr, weight_exp=er, sign_mode=moder,
                                )
                row.update(population=key, shape=list(shape), neuron=nrn["type"],
                           model=nrn["model"], weight_bits=nwb, weight_exp=exp, delay="delay" in g,
                           recurrent=rec)
                prev = _Prev(key, shape)
            elif kind in ("conv", "pool"):
                if prev is None:
                    raise _err(group, kind, "the input shape is unknown: give an input layer "
                               "with a shape first", "shape")
                if prev.flatten:
                    raise _err(group, kind, "follows a flatten layer", "type")
                shape = _shape(g, group, kind)
                nrn = _neuron(g, group, kind, hw, reset=_reset(block))
                block += 1
                w = _int_values(g, "weight", group, kind)
                w = w.reshape(w.shape[:4]) if w.ndim == 5 else w
                C_in = prev.shape[-1] if len(prev.shape) == 3 else 0
                if kind == "pool":
                    # slayer's pool: one kernel applied to every channel (depthwise sum)
                    if w.ndim < 2 or w.size != w.shape[-1] * w.shape[-2]:
                        raise _err(group, kind, f"pool weight of shape {w.shape} is not one "
                                   "(kH, kW) kernel", "weight")
                    k = w.reshape(w.shape[-2:])
                    w = np.broadcast_to(k, (C_in, 1, *k.shape)).copy()
                    groups = C_in
                else:
                    groups = int(np.asarray(g["groups"][()]).reshape(-1)[0]) if "groups" in g \
                        else 1
                if w.ndim != 4:
                    raise _err(group, kind, f"weight of shape {w.shape} is not (out, in, kH, kW)",
                               "weight")
                m, out_shape, info = _conv_matrix(w, prev.shape, g, group, kind, groups)
                geom_args = _conv_args(prev.shape, g)
                if out_shape != shape:
                    raise _err(group, kind, f"shape {shape} (x, y, c) differs from the conv "
                               f"output {out_shape}", "shape")
                if "delay" in g:
                    warnings.warn(f"netx group {group}: netx ignores a conv layer's delay; "
                                  "neurochip follows netx", NetxImportWarning, stacklevel=2)
                n = math.prod(shape)
                _add_pop(net, key, n, nrn, _bias(g, shape, group, kind, hw))
                data = m.data.astype(np.int64)
                if data.size:
                    wd, e, mode = _chip_form(data, 0, hw, group, kind)
                    m = sp.csr_matrix((wd, m.indices, m.indptr), shape=m.shape)
                else:
                    e, mode = 0, fx.SIGN_EXCITATORY
                if conv == "shared":  # the kernel once, in netx's (x, y, c) neuron order
                    kern = w.astype(np.int64)
                    kern = kern << -e if e <= 0 else kern >> e  # exact: _chip_form checked
                    net.connect_conv(prev.pop, key, kern, sign_mode=mode, weight_exp=e,
                                     groups=groups, layout="xyc", **geom_args)
                else:
                    net.connect(prev.pop, key, weights=m, weight_exp=e, sign_mode=mode,
                                storage="sparse")
                row.update(population=key, shape=list(shape), neuron=nrn["type"],
                           model=nrn["model"], **info)
                prev = _Prev(key, shape)
            elif kind == "flatten":
                if prev is None:
                    raise _err(group, kind, "comes before any layer", "type")
                prev = _Prev(prev.pop, prev.shape, flatten=True)
                row["shape"] = [math.prod(prev.shape)]
            else:
                why = {"average": "slayer's average block is a float readout (a mean over "
                                  "groups of the previous layer's spikes), not a neuron layer: "
                                  "take the mean of result.spikes on the host",
                       "concat": "netx does not implement concat",
                       "convT": "netx does not implement transposed convolution",
                       "unpool": "netx does not implement unpool",
                       "dense_comp": "complex-valued layers (netx ComplexDense: real and "
                                     "imaginary synapses into RF neurons) are not read; "
                                     "the chip's rf / rf_iz models with port='imag' "
                                     "connections hold them"}.get(
                    kind, f"unknown layer type (supported: {', '.join(NETX_LAYER_TYPES)})")
                raise _err(group, kind, why, "type")
            table.append(row)
        if prev is None:
            raise ModelImportError("the file has no layers", where=where)
        meta = {"format": "netx", "file": p.name, "layers": table,
                "reset_interval": reset_interval,
                "input": "input", "output": prev.pop,
                "input_transform": transform,
                "simulation": {k: float(np.asarray(f["simulation"][k][()]).reshape(-1)[0])
                               for k in ("Ts", "tSample") if "simulation" in f
                               and k in f["simulation"]}}
    return net, meta

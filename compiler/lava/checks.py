"""What Lava 0.10 can reproduce exactly: the formats it hard-codes and the checks an image
must pass before export.
"""

from __future__ import annotations

import numpy as np

from neurochip.core import fixedpoint as fx
from neurochip.core import neuron_models as nm
from neurochip.core.errors import LavaExportError
from neurochip.core.image import ChipImage, ConnectionInfo

__all__ = ["LAVA_FORMATS", "LAVA_MAX_DELAY", "LAVA_MODELS", "LAVA_WEIGHT_BITS",
           "check_exportable", "lava_weight_bits", "lif_core"]


# Register widths and shifts that Lava 0.10's fixed-point LIF (AbstractPyLifModelFixed)
# hard-codes. An image for a chip with other formats cannot be reproduced by Lava.
LAVA_FORMATS: dict[str, int] = {
    "decay_bits": 12,  # decays are 12-bit fractions (unity 4096)
    "u_bits": 24,  # current register
    "v_bits": 24,  # voltage register
    "vth_shift": 6,  # threshold mantissa MSB-aligned with v
    "input_shift": 6,  # synaptic input MSB-aligned with u
}
# Lava's weights are 8-bit magnitudes (clip_weights/truncate_weights use 8 bits).
LAVA_WEIGHT_BITS = 8
# DelayDense/DelaySparse (bit-accurate models) refuse delays above 63: 6 delay bits.
LAVA_MAX_DELAY = 63
#: our neuron model -> the Lava 0.10 process whose fixed-point model it equals bit for bit
LAVA_MODELS: dict[str, str] = {
    "lif": "LIF",
    "lif_reset": "LIFReset",
    "ternary_lif": "TernaryLIF",
    "sigma": "Sigma",
    "delta": "Delta",
    "sigma_delta": "SigmaDelta",
    "atrlif": "ATRLIF",
    "rf": "RF",
    "rf_iz": "RF_IZ",
    "rf_zero": "RFZero",
}
#: models whose registers are the LIF core's (du, dv, bias_mant, bias_exp; vth for lif*)
_LIF_CORE = ("lif", "lif_reset", "ternary_lif")
# Lava stores bias_mant as int16.
_INT16 = (-(1 << 15), (1 << 15) - 1)


def lava_weight_bits(c: ConnectionInfo, weight_bits: int) -> int:
    """num_weight_bits that makes Lava drop exactly the low bits our chip drops.

    Lava drops 8 - num_weight_bits + [mixed] bits; a chip with ``weight_bits``-bit
    weights drops weight_bits - num_weight_bits + [mixed].
    """
    return c.num_weight_bits + LAVA_WEIGHT_BITS - weight_bits


def lif_core(model: str) -> bool:
    """Whether a model uses the LIF core's registers (du, dv, bias_mant, bias_exp)."""
    return model in _LIF_CORE


def check_exportable(image: ChipImage, *, allow_learning: bool = False) -> None:
    """Raise :class:`LavaExportError` unless Lava 0.10 reproduces ``image`` exactly.

    Checks the chip's number formats against the widths Lava hard-codes, that every
    population's model has a Lava process (:data:`LAVA_MODELS`), that registers
    Lava holds once per population are single integers, the bias range, the reset mode,
    every connection's sign mode, weights (Lava must keep each one unchanged) and delays
    (at most 63), and that nothing needs on-chip learning (Lava's learning engine is
    bit-approximate and different from ours). ``allow_learning``: check inference only (the
    caller exports the learning configuration as Lava learning, or leaves it out).
    """
    hw = image.hw
    for name, want in LAVA_FORMATS.items():
        have = getattr(hw.formats, name)
        if have != want:
            raise LavaExportError(
                f"is {have}; Lava's fixed-point LIF hard-codes {want}",
                where=f"hardware spec '{hw.name}'", field=f"formats.{name}", value=have,
                limit=want)
    if hw.formats.weight_bits > LAVA_WEIGHT_BITS:
        raise LavaExportError(
            f"is {hw.formats.weight_bits}; Lava's weights have {LAVA_WEIGHT_BITS} bits",
            where=f"hardware spec '{hw.name}'", field="formats.weight_bits",
            value=hw.formats.weight_bits, limit=LAVA_WEIGHT_BITS)
    for p in image.populations:
        where = f"population '{p.name}'"
        if p.kind == "input":
            continue  # a RingBuffer sends spikes or payloads alike
        if p.model not in LAVA_MODELS:
            why = ("Lava's LIF holds du and dv once per population"
                   if p.model == "lif_per_neuron" else
                   f"export to Lava's {nm.MODELS[p.model].lava} is not built yet"
                   if p.model in nm.MODELS else "Lava 0.10 has no process for it")
            raise LavaExportError(
                f"is a {p.model!r} population; {why} (exported models: "
                f"{', '.join(sorted(LAVA_MODELS))})", where=where, field="model",
                value=p.model)
        if p.model != "lif" and p.reset != "zero":
            raise LavaExportError(
                f"is {p.reset!r}; Lava's {LAVA_MODELS[p.model]} resets to zero", where=where,
                field="reset", value=p.reset)
        if p.model != "lif" and not p.spiking:
            raise LavaExportError(
                f"a non-spiking {p.model!r} population has no Lava {LAVA_MODELS[p.model]}",
                where=where, field="spiking", value=p.spiking)
    if image.learning:
        if not allow_learning:
            raise LavaExportError(
                "the image uses on-chip learning; Lava's learning engine is bit-approximate "
                "and follows other rules, so it cannot reproduce ours exactly "
                "(export_lava(image, learning='drop') exports the weights alone, "
                "learning='lava' the rules as Lava learning processes)", where="chip image",
                field="learning")
    bm_all = image.arrays["neurons/bias_mant"].astype(np.int64)
    be_all = image.arrays["neurons/bias_exp"].astype(np.int64)
    v_lim = (1 << (LAVA_FORMATS["v_bits"] - 1)) - 1
    for p in image.lif_populations:
        where = f"population '{p.name}'"
        if not lif_core(p.model):
            continue  # sigma-delta registers: checked by the model's own formats
        for reg in ("du", "dv", "vth"):
            val = getattr(p, reg)
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)):
                raise LavaExportError(
                    f"is {val!r}; Lava's LIF holds {reg} as one integer per population",
                    where=where, field=reg, value=val)
        if p.reset not in ("zero", "subtract"):
            raise LavaExportError(f"is {p.reset!r}; expected 'zero' or 'subtract'",
                                  where=where, field="reset", value=p.reset)
        bm = bm_all[p.offset: p.offset + p.size]
        be = be_all[p.offset: p.offset + p.size]
        bad = np.flatnonzero((bm < _INT16[0]) | (bm > _INT16[1]))
        if bad.size:
            i = int(bad[0])
            raise LavaExportError(
                f"neuron {i} has {int(bm[i])}; Lava stores bias_mant as int16",
                where=where, field="bias_mant", value=int(bm[i]), limit=_INT16)
        bias = fx.bias_value(bm, be)
        bad = np.flatnonzero(np.abs(bias) > v_lim)
        if bad.size:
            i = int(bad[0])
            raise LavaExportError(
                f"neuron {i} has bias {int(bm[i])} * 2**{int(be[i])} = {int(bias[i])}, beyond "
                f"the 24-bit voltage register (Lava adds it in 32-bit arithmetic)",
                where=where, field="bias_exp", value=int(be[i]), limit=(-v_lim, v_lim))
    sizes = {p.name: p.size for p in image.populations}
    for ci, c in enumerate(image.connections):
        where = f"connection '{c.name}'"
        if c.plastic and not (allow_learning and image.learning):
            raise LavaExportError(
                "is plastic; Lava's learning engine cannot reproduce ours", where=where,
                field="plastic")
        if c.sign_mode not in fx.SIGN_MODES:
            raise LavaExportError(f"is {c.sign_mode!r}; expected one of {fx.SIGN_MODES}",
                                  where=where, field="sign_mode", value=c.sign_mode)
        if c.storage not in ("dense", "sparse", "conv"):  # conv: exported as its expansion
            raise LavaExportError(f"is {c.storage!r}; expected 'dense', 'sparse' or 'conv'",
                                  where=where, field="storage", value=c.storage)
        if c.storage == "conv" and c.plastic:
            raise LavaExportError("a shared-weight convolution cannot be plastic",
                                  where=where, field="plastic")
        if c.pre not in sizes or c.post not in sizes or image.population(c.post).kind != "lif":
            raise LavaExportError(f"links {c.pre!r} -> {c.post!r}, which is not an existing "
                                  "population -> LIF population", where=where, field="post")
        if (c.n_pre, c.n_post) != (sizes[c.pre], sizes[c.post]):
            raise LavaExportError(
                f"has shape (post, pre) = {(c.n_post, c.n_pre)}, populations have "
                f"{(sizes[c.post], sizes[c.pre])}", where=where, field="shape")
        nwb = lava_weight_bits(c, hw.formats.weight_bits)
        if not 1 <= nwb <= LAVA_WEIGHT_BITS:
            raise LavaExportError(
                f"is {c.num_weight_bits}; Lava supports 1..{hw.formats.weight_bits} here",
                where=where, field="num_weight_bits", value=c.num_weight_bits,
                limit=(1, hw.formats.weight_bits))
        w = np.asarray(image.weights_sparse(c.name).data, np.int64)
        kept = fx.effective_weights(w, c.sign_mode, nwb, LAVA_WEIGHT_BITS)
        bad = np.flatnonzero(kept != w)
        if bad.size:
            i = int(bad[0])
            raise LavaExportError(
                f"synapse {i} has weight {int(w[i])}, which Lava would change to "
                f"{int(kept[i])} ({c.sign_mode}, num_weight_bits={nwb}; {bad.size} weights "
                "affected)", where=where, field="weights", value=int(w[i]))
        dmax = (int(image.arrays[f"conn/{ci}/delay"].max(initial=0)) if c.has_delays
                else c.delay)
        if dmax > LAVA_MAX_DELAY or dmax < 0:
            raise LavaExportError(
                f"has a delay of {dmax}; Lava's delayed synapses allow 0..{LAVA_MAX_DELAY} "
                "(6 delay bits)", where=where, field="delay", value=dmax,
                limit=(0, LAVA_MAX_DELAY))

"""Check a learning configuration against an image and a chip, and store it in the image.

:func:`add_learning` is the compiler step: it parses every rule, checks locality (Box 3)
and every bit width against the hardware spec's ``learning`` section, generates the
surrogate lookup tables and the fixed random feedback / readout matrices, derives the
per-core PRNG seeds, checks that each core's synapse memory still holds its learning state,
and returns a *new* image whose ``learning`` entry and ``learn/...`` arrays carry all of it.
The stored form is the resolved record of :mod:`neurochip.core.learning`
(:class:`~neurochip.core.learning.CompiledLearning`: datapath terms, lookup tables,
matrices, seeds); :func:`~neurochip.core.learning.compiled_learning` reads it back, and the
emulator runs it without checking it again.

Datapath of one synaptic variable update (the widths the checks enforce)::

    A   = Z << F                          F = accumulator_bits - width(Z): fraction bits
    for every term mant * 2^s * prod(f):
        P = mant * prod(f)                |P| < 2^(2 * accumulator_bits - 1)  (multiplier)
        A = sat_acc(A + sround(P, -(s + F)))  |term| < 2^(accumulator_bits - 1)
                                          |s + F| <= max_shift
    Z   = sat_Z(sround(A, F + lsb) << lsb) (stochastic rounding to the variable's step)

``Z`` is the weight (9-bit signed value, ``lsb`` = the connection's weight step) for ``dw``
statements, the eligibility tag (``tag_bits`` signed, ``lsb`` = 0) for ``de``.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
from numpy.typing import NDArray

from compiler.learning.rules import BUILTIN_RULES, Term, builtin_rule, parse_rule
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import LearningConfigError, LocalityError, PlacementError
from neurochip.core.hw import HardwareSpec
from neurochip.core.image import ChipImage
from neurochip.core.learning import (
    SURROGATE_KINDS,
    THIRD_FACTOR_KINDS,
    VAR_CODES,
    CompiledLearning,
    CompiledPopulation,
    CompiledSynapse,
    DTerm,
    LearningConfig,
    NeuronLearning,
    RuleText,
    SurrogateParams,
    ThirdFactor,
    TraceParams,
    check_term_shift,
    learning_dict,
)
from neurochip.core.surrogates import surrogate_derivative

__all__ = ["add_learning", "core_seeds", "learning_memory_bits", "remove_learning",
           "resolve_learning"]


# ------------------------------------------------------------------------------ helpers
def _range_err(value: int, lo: int, hi: int, *, where: str, fld: str, why: str,
               rule: str | None = None) -> None:
    if not lo <= value <= hi:
        raise LearningConfigError(f"{value} is outside [{lo}, {hi}] ({why})", where=where,
                                  field=fld, value=value, limit=(lo, hi), rule=rule)


def _var_range(var: str, hw: HardwareSpec) -> tuple[int, int]:
    ls, f = hw.learning, hw.formats
    tmax = (1 << ls.trace_bits) - 1
    return {
        "x0": (0, 1), "y0": (0, 1), "x1": (0, tmax), "x2": (0, tmax), "y1": (0, tmax),
        "y2": (0, tmax), "sg": (0, (1 << ls.surrogate_lut_bits) - 1),
        "m": (-((1 << (ls.third_factor_bits - 1)) - 1), (1 << (ls.third_factor_bits - 1)) - 1),
        "v": (-((1 << (f.v_bits - 1)) - 1), (1 << (f.v_bits - 1)) - 1),
        "u": (-(1 << (f.u_bits - 1)) + 1, 1 << (f.u_bits - 1)),
        "w": (-(1 << f.weight_bits), (1 << f.weight_bits) - 1),
        "e": (-((1 << (ls.tag_bits - 1)) - 1), (1 << (ls.tag_bits - 1)) - 1),
    }[var]


def _bits(x: int) -> int:
    return max(int(x), 0).bit_length()


def _check_terms(rule_terms: tuple[Term, ...], tgt: str, frac: int, hw: HardwareSpec,
                 rule: str, where: str, rate_shift: int = 0) -> tuple[DTerm, ...]:
    ls = hw.learning
    if len(rule_terms) > ls.max_terms:
        raise LearningConfigError(
            f"'{tgt}' has {len(rule_terms)} terms; the learning engine evaluates at most "
            f"{ls.max_terms} per statement (max_terms)", rule=rule, where=where,
            field=f"{tgt}.terms", value=len(rule_terms), limit=ls.max_terms)
    mult_max = (1 << (2 * ls.accumulator_bits - 1)) - 1
    out = []
    for k, rt in enumerate(rule_terms):
        t = Term(rt.mantissa, rt.shift - rate_shift, rt.factors)
        name = f"term {k + 1} of '{tgt}' ({t})"
        if len(t.factors) > ls.max_factors:
            raise LearningConfigError(
                f"{name} has {len(t.factors)} factors; at most {ls.max_factors} (max_factors)",
                rule=rule, where=where, field=f"{tgt}.factors", value=len(t.factors),
                limit=ls.max_factors)
        prod = abs(t.mantissa)
        for fc in t.factors:
            lo, hi = _var_range(fc.var, hw)
            prod *= max(abs(lo + fc.offset), abs(hi + fc.offset))
        if prod > mult_max:
            raise LearningConfigError(
                f"{name} can reach {prod} ({_bits(prod)} bits) before its shift; the "
                f"multiplier holds {2 * ls.accumulator_bits - 1} bits plus sign "
                f"(2 x accumulator_bits)", rule=rule, where=where, field=f"{tgt}.product",
                value=prod, limit=mult_max)
        dshift = t.shift + frac
        check_term_shift(prod, dshift, t.shift, frac, hw, name=name, tgt=tgt, rule=rule,
                         where=where)
        out.append(DTerm(t.mantissa, dshift, tuple(VAR_CODES[f.var] for f in t.factors),
                         tuple(f.offset for f in t.factors), prod, str(rt)))
    return tuple(out)


def _check_trace(tp: TraceParams, hw: HardwareSpec, where: str, fld: str) -> None:
    tb = hw.learning.trace_bits
    _range_err(tp.impulse, 0, (1 << tb) - 1, where=where, fld=f"{fld}.impulse",
               why=f"trace_bits={tb}")
    db = hw.formats.decay_bits
    _range_err(tp.decay, 0, 1 << db, where=where, fld=f"{fld}.decay",
               why=f"{db}-bit decay register")


def _lut(sp_: SurrogateParams, theta: int, hw: HardwareSpec, where: str
         ) -> tuple[NDArray[np.int64], int]:
    ls = hw.learning
    if sp_.kind not in SURROGATE_KINDS:
        raise LearningConfigError(f"unknown surrogate {sp_.kind!r}; use one of "
                                  f"{', '.join(SURROGATE_KINDS)}", where=where,
                                  field="surrogate.kind", value=sp_.kind)
    size = ls.surrogate_lut_size if sp_.size is None else int(sp_.size)
    _range_err(size, 2, ls.surrogate_lut_size, where=where, fld="surrogate.size",
               why="surrogate_lut_size")
    if theta <= 0:
        raise LearningConfigError("a surrogate derivative needs a positive threshold (vth > 0)",
                                  where=where, field="surrogate", value=theta)
    if not (sp_.span > 0 and sp_.steepness > 0):
        raise LearningConfigError("span and steepness must be positive", where=where,
                                  field="surrogate")
    half = size // 2
    shift = max(0, round(float(np.log2(max(sp_.span * theta / half, 1.0)))))
    centres = ((np.arange(size) - half) + 0.5) * float(1 << shift) / theta
    top = (1 << ls.surrogate_lut_bits) - 1
    vals = np.rint(top * surrogate_derivative(sp_.kind, sp_.steepness, centres)).astype(np.int64)
    return vals, shift


def _seed_bytes(*parts: object) -> int:
    h = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(h[:8], "little")


def _random_matrix(shape: tuple[int, int], bits: int, *parts: object) -> NDArray[np.int64]:
    rng = np.random.default_rng(_seed_bytes(*parts))
    hi = (1 << (bits - 1)) - 1
    return rng.integers(-hi, hi + 1, size=shape).astype(np.int64)


def core_seeds(seed: int, cores: list[int], prng_bits: int) -> dict[int, int]:
    """Per-core PRNG seeds derived from one seed (each ``prng_bits`` wide)."""
    mask = (1 << prng_bits) - 1
    return {int(k): _seed_bytes("core-seed", seed, int(k)) & mask for k in cores}


def _pop_cores(image: ChipImage, name: str) -> tuple[int, ...]:
    p = image.population(name)
    return tuple(sorted({int(c) for c, _, n in p.slices if n > 0}))


# ------------------------------------------------------------------------------ checking
def _compile(image: ChipImage, cfg: LearningConfig,
             seeds: dict[int, int] | None = None) -> CompiledLearning:
    hw = image.hw
    ls, fm = hw.learning, hw.formats
    where0 = "learning config"
    if ls.tag_bits > ls.accumulator_bits:
        raise LearningConfigError(
            f"tag_bits={ls.tag_bits} exceeds accumulator_bits={ls.accumulator_bits}",
            where=f"hardware spec {hw.name}", field="learning.tag_bits", value=ls.tag_bits,
            limit=ls.accumulator_bits)
    if fm.weight_bits + 1 > ls.accumulator_bits:
        raise LearningConfigError(
            f"{fm.weight_bits + 1}-bit weights do not fit the {ls.accumulator_bits}-bit "
            f"accumulator", where=f"hardware spec {hw.name}",
            field="learning.accumulator_bits", value=ls.accumulator_bits,
            limit=fm.weight_bits + 1)
    _range_err(cfg.epoch, 1, ls.max_epoch, where=where0, fld="epoch", why="max_epoch")
    _range_err(cfg.seed, 0, (1 << 63) - 1, where=where0, fld="seed", why="a 63-bit seed")
    pops = {p.name: p for p in image.populations}
    conns = {c.name: (i, c) for i, c in enumerate(image.connections)}

    # populations -----------------------------------------------------------------------
    nl: dict[str, NeuronLearning] = {}
    for n in cfg.neurons:
        if n.population not in pops or pops[n.population].kind != "lif":
            lif = [p.name for p in image.lif_populations]
            raise LearningConfigError(f"no LIF population {n.population!r}; have {lif}",
                                      where=where0, field="neurons")
        if n.population in nl:
            raise LearningConfigError(f"population {n.population!r} is configured twice",
                                      where=where0, field="neurons")
        nl[n.population] = n

    # synapses ----------------------------------------------------------------------------
    seen: set[str] = set()
    synapses: list[CompiledSynapse] = []
    for s in cfg.synapses:
        if s.connection not in conns:
            raise LearningConfigError(f"no connection {s.connection!r}; have {list(conns)}",
                                      where=where0, field="synapses")
        if s.connection in seen:
            raise LearningConfigError(f"connection {s.connection!r} is listed twice",
                                      where=where0, field="synapses")
        seen.add(s.connection)
        ci, c = conns[s.connection]
        where = f"connection '{c.name}'"
        if c.storage == "conv":
            raise LearningConfigError(
                "is a shared-weight convolution: its kernel is shared by every synapse, so "
                "it cannot learn per synapse (compile with conv=\"expanded\")",
                where=where, field="connection")
        if c.post not in nl:
            nl[c.post] = NeuronLearning(c.post)
        rname = s.rule if s.rule in BUILTIN_RULES else "custom"
        text = builtin_rule(s.rule, s.params) if s.rule in BUILTIN_RULES else s.rule
        if s.rule not in BUILTIN_RULES and s.params:
            raise LearningConfigError("parameters apply to built-in rules only", rule=rname,
                                      where=where, field="params")
        rule = parse_rule(text, name=rname, post=c.post, where=where,
                          constant_bits=ls.constant_bits)
        uses = frozenset(rule.variables())
        post_nl = nl[c.post]
        post_cores = _pop_cores(image, c.post)
        if "m" in uses and post_nl.third_factor.kind == "none":
            raise LocalityError(
                f"variable 'm' (the third factor) does not reach core(s) "
                f"{', '.join(map(str, post_cores))} of population '{c.post}': no error or "
                f"modulation channel is configured for it (set its third_factor)",
                rule=rname, where=where, field="m")
        if "sg" in uses and post_nl.surrogate is None:
            raise LearningConfigError(
                f"variable 'sg' needs a surrogate lookup table for population '{c.post}' "
                f"(set its surrogate)", rule=rname, where=where, field="sg")
        for tp, nm in ((s.x1, "x1"), (s.x2, "x2")):
            _check_trace(tp, hw, where, nm)
        wbits = fm.weight_bits
        lsb = fx.weight_lsb_shift(c.sign_mode, c.num_weight_bits, wbits)
        lo, hi = fx.weight_range(c.sign_mode, wbits)
        eff = fx.effective_weights(np.array([lo, hi]), c.sign_mode, c.num_weight_bits, wbits)
        w_frac = ls.accumulator_bits - (wbits + 1)
        e_frac = ls.accumulator_bits - ls.tag_bits
        dw = _check_terms(rule.dw, "dw", w_frac, hw, rname, where, cfg.rate_shift)
        de = _check_terms(rule.de, "de", e_frac, hw, rname, where)
        if not dw and de:
            raise LearningConfigError("a rule that updates only the tag never changes a weight",
                                      rule=rname, where=where, field="dw")
        synapses.append(CompiledSynapse(ci, c.name, c.pre, c.post,
                                        RuleText(rule.name, rule.canonical()), dw, de, s.x1, s.x2,
                                        uses, int(eff[0]), int(eff[1]), lsb, w_frac, e_frac))

    # learning populations ------------------------------------------------------------
    rule_uses: dict[str, set[str]] = {}
    for cs in synapses:
        rule_uses.setdefault(cs.post, set()).update(cs.uses)
    targets: dict[str, int] = {}
    compiled: dict[str, CompiledPopulation] = {}
    fb_bits = ls.feedback_bits
    for name, n in nl.items():
        p = pops[name]
        where = f"population '{name}'"
        tf = n.third_factor
        _check_trace(n.y1, hw, where, "y1")
        _check_trace(n.y2, hw, where, "y2")
        if tf.kind in ("bp", "backprop"):
            down = [c.name for c in image.connections if c.pre == name]
            raise LocalityError(
                f"exact backpropagation needs the transposed forward weights "
                f"({', '.join(down) or 'of the next layer'}), which live in the synapse memory "
                f"of the next layer's core (weight transport, Box 3); use 'fa' or 'dfa'",
                where=where, field="third_factor.kind", value=tf.kind)
        if tf.kind not in THIRD_FACTOR_KINDS:
            raise LearningConfigError(f"unknown third factor {tf.kind!r}; use one of "
                                      f"{', '.join(THIRD_FACTOR_KINDS)}", where=where,
                                      field="third_factor.kind", value=tf.kind)
        for fld in ("shift", "readout_shift"):
            _range_err(int(getattr(tf, fld)), -ls.max_shift, ls.max_shift, where=where,
                       fld=f"third_factor.{fld}", why="max_shift")
        theta = int(p.vth) << fm.vth_shift
        lut, lut_shift = (None, 0)
        if n.surrogate is not None:
            lut, lut_shift = _lut(n.surrogate, theta, hw, where)
        matrix = None
        source = tf.source
        target = tf.target
        cores = _pop_cores(image, name)
        if tf.kind in ("dfa", "fa"):
            if source is None or source not in pops:
                raise LearningConfigError(f"'{tf.kind}' needs a source population (got "
                                          f"{source!r})", where=where, field="third_factor.source")
            if source == name:
                raise LearningConfigError("a layer cannot be its own feedback source",
                                          where=where, field="third_factor.source")
            shape = (p.size, pops[source].size)
            matrix = _matrix(tf, shape, fb_bits, cfg.seed, name, where)
        elif tf.kind == "dcll":
            if target is None or target not in pops:
                raise LearningConfigError(f"'dcll' needs a target population (got {target!r})",
                                          where=where, field="third_factor.target")
            if len(cores) > 1:
                raise LocalityError(
                    f"the local readout of '{name}' sums over the whole layer, which spans "
                    f"cores {', '.join(map(str, cores))}; a DCLL layer must sit on one core",
                    where=where, field="third_factor.readout")
            targets[target] = pops[target].size
            shape = (pops[target].size, p.size)
            matrix = _matrix(tf, shape, fb_bits, cfg.seed, name, where)
        elif tf.kind == "error":
            targets[name] = p.size
        uses_y1 = "y1" in rule_uses.get(name, set()) or tf.kind in ("error", "dcll")
        uses_y2 = "y2" in rule_uses.get(name, set())
        compiled[name] = CompiledPopulation(name, p.offset, p.size, theta, n.y1, n.y2, tf, lut,
                                            lut_shift, matrix, source, target, uses_y1, uses_y2,
                                            cores)
    # sources must be learning populations with a third factor; DFA sources are outputs
    for cp in compiled.values():
        if cp.third.kind in ("dfa", "fa"):
            src = compiled.get(str(cp.source))
            where = f"population '{cp.name}'"
            if src is None or src.third.kind == "none":
                raise LearningConfigError(
                    f"feedback source {cp.source!r} has no third factor to send",
                    where=where, field="third_factor.source")
            if cp.third.kind == "dfa" and src.third.kind != "error":
                raise LearningConfigError(
                    f"DFA feeds back the output error; source {cp.source!r} is a "
                    f"'{src.third.kind}' layer, not an 'error' layer", where=where,
                    field="third_factor.source")
    order = _order(compiled)
    if seeds is None:
        seeds = core_seeds(cfg.seed, [c.core for c in image.cores], ls.prng_bits)
    for k, sd in seeds.items():
        _range_err(int(sd), 0, (1 << ls.prng_bits) - 1, where=f"core {k}", fld="prng_seed",
                   why=f"prng_bits={ls.prng_bits}")
    tnames = tuple(sorted(targets))
    cl = CompiledLearning(cfg, tuple(synapses), tuple(compiled[n] for n in order), cfg.epoch,
                          dict(seeds), tnames, tuple(targets[t] for t in tnames), ls.trace_bits,
                          ls.tag_bits, ls.third_factor_bits, ls.surrogate_lut_bits,
                          ls.accumulator_bits, ls.prng_bits, fm.decay_bits)
    _check_memory(image, cl)
    return cl


def _matrix(tf: ThirdFactor, shape: tuple[int, int], bits: int, seed: int, name: str,
            where: str) -> NDArray[np.int64]:
    mat = tf.matrix
    if mat is None:
        return _random_matrix(shape, bits, "feedback", seed, tf.seed, name, tf.kind)
    m = np.asarray(mat)
    if m.shape != shape:
        raise LearningConfigError(f"matrix has shape {m.shape}, expected {shape}", where=where,
                                  field="third_factor.matrix", value=m.shape, limit=shape)
    if m.dtype.kind not in "iu":
        raise LearningConfigError("matrix must hold integers", where=where,
                                  field="third_factor.matrix")
    hi = (1 << (bits - 1)) - 1
    if m.size and (m.min() < -hi or m.max() > hi):
        raise LearningConfigError(
            f"matrix entries reach [{int(m.min())}, {int(m.max())}], outside the "
            f"{bits}-bit signed range [-{hi}, {hi}] (feedback_bits)", where=where,
            field="third_factor.matrix", value=(int(m.min()), int(m.max())), limit=(-hi, hi))
    return m.astype(np.int64)


def _order(pops: dict[str, CompiledPopulation]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, chain: tuple[str, ...]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise LearningConfigError(f"feedback sources form a cycle: {' -> '.join(chain)}",
                                      where=f"population '{n}'", field="third_factor.source")
        state[n] = 1
        p = pops[n]
        if p.third.kind in ("dfa", "fa") and p.source in pops:
            visit(str(p.source), (*chain, str(p.source)))
        state[n] = 2
        order.append(n)

    for n in pops:
        visit(n, (n,))
    return order


def learning_memory_bits(image: ChipImage, cl: CompiledLearning) -> dict[int, int]:
    """Bits of learning state each core holds: tags, traces, tables and matrices."""
    tb = cl.trace_bits
    bits: dict[int, int] = {c.core: 0 for c in image.cores}
    ncore = image.arrays["neurons/core"].astype(np.int64)
    rconn = image.arrays["route/conn"].astype(np.int64)
    rcore = image.arrays["route/core"].astype(np.int64)
    for s in cl.synapses:
        post = image.population(s.post)
        _, post_idx = image.synapse_coords(s.index)
        syn_cores = ncore[post.offset + post_idx]
        nx = int("x1" in s.uses) + int("x2" in s.uses)
        for k in bits:
            if s.de:
                bits[k] += cl.tag_bits * int(np.count_nonzero(syn_cores == k))
            axons = int(np.count_nonzero((rconn == s.index) & (rcore == k)))
            bits[k] += nx * tb * axons
    for p in cl.populations:
        for k in p.cores:
            n_k = int(np.count_nonzero(ncore[p.offset: p.offset + p.size] == k))
            ny = int(p.uses_y1) + int(p.uses_y2) + int(p.third.kind == "error")
            bits[k] += ny * tb * n_k
            if p.lut is not None:
                bits[k] += cl.lut_bits * p.lut.size
            if p.matrix is not None:
                fbb = image.hw.learning.feedback_bits
                other = p.matrix.shape[1] if p.third.kind in ("dfa", "fa") else p.matrix.shape[0]
                bits[k] += fbb * other * n_k
            if p.third.kind == "dcll":
                bits[k] += tb * p.matrix.shape[0]  # type: ignore[union-attr]
    return bits


def _check_memory(image: ChipImage, cl: CompiledLearning) -> None:
    limit = image.hw.core.synapse_memory_bits
    extra = learning_memory_bits(image, cl)
    for info in image.cores:
        used = info.synapse_bits + extra.get(info.core, 0)
        if used > limit:
            raise PlacementError(
                f"core {info.core} ({', '.join(info.populations)}) needs {used:,} bits of "
                f"synapse memory with its learning state ({extra[info.core]:,} bits of tags, "
                f"traces, lookup tables and feedback weights); it has {limit:,}",
                rule="learning_memory", where=f"core {info.core}", value=used, limit=limit)


# ------------------------------------------------------------------------------ image I/O
def resolve_learning(image: ChipImage, config: LearningConfig) -> CompiledLearning:
    """Check ``config`` against ``image`` and its chip and return the resolved record (what
    :func:`add_learning` stores); raises as :func:`add_learning` does."""
    return _compile(remove_learning(image), config)


def add_learning(image: ChipImage, config: LearningConfig) -> ChipImage:
    """A new image that carries ``config`` (checked); ``image`` itself is not changed.

    Raises LocalityError for a rule or third factor that needs non-local data (naming the
    variable), LearningConfigError for a value outside a width or limit of the hardware
    spec (naming the rule, connection or population, field and limit), PlacementError
    (rule ``learning_memory``) when a core's memory cannot also hold the learning state.
    """
    base = remove_learning(image)
    cl = _compile(base, config)
    arrays = dict(base.arrays)
    for p in cl.populations:
        if p.lut is not None:
            arrays[f"learn/lut/{p.name}"] = p.lut.astype(np.uint16)
        if p.matrix is not None:
            dt = np.int8 if image.hw.learning.feedback_bits <= 8 else np.int16
            arrays[f"learn/matrix/{p.name}"] = p.matrix.astype(dt)
    plastic = {s.name for s in cl.synapses}
    conns = [dataclasses.replace(c, plastic=c.name in plastic) for c in base.connections]
    return ChipImage(base.hw, list(base.populations), conns, list(base.cores), arrays,
                     learning_dict(cl), dict(base.metadata))


def remove_learning(image: ChipImage) -> ChipImage:
    """A copy of ``image`` without any learning configuration (weights unchanged)."""
    arrays = {k: v for k, v in image.arrays.items() if not k.startswith("learn/")}
    conns = [dataclasses.replace(c, plastic=False) for c in image.connections]
    return ChipImage(image.hw, list(image.populations), conns, list(image.cores), arrays, None,
                     dict(image.metadata))

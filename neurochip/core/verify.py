"""The chip image verifier: every image is checked here before any kernel sees it.

:func:`verify_image` proves, from the image's manifest entries and arrays alone, what the
emulator's unchecked kernels rely on, and that the image is one the compiler could have
written for its hardware spec:

* types and sizes: every manifest field has its type, every array its dtype and shape
  (derived from the populations and connections, never from the array itself);
* index ranges: sparse row pointers ``ptr`` start at 0, never decrease and end at the
  synapse count; targets ``post`` lie inside the post population and strictly increase
  within a row; neuron cores, route cores and route connections name things that exist;
* placement: populations tile their index spaces in order, slices tile each population,
  ``neurons/core`` matches the slices, per-core counts match and respect the core limits;
* routing: the axon tables are exactly those the placement and the synapses imply;
* registers: every value against the hardware spec's number formats, through the very
  rules the network builder uses (:mod:`neurochip.core.network`), weight decode rules
  through :mod:`neurochip.core.fixedpoint`;
* metadata the run command computes with (output scales) is finite and non-zero.

A failure raises :class:`~neurochip.core.errors.ImageError` naming the member, the index
and the limit. The learning configuration is checked by the learning engine when it is
built from the image; here only its arrays' names are bounded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core import fixedpoint as fx
from neurochip.core import neuron_models as nm
from neurochip.core.conv import ConvGeometry
from neurochip.core.errors import ImageError, NetworkError
from neurochip.core.hw import MAX_CORES
from neurochip.core.image import ChipImage, ConnectionInfo, PopulationInfo
from neurochip.core.network import (
    check_connection_registers,
    check_delays,
    check_lif_registers,
    check_payload_bits,
)

__all__ = ["MAX_CORES", "verify_image"]



def verify_image(image: ChipImage, where: str = "chip image") -> None:
    """Raise :class:`ImageError` unless ``image`` is consistent and safe to run."""
    try:
        _Verifier(image, where).run()
    except ImageError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, IndexError,
            OverflowError) as exc:  # an entry of a kind the checks above do not expect
        raise ImageError(f"malformed image ({type(exc).__name__}: {exc})", member="<image>",
                         where=where) from None


def _is_int(x: Any) -> bool:
    if type(x) is int:  # the common case, fast
        return True
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


class _Verifier:
    def __init__(self, image: ChipImage, where: str) -> None:
        self.im = image
        self.where = where
        self.hw = image.hw
        self.fmt = image.hw.formats

    def fail(self, member: str, message: str, index: int | None = None, value: Any = None,
             limit: Any = None) -> ImageError:
        return ImageError(message, member=member, index=index, value=value, limit=limit,
                          where=self.where)

    # ------------------------------------------------------------------ helpers
    def int_field(self, obj: Any, name: str, member: str, lo: int | None = None,
                  hi: int | None = None) -> int:
        v = getattr(obj, name)
        if not _is_int(v):
            raise self.fail(f"{member}.{name}", f"must be an integer, got {v!r}", value=v)
        v = int(v)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(f"{member}.{name}", f"{v} is outside [{lo}, {hi}]", value=v,
                            limit=(lo, hi))
        return v

    def typed(self, obj: Any, name: str, member: str, kind: type) -> Any:
        v = getattr(obj, name)
        if not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)):
            raise self.fail(f"{member}.{name}", f"must be a {kind.__name__}, got {v!r}",
                            value=v)
        return v

    def array(self, name: str, dtype: Any, shape: tuple[int, ...]) -> NDArray[Any]:
        a = self.im.arrays.get(name)
        if a is None:
            raise self.fail(name, "array is missing")
        if not isinstance(a, np.ndarray):
            raise self.fail(name, f"must be a numpy array, got {type(a).__name__}")
        if a.dtype != np.dtype(dtype):
            raise self.fail(name, f"has dtype {a.dtype}; must be {np.dtype(dtype)}",
                            value=str(a.dtype), limit=str(np.dtype(dtype)))
        if a.shape != shape:
            raise self.fail(name, f"has shape {a.shape}; must be {shape}", value=a.shape,
                            limit=shape)
        return a

    def in_range(self, name: str, a: NDArray[Any], lo: int, hi: int) -> None:
        """Every element of ``a`` in [lo, hi] (named by its first offender)."""
        if a.size == 0:
            return
        amin, amax = int(a.min()), int(a.max())
        if amin >= lo and amax <= hi:
            return
        i = int(np.flatnonzero((a < lo) | (a > hi))[0])
        raise self.fail(name, f"{int(a[i])} is outside [{lo}, {hi}]", index=i,
                        value=int(a[i]), limit=(lo, hi))

    def rule(self, member: str, fn: Any, *args: Any) -> None:
        """Run one of the builder's range rules; its error becomes an ImageError."""
        try:
            fn(*args)
        except NetworkError as exc:
            idx = None
            msg = exc.message
            if msg.startswith("element "):
                idx = int(msg.split()[1])
            raise self.fail(f"{member}.{exc.field}", msg, index=idx, value=exc.value,
                            limit=exc.limit) from None

    # ------------------------------------------------------------------ checks
    def run(self) -> None:
        im = self.im
        if self.hw.n_cores > MAX_CORES:
            raise self.fail("hw.mesh", f"declares {self.hw.n_cores} cores; at most "
                            f"{MAX_CORES}", value=self.hw.n_cores, limit=MAX_CORES)
        for key, kind in (("populations", list), ("connections", list), ("cores", list),
                          ("arrays", dict), ("metadata", dict)):
            if not isinstance(getattr(im, key), kind):
                raise self.fail(key, f"must be a {kind.__name__}")
        if im.learning is not None and not isinstance(im.learning, dict):
            raise self.fail("learning", "must be a mapping or null")
        self.populations()
        self.arrays_known()
        self.cores()
        self.neurons()
        for ci, c in enumerate(im.connections):
            self.connection(ci, c)
        self.routing()
        self.metadata()

    def populations(self) -> None:
        im = self.im
        names: set[str] = set()
        n_in = n_lif = 0
        max_total = self.hw.n_cores * self.hw.core.max_neurons
        for pi, p in enumerate(im.populations):
            m = f"populations[{pi}]"
            if not isinstance(p, PopulationInfo):
                raise self.fail(m, "is not a population entry")
            name = self.typed(p, "name", m, str)
            if name in names:
                raise self.fail(f"{m}.name", f"population name {name!r} appears twice")
            names.add(name)
            if p.kind not in ("input", "lif"):
                raise self.fail(f"{m}.kind", f"must be 'input' or 'lif', got {p.kind!r}",
                                value=p.kind)
            size = self.int_field(p, "size", m, 1, max_total if p.kind == "lif" else None)
            expect = n_in if p.kind == "input" else n_lif
            off = self.int_field(p, "offset", m)
            if off != expect:
                raise self.fail(f"{m}.offset", f"is {off}; populations of kind {p.kind} "
                                f"must tile their index space in order, so {expect}",
                                value=off, limit=expect)
            self.typed(p, "slices", m, list)
            self.typed(p, "spiking", m, bool)
            self.typed(p, "reset", m, str)
            self.typed(p, "model", m, str)
            self.typed(p, "registers", m, dict)
            pb = self.int_field(p, "payload_bits", m, 0, 32)
            if p.kind == "input":
                n_in += size
                if p.slices:
                    raise self.fail(f"{m}.slices", "an input population has no slices")
                if p.model != "lif" or p.registers:
                    raise self.fail(f"{m}.model", "an input population has no model")
                self.rule(m, check_payload_bits, f"population '{name}'", self.fmt, pb)
                continue
            n_lif += size
            if p.model not in nm.MODELS:
                raise self.fail(f"{m}.model", f"unknown neuron model {p.model!r}",
                                value=p.model)
            mdl = nm.MODELS[p.model]
            want = nm.model_payload_bits(mdl, self.fmt)
            if pb != want:
                raise self.fail(f"{m}.payload_bits", f"is {pb}; model {p.model!r} on this "
                                f"chip sends {want}-bit payloads", value=pb, limit=want)
            scalar = {f.name for f in mdl.fields if not f.per_neuron}
            if set(p.registers) != scalar:
                raise self.fail(f"{m}.registers", f"holds {sorted(p.registers)}; model "
                                f"{p.model!r} has {sorted(scalar)}")
            if p.model not in ("lif", "lif_per_neuron") and (p.reset != "zero"
                                                               or not p.spiking):
                raise self.fail(f"{m}.reset", f"model {p.model!r} resets to zero and spikes")
            if p.reset not in ("zero", "subtract"):
                raise self.fail(f"{m}.reset", f"must be 'zero' or 'subtract', got {p.reset!r}")
            for f in ("du", "dv", "vth"):
                self.int_field(p, f, m)
            self.rule(m, check_lif_registers, f"population '{name}'", self.fmt, int(p.du),
                      int(p.dv), int(p.vth))
            start = 0
            for si, s in enumerate(p.slices):
                sm = f"{m}.slices[{si}]"
                if (not isinstance(s, list) or len(s) != 3 or not all(_is_int(v) for v in s)):
                    raise self.fail(sm, f"must be [core, start, count] integers, got {s!r}")
                core, st, cnt = (int(v) for v in s)
                if not 0 <= core < self.hw.n_cores:
                    raise self.fail(sm, f"core {core} does not exist", value=core,
                                    limit=self.hw.n_cores - 1)
                if st != start or cnt <= 0:
                    raise self.fail(sm, f"slices must tile the population in order: "
                                    f"expected start {start} and a positive count, got "
                                    f"start {st} count {cnt}", value=(st, cnt))
                start += cnt
            if start != size:
                raise self.fail(f"{m}.slices", f"cover {start} neurons of {size}",
                                value=start, limit=size)
        if n_lif > max_total:
            raise self.fail("populations", f"{n_lif} neurons; the chip holds {max_total}",
                            value=n_lif, limit=max_total)
        self.n_in, self.n_lif = n_in, n_lif
        self.pops = {p.name: p for p in im.populations}

    def arrays_known(self) -> None:
        allowed = {"neurons/bias_mant", "neurons/bias_exp", "neurons/core", "route/ptr",
                   "route/core", "route/nsyn", "route/conn"}
        allowed.update(f"neurons/{k}" for k in self.per_neuron_fields())
        for ci, c in enumerate(self.im.connections):
            if not isinstance(c, ConnectionInfo):
                raise self.fail(f"connections[{ci}]", "is not a connection entry")
            keys = ["w"] + (["ptr", "post"] if c.storage == "sparse" else []) + (
                ["delay"] if c.has_delays is True else [])
            allowed.update(f"conn/{ci}/{k}" for k in keys)
        for name in self.im.arrays:
            if not isinstance(name, str):
                raise self.fail("arrays", f"array name {name!r} is not a string")
            if name in allowed:
                continue
            if name.startswith("learn/") and self.im.learning is not None:
                a = self.im.arrays[name]
                if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
                    raise self.fail(name, "learning arrays must be numeric numpy arrays")
                continue
            raise self.fail(name, "is not an array this image's manifest accounts for")

    def per_neuron_fields(self) -> list[str]:
        """The per-neuron model registers of the image's populations (each an array)."""
        out: list[str] = []
        for p in self.im.populations:
            if p.kind == "lif":
                for f in nm.MODELS[p.model].fields:
                    if f.per_neuron and f.name not in out:
                        out.append(f.name)
        return out

    def cores(self) -> None:
        lim = self.hw.core
        on_core = {p.name: {s[0] for s in p.slices} for p in self.im.populations
                   if p.kind == "lif"}
        seen: set[int] = set()
        prev = -1
        for k, c in enumerate(self.im.cores):
            m = f"cores[{k}]"
            core = self.int_field(c, "core", m, 0, self.hw.n_cores - 1)
            if core in seen or core <= prev:
                raise self.fail(f"{m}.core", f"core {core} is listed twice or out of order")
            seen.add(core)
            prev = core
            self.int_field(c, "neurons", m, 0, lim.max_neurons)
            self.int_field(c, "synapse_bits", m, 0, lim.synapse_memory_bits)
            self.int_field(c, "input_axons", m, 0, lim.max_input_axons)
            self.int_field(c, "output_axons", m, 0, lim.max_output_axons)
            pops = self.typed(c, "populations", m, list)
            for name in pops:
                if not isinstance(name, str) or core not in on_core.get(name, ()):
                    raise self.fail(f"{m}.populations", f"{name!r} has no neurons on core "
                                    f"{core}")
        self.used = np.array(sorted(seen), np.int64)

    def neurons(self) -> None:
        N = self.n_lif
        bm = self.array("neurons/bias_mant", np.int32, (N,))
        be = self.array("neurons/bias_exp", np.int8, (N,))
        ncore = self.array("neurons/core", np.int32, (N,))
        lif = [p for p in self.im.populations if p.kind == "lif"]
        s_core = np.array([s[0] for p in lif for s in p.slices], np.int32)
        s_count = np.array([s[2] for p in lif for s in p.slices], np.int64)
        expect = np.repeat(s_core, s_count)
        if not np.array_equal(expect, ncore):
            i = int(np.flatnonzero(expect != ncore)[0])
            raise self.fail("neurons/core", f"neuron {i} is on core {int(ncore[i])}; the "
                            f"population slices place it on core {int(expect[i])}", index=i,
                            value=int(ncore[i]), limit=int(expect[i]))
        counts = np.zeros(self.hw.n_cores, np.int64)  # neurons per core, from the slices
        np.add.at(counts, s_core, s_count)
        have = np.zeros(self.hw.n_cores, np.int64)
        have[self.used] = [c.neurons for c in self.im.cores]
        if not np.array_equal(counts, have):
            k = int(np.flatnonzero(counts != have)[0])
            raise self.fail("cores", f"core {k} holds {int(counts[k])} neurons; its entry "
                            f"says {int(have[k])}", index=k, value=int(have[k]),
                            limit=int(counts[k]))
        extra = {k: self.array(f"neurons/{k}", np.int32, (N,))
                 for k in self.per_neuron_fields()}
        for p in lif:
            sl = slice(p.offset, p.offset + p.size)
            self.rule(f"neurons[{p.name}]", check_lif_registers, f"population '{p.name}'",
                      self.fmt, int(p.du), int(p.dv), int(p.vth), bm[sl], be[sl])
            if p.model != "lif":
                mdl = nm.MODELS[p.model]
                regs: dict[str, Any] = dict(p.registers)
                for f in mdl.fields:
                    if f.per_neuron:
                        regs[f.name] = extra[f.name][sl].astype(np.int64)
                self.rule(f"neurons[{p.name}]", nm.check_model_registers, mdl, regs, p.size,
                          self.fmt, f"population '{p.name}'")

    def connection(self, ci: int, c: ConnectionInfo) -> None:
        m = f"connections[{ci}]"
        self.typed(c, "name", m, str)
        pre = self.pops.get(c.pre) if isinstance(c.pre, str) else None
        post = self.pops.get(c.post) if isinstance(c.post, str) else None
        if pre is None:
            raise self.fail(f"{m}.pre", f"no population {c.pre!r}")
        if post is None or post.kind != "lif":
            raise self.fail(f"{m}.post", f"no LIF population {c.post!r}")
        n_pre = self.int_field(c, "n_pre", m, pre.size, pre.size)
        n_post = self.int_field(c, "n_post", m, post.size, post.size)
        for f in ("has_delays", "plastic"):
            self.typed(c, f, m, bool)
        self.typed(c, "sign_mode", m, str)
        for f in ("num_weight_bits", "weight_exp", "delay", "decode", "wshift", "n_synapses"):
            self.int_field(c, f, m)
        if post.model in nm.MODELS:
            self.int_field(c, "port", m, 0, nm.MODELS[post.model].inputs - 1)
        self.rule(m, check_connection_registers, f"connection '{c.name}'", self.fmt,
                  int(c.weight_exp), int(c.num_weight_bits), c.sign_mode)
        _, decode, shift = fx.encode_weight_bytes(np.zeros(0, np.int64), c.sign_mode)
        if (c.decode, c.wshift) != (decode, shift):
            raise self.fail(f"{m}.decode", f"decode {c.decode} shift {c.wshift} is not the "
                            f"rule of {c.sign_mode} weights (decode {decode} shift {shift})",
                            value=(c.decode, c.wshift), limit=(decode, shift))
        base = f"conn/{ci}"
        if c.storage == "dense":
            nsyn = n_pre * n_post
            if c.n_synapses != nsyn:
                raise self.fail(f"{m}.n_synapses", f"is {c.n_synapses}; a dense connection "
                                f"has n_pre * n_post = {nsyn}", value=c.n_synapses,
                                limit=nsyn)
        elif c.storage == "sparse":
            nsyn = self.int_field(c, "n_synapses", m, 0, n_pre * n_post)
            ptr = self.array(f"{base}/ptr", np.int64, (n_pre + 1,))
            post_idx = self.array(f"{base}/post", np.uint32, (nsyn,))
            self.sparse_indices(base, ptr, post_idx, n_post, nsyn)
        elif c.storage == "conv":
            geom = self.conv_geometry(ci, c, m, n_pre, n_post)
            self.array(f"{base}/w", np.uint8, (geom.kernel_size,))  # before expanding
            if c.n_synapses != geom.n_synapses:
                raise self.fail(f"{m}.n_synapses", f"is {c.n_synapses}; the geometry gives "
                                f"{geom.n_synapses}", value=c.n_synapses,
                                limit=geom.n_synapses)
            if c.has_delays is True or c.plastic is True:
                raise self.fail(f"{m}.has_delays" if c.has_delays else f"{m}.plastic",
                                "a conv connection has one delay and fixed weights")
            nsyn = geom.kernel_size  # the kernel, stored once
        else:
            raise self.fail(f"{m}.storage", f"must be 'dense', 'sparse' or 'conv', got "
                            f"{c.storage!r}")
        w = self.array(f"{base}/w", np.uint8, (nsyn,))
        self.weight_bytes(f"{base}/w", w, c)
        if c.has_delays:
            d = self.array(f"{base}/delay", np.uint8, (nsyn,))
            self.in_range(f"{base}/delay", d, 0, self.fmt.max_delay)
            dmax = int(d.max()) if d.size else 0
            if c.delay != dmax:
                raise self.fail(f"{m}.delay", f"is {c.delay}; with per-synapse delays it "
                                f"must be their maximum {dmax}", value=c.delay, limit=dmax)
        else:
            self.rule(m, check_delays, f"connection '{c.name}'", self.fmt, int(c.delay), None)

    def conv_geometry(self, ci: int, c: ConnectionInfo, m: str, n_pre: int, n_post: int
                      ) -> ConvGeometry:
        try:
            geom = ConvGeometry.from_dict(c.conv, f"connection '{c.name}'")
        except NetworkError as exc:
            raise self.fail(f"{m}.{exc.field or 'conv'}", exc.message) from None
        if (geom.n_pre, geom.n_post) != (n_pre, n_post):
            raise self.fail(f"{m}.conv", f"the geometry joins {geom.n_pre} -> {geom.n_post} "
                            f"neurons; the connection has {n_pre} -> {n_post}",
                            value=(geom.n_pre, geom.n_post), limit=(n_pre, n_post))
        return geom

    def sparse_indices(self, base: str, ptr: NDArray[np.int64], post: NDArray[np.uint32],
                       n_post: int, nsyn: int) -> None:
        if ptr[0] != 0:
            raise self.fail(f"{base}/ptr", f"starts at {int(ptr[0])}; must start at 0",
                            index=0, value=int(ptr[0]), limit=0)
        if ptr[-1] != nsyn:
            raise self.fail(f"{base}/ptr", f"ends at {int(ptr[-1])}; must end at the synapse "
                            f"count {nsyn}", index=ptr.size - 1, value=int(ptr[-1]),
                            limit=nsyn)
        dp = np.diff(ptr)
        if dp.size and int(dp.min()) < 0:
            i = int(np.flatnonzero(dp < 0)[0]) + 1
            raise self.fail(f"{base}/ptr", f"decreases ({int(ptr[i - 1])} then "
                            f"{int(ptr[i])}); row pointers must not decrease", index=i,
                            value=int(ptr[i]), limit=int(ptr[i - 1]))
        if post.size:
            pmax = int(post.max())
            if pmax >= n_post:
                i = int(np.flatnonzero(post >= n_post)[0])
                raise self.fail(f"{base}/post", f"target {int(post[i])} is outside the post "
                                f"population [0, {n_post - 1}]", index=i,
                                value=int(post[i]), limit=n_post - 1)
            # strictly increasing within each row (no duplicate synapse)
            step = np.diff(post.astype(np.int64))
            row_start = np.zeros(post.size, bool)
            row_start[ptr[:-1][dp > 0]] = True
            bad = np.flatnonzero((step <= 0) & ~row_start[1:])
            if bad.size:
                i = int(bad[0]) + 1
                raise self.fail(f"{base}/post", f"target {int(post[i])} follows "
                                f"{int(post[i - 1])} in its row; targets must strictly "
                                "increase within a row", index=i, value=int(post[i]))

    def weight_bytes(self, name: str, w: NDArray[np.uint8], c: ConnectionInfo) -> None:
        """Decoded weights must be values Lava keeps (the builder's rule), checked on the
        bytes: the decode rule's range always lies inside the sign mode's range, so only
        the low bits dropped by a reduced precision can be wrong."""
        k = fx.weight_lsb_shift(c.sign_mode, int(c.num_weight_bits), self.fmt.weight_bits)
        lo, hi = fx.weight_range(c.sign_mode, self.fmt.weight_bits)
        dlo = int(fx.decode_weight_bytes(np.array([0x80 if c.decode == 0 else 0xFF]),
                                         c.decode, c.wshift)[0])
        dhi = int(fx.decode_weight_bytes(np.array([0x7F if c.decode == 0 else 0]),
                                         c.decode, c.wshift)[0])
        lo_d, hi_d = min(dlo, dhi), max(dlo, dhi)
        if lo_d < lo or hi_d > hi:  # pragma: no cover - guards a change of the formats
            raise self.fail(name, f"decode rule spans [{lo_d}, {hi_d}], outside [{lo}, {hi}]")
        extra = k - int(c.wshift)
        if extra > 0 and w.size:
            mask = np.uint8((1 << extra) - 1)
            bad_mask = (w & mask) != 0  # int8 and uint8 bytes alike: the low bits
            if bad_mask.any():
                i = int(np.flatnonzero(bad_mask)[0])
                val = int(fx.decode_weight_bytes(w[i: i + 1], c.decode, c.wshift)[0])
                raise self.fail(name, f"weight {val} is not a multiple of {1 << k} "
                                f"({c.num_weight_bits}-bit {c.sign_mode} weights)", index=i,
                                value=val, limit=1 << k)

    def routing(self) -> None:
        im = self.im
        S = self.n_in + self.n_lif
        rptr = self.array("route/ptr", np.int64, (S + 1,))
        R = int(rptr[-1]) if rptr.size else 0
        if rptr[0] != 0 or R < 0:
            raise self.fail("route/ptr", "must start at 0 and end at the axon count", index=0)
        # (monotone and complete: checked below by equality with the implied pointers)
        rcore = self.array("route/core", np.int32, (R,))
        rnsyn = self.array("route/nsyn", np.int32, (R,))
        rconn = self.array("route/conn", np.int32, (R,))
        exp_s, exp_k, exp_n, exp_c = self.expected_routes()
        exp_ptr = np.zeros(S + 1, np.int64)
        np.cumsum(np.bincount(exp_s, minlength=S), out=exp_ptr[1:])
        for name, have, want in (("route/ptr", rptr, exp_ptr), ("route/conn", rconn, exp_c),
                                 ("route/core", rcore, exp_k), ("route/nsyn", rnsyn, exp_n)):
            if have.shape != want.shape or not np.array_equal(have, want):
                if have.shape != want.shape:
                    raise self.fail(name, f"holds {have.size} entries; the placement and the "
                                    f"synapses imply {want.size}", value=have.size,
                                    limit=want.size)
                i = int(np.flatnonzero(have != want)[0])
                raise self.fail(name, f"is {int(have[i])}; the placement and the synapses "
                                f"imply {int(want[i])}", index=i, value=int(have[i]),
                                limit=int(want[i]))
        # per-core axon counts of the core entries
        ncores = self.hw.n_cores
        in_ax = np.bincount(exp_k, minlength=ncores)
        src_core = np.full(S, -1, np.int64)
        src_core[self.n_in:] = im.arrays["neurons/core"]
        sc = src_core[exp_s]
        out_ax = np.bincount(sc[sc >= 0], minlength=ncores)
        for k, c in enumerate(im.cores):
            if c.input_axons != in_ax[c.core] or c.output_axons != out_ax[c.core]:
                raise self.fail(f"cores[{k}]", f"core {c.core} lists {c.input_axons} input "
                                f"and {c.output_axons} output axons; the routes give "
                                f"{int(in_ax[c.core])} and {int(out_ax[c.core])}", index=k)
        used_mask = np.zeros(ncores, bool)
        used_mask[self.used] = True
        stray = np.flatnonzero(~used_mask & ((in_ax > 0) | (out_ax > 0)))
        if stray.size:
            raise self.fail("cores", f"core {int(stray[0])} has axons but no entry",
                            index=int(stray[0]))

    def expected_routes(self) -> tuple[NDArray[np.int64], ...]:
        """(source, core, synapse count, connection) of every axon, in the compiler's
        order (source, connection, core), from the placement and the synapses."""
        im = self.im
        ncores = self.hw.n_cores
        ncore = im.arrays["neurons/core"]  # int32, cores checked against the slices
        parts: list[tuple[NDArray[np.int64], ...]] = []
        for ci, c in enumerate(im.connections):
            pre, post = self.pops[c.pre], self.pops[c.post]
            s0 = pre.offset if pre.kind == "input" else self.n_in + pre.offset
            post_cores = ncore[post.offset: post.offset + c.n_post]
            if c.storage == "conv":
                pre_i, tgt, _ = ConvGeometry.from_dict(c.conv, "conv").pre_major()
                key = pre_i * ncores + post_cores[tgt]
                ukey, cnt = np.unique(key, return_counts=True)
                j, k = np.divmod(ukey, ncores)
                cnt = cnt.astype(np.int64)
            elif c.storage == "dense":
                per_core = np.bincount(post_cores, minlength=ncores)  # cores are checked
                ucores = np.flatnonzero(per_core).astype(np.int64)
                counts = per_core[ucores]
                j = np.repeat(np.arange(c.n_pre, dtype=np.int64), ucores.size)
                k = np.tile(ucores, c.n_pre)
                cnt = np.tile(counts.astype(np.int64), c.n_pre)
            else:
                ptr = im.arrays[f"conn/{ci}/ptr"]
                tgt = im.arrays[f"conn/{ci}/post"].astype(np.int64)
                rows = np.repeat(np.arange(c.n_pre, dtype=np.int64), np.diff(ptr))
                key = rows * ncores + post_cores[tgt]
                if key.size and np.all(key[1:] >= key[:-1]):
                    first = np.concatenate([[True], key[1:] != key[:-1]])
                    ukey = key[first]
                    cnt = np.diff(np.concatenate([np.flatnonzero(first), [key.size]]))
                else:
                    ukey, cnt = np.unique(key, return_counts=True)
                j, k = np.divmod(ukey, ncores)
                cnt = cnt.astype(np.int64)
            parts.append((j + s0, k, cnt, np.full(j.size, ci, np.int64)))
        if not parts:
            z = np.zeros(0, np.int64)
            return z, z, z, z
        s_all, k_all, n_all, c_all = (np.concatenate([p[i] for p in parts]) for i in range(4))
        if len(parts) == 1:  # one connection: already in (source, core) order
            return s_all, k_all, n_all, c_all
        order = np.lexsort((k_all, c_all, s_all))
        return s_all[order], k_all[order], n_all[order], c_all[order]

    def metadata(self) -> None:
        outs = self.im.metadata.get("outputs")
        if outs is None:
            return
        if not isinstance(outs, dict):
            raise self.fail("metadata.outputs", "must be a mapping")
        for name, o in outs.items():
            m = f"metadata.outputs.{name}"
            if not isinstance(o, dict):
                raise self.fail(m, "must be a mapping")
            pname = o.get("population")
            pop = self.pops.get(pname) if isinstance(pname, str) else None
            if pop is None or pop.kind != "lif":
                raise self.fail(f"{m}.population", f"no LIF population {o.get('population')!r}")
            if o.get("signal") not in ("spikes", "v"):
                raise self.fail(f"{m}.signal", f"must be 'spikes' or 'v', got "
                                f"{o.get('signal')!r}")
            if o.get("signal") == "v" and "scale" not in o:
                raise self.fail(f"{m}.scale", "a voltage output needs its scale")
            if "scale" in o:
                s = o["scale"]
                if (isinstance(s, bool) or not isinstance(s, (int, float))
                        or not math.isfinite(s) or s == 0):
                    raise self.fail(f"{m}.scale", f"must be a finite non-zero number, got {s!r}",
                                    value=s)

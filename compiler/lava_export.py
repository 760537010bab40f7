"""Export a chip image to Lava 0.10 processes, and run it there.

Besides :mod:`compiler.lava_compat`, this is the only module that imports Lava, and it
does so lazily (through :func:`compiler.lava_compat.import_lava`), so importing it is cheap
and works without Lava installed.

What maps to what (emulator step t is Lava time step t + 1)::

    image                                     Lava 0.10 (Loihi2SimCfg, select_tag="fixed_pt")
    input population                          io.source.RingBuffer, data (n, T); column t
                                              is sent at step t + 1
    LIF population, reset "zero", spiking     lif.LIF (Lava's own PyLifModelBitAcc)
    LIF population, reset "subtract", or a    ChipLIF: the LIF process plus our fixed-point
      non-spiking readout                     model (Lava's LIF arithmetic, our reset/readout)
    dense connection, delay 0                 dense.Dense
    dense connection with delays              dense.DelayDense
    sparse connection, delay 0                sparse.Sparse
    sparse connection with delays             sparse.DelaySparse

Every synapse process gets its weights (post, pre), ``weight_exp``, ``num_weight_bits``
and ``sign_mode`` explicitly, so Lava neither re-detects the sign mode nor alters a
weight; :func:`check_exportable` proves beforehand that Lava's first-step clip and LSB
truncation leave every weight unchanged, and rejects with a
:class:`~neurochip.core.errors.LavaExportError` anything Lava cannot reproduce exactly.

Lava runs only processes connected to the one ``run`` is called on. When the image has
several unconnected parts, they are joined by empty ``Sparse`` links (no synapses, so they
add exact zeros); :attr:`LavaNetwork.links` holds them.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.lava_compat import import_lava
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import EmulatorInputError, LavaExportError
from neurochip.core.image import ChipImage, ConnectionInfo, PopulationInfo
from neurochip.core.results import recorded_populations

__all__ = [
    "LAVA_FORMATS",
    "LAVA_MAX_DELAY",
    "LavaNetwork",
    "LavaResult",
    "check_exportable",
    "export_lava",
    "run_lava",
]

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
# Lava stores bias_mant as int16.
_INT16 = (-(1 << 15), (1 << 15) - 1)

_POLL_S = 0.02  # how often a guarded Lava call checks on Lava's worker processes
_GRACE_S = 1.0  # how long to wait for Lava's own thread once its workers are gone
_STOP_TIMEOUT_S = 60.0  # an orderly stop that takes longer than this is abandoned


# --------------------------------------------------------------------------------------
# Lava classes (created on first use so that importing this module does not import Lava)
# --------------------------------------------------------------------------------------


@functools.cache
def _lava() -> SimpleNamespace:
    """Lava's processes, run config and our ChipLIF process and model, imported once."""
    import_lava()
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.ports import PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.resources import CPU
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.models import AbstractPyLifModelFixed
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode

    class ChipLIF(LIF):  # type: ignore[misc, valid-type]
        """Lava's LIF process with our core's two extra modes.

        ``reset``: "zero" (v <- 0 on a spike, as Lava's LIF) or "subtract"
        (v <- v - vth * 2**6). ``spiking=False`` makes a non-spiking readout whose
        threshold is never tested (it integrates like any LIF and never fires).
        Both are process parameters; u, v, du, dv, vth and the bias are Lava's own Vars.
        """

        def __init__(self, *, shape: tuple[int, ...], du: int, dv: int, vth: int,
                     bias_mant: NDArray[np.int64], bias_exp: NDArray[np.int64],
                     reset: str, spiking: bool, name: str | None = None) -> None:
            super().__init__(shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias_mant,
                             bias_exp=bias_exp, name=name, reset=reset, spiking=spiking)

    @implements(proc=ChipLIF, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PyChipLifModelFixed(AbstractPyLifModelFixed):  # type: ignore[misc, valid-type]
        """Fixed-point model of :class:`ChipLIF`, bit-exact with our core.

        The sub-threshold update (current decay with the hidden +1 offset, 24-bit single
        wrap of u, saturation of v, bias) is Lava's own ``AbstractPyLifModelFixed``; only
        the threshold test and the reset differ from ``PyLifModelBitAcc``.
        """

        s_out: Any = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        vth: Any = LavaPyType(int, np.int32, precision=17)

        def __init__(self, proc_params: Any) -> None:
            super().__init__(proc_params)
            self.subtract = proc_params["reset"] == "subtract"
            self.spiking = bool(proc_params["spiking"])
            self.effective_vth = 0

        def scale_threshold(self) -> None:
            # The 17-bit threshold mantissa is MSB-aligned with the 24-bit voltage
            # register, as the synaptic input is with the current: << vth_shift (6).
            self.effective_vth = np.left_shift(self.vth, self.vth_shift)
            self.isthrscaled = True

        def spiking_activation(self) -> NDArray[np.bool_]:
            if not self.spiking:
                # A readout's comparator is disabled: it only integrates.
                return np.zeros(self.v.shape, dtype=bool)
            return self.v > self.effective_vth  # strict, as the stock LIF

        def reset_voltage(self, spike_vector: NDArray[np.bool_]) -> None:
            if self.subtract:
                # Only where v > theta >= 0, so v - theta stays inside the saturated
                # 24-bit range: no further wrap or clip is needed.
                self.v[spike_vector] -= self.effective_vth
            else:
                self.v[spike_vector] = 0

    sign_modes = {fx.SIGN_MIXED: SignMode.MIXED, fx.SIGN_EXCITATORY: SignMode.EXCITATORY,
                  fx.SIGN_INHIBITORY: SignMode.INHIBITORY}
    return SimpleNamespace(
        LIF=LIF, ChipLIF=ChipLIF, ChipLifModel=PyChipLifModelFixed, Dense=Dense,
        DelayDense=DelayDense, Sparse=Sparse, DelaySparse=DelaySparse, RingBuffer=RingBuffer,
        Monitor=Monitor, Loihi2SimCfg=Loihi2SimCfg, RunSteps=RunSteps, SignMode=sign_modes,
    )


# --------------------------------------------------------------------------------------
# What Lava can express
# --------------------------------------------------------------------------------------


def _lava_weight_bits(c: ConnectionInfo, weight_bits: int) -> int:
    """num_weight_bits that makes Lava drop exactly the low bits our chip drops.

    Lava drops 8 - num_weight_bits + [mixed] bits; a chip with ``weight_bits``-bit
    weights drops weight_bits - num_weight_bits + [mixed].
    """
    return c.num_weight_bits + LAVA_WEIGHT_BITS - weight_bits


def check_exportable(image: ChipImage) -> None:
    """Raise :class:`LavaExportError` unless Lava 0.10 reproduces ``image`` exactly.

    Checks the chip's number formats against the widths Lava hard-codes, that registers
    Lava holds once per population are single integers, the bias range, the reset mode,
    every connection's sign mode, weights (Lava must keep each one unchanged) and delays
    (at most 63), and that nothing needs on-chip learning (Lava's learning engine is
    bit-approximate and different from ours).
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
    if image.learning:
        raise LavaExportError(
            "the image uses on-chip learning; Lava's learning engine is bit-approximate and "
            "follows other rules, so it cannot reproduce ours", where="chip image",
            field="learning")
    bm_all = image.arrays["neurons/bias_mant"].astype(np.int64)
    be_all = image.arrays["neurons/bias_exp"].astype(np.int64)
    v_lim = (1 << (LAVA_FORMATS["v_bits"] - 1)) - 1
    for p in image.lif_populations:
        where = f"population '{p.name}'"
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
        if c.plastic:
            raise LavaExportError(
                "is plastic; Lava's learning engine cannot reproduce ours", where=where,
                field="plastic")
        if c.sign_mode not in fx.SIGN_MODES:
            raise LavaExportError(f"is {c.sign_mode!r}; expected one of {fx.SIGN_MODES}",
                                  where=where, field="sign_mode", value=c.sign_mode)
        if c.storage not in ("dense", "sparse"):
            raise LavaExportError(f"is {c.storage!r}; expected 'dense' or 'sparse'",
                                  where=where, field="storage", value=c.storage)
        if c.pre not in sizes or c.post not in sizes or image.population(c.post).kind != "lif":
            raise LavaExportError(f"links {c.pre!r} -> {c.post!r}, which is not an existing "
                                  "population -> LIF population", where=where, field="post")
        if (c.n_pre, c.n_post) != (sizes[c.pre], sizes[c.post]):
            raise LavaExportError(
                f"has shape (post, pre) = {(c.n_post, c.n_pre)}, populations have "
                f"{(sizes[c.post], sizes[c.pre])}", where=where, field="shape")
        nwb = _lava_weight_bits(c, hw.formats.weight_bits)
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


# --------------------------------------------------------------------------------------
# Inputs, probes
# --------------------------------------------------------------------------------------


def _source_data(image: ChipImage, inputs: Mapping[str, Any] | None, steps: int | None
                 ) -> tuple[dict[str, NDArray[np.int32]], int, bool]:
    """RingBuffer data (n, T) per input population, T, and whether any spike is there."""
    where = "export_lava"
    pops = {p.name: p for p in image.input_populations}
    arrays: dict[str, NDArray[np.bool_]] = {}
    T = 0
    for name, x in dict(inputs or {}).items():
        if name not in pops:
            raise EmulatorInputError(f"no input population {name!r}; inputs are {list(pops)}",
                                     where=where, field="inputs")
        arr = np.asarray(x)
        n = pops[name].size
        if arr.ndim == 3:
            raise EmulatorInputError(
                f"input {name!r} is batched {arr.shape}; a Lava network runs one sample, so "
                "run each sample separately", where=where, field=name)
        if arr.ndim != 2 or arr.shape[1] != n:
            raise EmulatorInputError(f"input {name!r} has shape {arr.shape}; expected (T, {n})",
                                     where=where, field=name)
        if arr.dtype != np.bool_:
            if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
                raise EmulatorInputError(f"input {name!r} must hold spikes (bool or 0/1)",
                                         where=where, field=name)
            arr = arr.astype(bool)
        arrays[name] = arr
        T = max(T, arr.shape[0])
    if steps is None:
        steps = T
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise EmulatorInputError(f"steps must be a non-negative int, got {steps!r}",
                                 where=where, field="steps")
    steps = int(steps)
    if T > steps:
        raise EmulatorInputError(f"inputs have {T} steps but steps={steps}", where=where,
                                 field="steps")
    cols = max(steps, 1)  # a RingBuffer needs one column at least
    data: dict[str, NDArray[np.int32]] = {}
    for name, p in pops.items():
        d = np.zeros((p.size, cols), np.int32)
        if name in arrays:
            d[:, : arrays[name].shape[0]] = arrays[name].T
        data[name] = d
    active = any(bool(a.any()) for a in arrays.values())
    return data, steps, active


def _parse_probes(image: ChipImage, probes: Iterable[str]) -> list[tuple[str, str, str]]:
    """[(probe name, population, "u" | "v")] for probes "pop.u" / "pop.v"."""
    lif = {p.name for p in image.lif_populations}
    out = []
    for pr in probes:
        pop, _, var = str(pr).rpartition(".")
        if pop not in lif or var not in ("u", "v"):
            raise EmulatorInputError(
                f"bad probe {pr!r}: use '<population>.u' or '<population>.v' with a LIF "
                f"population of {sorted(lif)}", where="LavaNetwork.run", field="probes")
        out.append((str(pr), pop, var))
    return out


def _recorded(image: ChipImage, spikes: str | Iterable[str] | None) -> list[str]:
    return recorded_populations(image, spikes, "LavaNetwork.run")


# --------------------------------------------------------------------------------------
# Building the processes
# --------------------------------------------------------------------------------------


def _neuron_process(L: SimpleNamespace, image: ChipImage, p: PopulationInfo) -> Any:
    bm = image.arrays["neurons/bias_mant"][p.offset: p.offset + p.size].astype(np.int64)
    be = image.arrays["neurons/bias_exp"][p.offset: p.offset + p.size].astype(np.int64)
    regs = {"shape": (p.size,), "du": int(p.du), "dv": int(p.dv), "vth": int(p.vth),
            "bias_mant": bm, "bias_exp": be, "name": p.name}
    if p.spiking and p.reset == "zero":
        return L.LIF(**regs)  # Lava's own model: the cross-check tests Lava itself
    return L.ChipLIF(reset=p.reset, spiking=bool(p.spiking), **regs)


def _synapse_process(L: SimpleNamespace, image: ChipImage, ci: int) -> Any:
    c = image.connections[ci]
    params = {
        "weight_exp": int(c.weight_exp),
        "num_weight_bits": _lava_weight_bits(c, image.hw.formats.weight_bits),
        "sign_mode": L.SignMode[c.sign_mode],
        "name": c.name,
    }
    delayed = c.has_delays or c.delay != 0
    if c.storage == "dense":
        W = image.weights(c.name)
        if not delayed:
            return L.Dense(weights=W, **params)
        return L.DelayDense(weights=W, delays=image.delays(c.name), **params)
    Ws = image.weights_sparse(c.name)
    if not delayed:
        return L.Sparse(weights=Ws, **params)
    pre_idx, post_idx = image.synapse_coords(ci)
    d = (image.arrays[f"conn/{ci}/delay"].astype(np.int64) if c.has_delays
         else np.full(pre_idx.size, c.delay, np.int64))
    # Same structure as the weights; Lava reads a stored 0 (or no entry) as delay 0.
    Ds = sp.csr_matrix((d, (post_idx, pre_idx)), shape=(c.n_post, c.n_pre))
    return L.DelaySparse(weights=Ws, delays=Ds, **params)


def _components(image: ChipImage) -> list[list[str]]:
    """Populations grouped into the parts that connections join (order of the image)."""
    parent = {p.name: p.name for p in image.populations}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for c in image.connections:
        parent[root(c.pre)] = root(c.post)
    groups: dict[str, list[str]] = {}
    for p in image.populations:
        groups.setdefault(root(p.name), []).append(p.name)
    return list(groups.values())


# --------------------------------------------------------------------------------------
# The exported network
# --------------------------------------------------------------------------------------


@dataclass
class LavaResult:
    """Spikes and probes of a Lava run, in the emulator's format (see ``RunResult``).

    ``spikes[pop]``: (T, n) bool; ``probes["pop.u" | "pop.v"]``: (T, n) int32, read after
    the reset of each step. Row t is emulator step t (Lava time step t + 1).
    """

    spikes: dict[str, NDArray[np.bool_]]
    probes: dict[str, NDArray[np.int32]]
    steps: int
    wall_s: float = 0.0


@dataclass
class LavaNetwork:
    """Lava processes of one chip image, keyed by the image's names, wired and ready to run.

    ``sources``: input population -> ``RingBuffer``; ``neurons``: LIF population -> ``LIF``
    (or ``ChipLIF``); ``synapses``: connection -> ``Dense`` / ``Sparse`` / ``DelayDense`` /
    ``DelaySparse``; ``links``: empty ``Sparse`` processes joining unconnected parts.
    ``models`` maps each process that is not in Lava's library to its ProcessModel and is
    passed to the run config. ``steps`` is the length of the source buffers (a RingBuffer
    repeats its data, so a run may not be longer unless the inputs are silent).

    Run it with :meth:`run` (once), or drive the processes with Lava yourself, using
    :meth:`run_config`.
    """

    image: ChipImage
    steps: int
    sources: dict[str, Any]
    neurons: dict[str, Any]
    synapses: dict[str, Any]
    links: list[Any] = field(default_factory=list)
    models: dict[Any, Any] = field(default_factory=dict)
    active_inputs: bool = False
    _ran: bool = field(default=False, repr=False)

    def __getitem__(self, name: str) -> Any:
        for group in (self.sources, self.neurons, self.synapses):
            if name in group:
                return group[name]
        raise KeyError(f"no population or connection {name!r} in the exported network")

    @property
    def processes(self) -> dict[str, Any]:
        """Every process of the image by name (links excluded)."""
        return {**self.sources, **self.neurons, **self.synapses}

    def run_config(self) -> Any:
        """``Loihi2SimCfg(select_tag="fixed_pt")`` with our ProcessModels.

        The models are keyed by process instance, which makes Lava's compiler take them
        directly instead of searching the process's source folder.
        """
        L = _lava()
        return L.Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=dict(self.models))

    def run(self, steps: int | None = None, *, probes: Iterable[str] = (),
            spikes: str | Iterable[str] | None = "all",
            timeout_s: float | None = None) -> LavaResult:
        """Run ``steps`` steps in Lava and return spikes and probes; always stops Lava.

        probes: ["pop.u", "pop.v", ...]; spikes: "all" LIF populations, a list, or None.
        timeout_s: give up (and stop Lava) after this many seconds. A Lava worker that
        fails ends the run at once with a :class:`LavaExportError` carrying its traceback,
        never a hang. A network runs once; export again for another run.
        """
        if self._ran:
            raise LavaExportError("this network has already run; Lava processes run once, "
                                  "so export the image again", where="LavaNetwork.run")
        steps = self.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise EmulatorInputError(f"steps must be a non-negative int, got {steps!r}",
                                     where="LavaNetwork.run", field="steps")
        steps = int(steps)
        if timeout_s is not None and not timeout_s > 0:
            raise EmulatorInputError(f"timeout_s must be positive or None, got {timeout_s!r}",
                                     where="LavaNetwork.run", field="timeout_s")
        if steps > self.steps and self.active_inputs:
            raise EmulatorInputError(
                f"the source buffers hold {self.steps} steps and a RingBuffer repeats its data; "
                f"export with steps={steps}", where="LavaNetwork.run", field="steps")
        probe_list = _parse_probes(self.image, probes)
        rec = _recorded(self.image, spikes)
        self._ran = True
        size = {p.name: p.size for p in self.image.lif_populations}
        out_spikes = {name: np.zeros((steps, size[name]), bool) for name in rec}
        out_probes = {pr: np.zeros((steps, size[pop]), np.int32) for pr, pop, _ in probe_list}
        if steps == 0 or not self.neurons:
            return LavaResult(out_spikes, out_probes, steps)
        L = _lava()
        targets: list[tuple[str, Any, Any]] = []  # (key, Lava port or Var, Monitor)
        for name in rec:
            targets.append((name, self.neurons[name].s_out, L.Monitor()))
        for pr, pop, var in probe_list:
            targets.append((pr, getattr(self.neurons[pop], var), L.Monitor()))
        for _, target, mon in targets:
            mon.probe(target, steps)
        root = next(iter(self.neurons.values()))
        t0 = time.perf_counter()
        _run_and_read(root, self.run_config(), L.RunSteps(num_steps=steps), targets,
                      out_spikes, out_probes, timeout_s)
        return LavaResult(out_spikes, out_probes, steps, time.perf_counter() - t0)


def export_lava(image: ChipImage, inputs: Mapping[str, Any] | None = None,
                steps: int | None = None) -> LavaNetwork:
    """Lava processes for ``image``, wired as the image's populations and connections.

    inputs: {input population: spikes (T, n)} for the sources (missing ones are silent);
    steps: the length of the source buffers (default: the inputs' length). Without inputs
    every source is silent and the network may run for any number of steps.
    Raises :class:`LavaExportError` for anything Lava cannot reproduce exactly (see
    :func:`check_exportable`) and :class:`~neurochip.core.errors.EmulatorInputError` for bad
    inputs.
    """
    check_exportable(image)
    data, n_steps, active = _source_data(image, inputs, steps)
    L = _lava()
    sources = {p.name: L.RingBuffer(data=data[p.name]) for p in image.input_populations}
    neurons = {p.name: _neuron_process(L, image, p) for p in image.lif_populations}
    models = {proc: L.ChipLifModel for proc in neurons.values() if isinstance(proc, L.ChipLIF)}
    synapses: dict[str, Any] = {}
    for ci, c in enumerate(image.connections):
        proc = _synapse_process(L, image, ci)
        pre = sources[c.pre] if c.pre in sources else neurons[c.pre]
        pre.s_out.connect(proc.s_in)
        proc.a_out.connect(neurons[c.post].a_in)
        synapses[c.name] = proc
    # Lava runs only what is connected to the process it is asked to run: join every part
    # that holds LIF neurons to the first one by an empty Sparse (it adds exact zeros).
    links = []
    parts = [[n for n in part if n in neurons] for part in _components(image)]
    parts = [part for part in parts if part]
    size = {p.name: p.size for p in image.lif_populations}
    for k, part in enumerate(parts[1:], start=1):
        src, dst = parts[0][0], part[0]
        link = L.Sparse(weights=sp.csr_matrix((size[dst], size[src]), dtype=np.int64),
                        weight_exp=0, num_weight_bits=LAVA_WEIGHT_BITS,
                        sign_mode=L.SignMode[fx.SIGN_EXCITATORY], name=f"<link {k}>")
        neurons[src].s_out.connect(link.s_in)
        link.a_out.connect(neurons[dst].a_in)
        links.append(link)
    return LavaNetwork(image, max(n_steps, 1), sources, neurons, synapses, links, models,
                       active)


def run_lava(image: ChipImage, inputs: Mapping[str, Any] | None = None,
             steps: int | None = None, *, probes: Iterable[str] = (),
             spikes: str | Iterable[str] | None = "all",
             timeout_s: float | None = None) -> LavaResult:
    """Export ``image``, run it in Lava for ``steps`` steps, stop Lava, return the result.

    The same arguments and result format as ``Emulator(image).run`` (unbatched):
    ``result.spikes[pop]`` (T, n) bool, ``result.probes["pop.v"]`` (T, n) int32.
    """
    net = export_lava(image, inputs, steps)
    return net.run(steps, probes=probes, spikes=spikes, timeout_s=timeout_s)


# --------------------------------------------------------------------------------------
# Running Lava without ever hanging
# --------------------------------------------------------------------------------------
#
# Lava runs each process model in its own OS process. When one of them raises, Lava's
# runtime waits for (joins) every worker, but the others block on their channels, so a
# plain ``run`` hangs forever. Every Lava call below therefore runs in a helper thread
# while this thread watches the workers: if one ends before Lava is done, or the time is
# up, the workers (our own child processes) are killed, which unblocks Lava's thread, and
# a LavaExportError reports the worker's traceback. The attributes used for this
# (``Runtime._messaging_infrastructure.actors``, ``_is_started``, ``_is_running``) are
# those of lava-nc 0.10.0, the only release.


def _actors(root: Any) -> list[Any]:
    runtime = getattr(root, "_runtime", None)
    infra = getattr(runtime, "_messaging_infrastructure", None)
    return list(getattr(infra, "actors", []) or [])


def _alive(actor: Any) -> bool:
    try:
        return bool(actor.is_alive())
    except (ValueError, AssertionError):  # already joined and closed by Lava
        return False


def _worker_errors(actors: list[Any]) -> str:
    texts = []
    for a in actors:
        try:
            exc = a.exception
        except (OSError, ValueError, EOFError):
            continue
        if exc:
            texts.append(str(exc[1]).strip())
    return ("\n" + "\n".join(texts)) if texts else ""


class _Failure(Exception):
    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


def _guarded(root: Any, action: Callable[[], Any], what: str, deadline: float | None,
             workers_may_end: bool = False) -> Any:
    """Run ``action`` (a Lava call) in a helper thread while watching Lava's workers.

    Unless ``workers_may_end`` (stopping), a worker that ends means it failed.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = action()
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc

    th = threading.Thread(target=target, name=f"lava {what}", daemon=True)
    th.start()
    seen: list[Any] = []
    while True:
        th.join(_POLL_S)
        if not th.is_alive():
            break
        seen = _actors(root) or seen
        if not workers_may_end and any(not _alive(a) for a in seen):
            problem = "a Lava worker process ended unexpectedly"
        elif deadline is not None and time.monotonic() > deadline:
            problem = "Lava did not finish in time"
        else:
            continue
        _kill(seen)
        th.join(_GRACE_S)
        raise _Failure(f"{what}: {problem}{_worker_errors(seen)}")
    if "error" in box:
        err = box["error"]
        raise _Failure(f"{what}: {type(err).__name__}: {err}{_worker_errors(_actors(root))}",
                       err)
    return box.get("value")


def _kill(actors: list[Any]) -> None:
    for a in actors:
        if _alive(a):
            try:
                a.kill()
            except (OSError, ValueError, AttributeError):
                pass


def _abandon(root: Any) -> None:
    """Tear down a runtime whose workers are dead, without talking to them."""
    _kill(_actors(root))
    runtime = getattr(root, "_runtime", None)
    if runtime is None:
        return
    # With these cleared, stop() sends nothing to the dead services; it only joins the
    # workers and shuts down the shared memory and the watchdog manager.
    runtime._is_running = False
    runtime._is_started = False
    try:
        runtime.stop()
    except Exception:  # best effort: the run's own error is what matters
        pass


def _run_and_read(root: Any, run_cfg: Any, condition: Any, targets: list[tuple[str, Any, Any]],
                  out_spikes: dict[str, NDArray[np.bool_]],
                  out_probes: dict[str, NDArray[np.int32]], timeout_s: float | None) -> None:
    """Compile, run, read the monitors, stop. Lava is stopped (or torn down) on every path."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    done = False
    try:
        _guarded(root, lambda: root.create_runtime(run_cfg=run_cfg), "compiling for Lava",
                 deadline)
        _guarded(root, lambda: root.run(condition=condition), "running in Lava", deadline)
        for key, target, mon in targets:
            data = _guarded(root, mon.get_data, "reading Lava monitors", deadline)
            arr = np.asarray(data[target.process.name][target.name])
            if key in out_spikes:
                out_spikes[key][:] = arr != 0
            else:
                vals = np.rint(arr)
                if not np.array_equal(vals, arr) or np.abs(vals).max(initial=0) >= 2 ** 31:
                    raise _Failure(f"reading Lava monitors: {key!r} holds non-int32 values")
                out_probes[key][:] = vals.astype(np.int32)
        done = True
    except _Failure as f:
        raise LavaExportError(str(f), where="lava runtime") from f.cause
    finally:
        if not done:
            # Whatever went wrong (a failed worker, a timeout, an interrupt), the workers'
            # state is unknown: kill them rather than ask them to stop.
            _abandon(root)
    if getattr(root, "_runtime", None) is not None:
        try:
            _guarded(root, root.stop, "stopping Lava", time.monotonic() + _STOP_TIMEOUT_S,
                     workers_may_end=True)
        except _Failure as f:
            _abandon(root)
            raise LavaExportError(str(f), where="lava runtime") from f.cause

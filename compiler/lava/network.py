"""The exported network: sources, neurons and synapses wired as the image, and its run."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.lava.checks import LAVA_WEIGHT_BITS, check_exportable
from compiler.lava.processes import components, lava_classes, neuron_process, synapse_process
from compiler.lava.runner import run_and_read
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import EmulatorInputError, LavaExportError
from neurochip.core.image import ChipImage
from neurochip.core.results import recorded_populations

__all__ = ["LavaNetwork", "LavaResult", "export_lava", "run_lava"]


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
        L = lava_classes()
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
        L = lava_classes()
        targets: list[tuple[str, Any, Any]] = []  # (key, Lava port or Var, Monitor)
        for name in rec:
            targets.append((name, self.neurons[name].s_out, L.Monitor()))
        for pr, pop, var in probe_list:
            targets.append((pr, getattr(self.neurons[pop], var), L.Monitor()))
        for _, target, mon in targets:
            mon.probe(target, steps)
        root = next(iter(self.neurons.values()))
        t0 = time.perf_counter()
        run_and_read(root, self.run_config(), L.RunSteps(num_steps=steps), targets,
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
    L = lava_classes()
    sources = {p.name: L.RingBuffer(data=data[p.name]) for p in image.input_populations}
    neurons = {p.name: neuron_process(L, image, p) for p in image.lif_populations}
    models = {proc: L.ChipLifModel for proc in neurons.values() if isinstance(proc, L.ChipLIF)}
    synapses: dict[str, Any] = {}
    for ci, c in enumerate(image.connections):
        proc = synapse_process(L, image, ci)
        pre = sources[c.pre] if c.pre in sources else neurons[c.pre]
        pre.s_out.connect(proc.s_in)
        proc.a_out.connect(neurons[c.post].a_in)
        synapses[c.name] = proc
    # Lava runs only what is connected to the process it is asked to run: join every part
    # that holds LIF neurons to the first one by an empty Sparse (it adds exact zeros).
    links = []
    parts = [[n for n in part if n in neurons] for part in components(image)]
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

"""The exported network: sources, neurons and synapses wired as the image, and its run."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.lava.checks import LAVA_WEIGHT_BITS, check_exportable
from compiler.lava.learning import LearningPlan, plan_learning
from compiler.lava.plan import LavaExportWarning, ProcessPlan, export_plan, placement_hints
from compiler.lava.processes import (
    components,
    input_port,
    lava_classes,
    learning_neuron_process,
    learning_synapse_process,
    neuron_process,
    synapse_process,
)
from compiler.lava.runner import run_and_read
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import EmulatorInputError, LavaExportError
from neurochip.core.image import ChipImage
from neurochip.core.neuron_models import STATE_SLOTS, payload_range
from neurochip.core.results import recorded_populations
from neurochip.core.safeio import atomic_write

__all__ = ["LEARNING_MODES", "LavaNetwork", "LavaResult", "export_lava", "learned_image",
           "run_lava"]


def _payloads(name: str, arr: NDArray[Any], bits: int) -> NDArray[np.int32]:
    """A graded input's payloads as int32, checked against its payload width."""
    lo, hi = payload_range(bits)
    if arr.dtype == np.bool_:
        return arr.astype(np.int32)
    if arr.dtype.kind not in "iu":
        raise EmulatorInputError(f"input {name!r} is graded: it must hold integer payloads, "
                                 f"got {arr.dtype}", where="export_lava", field=name)
    bad = np.flatnonzero((arr < lo) | (arr > hi))
    if bad.size:
        k = int(bad[0])
        raise EmulatorInputError(
            f"input {name!r}: payload {int(arr.reshape(-1)[k])} is outside its "
            f"{bits}-bit range [{lo}, {hi}]", where="export_lava", field=name,
            value=int(arr.reshape(-1)[k]), limit=(lo, hi))
    return arr.astype(np.int32)


def _source_data(image: ChipImage, inputs: Mapping[str, Any] | None, steps: int | None
                 ) -> tuple[dict[str, NDArray[np.int32]], int, bool]:
    """RingBuffer data (n, T) per input population, T, and whether any spike is there."""
    where = "export_lava"
    pops = {p.name: p for p in image.input_populations}
    arrays: dict[str, NDArray[np.int32]] = {}
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
        if pops[name].graded:
            arrays[name] = _payloads(name, arr, pops[name].payload_bits)
        else:
            if arr.dtype != np.bool_:
                if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
                    raise EmulatorInputError(f"input {name!r} must hold spikes (bool or 0/1)",
                                             where=where, field=name)
            arrays[name] = arr.astype(np.int32)
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
    """[(probe name, population, variable)] for probes "pop.u", "pop.v" (LIF models) and
    the state variables of the other models ("pop.sigma", "pop.act", "pop.residue",
    "pop.error"), which are the Lava processes' Vars of the same names."""
    models = {p.name: p.model for p in image.lif_populations}
    out = []
    for pr in probes:
        pop, _, var = str(pr).rpartition(".")
        if pop not in models or var not in STATE_SLOTS.get(models[pop], {}):
            have = sorted(f"{n}.{v}" for n, m in models.items() for v in STATE_SLOTS.get(m, {}))
            raise EmulatorInputError(
                f"bad probe {pr!r}: use '<population>.<state variable>', one of {have}",
                where="LavaNetwork.run", field="probes")
        out.append((str(pr), pop, var))
    return out


def _recorded(image: ChipImage, spikes: str | Iterable[str] | None) -> list[str]:
    return recorded_populations(image, spikes, "LavaNetwork.run")


@dataclass
class LavaResult:
    """Spikes and probes of a Lava run, in the emulator's format (see ``RunResult``).

    ``spikes[pop]``: (T, n) bool (int32 payloads for a graded population);
    ``probes["pop.u" | "pop.v" | "pop.sigma" | ...]``: (T, n) int32, read after the reset
    of each step. Row t is emulator step t (Lava time step t + 1).
    """

    spikes: dict[str, NDArray[Any]]
    probes: dict[str, NDArray[np.int32]]
    steps: int
    wall_s: float = 0.0
    #: learned weights (post, pre) of every learning connection, read after the run
    weights: dict[str, NDArray[np.int64]] = field(default_factory=dict)


@dataclass
class LavaNetwork:
    """Lava processes of one chip image, keyed by the image's names, wired and ready to run.

    ``sources``: input population -> ``RingBuffer``; ``neurons``: neuron population ->
    ``LIF``, ``LIFReset``, ``TernaryLIF``, ``Sigma``, ``Delta``, ``SigmaDelta`` (or ours:
    ``ChipLIF``, ``ChipLearningLIF``); ``synapses``: connection -> ``Dense`` / ``Sparse`` /
    ``DelayDense`` / ``DelaySparse``; ``links``: empty ``Sparse`` processes joining
    unconnected parts.
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
    #: what each process is and where our compiler placed it (see export_plan)
    plan: list[ProcessPlan] = field(default_factory=list)
    #: the exported learning (None: inference only)
    learning: LearningPlan | None = None
    #: connection -> LearningDense / LearningSparse
    learning_connections: dict[str, Any] = field(default_factory=dict)
    #: learning population -> RingBuffer of its targets or reward
    third_sources: dict[str, Any] = field(default_factory=dict)
    _ran: bool = field(default=False, repr=False)

    @property
    def placement(self) -> dict[str, Any]:
        """Our core assignment per process (also in each process's
        ``proc_params["neurochip_placement"]``): name -> Lava process, cores, slices."""
        return placement_hints(self.plan)

    def write_placement(self, path: Any) -> Any:
        """Write :attr:`placement` as a JSON side file; returns the path."""
        with atomic_write(path, "w") as fh:
            json.dump(self.placement, fh, indent=1, sort_keys=True)
        return path

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
        graded = {p.name for p in self.image.lif_populations if p.graded}
        # graded populations: their payloads (int32), as the emulator returns them
        out_spikes = {name: np.zeros((steps, size[name]), np.int32 if name in graded else bool)
                      for name in rec}
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
        reads = [(name, proc.weights) for name, proc in self.learning_connections.items()]
        out_vars: dict[str, Any] = {}
        run_and_read(root, self.run_config(), L.RunSteps(num_steps=steps), targets,
                     out_spikes, out_probes, timeout_s, reads, out_vars)
        weights = {k: np.asarray(v.toarray() if sp.issparse(v) else v).astype(np.int64)
                   for k, v in out_vars.items()}
        return LavaResult(out_spikes, out_probes, steps, time.perf_counter() - t0, weights)


LEARNING_MODES = ("auto", "lava", "drop")


def _check_learning_mode(learning: str) -> None:
    if learning not in LEARNING_MODES:
        raise LavaExportError(f"is {learning!r}; expected one of {LEARNING_MODES}",
                              where="export_lava", field="learning", value=learning)


def _learning_plan(image: ChipImage, learning: str) -> LearningPlan | None:
    """The learning to export (None: inference only), warning when "auto" drops it."""
    if not image.learning or learning == "drop":
        return None
    plan = plan_learning(image)
    if plan.expressible:
        return plan
    if learning == "lava":
        raise plan.error()
    err = plan.error()
    warnings.warn(
        f"the image's learning configuration is exported without its rules ({err}); the "
        "export runs the image's current weights. Pass learning='drop' to export inference "
        "on purpose, or learning='lava' to make this an error.", LavaExportWarning,
        stacklevel=3)
    return None


def _third_data(image: ChipImage, name: str, kind: str, cols: int,
                targets: Mapping[str, Any] | None, reward: Any) -> tuple[NDArray[Any], bool]:
    """RingBuffer data (n, cols) for a learning neuron's third-factor input, and whether
    the targets are values (not spikes)."""
    n = image.population(name).size
    data = np.zeros((n, cols), np.int32)
    values = False
    if kind == "error" and targets is not None and name in targets:
        arr = np.asarray(targets[name])
        if arr.ndim != 2 or arr.shape[1] != n or arr.shape[0] > cols:
            raise EmulatorInputError(
                f"targets for {name!r} have shape {arr.shape}; expected (T <= {cols}, {n})",
                where="export_lava", field="targets")
        if arr.dtype.kind not in "biu":
            raise EmulatorInputError(f"targets for {name!r} must be spikes (bool) or integer "
                                     "values", where="export_lava", field="targets")
        values = arr.dtype != np.bool_
        data[:, : arr.shape[0]] = arr.T.astype(np.int32)
    elif kind == "reward" and reward is not None:
        rw = np.asarray(reward)
        if rw.ndim != 1 or rw.shape[0] > cols or rw.dtype.kind not in "iu":
            raise EmulatorInputError(f"reward has shape {rw.shape} and dtype {rw.dtype}; "
                                     f"expected (T <= {cols},) integers", where="export_lava",
                                     field="reward")
        data[:, : rw.shape[0]] = rw.astype(np.int32)[None, :]
    return data, values


def _bias_mantissas(image: ChipImage, bias: Mapping[str, Any] | None
                    ) -> dict[str, NDArray[np.int64]]:
    """Checked replacement bias mantissas {population: (n,) int64}."""
    where = "export_lava"
    lo, hi = image.hw.formats.bias_mant_range
    lo, hi = max(lo, -(1 << 15)), min(hi, (1 << 15) - 1)  # Lava stores bias_mant as int16
    pops = {p.name: p for p in image.lif_populations}
    out: dict[str, NDArray[np.int64]] = {}
    for name, b in dict(bias or {}).items():
        p = pops.get(name)
        if p is None or p.model not in ("lif", "lif_reset", "ternary_lif"):
            have = [q.name for q in pops.values()
                    if q.model in ("lif", "lif_reset", "ternary_lif")]
            raise EmulatorInputError(f"no LIF population {name!r} to give a bias; populations "
                                     f"with a bias mantissa are {have}", where=where,
                                     field="bias")
        arr = np.asarray(b)
        if arr.shape != (p.size,) or arr.dtype.kind not in "iu":
            raise EmulatorInputError(
                f"bias of {name!r} has shape {arr.shape} and dtype {arr.dtype}; expected "
                f"integers of shape ({p.size},)", where=where, field="bias")
        bad = np.flatnonzero((arr < lo) | (arr > hi))
        if bad.size:
            k = int(bad[0])
            raise EmulatorInputError(
                f"bias of {name!r}: value {int(arr[k])} (neuron {k}) is outside the bias "
                f"mantissa [{lo}, {hi}]", where=where, field="bias", value=int(arr[k]),
                limit=(lo, hi))
        be = image.arrays["neurons/bias_exp"][p.offset: p.offset + p.size].astype(np.int64)
        v_lim = (1 << 23) - 1
        big = np.flatnonzero(np.abs(fx.bias_value(arr.astype(np.int64), be)) > v_lim)
        if big.size:
            k = int(big[0])
            raise EmulatorInputError(
                f"bias of {name!r}: {int(arr[k])} * 2**{int(be[k])} (neuron {k}) is beyond the "
                "24-bit voltage register", where=where, field="bias", value=int(arr[k]))
        out[name] = arr.astype(np.int64)
    return out


def _check_learning_models(image: ChipImage, lplan: LearningPlan) -> None:
    """Lava's learning processes are LIF ones with binary spikes."""
    for name in lplan.learning_kinds():
        p = image.population(name)
        if p.model != "lif":
            raise LavaExportError(
                f"is a {p.model!r} population; Lava's learning neurons are LIF neurons",
                where=f"population '{name}'", field="learning", value=p.model)
    for name in lplan.rules:
        c = image.connection(name)
        for end in (c.pre, c.post):
            q = image.population(end)
            if q.graded or q.model != "lif":
                raise LavaExportError(
                    f"links {q.model!r} population {end!r}"
                    f"{' with graded spikes' if q.graded else ''}; Lava's learning "
                    "connections learn from binary spikes of LIF neurons",
                    where=f"connection '{name}'", field="learning")


def export_lava(image: ChipImage, inputs: Mapping[str, Any] | None = None,
                steps: int | None = None, *, stock_only: bool = False,
                learning: str = "auto", targets: Mapping[str, Any] | None = None,
                reward: Any = None, seed: int = 0,
                bias: Mapping[str, Any] | None = None) -> LavaNetwork:
    """Lava processes for ``image``, wired as the image's populations and connections.

    inputs: {input population: spikes (T, n)} for the sources (missing ones are silent);
    steps: the length of the source buffers (default: the inputs' length). Without inputs
    every source is silent and the network may run for any number of steps.

    Every population and connection becomes one of Lava's own processes where Lava has
    one (see :func:`~compiler.lava.plan.export_plan`). A population that resets by
    subtraction becomes our ``ChipLIF`` (Lava's LIF resets to zero), announced by a
    :class:`LavaExportWarning` naming it; ``stock_only=True`` refuses it instead with a
    :class:`LavaExportError`.

    learning: what to do with the image's learning configuration (a learned image always
    exports its learned weights). "auto" (default): export it as Lava learning processes
    (``LearningDense`` with a ``Loihi2FLearningRule`` / ``Loihi3FLearningRule``, and our
    learning neurons for third factors) when Lava can express every rule, else export the
    weights alone with a warning that names what cannot be expressed; "lava": the same but
    an error instead of the warning; "drop": leave the learning configuration out (the
    export is then bit-exact). targets {population: (T, n) spikes or values} and reward
    (T,) feed the third factors of an exported learning configuration.

    bias: {population: (n,) bias mantissas} replaces those populations' bias mantissas
    (their exponents kept), as ``Emulator.run(bias=...)`` does; lava-dl feeds images to a
    netx network this way.

    Populations of the models ``lif_reset``, ``ternary_lif``, ``sigma``, ``delta`` and
    ``sigma_delta`` become Lava's ``LIFReset``, ``TernaryLIF``, ``Sigma``, ``Delta`` and
    ``SigmaDelta``; a connection from a graded population gets ``num_message_bits`` (its
    payload width), so Lava adds weight x payload.

    Raises :class:`LavaExportError` for anything Lava cannot reproduce exactly (see
    :func:`check_exportable`) and :class:`~neurochip.core.errors.EmulatorInputError` for bad
    inputs.
    """
    _check_learning_mode(learning)
    check_exportable(image, allow_learning=bool(image.learning))
    biases = _bias_mantissas(image, bias)
    lplan = _learning_plan(image, learning)
    if lplan is not None:
        _check_learning_models(image, lplan)
    kinds = lplan.learning_kinds() if lplan else {}
    plastic = set(lplan.rules) if lplan else set()
    plan = export_plan(image, kinds, plastic)
    ours = [p for p in plan if not p.stock]
    if ours:
        groups: dict[tuple[str, str], list[str]] = {}
        for pp in ours:
            groups.setdefault((pp.lava_process, pp.reason), []).append(f"'{pp.name}'")
        names = "; ".join(f"{', '.join(n)} ({cls}: {why})" for (cls, why), n in groups.items())
        if stock_only:
            raise LavaExportError(
                f"{len(ours)} population(s) have no Lava equivalent: {names}", where=(
                    f"{'population' if ours[0].role == 'neurons' else 'connection'} "
                    f"'{ours[0].name}'"), field="stock_only")
        warnings.warn(f"exported as processes of ours with CPU-only Python models (not "
                      f"runnable on Loihi through Lava): {names}", LavaExportWarning,
                      stacklevel=2)
    by_name = {p.name: p for p in plan}
    data, n_steps, active = _source_data(image, inputs, steps)
    cols = max(n_steps, 1)
    L = lava_classes()
    sources = {p.name: L.RingBuffer(data=data[p.name]) for p in image.input_populations}
    for name, src in sources.items():
        src.proc_params["neurochip_placement"] = by_name[name].hint()
    neurons: dict[str, Any] = {}
    third_sources: dict[str, Any] = {}
    models: dict[Any, Any] = {}
    for k, p in enumerate(image.lif_populations):
        spec = lplan.neurons.get(p.name) if lplan else None
        if spec is not None:
            tdata, values = _third_data(image, p.name, spec.kind, cols, targets, reward)
            proc = learning_neuron_process(L, image, p, by_name[p.name], spec, seed + 7919 * k,
                                           values)
            models[proc] = L.ChipLearningLifModel
            if spec.kind != "none":
                src = L.RingBuffer(data=tdata)
                src.s_out.connect(proc.a_third_factor_in)
                third_sources[p.name] = src
                active = active or bool(tdata.any())
        else:
            proc = neuron_process(L, image, p, by_name[p.name], biases.get(p.name))
            if isinstance(proc, L.ChipLIF):
                models[proc] = L.ChipLifModel
        neurons[p.name] = proc
    synapses: dict[str, Any] = {}
    learning_conns: dict[str, Any] = {}
    for ci, c in enumerate(image.connections):
        pre = sources[c.pre] if c.pre in sources else neurons[c.pre]
        post = neurons[c.post]
        rule = lplan.rules.get(c.name) if lplan else None
        if rule is not None:
            proc = learning_synapse_process(L, image, ci, by_name[c.name], rule,
                                            seed + 104729 * (ci + 1))
            if rule.three_factor:
                post.s_out_bap.connect(proc.s_in_bap)
                post.s_out_y1.connect(proc.s_in_y1)
                post.s_out_y2.connect(proc.s_in_y2)
                post.s_out_y3.connect(proc.s_in_y3)
            else:
                post.s_out.connect(proc.s_in_bap)
            learning_conns[c.name] = proc
        else:
            proc = synapse_process(L, image, ci, by_name[c.name])
        pre.s_out.connect(proc.s_in)
        proc.a_out.connect(input_port(post, image.population(c.post).model, c.port))
        synapses[c.name] = proc
    # Lava runs only what is connected to the process it is asked to run: join every part
    # that holds LIF neurons to the first one by an empty Sparse (it adds exact zeros).
    links = []
    parts = [[n for n in part if n in neurons] for part in components(image)]
    parts = [part for part in parts if part]
    size = {p.name: p.size for p in image.lif_populations}
    for k, part in enumerate(parts[1:], start=1):
        src_name, dst = parts[0][0], part[0]
        link = L.Sparse(weights=sp.csr_matrix((size[dst], size[src_name]), dtype=np.int64),
                        weight_exp=0, num_weight_bits=LAVA_WEIGHT_BITS,
                        sign_mode=L.SignMode[fx.SIGN_EXCITATORY], name=f"<link {k}>")
        neurons[src_name].s_out.connect(link.s_in)
        link.a_out.connect(input_port(neurons[dst], image.population(dst).model, 0))
        links.append(link)
    return LavaNetwork(image, max(n_steps, 1), sources, neurons, synapses, links, models,
                       active, plan=plan, learning=lplan, learning_connections=learning_conns,
                       third_sources=third_sources)


def run_lava(image: ChipImage, inputs: Mapping[str, Any] | None = None,
             steps: int | None = None, *, probes: Iterable[str] = (),
             spikes: str | Iterable[str] | None = "all",
             timeout_s: float | None = None,
             bias: Mapping[str, Any] | None = None) -> LavaResult:
    """Export ``image``, run it in Lava for ``steps`` steps, stop Lava, return the result.

    The same arguments and result format as ``Emulator(image).run`` (unbatched):
    ``result.spikes[pop]`` (T, n) bool (int32 payloads for graded populations),
    ``result.probes["pop.v"]`` (T, n) int32.
    """
    net = export_lava(image, inputs, steps, bias=bias)
    return net.run(steps, probes=probes, spikes=spikes, timeout_s=timeout_s)


def learned_image(image: ChipImage, weights: Mapping[str, Any]) -> ChipImage:
    """A copy of ``image`` holding ``weights`` (e.g. ``LavaResult.weights`` after learning in
    Lava), each brought onto the connection's weight grid as Lava's Dense does at its next
    run (clipped to the sign mode's range, low bits dropped); the learning configuration is
    kept. Zero where a sparse connection has no synapse."""
    arrays = dict(image.arrays)
    for name, W in weights.items():
        ci = image.connection_index(name)
        c = image.connections[ci]
        nwb = c.num_weight_bits
        Wk = fx.effective_weights(np.asarray(W, np.int64), c.sign_mode, nwb,
                                  image.hw.formats.weight_bits)
        pre_idx, post_idx = image.synapse_coords(ci)
        b, decode, shift = fx.encode_weight_bytes(Wk[post_idx, pre_idx], c.sign_mode)
        if (decode, shift) != (c.decode, c.wshift):
            raise LavaExportError("the learned weights need another weight encoding",
                                  where=f"connection '{name}'", field="weights")
        arrays[f"conn/{ci}/w"] = np.ascontiguousarray(b)
    meta = dict(image.metadata)
    meta["learned_in_lava"] = sorted(weights)
    return ChipImage(image.hw, list(image.populations), list(image.connections),
                     list(image.cores), arrays, image.learning, meta)

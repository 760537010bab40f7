"""Many runs of the toolchain, spread over a Dask cluster (``dask.distributed``).

A *job* is one independent run: compile a model for a chip, emulate a data set and measure
accuracy, energy and latency per inference (``kind="eval"``), or compile a network, learn on
chip and evaluate the learned image (``kind="learn"``). :class:`Runner` runs a list of jobs:

* ``Runner(workers=0)``: serially in the calling process (the reference);
* ``Runner()``: on an embedded ``LocalCluster`` of worker processes sized to the machine
  (``workers=N``: N processes), unless ``NEUROCHIP_DASK_SCHEDULER`` names a scheduler;
* ``Runner(cluster="tcp://host:8786")``: on a running Dask cluster.

The client reads every model file and data set once. Compilation is a task of its own
(one per distinct model, chip, weight width and calibration, deduplicated by Dask) whose
result, the chip image, travels as ``.nchip`` bytes; data travels as arrays (scattered once
per distinct data set and encoding seed). Worker processes live for the whole run, so the
emulator's Numba kernels stay loaded, and each keeps a small cache of loaded images.
Every job is seeded, each metric is a mean of per-sample values summed in sample order, so
the records are bit-identical to the serial ones in any completion order and on any number of
workers (only ``run``, the wall time and worker of the job, differs).

A job that raises a neurochip error yields a record holding ``error`` ({type, message,
where, field}) with its parameters; the other jobs go on. A worker that dies has its tasks
rerun elsewhere by Dask (``retries``); every job yields exactly one record.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurochip.errors import ConfigError, ModelImportError, NeurochipError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from neurochip import ChipImage, HardwareSpec

__all__ = [
    "ENV_SCHEDULER",
    "Job",
    "Runner",
    "calibration_options",
    "image_from_bytes",
    "image_to_bytes",
    "job_key",
    "run_jobs",
]

#: Environment variable naming a Dask scheduler to use instead of the embedded cluster.
ENV_SCHEDULER = "NEUROCHIP_DASK_SCHEDULER"
KINDS = ("eval", "learn", "empty")
#: Learning rules a learn job may use (presets of ``neurochip.learning.preset``).
LEARN_RULES = ("dfa", "fa", "dcll")
#: What a learn job starts from when ``model`` is this: the random 64-100-10 digits network.
RANDOM_DIGITS = "random"
_CACHE_SIZE = 16
#: Dask settings of the embedded cluster: no statistical profiler on the workers (it slows
#: the jobs by ~10 %) and slower housekeeping ticks; an idle 2-worker cluster then takes
#: ~1 % of a core instead of ~5 %, which matters when the workers have the cores to share.
#: Nor Dask's default ``MALLOC_TRIM_THRESHOLD_=65536`` for the worker processes: setting it
#: also freezes glibc's mmap threshold at 128 KiB, so every batch's arrays are mapped afresh
#: and page-faulted in (measured on the 48-job benchmark sweep: ~300 k minor faults and
#: +35 % CPU time).
QUIET_CLUSTER = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.tick.interval": "500ms",
}


# ------------------------------------------------------------------------------ jobs
@dataclass(frozen=True)
class Job:
    """One run and its parameters (the names a sweep file's grid uses).

    eval: compile ``model`` for ``hw`` with ``weight_bits`` (None: the chip's) and
    ``calibration`` ("none": worst-case scales; "max"; "pXX.X": that percentile of the
    float state on ``calibration_samples`` calibration inputs), then run ``data`` ("digits":
    the bundled digits test split; or an .npz with ``inputs`` and ``labels``) encoded with
    ``encoding`` (None: the model record's) and ``seed``, its first ``samples`` samples
    (None: all), placing chunks on cores by ``placement`` ("traffic" or "greedy"; None:
    the compiler's default). learn: start from ``model`` (an .nchip, or "random": the random digits
    network of seed ``seed``), learn with ``rule`` for ``epochs`` passes over the first
    ``limit`` digits training samples with learning-rate shifts ``lr_hidden``/``lr_out``,
    then evaluate on the test split. empty: does nothing (measures the per-job overhead).
    """

    kind: str = "eval"
    model: str = ""
    hw: str = "loihi_like"
    data: str = "digits"
    weight_bits: int | None = None
    calibration: str = "none"
    seed: int = 0
    encoding: str | None = None
    samples: int | None = None
    calibration_samples: int = 200
    batch_size: int = 256
    rule: str | None = None
    epochs: int | None = None
    lr_hidden: int | None = None
    lr_out: int | None = None
    limit: int | None = None
    placement: str | None = None

    def params(self) -> dict[str, Any]:
        """The parameters recorded with the job's results (learn-only ones and
        ``placement`` when set, so that older results files keep their keys)."""
        out = asdict(self)
        for k in ("rule", "epochs", "lr_hidden", "lr_out", "limit", "placement"):
            if out[k] is None:
                del out[k]
        return out

    @cached_property
    def key(self) -> str:
        return job_key(self.params())


def job_key(params: Mapping[str, Any]) -> str:
    """A stable identifier of a job: a hash of its parameters as canonical JSON."""
    text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


JOB_FIELDS = tuple(f.name for f in fields(Job))


def calibration_options(value: str, where: str = "job") -> dict[str, Any]:
    """``compile`` options for a calibration name: none | max | pXX.X (without the data)."""
    if value == "none":
        return {}
    if value == "max":
        return {"calibration": True}
    if isinstance(value, str) and value.startswith("p"):
        try:
            pct = float(value[1:])
        except ValueError:
            pct = -1.0
        if 0.0 < pct <= 100.0:
            return {"calibration": True, "calibration_percentile": pct}
    raise ConfigError(f"unknown calibration {value!r}; use none, max or pXX.X (a percentile "
                      "in (0, 100])", where=where, field="calibration", value=value)


# ------------------------------------------------------------------------------ images
def image_to_bytes(image: ChipImage) -> bytes:
    """The ``.nchip`` file of ``image`` as bytes."""
    with tempfile.TemporaryDirectory(prefix="neurochip-") as d:
        path = Path(d) / "image.nchip"
        image.save(path)
        return path.read_bytes()


def image_from_bytes(data: bytes) -> ChipImage:
    """A chip image from ``.nchip`` bytes (``ImageFormatError`` when corrupt)."""
    import neurochip

    with tempfile.TemporaryDirectory(prefix="neurochip-") as d:
        path = Path(d) / "image.nchip"
        path.write_bytes(data)
        return neurochip.ChipImage.load(path)


def _error_record(exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(exc).__name__, "message": getattr(exc, "message",
                                                                          str(exc))}
    if isinstance(exc, NeurochipError):
        out["where"] = exc.where
        out["field"] = exc.field
    return out


# ------------------------------------------------------------------------------ tasks
# The functions below run on the workers (or in-process when serial). They take and return
# plain data (bytes, arrays, dicts) and catch neurochip errors into error records, so that
# Dask's retries only ever rerun a task for a dead worker or an unexpected failure.
_IMAGES: OrderedDict[str, tuple[ChipImage, Any]] = OrderedDict()
_COMPILED: OrderedDict[str, bytes] = OrderedDict()


_MADE: OrderedDict[Any, dict[str, Any]] = OrderedDict()


def clear_caches() -> None:
    """Forget this process's compiled and loaded images and the data sets it made
    (benchmarks time cold jobs)."""
    _IMAGES.clear()
    _COMPILED.clear()
    _MADE.clear()


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


@dataclass(frozen=True)
class CompileSpec:
    """What one compilation needs, as plain data (the model file travels as bytes)."""

    model_name: str
    model_bytes: bytes
    hw: HardwareSpec
    weight_bits: int | None
    calibration: str
    calibration_margin: float = 2.0
    input_name: str | None = None
    placement: str | None = None  # None: the compiler's default
    model_digest: str = ""  # sha256 of model_bytes when known (else computed here)

    @cached_property
    def key(self) -> str:
        h = hashlib.sha256((self.model_digest or hashlib.sha256(self.model_bytes).hexdigest())
                           .encode())
        h.update(json.dumps([self.model_name, self.hw.spec_hash, self.weight_bits,
                             self.calibration, self.calibration_margin,
                             self.input_name, self.placement]).encode())
        return h.hexdigest()[:20]


def compile_task(spec: CompileSpec, calibration: NDArray[Any] | None) -> bytes | dict[str, Any]:
    """Compile on a worker: the image as ``.nchip`` bytes, or an error record."""
    key = spec.key
    if calibration is not None:
        key += hashlib.sha256(calibration.tobytes()).hexdigest()[:12]
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    try:
        out = image_to_bytes(_compile(spec, calibration))
    except NeurochipError as exc:
        return {"error": _error_record(exc)}
    _remember(_COMPILED, key, out)
    return out


def _compile(spec: CompileSpec, calibration: NDArray[Any] | None) -> ChipImage:
    import warnings

    import neurochip

    opts: dict[str, Any] = {"name": Path(spec.model_name).stem}
    if spec.weight_bits is not None:
        opts["weight_bits"] = spec.weight_bits
    if spec.placement is not None:
        opts["placement"] = spec.placement
    cal = calibration_options(spec.calibration)
    with tempfile.TemporaryDirectory(prefix="neurochip-") as d:
        path = Path(d) / Path(spec.model_name).name
        path.write_bytes(spec.model_bytes)
        if cal:
            if calibration is None:
                raise ConfigError("calibration needs calibration inputs", where="compile",
                                  field="calibration")
            name = spec.input_name or _single_input(path)
            opts["calibration"] = {name: calibration}
            opts["calibration_margin"] = spec.calibration_margin
            if "calibration_percentile" in cal:
                opts["calibration_percentile"] = cal["calibration_percentile"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return neurochip.compile(str(path), spec.hw, **opts)


def _single_input(path: Path) -> str:
    from compiler.pipeline import import_model

    names = sorted(import_model(str(path)).inputs)
    if len(names) != 1:
        raise ModelImportError(f"has inputs {names}; a data set feeds one input",
                               where=f"model {path.name}", field="inputs")
    return names[0]


@dataclass(frozen=True)
class Readout:
    """How a job reads predictions: input population, steps to run, decode rule."""

    input_name: str | None  # None: the image's only input
    run_steps: int | None  # None: input steps + the image's output latency
    loss: str | None  # a Loss name of compiler.training.losses (or COUNT_THEN_V); None:
    # ce_max for a voltage output, ce_count for a spiking one
    output: str | None = None  # a spiking population to read instead of the image's output


#: Decode of the on-chip learning tasks (``neurochip.tasks.learning.predict``): the output
#: neuron with most spikes, ties broken by the larger summed voltage.
COUNT_THEN_V = "count_then_v"


def _loaded(image_bytes: bytes) -> tuple[ChipImage, Any]:
    import neurochip

    key = hashlib.sha256(image_bytes).hexdigest()
    if key in _IMAGES:
        _IMAGES.move_to_end(key)
        return _IMAGES[key]
    image = image_from_bytes(image_bytes)
    entry = (image, neurochip.Emulator(image, threads=1))
    _remember(_IMAGES, key, entry)
    return entry


def measure(image: ChipImage, emulator: Any, inputs: NDArray[np.bool_], readout: Readout,
            batch_size: int = 256) -> dict[str, NDArray[Any]]:
    """Per-sample predictions and costs of ``inputs`` (N, T, n) on ``image``: arrays
    ``pred``, ``energy_pj``, ``latency_ns``, ``spikes``, ``syn_ops``, each (N,).

    Per-sample values do not depend on how the samples are batched or sharded.
    """
    import numpy as np

    from compiler.training.losses import Loss, decode
    from neurochip.commands.run_cmd import output_latency

    names = [p.name for p in image.input_populations]
    in_name = readout.input_name or (names[0] if len(names) == 1 else None)
    if in_name is None or in_name not in names:
        raise ConfigError(f"the data feeds one input; the image's inputs are {names}",
                          where="job", field="input")
    if readout.output is not None:
        pop, signal = readout.output, "spikes"
    else:
        outs = image.metadata.get("outputs") or {}
        if len(outs) != 1:
            raise ModelImportError(f"a classifier has one output, this one has "
                                   f"{sorted(outs)}", where="image", field="outputs")
        out = next(iter(outs.values()))
        pop, signal = str(out["population"]), str(out["signal"])
    both = readout.loss == COUNT_THEN_V
    name = readout.loss or ("ce_max" if signal == "v" else "ce_count")
    loss = None if both else Loss(name)  # type: ignore[arg-type]
    steps = readout.run_steps or int(inputs.shape[1]) + output_latency(image)
    probes = [f"{pop}.v"] if signal == "v" or both else []
    parts: dict[str, list[Any]] = {k: [] for k in ("pred", "energy_pj", "latency_ns",
                                                   "spikes", "syn_ops")}
    for s in range(0, int(inputs.shape[0]), batch_size):
        emulator.reset()
        r = emulator.run({in_name: inputs[s: s + batch_size]}, steps=steps, probes=probes,
                         spikes=[pop] if signal == "spikes" else None)
        if loss is None:
            counts = r.spikes[pop].sum(axis=1).astype(np.float64)
            vsum = r.probes[f"{pop}.v"].astype(np.float64).sum(axis=1)
            parts["pred"].append(np.argmax(counts * 1e9 + vsum, axis=1).astype(np.int64))
        else:
            rec = r.probes[f"{pop}.v"] if signal == "v" else r.spikes[pop]
            parts["pred"].append(decode(loss, rec if signal == "v" else None,
                                        rec if signal == "spikes" else None))
        parts["energy_pj"].append(r.energy.sum(axis=(1, 2)))
        parts["latency_ns"].append(r.latency_ns.sum(axis=1))
        parts["spikes"].append(r.counters["spikes_out"].sum(axis=(1, 2)))
        parts["syn_ops"].append(r.counters["syn_ops"].sum(axis=(1, 2)))
    return {k: np.concatenate(v) for k, v in parts.items()}


def summarize(per_sample: Mapping[str, NDArray[Any]], labels: NDArray[Any]) -> dict[str, Any]:
    """The job metrics from per-sample arrays (means per inference, sample order)."""
    import numpy as np

    n = len(labels)
    if n == 0:
        raise ConfigError("no samples to evaluate", where="job", field="samples")
    return {
        "accuracy": float(np.sum(per_sample["pred"] == labels)) / n,
        "energy_uj": float(np.sum(per_sample["energy_pj"])) / n / 1e6,
        "latency_us": float(np.sum(per_sample["latency_ns"])) / n / 1e3,
        "spikes": float(np.sum(per_sample["spikes"])) / n,
        "syn_ops": float(np.sum(per_sample["syn_ops"])) / n,
        "n_samples": n,
    }


def eval_task(job: Job, image: bytes | dict[str, Any], data: Mapping[str, Any],
              readout: Readout) -> dict[str, Any]:
    """Emulate a job's data on its compiled image: its record (metrics or error)."""
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"key": job.key, **job.params()}
    try:
        if job.kind == "empty":
            pass
        elif isinstance(image, dict):
            rec["error"] = image["error"]
        else:
            img, em = _loaded(image)
            per = measure(img, em, data["inputs"], readout, job.batch_size)
            rec.update(summarize(per, data["labels"]))
    except NeurochipError as exc:
        rec["error"] = _error_record(exc)
    rec["run"] = _run_info(t0)
    return rec


def _arrays(data: Mapping[str, Any] | DigitsData) -> Mapping[str, Any]:
    """A data set's arrays: given, or made from its recipe (once per process)."""
    if not isinstance(data, DigitsData):
        return data
    if data in _MADE:
        _MADE.move_to_end(data)
        return _MADE[data]
    made = make_data(data)
    _remember(_MADE, data, made)  # type: ignore[arg-type]
    return made


def chunk_task(jobs: Sequence[Job], spec: CompileSpec,
               calibration: NDArray[Any] | DigitsData | None,
               datas: Sequence[Mapping[str, Any] | DigitsData], readouts: Sequence[Readout]
               ) -> list[dict[str, Any]]:
    """Compile one image (or take it from this worker's cache) and run several eval jobs
    on it in one task: their records, in order. A data set (or the calibration inputs) may
    come as its recipe, made here (and kept for the next chunks): made on every worker
    that needs it, which costs less than a task of its own that the chunks wait for.

    Dask's advice is tasks of 100 ms or more; one digits evaluation takes about 25 ms, and
    a task that short spends a good part of its time on the worker's bookkeeping (moving
    its inputs and result, waking the worker's threads). With the compilation inside, a
    chunk waits for nothing but its data, so no worker idles while another compiles. An
    unexpected failure of one job is that job's record (``internal``), not the chunk's.
    """
    cal = _arrays(calibration)["x"] if isinstance(calibration, DigitsData) else calibration
    image = compile_task(spec, cal)
    out: list[dict[str, Any]] = []
    for job, data, readout in zip(jobs, datas, readouts):
        try:
            out.append(eval_task(job, image, _arrays(data), readout))
        except Exception as exc:  # recorded, the chunk goes on
            out.append(_internal_error(job, exc))
    return out


def chunks_task(parts: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Several chunks in one task (each part: the arguments of :func:`chunk_task`): their
    records, in order. Fewer, longer tasks cost the scheduler and the client less (each
    task costs the client process several milliseconds of CPU, taken from a core the
    workers need when they have one each)."""
    out: list[dict[str, Any]] = []
    for args in parts:
        out.extend(chunk_task(*args))
    return out


def _internal_error(job: Job, exc: BaseException) -> dict[str, Any]:
    """The record of a job that failed in an unexpected way (not a neurochip error)."""
    rec = {"key": job.key, **job.params(), "error": _error_record(exc)}
    rec["error"]["internal"] = True
    return rec


def chunks_of(keys: Sequence[str], groups: Mapping[str, str], workers: int,
              per_worker: int = 4, compile_cost: Mapping[str, float] | None = None
              ) -> list[list[str]]:
    """Job keys grouped by the image they run on (``groups``: key -> image key), in first-
    seen order, each group cut into pieces of at most ``ceil(len(keys) / (per_worker *
    workers))``, so that every worker gets several chunks to balance the load.

    compile_cost: per image key, what compiling it costs in jobs' runs; given, the chunks
    come largest first (compile cost + jobs; ties in first-seen order), the longest-job-first
    rule of list scheduling: the last chunks, which decide when the last worker is done,
    are the short ones."""
    cap = max(1, -(-len(keys) // max(1, per_worker * workers)))
    by: dict[str, list[str]] = {}
    for k in keys:
        by.setdefault(groups[k], []).append(k)
    pieces = [(img, g[i: i + cap]) for img, g in by.items() for i in range(0, len(g), cap)]
    if compile_cost is not None:
        pieces.sort(key=lambda p: -(compile_cost.get(p[0], 0.0) + len(p[1])))
    return [c for _, c in pieces]


def pack_chunks(chunks: Sequence[Sequence[str]], cost: Sequence[float], tasks: int
                ) -> list[list[str]]:
    """Chunks packed into at most ``tasks`` tasks of about equal cost (``cost``: per chunk),
    largest first: each chunk, largest first, joins the task that costs least so far (the
    longest-processing-time rule), and the tasks then go out largest first. Chunks of one
    image stay whole; a task lists its chunks' keys in the order they were packed."""
    n = max(1, int(tasks))
    if len(chunks) <= n:
        order = sorted(range(len(chunks)), key=lambda i: -cost[i])
        return [list(chunks[i]) for i in order]
    bins: list[tuple[float, int, list[str]]] = [(0.0, b, []) for b in range(n)]
    for i in sorted(range(len(chunks)), key=lambda i: -cost[i]):  # stable: ties in order
        total, b, keys = min(bins, key=lambda t: (t[0], t[1]))
        bins[b] = (total + cost[i], b, keys + list(chunks[i]))
    return [keys for _, _, keys in sorted(bins, key=lambda t: (-t[0], t[1])) if keys]


#: tasks per worker a sweep's eval chunks are packed into (see :func:`pack_chunks`)
TASKS_PER_WORKER = 3

# What compiling an image costs, in runs of one digits evaluation, by calibration kind
# (measured on the digits model: 17 ms without calibration, 55 ms with "max", 70 ms with a
# percentile, against 19 ms per evaluation).
COMPILE_COST = {"none": 0.9, "max": 2.9, "percentile": 3.7}


def compile_cost_of(calibration: str) -> float:
    """What compiling with this calibration costs (see ``COMPILE_COST``)."""
    if calibration in COMPILE_COST:
        return COMPILE_COST[calibration]
    return COMPILE_COST["percentile"]


def shard_task(image: bytes | dict[str, Any], inputs: NDArray[Any], readout: Readout,
               batch_size: int) -> dict[str, Any]:
    """Per-sample predictions and costs of one shard of a data set (or an error record)."""
    if isinstance(image, dict):
        return image
    try:
        img, em = _loaded(image)
        return measure(img, em, inputs, readout, batch_size)
    except NeurochipError as exc:
        return {"error": _error_record(exc)}


def learn_task(job: Job, start: bytes | None, task_arrays: Mapping[str, Any]) -> dict[str, Any]:
    """Compile (or load) a network, learn on chip, evaluate the learned image."""
    import numpy as np

    t0 = time.perf_counter()
    rec: dict[str, Any] = {"key": job.key, **job.params()}
    try:
        import neurochip
        from neurochip.learning import add_learning, preset
        from neurochip.tasks.learning import class_targets
        from neurochip.tasks.learning_demos import DIGITS_SETTINGS, digits_image

        s = DIGITS_SETTINGS
        rule = job.rule or "dfa"
        lr_h = s["lr_hidden"] if job.lr_hidden is None else job.lr_hidden
        lr_o = s["lr_out"] if job.lr_out is None else job.lr_out
        if start is None:
            image = digits_image(rule, seed=job.seed, lr_hidden=lr_h, lr_out=lr_o)
        else:
            base = image_from_bytes(start)
            image = add_learning(base, preset(base, rule, lr_hidden=lr_h, lr_out=lr_o,
                                              epoch=s["epoch"], seed=job.seed))
        out = image.lif_populations[-1].name
        inp = image.input_populations[0].name
        xtr, ytr = task_arrays["x_train"][: job.limit], task_arrays["y_train"][: job.limit]
        xte, yte = task_arrays["x_test"][: job.samples], task_arrays["y_test"][: job.samples]
        em = neurochip.Emulator(image, threads=1)
        targets = {out: class_targets(ytr, 10, int(xtr.shape[1]))}
        learn_pj = 0.0
        for k in range(job.epochs or 1):
            em.set_rate_shift(k // s["decay_every"])
            h = em.learn({inp: xtr}, targets, shuffle=job.seed + k)
            learn_pj += float(h.totals()["energy_pj"])
        learned = em.learned_image()
        ev = neurochip.Emulator(learned, threads=1)
        per = measure(learned, ev, xte, Readout(inp, None, COUNT_THEN_V, out), job.batch_size)
        rec.update(summarize(per, np.asarray(yte)))
        rec["learn_energy_uj"] = learn_pj / max(len(ytr) * (job.epochs or 1), 1) / 1e6
    except NeurochipError as exc:
        rec["error"] = _error_record(exc)
    rec["run"] = _run_info(t0)
    return rec


def _run_info(t0: float) -> dict[str, Any]:
    import socket

    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 6), "finished": round(time.time(), 4),
            "worker": f"{socket.gethostname()}:{os.getpid()}"}


def warm_up() -> int:
    """Load the emulator's Numba kernels in this process (a tiny run); returns the pid."""
    import numpy as np

    import neurochip

    net = neurochip.Network("loihi_like", name="warm-up")
    net.add_input("in", 2)
    net.add_lif("out", 2, du=4095, dv=1024, vth=1)
    net.connect("in", "out", np.full((2, 2), 2), sign_mode="mixed")
    em = neurochip.Emulator(neurochip.compile(net, "loihi_like"), threads=1)
    em.run({"in": np.ones((1, 2, 2), bool)}, steps=3, probes=["out.v"], spikes="all")
    return os.getpid()


# ------------------------------------------------------------------------------ client side
@dataclass(frozen=True)
class DigitsData:
    """A bundled digits data set, made where it is used (on a worker) instead of in the
    client: the spike encoding is deterministic, so every worker makes the same arrays and
    the client's preparation stays short (it would otherwise run before any job starts).

    part "test": ``{inputs, labels}`` of the test split (first ``samples``); "train":
    ``{x}`` of the training split (first ``samples``, a calibration set); "learn": the
    on-chip learning task's four arrays.
    """

    part: str
    steps: int
    encoding: str
    seed: int = 0
    samples: int | None = None


def make_data(recipe: DigitsData) -> dict[str, Any]:
    """The arrays of a data recipe (the same on every machine)."""
    from neurochip.tasks.digits import digits_split_spikes, digits_task

    if recipe.part == "learn":
        t = digits_task(recipe.steps, float(recipe.encoding))
        return {"x_train": t.x_train, "y_train": t.y_train, "x_test": t.x_test,
                "y_test": t.y_test}
    if recipe.part == "train":
        train = digits_split_spikes("train", recipe.steps, recipe.encoding,
                                    samples=recipe.samples)
        return {"x": train.x}
    test = digits_split_spikes("test", recipe.steps, recipe.encoding, seed=recipe.seed,
                               samples=recipe.samples)
    return {"inputs": test.x, "labels": test.y}


@dataclass
class _Prepared:
    """Client-side preparation of the jobs: compile specs, data sets, readouts."""

    compiles: dict[str, tuple[CompileSpec, str | None]] = field(default_factory=dict)
    #: data sets: arrays read by the client (.npz files), or recipes made where used
    datas: dict[str, dict[str, Any] | DigitsData] = field(default_factory=dict)
    job_compile: dict[str, str] = field(default_factory=dict)
    job_data: dict[str, str] = field(default_factory=dict)
    job_calib: dict[str, str | None] = field(default_factory=dict)
    readouts: dict[str, Readout] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    starts: dict[str, bytes | None] = field(default_factory=dict)
    made: dict[str, dict[str, Any]] = field(default_factory=dict)

    def data(self, key: str) -> dict[str, Any]:
        """A data set's arrays (a recipe is made once, in this process)."""
        v = self.datas[key]
        if isinstance(v, DigitsData):
            if key not in self.made:
                self.made[key] = make_data(v)
            return self.made[key]
        return v


def _read_record(model: Path) -> dict[str, Any] | None:
    rec_path = model.with_suffix(".json")
    if not rec_path.exists():
        return None
    try:
        rec = json.loads(rec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelImportError(f"is not valid JSON ({exc})", where=f"model record {rec_path}"
                               ) from None
    return rec if isinstance(rec, dict) else None


class _Client:
    """Reads model files, records and data sets once per run (client side)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.digests: dict[str, str] = {}
        self.records: dict[str, dict[str, Any] | None] = {}
        self.hws: dict[str, HardwareSpec] = {}
        self.arrays: dict[str, dict[str, Any]] = {}

    def file(self, path: str, what: str) -> bytes:
        if path not in self.files:
            p = Path(path)
            if not p.is_file():
                raise ConfigError("file does not exist", where=f"{what} {p}")
            self.files[path] = p.read_bytes()
            self.digests[path] = hashlib.sha256(self.files[path]).hexdigest()
        return self.files[path]

    def record(self, path: str) -> dict[str, Any] | None:
        if path not in self.records:
            self.records[path] = _read_record(Path(path))
        return self.records[path]

    def hw(self, name: str) -> HardwareSpec:
        import neurochip

        if name not in self.hws:
            self.hws[name] = neurochip.load_hw(name)
        return self.hws[name]

    def npz(self, path: str) -> dict[str, Any]:
        import numpy as np

        from neurochip.commands import read_npz

        if path not in self.arrays:
            a = read_npz(path, "data file")
            where = f"data file {Path(path)}"
            for k in ("inputs", "labels"):
                if k not in a:
                    raise ConfigError(f"lacks the array '{k}' (it holds {sorted(a)})",
                                      where=where, field=k)
            x, y = a["inputs"], np.asarray(a["labels"])
            if x.ndim not in (2, 3) or len(x) != len(y) or y.ndim != 1:
                raise ConfigError(f"inputs {x.shape} and labels {y.shape} must be (N, T, n) "
                                  "spikes or (N, n) intensities in [0, 1], and (N,)",
                                  where=where, field="inputs")
            if x.ndim == 3 and x.dtype != np.bool_:
                if not np.isin(x, (0, 1)).all():
                    raise ConfigError("(N, T, n) inputs must hold spikes (bool or 0/1)",
                                      where=where, field="inputs")
                x = x.astype(bool)
            a = {**a, "inputs": x, "labels": y.astype(np.int64)}
            self.arrays[path] = a
        return self.arrays[path]


def _steps_encoding(job: Job, rec: dict[str, Any] | None) -> tuple[int, str]:
    data = (rec or {}).get("data") or {}
    steps = int(data.get("steps", 20))
    return steps, str(job.encoding or data.get("encoding", "regular"))


def _data_for(job: Job, rec: dict[str, Any] | None, c: _Client,
              datas: dict[str, dict[str, Any] | DigitsData]) -> str:
    """The key in ``datas`` of a job's data set ({inputs, labels}), added when new."""
    from compiler.training.data import encode

    steps, encoding = _steps_encoding(job, rec)
    if job.data == "digits":
        dkey = f"digits:{steps}:{encoding}:{job.seed}:{job.samples}"
        if dkey not in datas:
            datas[dkey] = DigitsData("test", steps, encoding, job.seed, job.samples)
        return dkey
    arr = c.npz(job.data)
    x = arr["inputs"]
    dkey = f"{job.data}:{encoding if x.ndim == 2 else ''}:{job.seed}:{job.samples}"
    if dkey not in datas:
        xs = x if x.ndim == 3 else encode(x, encoding, steps, seed=job.seed + 1)
        datas[dkey] = {"inputs": xs[: job.samples], "labels": arr["labels"][: job.samples]}
    return dkey


def _calibration_for(job: Job, rec: dict[str, Any] | None, c: _Client,
                     datas: dict[str, dict[str, Any] | DigitsData], dkey: str) -> str | None:
    """The key in ``datas`` of a job's calibration inputs ({x}), None without calibration.

    digits: the first ``calibration_samples`` of the training split in the model's own
    encoding; an .npz: its ``calibration`` array, else its first inputs.
    """
    from compiler.training.data import encode

    if not calibration_options(job.calibration):
        return None
    steps, encoding = _steps_encoding(job, rec)
    rec_enc = str(((rec or {}).get("data") or {}).get("encoding", "regular"))
    src = f"digits-train:{steps}:{rec_enc}" if job.data == "digits" else f"{job.data}:cal"
    ckey = f"{src}:{job.calibration_samples}"
    if ckey not in datas:
        if job.data == "digits":
            datas[ckey] = DigitsData("train", steps, rec_enc, 0, job.calibration_samples)
            return ckey
        else:
            arr = c.npz(job.data)
            cx = arr["calibration"] if "calibration" in arr else arr["inputs"]
            if cx.ndim == 2:
                cx = encode(cx, encoding, steps, seed=0)
            elif cx.dtype != bool:
                cx = cx.astype(bool)
        datas[ckey] = {"x": cx[: job.calibration_samples]}
    return ckey


def readout_of(rec: dict[str, Any] | None) -> Readout:
    """How to read a model's predictions, from its record (``chip_run``, ``settings``)."""
    run = (rec or {}).get("chip_run") or {}
    settings = (rec or {}).get("settings") or {}
    return Readout(run.get("input"), run.get("run_steps"), settings.get("loss"))


def _prepare(jobs: Sequence[Job]) -> _Prepared:
    """Read every file once; group the jobs by compilation and by data set."""
    from neurochip.tasks.learning_demos import DIGITS_SETTINGS

    c = _Client()
    prep = _Prepared()
    for job in jobs:
        key = job.key
        try:
            if job.kind == "empty":
                continue
            if job.kind == "learn":
                start = None
                if job.model != RANDOM_DIGITS:
                    start = c.file(job.model, "model")
                prep.starts[key] = start
                dkey = "learn-digits"
                if dkey not in prep.datas:
                    prep.datas[dkey] = DigitsData("learn", int(DIGITS_SETTINGS["steps"]),
                                                  repr(float(DIGITS_SETTINGS["rate"])))
                prep.job_data[key] = dkey
                continue
            model_bytes = c.file(job.model, "model")
            rec = c.record(job.model)
            prep.readouts[key] = readout_of(rec)
            dkey = _data_for(job, rec, c, prep.datas)
            prep.job_data[key] = dkey
            calib_key = _calibration_for(job, rec, c, prep.datas, dkey)
            spec = CompileSpec(job.model, model_bytes, c.hw(job.hw), job.weight_bits,
                               job.calibration, input_name=prep.readouts[key].input_name,
                               placement=job.placement, model_digest=c.digests[job.model])
            ck = spec.key + (calib_key or "")
            prep.compiles.setdefault(ck, (spec, calib_key))
            prep.job_compile[key] = ck
            prep.job_calib[key] = calib_key
        except NeurochipError as exc:
            prep.errors[key] = {"key": key, **job.params(), "error": _error_record(exc)}
    return prep


def _results(client: Any, batch: Sequence[Any]) -> list[Any]:
    """The results of finished futures (one gather), or per future its exception."""
    if all(f.status == "finished" for f in batch):
        try:
            return list(client.gather(list(batch)))
        except Exception:  # a result lost meanwhile: ask each future on its own
            pass
    out: list[Any] = []
    for f in batch:
        try:
            out.append(f.result())
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            out.append(exc)
    return out


def _lost(exc: BaseException) -> bool:
    """Whether a task failed for its worker (died, cancelled, lost data), not its job."""
    import asyncio
    import concurrent.futures

    from distributed import KilledWorker
    from distributed.client import FutureCancelledError
    from distributed.comm import CommClosedError

    return isinstance(exc, (KilledWorker, FutureCancelledError, CommClosedError,
                            TimeoutError, asyncio.CancelledError,
                            concurrent.futures.CancelledError))


def _scheduler_address(cluster: str | None) -> str | None:
    if cluster:
        return cluster
    env = os.environ.get(ENV_SCHEDULER, "").strip()
    return env or None


def default_workers() -> int:
    """Worker processes of the embedded cluster: one per CPU core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Runner:
    """Runs jobs serially (``workers=0``), on an embedded LocalCluster, or on a cluster.

    Use as a context manager; the embedded cluster lives until ``close()``. ``retries``:
    reruns of a task whose worker died (Dask's ``retries``). ``warm``: load the emulator
    kernels on every worker at start (and in-process when serial). ``timeout``: seconds to
    wait for a scheduler.
    """

    def __init__(self, workers: int | None = None, cluster: str | None = None, *,
                 retries: int = 3, warm: bool = True, timeout: float = 20.0) -> None:
        if workers is not None and workers < 0:
            raise ConfigError(f"must be >= 0, got {workers}", where="runner", field="workers")
        if workers is not None and cluster:
            raise ConfigError("give either a number of workers or a cluster address",
                              where="runner", field="cluster")
        self.address = None if workers is not None else _scheduler_address(cluster)
        self.serial = workers == 0
        self.n_workers = workers if workers else default_workers()
        self.retries = retries
        self.timeout = timeout
        self.client: Any = None
        self.cluster: Any = None
        if self.serial:
            if warm:
                warm_up()
            return
        self._start(warm)

    def _start(self, warm: bool) -> None:
        import logging

        import dask
        from distributed import Client, LocalCluster

        try:
            if self.address:
                self.client = Client(self.address, timeout=f"{self.timeout}s")
            else:
                # one single-threaded process per core: Numba's parallel kernels (the
                # compiler's calibration check) must not oversubscribe the cores either
                with dask.config.set(QUIET_CLUSTER):
                    self.cluster = LocalCluster(
                        n_workers=self.n_workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR,
                        worker_dashboard_address=None,
                        env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler ({exc})",
                              where=f"cluster {self.address}", field="cluster") from None
        if warm:
            self.client.run(warm_up)

    @property
    def description(self) -> str:
        if self.serial:
            return "serially in this process"
        n = len(self.client.scheduler_info().get("workers", {}))
        if self.address:
            return f"on the Dask cluster {self.address} ({n} workers)"
        return f"on a local Dask cluster of {n} worker processes"

    def worker_pids(self) -> dict[str, int]:
        """{worker address: pid} of the workers (empty when serial)."""
        if self.serial:
            return {}
        return dict(self.client.run(os.getpid))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------- jobs
    def run(self, jobs: Iterable[Job], on_result: Callable[[dict[str, Any]], None] | None
            = None) -> list[dict[str, Any]]:
        """Run ``jobs``; ``on_result(record)`` as each finishes (in completion order).

        Returns the records in job order. Jobs with the same key run once.
        """
        todo = list({j.key: j for j in jobs}.values())
        prep = _prepare(todo)
        done: dict[str, dict[str, Any]] = {}

        def finish(rec: dict[str, Any]) -> None:
            done[rec["key"]] = rec
            if on_result is not None:
                on_result(rec)

        for key in list(prep.errors):
            finish(prep.errors[key])
        live = [j for j in todo if j.key not in prep.errors]
        if self.serial:
            self._run_serial(live, prep, finish)
        else:
            self._run_dask(live, prep, finish)
        return [done[j.key] for j in todo]

    def _run_serial(self, jobs: Sequence[Job], prep: _Prepared,
                    finish: Callable[[dict[str, Any]], None]) -> None:
        images: dict[str, bytes | dict[str, Any]] = {}
        for job in jobs:
            finish(self._one_serial(job, prep, images))

    def _one_serial(self, job: Job, prep: _Prepared,
                    images: dict[str, bytes | dict[str, Any]]) -> dict[str, Any]:
        key = job.key
        if job.kind == "empty":
            return eval_task(job, b"", {}, Readout(None, None, None))
        if job.kind == "learn":
            return learn_task(job, prep.starts[key], prep.data(prep.job_data[key]))
        ck = prep.job_compile[key]
        if ck not in images:
            spec, calib = prep.compiles[ck]
            images[ck] = compile_task(spec, prep.data(calib)["x"] if calib else None)
        return eval_task(job, images[ck], prep.data(prep.job_data[key]), prep.readouts[key])

    def _run_dask(self, jobs: Sequence[Job], prep: _Prepared,
                  finish: Callable[[dict[str, Any]], None]) -> None:
        from distributed import as_completed

        client = self.client
        tok = uuid.uuid4().hex[:8]  # keys unique per run: never reuse a key being forgotten
        r = self.retries
        datas: dict[str, Any] = {}

        def data(name: str, part: str | None = None) -> Any:
            # One future per data set, copied to every worker: scattered data has no
            # lineage, so a copy must survive the loss of a worker (scattered anew if not).
            k = f"{name}/{part}"
            if k in datas and datas[k].status not in ("cancelled", "lost", "error"):
                return datas[k]
            recipe = prep.datas[name]
            if isinstance(recipe, DigitsData):  # the learning jobs' data set
                # made on a worker (the client's preparation stays short); a task has
                # lineage, so a copy lost with a worker is made again
                datas[k] = client.submit(make_data, recipe, key=f"data-"
                                         f"{uuid.uuid4().hex[:8]}-{tok}", retries=r,
                                         pure=False)
                return datas[k]
            value = recipe if part is None else recipe[part]
            datas[k] = client.scatter([value], hash=False, broadcast=True)[0]
            return datas[k]

        def submit(job: Job, attempt: int) -> Any:
            key = job.key
            name = f"job-{key}-{tok}-{attempt}"
            if job.kind == "empty":
                return client.submit(eval_task, job, b"", {}, Readout(None, None, None),
                                     key=name, retries=r, pure=False)
            if job.kind == "learn":
                return client.submit(learn_task, job, prep.starts[key],
                                     data(prep.job_data[key]), key=name, retries=r,
                                     pure=False)
            return submit_chunk([job], attempt)

        def chunk_data(name: str, part: str | None = None) -> Any:
            # a recipe travels as it is (made on the worker, see chunk_task); arrays read
            # by the client are scattered once
            recipe = prep.datas[name]
            return recipe if isinstance(recipe, DigitsData) else data(name, part)

        def submit_chunk(chunk: Sequence[Job], attempt: int) -> Any:
            # one task for the jobs of one or more images: a chunk_task's arguments per image
            by_image: dict[str, list[Job]] = {}
            for j in chunk:
                by_image.setdefault(prep.job_compile[j.key], []).append(j)
            parts = []
            for ck, group in by_image.items():
                spec, ckey = prep.compiles[ck]
                parts.append((group, spec, chunk_data(ckey, "x") if ckey else None,
                              [chunk_data(prep.job_data[j.key]) for j in group],
                              [prep.readouts[j.key] for j in group]))
            return client.submit(
                chunks_task, parts,
                key=f"chunk-{chunk[0].key}-{len(chunk)}-{tok}-{attempt}", retries=r,
                pure=False)

        # Chunks go out a few at a time (two per worker: one running, one queued behind
        # it), each as one finishes: the scheduler then places every chunk on a worker that
        # is free or about to be, rather than queueing them all where their data happened
        # to be made.
        workers = len(client.scheduler_info().get("workers", {})) or self.n_workers
        waiting: deque[list[Job]] = deque()
        running: set[Any] = set()

        def top_up(out: dict[Any, tuple[list[Job], int]]) -> list[Any]:
            new = []
            while waiting and len(running) < 2 * workers:
                chunk = waiting.popleft()
                fut = submit_chunk(chunk, 0)
                running.add(fut)
                out[fut] = (chunk, 0)
                new.append(fut)
            return new

        def submit_all(todo: Sequence[Job]) -> dict[Any, tuple[list[Job], int]]:
            # eval jobs in chunks of one image each; empty jobs in one client.map call (one
            # message to the scheduler)
            by_key = {j.key: j for j in todo}
            evals = [j.key for j in todo if j.kind == "eval"]
            out: dict[Any, tuple[list[Job], int]] = {}
            for k in evals:  # every array data set scattered now, before the chunks
                chunk_data(prep.job_data[k])
                ckey = prep.compiles[prep.job_compile[k]][1]
                if ckey:
                    chunk_data(ckey, "x")
            cost = {ck: compile_cost_of(spec.calibration)
                    for ck, (spec, _) in prep.compiles.items()}
            chunks = chunks_of(evals, prep.job_compile, workers, compile_cost=cost)
            tasks = pack_chunks(chunks, [cost[prep.job_compile[c[0]]] + len(c)
                                         for c in chunks], TASKS_PER_WORKER * workers)
            waiting.extend([by_key[k] for k in keys] for keys in tasks)
            top_up(out)
            empty = [j for j in todo if j.kind == "empty"]
            if empty:
                mapped = client.map(eval_task, empty, [b""] * len(empty), [{}] * len(empty),
                                    [Readout(None, None, None)] * len(empty),
                                    key=[f"job-{j.key}-{tok}-0" for j in empty],
                                    retries=r, pure=False)
                out.update({f: ([j], 0) for f, j in zip(mapped, empty)})
            for j in todo:
                if j.kind not in ("eval", "empty"):
                    out[submit(j, 0)] = ([j], 0)
            return out

        futures = submit_all(jobs)
        pending = as_completed(list(futures))
        try:
            # finished futures come in batches, and each batch's results in one gather
            for batch in pending.batches():
                for fut, res in zip(batch, _results(client, batch)):
                    group, attempt = futures.pop(fut)
                    running.discard(fut)
                    if isinstance(res, BaseException):
                        if _lost(res) and attempt < r:
                            # the task or its inputs went with a dead worker: run it again
                            chunked = fut.key.startswith("chunk-")
                            again = (submit_chunk(group, attempt + 1) if chunked else
                                     submit(group[0], attempt + 1))
                            if chunked:
                                running.add(again)
                            futures[again] = (group, attempt + 1)
                            pending.add(again)
                            continue
                        recs = [_internal_error(job, res) for job in group]
                    else:
                        recs = res if isinstance(res, list) else [res]
                    # the next chunks go out before the records are handed on, so the
                    # workers stay busy while on_result runs (it may write files)
                    for more in top_up(futures):
                        pending.add(more)
                    for rec in recs:
                        finish(rec)
        finally:
            if futures:  # interrupted: drop what is still queued or running
                client.cancel(list(futures))
            futures.clear()
            waiting.clear()
            datas.clear()

    # -------------------------------------------------------------------------- eval
    def evaluate(self, image: ChipImage, inputs: NDArray[np.bool_], labels: NDArray[Any],
                 readout: Readout, *, shards: int | None = None, batch_size: int = 256,
                 on_shard: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Metrics of a whole data set on ``image``, its samples split into ``shards``
        (default: 4 per worker) evaluated in parallel; identical for any split."""
        import numpy as np

        n = int(inputs.shape[0])
        if shards is None:
            shards = 1 if self.serial else 4 * self.n_workers
        shards = max(1, min(shards, n))
        bounds = np.linspace(0, n, shards + 1).astype(int)
        blob = image_to_bytes(image)
        parts: list[dict[str, Any]] = [{}] * shards
        if self.serial:
            for i in range(shards):
                parts[i] = shard_task(blob, inputs[bounds[i]: bounds[i + 1]], readout,
                                      batch_size)
                if on_shard:
                    on_shard(int(bounds[i + 1] - bounds[i]))
        else:
            from distributed import as_completed

            img = self.client.scatter(blob, broadcast=True, hash=False)
            futs = {self.client.submit(shard_task, img, inputs[bounds[i]: bounds[i + 1]],
                                       readout, batch_size, retries=self.retries,
                                       pure=False): i for i in range(shards)}
            for fut in as_completed(list(futs)):
                i = futs[fut]
                parts[i] = fut.result()
                if on_shard:
                    on_shard(int(bounds[i + 1] - bounds[i]))
        for p in parts:
            if "error" in p:
                e = p["error"]
                raise ConfigError(f"{e['type']}: {e['message']}", where=e.get("where"),
                                  field=e.get("field"))
        per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        out = summarize(per, np.asarray(labels))
        out["shards"] = shards
        return out


def run_jobs(jobs: Iterable[Job], *, workers: int | None = None, cluster: str | None = None,
             retries: int = 3, on_result: Callable[[dict[str, Any]], None] | None = None
             ) -> list[dict[str, Any]]:
    """Run ``jobs`` with a fresh :class:`Runner`; the records in job order."""
    with Runner(workers, cluster, retries=retries) as runner:
        return runner.run(jobs, on_result=on_result)


def same_results(a: Iterable[Mapping[str, Any]], b: Iterable[Mapping[str, Any]]) -> bool:
    """Whether two sets of records hold the same jobs and values (ignoring ``run``)."""
    def norm(recs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        return {str(r["key"]): json.dumps({k: v for k, v in r.items() if k != "run"},
                                          sort_keys=True) for r in recs}

    return norm(a) == norm(b)


def with_params(job: Job, **changes: Any) -> Job:
    """``job`` with some parameters changed (names of :class:`Job`)."""
    unknown = sorted(set(changes) - set(JOB_FIELDS))
    if unknown:
        raise ConfigError(f"unknown job parameter {unknown[0]!r}; known: {list(JOB_FIELDS)}",
                          where="job", field=unknown[0])
    return replace(job, **changes)

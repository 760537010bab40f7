"""``neurochip run IMAGE --input X.npz -o OUT.npz``: run a chip image on the emulator.

Light at import time (``neurochip --help`` imports it); numpy and the emulator are imported
inside the command. The helpers here (reading inputs, the image's output latency, batched
runs with a progress bar) are shared with ``quickstart``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurochip.commands import MAX_STEPS, int_arg
from neurochip.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from neurochip.core.image import ChipImage

__all__ = ["BatchedRun", "load_image", "load_inputs", "output_latency", "register",
           "run_batched"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run", help="run a chip image on the emulator",
        description="Run a compiled chip image (.nchip) on the bit-exact emulator. The inputs "
                    "are an .npz file holding one bool (or 0/1) array per input population, "
                    "(T, n) for one sample or (B, T, n) for B independent samples; a file "
                    "with a single array may use any name when the image has one input. "
                    "The chip answers one step per projection after its input, so by "
                    "default it runs T plus the image's output latency steps. OUT.npz gets "
                    "'spikes/<population>' (spiking populations), "
                    "'probe/<population>.<u|v>', "
                    "'output/<name>' (the image's NIR outputs: spikes, or v in float units), "
                    "and the per-step 'cycles', 'latency_ns' and 'energy_pj' (summed over "
                    "cores). The voltage of every non-spiking output is probed "
                    "automatically.")
    p.add_argument("image", metavar="IMAGE", help="chip image file (.nchip)")
    p.add_argument("--input", "-i", required=True, metavar="X.npz", dest="input",
                   help="input spikes, one array per input population")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz",
                   help="where to write spikes, probes and accounting")
    p.add_argument("--steps", type=int_arg(0, MAX_STEPS), default=None, metavar="N",
                   help="steps to run (default: input length + output latency)")
    p.add_argument("--probe", action="append", default=[], metavar="POP.v",
                   help="record a register: POP.v or POP.u (repeatable)")
    p.add_argument("--spikes", default="all", metavar="POPS",
                   help="record the spikes of 'all' populations (default), 'none', or a "
                        "comma-separated list")
    p.add_argument("--batch-size", type=int, default=256, metavar="N",
                   help="samples per emulator call (default 256)")
    p.add_argument("--backend", choices=["numba", "reference"], default="numba",
                   help="emulator kernels (default numba) or the pure-Python reference")
    p.add_argument("--threads", type=int_arg(1, 4096), default=None, metavar="N",
                   help="threads for the numba backend (default: all; results never depend "
                        "on it)")
    p.add_argument("--report", action="store_true",
                   help="print where the work, energy and time went: per layer and per "
                        "core (synaptic ops, neuron updates, spikes, messages, hops, energy, "
                        "time share; the slowest core and the busiest router port)")
    p.add_argument("--report-png", metavar="FILE.png", default=None,
                   help="also plot that breakdown: stacked energy per layer and a per-core "
                        "time heat map (implies --report)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=_run)


# ------------------------------------------------------------------------------ helpers
def load_image(path: str | Path) -> ChipImage:
    """A chip image from ``path`` (``ImageFormatError`` when missing or corrupt)."""
    from neurochip.core.image import ChipImage

    return ChipImage.load(path)


def load_inputs(path: str | Path, image: ChipImage) -> dict[str, NDArray[Any]]:
    """Input spikes for ``image`` from an .npz file: {input population: (T, n) or (B, T, n)}.

    The arrays are checked here so that errors name the file; the emulator checks the rest.
    """
    import numpy as np

    from neurochip.commands import read_npz

    where = f"input file {Path(path)}"
    arrays = read_npz(path, "input file")
    names = [q.name for q in image.input_populations]
    if len(arrays) == 1 and len(names) == 1 and names[0] not in arrays:
        arrays = {names[0]: next(iter(arrays.values()))}
    unknown = sorted(set(arrays) - set(names))
    if unknown:
        raise ConfigError(f"arrays {unknown} match no input population; the image's inputs "
                          f"are {names}", where=where, field=unknown[0])
    if not arrays:
        raise ConfigError(f"holds no arrays; the image's inputs are {names}", where=where)
    out: dict[str, NDArray[Any]] = {}
    shape_b: set[int] = set()
    for name, arr in arrays.items():
        size = image.population(name).size
        if arr.ndim not in (2, 3) or arr.shape[-1] != size:
            raise ConfigError(f"has shape {arr.shape}; input '{name}' needs (T, {size}) or "
                              f"(B, T, {size})", where=where, field=name)
        if arr.dtype != np.bool_:
            if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
                raise ConfigError("must hold spikes (bool or 0/1)", where=where, field=name)
            arr = arr.astype(bool)
        if arr.ndim == 3:
            shape_b.add(arr.shape[0])
        out[name] = arr
    if len(shape_b) > 1:
        raise ConfigError(f"inputs disagree on the batch size: {sorted(shape_b)}", where=where)
    return out


def output_latency(image: ChipImage) -> int:
    """Steps from the inputs to the image's outputs: each projection adds one step plus its
    delay (the shortest path); 0 when the image records no outputs."""
    import heapq

    conns = image.connections
    dist: dict[str, int] = {p.name: 0 for p in image.input_populations}
    heap = [(0, n) for n in dist]
    while heap:
        d, n = heapq.heappop(heap)
        if d > dist.get(n, d):
            continue
        for c in conns:
            if c.pre != n:
                continue
            step = 1 + (0 if c.has_delays else c.delay)
            if c.has_delays:
                delays = image.delays(c.name)
                step = 1 + int(delays[image.weights(c.name) != 0].min(initial=0))
            if d + step < dist.get(c.post, 1 << 30):
                dist[c.post] = d + step
                heapq.heappush(heap, (d + step, c.post))
    outs = image.metadata.get("outputs") or {}
    targets = [str(o["population"]) for o in outs.values()]
    if not targets:
        targets = [p.name for p in image.lif_populations]
    return max((dist[t] for t in targets if t in dist), default=0)


@dataclass
class BatchedRun:
    """Spikes, probes and accounting of many samples run in batches (arrays (B, T, ...))."""

    spikes: dict[str, NDArray[np.bool_]]
    probes: dict[str, NDArray[np.int32]]
    cycles: NDArray[np.int64]  # (B, T, cores)
    latency_ns: NDArray[np.float64]  # (B, T)
    energy_pj: NDArray[np.float64]  # (B, T, cores)
    counters: dict[str, NDArray[np.int64]]  # (B, T, cores) each
    cores: list[int]
    steps: int
    seconds: float = 0.0
    totals: dict[str, float] = field(default_factory=dict)  # per-sample means
    breakdown: Any = None  # neurochip.core.results.Breakdown when asked for


def run_batched(image: ChipImage, inputs: Mapping[str, Any], steps: int, *,
                probes: Sequence[str] = (), spikes: str | Sequence[str] | None = "all",
                batch_size: int = 256, backend: str = "numba", progress: bool = True,
                desc: str = "emulator", threads: int | None = None,
                breakdown: bool = False) -> BatchedRun:
    """Run every sample of ``inputs`` ((B, T, n) arrays; (T, n) is one sample) on the
    emulator, ``batch_size`` samples per call, with a progress bar over samples; with
    ``breakdown`` the per-layer and per-core breakdown of all samples."""
    import time

    import numpy as np
    from tqdm import tqdm

    from emulator.chip import Emulator

    if batch_size < 1:
        raise ConfigError(f"must be >= 1, got {batch_size}", where="run", field="batch_size")
    arrays = {k: (v[None] if v.ndim == 2 else v) for k, v in
              ((k, np.asarray(v)) for k, v in inputs.items())}
    n = max((a.shape[0] for a in arrays.values()), default=1)
    em = Emulator(image, backend=backend, threads=threads)  # type: ignore[arg-type]
    parts: list[Any] = []
    t0 = time.perf_counter()
    with tqdm(total=n, desc=desc, unit="sample", disable=None if progress else True,
              leave=False, dynamic_ncols=True) as bar:
        for s in range(0, n, batch_size):
            em.reset()
            r = em.run({k: a[s: s + batch_size] for k, a in arrays.items()}, steps=steps,
                       probes=list(probes), spikes=spikes, breakdown=breakdown)
            parts.append(r)
            bar.update(min(batch_size, n - s))
    seconds = time.perf_counter() - t0
    first = parts[0]
    cat = np.concatenate
    run = BatchedRun(
        spikes={k: cat([r.spikes[k] for r in parts]) for k in first.spikes},
        probes={k: cat([r.probes[k] for r in parts]) for k in first.probes},
        cycles=cat([r.cycles for r in parts]), latency_ns=cat([r.latency_ns for r in parts]),
        energy_pj=cat([r.energy for r in parts]),
        counters={k: cat([r.counters[k] for r in parts]) for k in first.counters},
        cores=list(first.cores), steps=steps, seconds=seconds)
    tot: dict[str, float] = {}
    for r in parts:
        b = r.energy.shape[0]
        for k, v in r.totals().items():
            tot[k] = tot.get(k, 0.0) + v * b
    run.totals = {k: v / n for k, v in tot.items()}
    if breakdown:
        from neurochip.costs import merge

        run.breakdown = merge([(r.breakdown, r.energy.shape[0]) for r in parts])
    return run


def _spike_selection(value: str, image: ChipImage) -> str | list[str] | None:
    if value == "all":
        return "all"
    if value == "none":
        return None
    names = [s.strip() for s in value.split(",") if s.strip()]
    lif = [p.name for p in image.lif_populations]
    bad = [s for s in names if s not in lif]
    if bad:
        raise ConfigError(f"no spiking population {bad[0]!r}; populations: {lif}",
                          where="run", field="--spikes")
    return names


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    image = load_image(args.image)
    inputs = load_inputs(args.input, image)
    T = max(a.shape[-2] for a in inputs.values())
    latency = output_latency(image)
    steps = T + latency if args.steps is None else args.steps
    if steps < T:
        raise ConfigError(f"--steps {steps} is shorter than the inputs ({T} steps)",
                          where="run", field="--steps")
    batched = any(a.ndim == 3 for a in inputs.values())
    spikes = _spike_selection(args.spikes, image)
    report = bool(args.report or args.report_png)
    if report and spikes != "all":
        raise ConfigError("a report needs the spikes of every population (--spikes all)",
                          where="run", field="--report")
    if args.report_png and not Path(args.report_png).parent.exists():
        raise ConfigError("folder does not exist", where=f"--report-png {args.report_png}")
    out_path = Path(args.output)
    if not out_path.parent.exists():
        raise ConfigError("folder does not exist", where=f"output {out_path}")
    outs = image.metadata.get("outputs") or {}
    probes = list(dict.fromkeys(list(args.probe) + [
        f"{o['population']}.v" for o in outs.values() if o.get("signal") == "v"]))
    res = run_batched(image, inputs, steps, probes=probes, spikes=spikes,
                      batch_size=args.batch_size, backend=args.backend,
                      progress=not args.quiet, threads=args.threads, breakdown=report)
    sq = (lambda a: a) if batched else (lambda a: a[0])
    arrays: dict[str, Any] = {}
    readouts = {q.name for q in image.lif_populations if not q.spiking}
    for k, s in res.spikes.items():
        if k not in readouts:  # a non-spiking readout never spikes: its v is the output
            arrays[f"spikes/{k}"] = sq(s)
    for k, p in res.probes.items():
        arrays[f"probe/{k}"] = sq(p)
    for name, o in outs.items():
        pop, signal = str(o["population"]), str(o["signal"])
        if signal == "spikes" and pop in res.spikes:
            arrays[f"output/{name}"] = sq(res.spikes[pop])
        elif signal == "v" and f"{pop}.v" in res.probes:
            arrays[f"output/{name}"] = sq(res.probes[f"{pop}.v"] / float(o["scale"]))
    arrays["cycles"] = sq(res.cycles.sum(axis=-1))
    arrays["latency_ns"] = sq(res.latency_ns)
    arrays["energy_pj"] = sq(res.energy_pj.sum(axis=-1))
    from neurochip.core.safeio import atomic_path

    with atomic_path(out_path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    if not args.quiet:
        n = res.energy_pj.shape[0]
        t = res.totals
        print(f"ran {n} sample{'s' if n != 1 else ''} x {steps} steps ({T} input steps + "
              f"{steps - T}) on {len(res.cores)} core{'s' if len(res.cores) != 1 else ''} "
              f"in {res.seconds:.2f} s")
        for k, v in res.spikes.items():
            if k not in readouts:
                print(f"  {k:<20} {int(v.sum()) / n:10.1f} spikes per sample")
        print(f"  per sample: {t.get('spikes', 0.0):.1f} spikes, {t.get('syn_ops', 0.0):.0f} "
              f"synaptic ops, {t.get('latency_ns', 0.0) / 1e3:.2f} us, "
              f"{t.get('energy_pj', 0.0) / 1e6:.3f} uJ")
        missing = [n for n, o in outs.items() if f"output/{n}" not in arrays]
        if missing:
            print(f"  outputs not recorded (add --probe POP.v or the spikes): {missing}")
        print(f"wrote {out_path}")
    if report:
        print(res.breakdown.table())
        if args.report_png:
            from neurochip.costs import plot_breakdown

            png = plot_breakdown(res.breakdown, args.report_png, image.hw.timing.cycle_ns,
                                 title=f"{Path(args.image).name} on {image.hw.name}")
            print(f"wrote {png}")
    return 0

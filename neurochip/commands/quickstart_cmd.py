"""``neurochip quickstart``: the main job (what ``make run`` runs).

It takes the bundled trained digits model (``neurochip/data/digits.nir`` and its record
``digits.json``), compiles it once for the chip, runs the scikit-learn 8x8 digits test split
(the split and spike code the record names, from ``compiler.training.data``) on the
emulator in batches and through the float reference simulator, and prints the float and
chip accuracy, the fraction of samples both classify identically, spikes, cycles, latency
and energy per inference and the core usage. It saves a raster plot and a per-layer
quantization plot as PNG. Everything it prints is computed in this run.

Light at import time (``neurochip --help`` imports it).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurochip.commands import int_arg
from neurochip.core.errors import ConfigError, ModelImportError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from compiler.ir import Graph
    from neurochip.core.image import ChipImage

__all__ = ["BUNDLED_MODEL", "QuickstartResult", "register", "run_quickstart"]

#: The bundled model, trained by ``neurochip train digits --seed 0`` (tools/train_digits.py).
BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "data" / "digits.nir"

#: The issue's targets for the bundled model.
MAX_ACCURACY_DROP = 0.005  # chip accuracy >= float accuracy - 0.5 points
MIN_IDENTICAL = 0.99  # float reference and chip classify >= 99 % of the samples identically


def register(sub: Any) -> None:
    p = sub.add_parser(
        "quickstart", help="the main job: the bundled digits model on the emulated chip",
        description="Compile the bundled trained digits model for a chip, run the "
                    "scikit-learn 8x8 digits test split on the emulator (in batches) and "
                    "on the float reference simulator, and report float and chip accuracy, "
                    "the fraction of samples both classify identically, spikes, cycles, "
                    "latency and energy per inference, and core usage. Saves raster.png "
                    "and quantization.png in the output folder.")
    p.add_argument("--model", default=None, metavar="NIR",
                   help="a digits model written by 'neurochip train digits' (with its .json "
                        "record beside it); default: the bundled model")
    p.add_argument("--hw", default="loihi_like", metavar="NAME",
                   help="hardware description: a name in hw_configs/ or a YAML path "
                        "(default loihi_like)")
    p.add_argument("--weight-bits", type=int_arg(1, 64), default=None, metavar="N",
                   help="weight precision on the chip (default: the chip's, 8)")
    p.add_argument("--batch-size", type=int_arg(1, 1 << 20), default=150, metavar="N",
                   help="test samples per emulator call (default 150)")
    p.add_argument("--out", default="neurochip_out", metavar="DIR",
                   help="folder for the PNG plots (default neurochip_out/)")
    p.add_argument("--no-plots", action="store_true", help="do not draw the PNG plots")
    p.add_argument("--check", action="store_true",
                   help="exit with status 1 when a target is missed (chip accuracy below "
                        "float accuracy - 0.5 points, or fewer than 99 %% of the samples "
                        "classified identically)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_quickstart)


# ------------------------------------------------------------------------------ the job
@dataclass
class QuickstartResult:
    """What the main job measured (fractions, per-inference means)."""

    model: Path
    record: dict[str, Any]
    image: ChipImage
    labels: NDArray[np.int64]
    float_pred: NDArray[np.int64]
    chip_pred: NDArray[np.int64]
    float_accuracy: float
    chip_accuracy: float
    identical: float
    totals: dict[str, float]
    spikes_per_population: dict[str, float]
    run_steps: int
    input_steps: int
    compile_seconds: float
    chip_seconds: float
    float_seconds: float
    plots: list[Path]


def _read_record(model: Path) -> dict[str, Any]:
    rec_path = model.with_suffix(".json")
    where = f"model record {rec_path}"
    if not rec_path.exists():
        raise ModelImportError("is missing: a digits model comes with the .json record "
                               "'neurochip train digits' writes next to it", where=where)
    try:
        rec = json.loads(rec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelImportError(f"is not valid JSON ({exc})", where=where) from None
    for key, sub in (("data", "steps"), ("data", "encoding"), ("settings", "loss"),
                     ("chip_run", "input"), ("chip_run", "run_steps")):
        if not isinstance(rec.get(key), dict) or sub not in rec[key]:
            raise ModelImportError(f"lacks '{key}.{sub}'", where=where, field=f"{key}.{sub}")
    if rec["data"].get("dataset") != "digits":
        raise ModelImportError(f"records the data set {rec['data'].get('dataset')!r}; the "
                               "quickstart runs digits models", where=where,
                               field="data.dataset")
    return rec


def run_quickstart(model: str | Path | None = None, hw: str = "loihi_like", *,
                   weight_bits: int | None = None, batch_size: int = 150,
                   out_dir: str | Path | None = "neurochip_out", progress: bool = True
                   ) -> QuickstartResult:
    """The main job; returns what it measured (``out_dir=None``: no plots)."""
    import numpy as np

    from compiler.float_sim import simulate
    from compiler.training.losses import Loss
    from neurochip.commands.compile_cmd import compile_with_progress
    from neurochip.commands.run_cmd import run_batched
    from neurochip.tasks.digits import decode_readout, digits_spikes

    path = Path(model) if model is not None else BUNDLED_MODEL
    if not path.exists():
        what = "the bundled model" if model is None else "model"
        raise ModelImportError(f"{what} does not exist", where=f"file {path}")
    rec = _read_record(path)
    T = int(rec["data"]["steps"])
    run_steps = int(rec["chip_run"]["run_steps"])
    in_name = str(rec["chip_run"]["input"])
    loss = Loss(rec["settings"]["loss"])
    test = digits_spikes(T, str(rec["data"]["encoding"]))[1]
    n_test = rec["data"].get("n_test")
    if n_test is not None and int(n_test) != len(test):
        raise ConfigError(f"the record was evaluated on {n_test} test samples, the digits "
                          f"split gives {len(test)}", where=f"model record for {path}",
                          field="data.n_test")

    graphs: dict[str, Graph] = {}

    def keep(name: str, state: Any) -> None:
        if name in ("normalize", "quantize"):
            graphs[name] = state

    t0 = time.perf_counter()
    opts: dict[str, Any] = {} if weight_bits is None else {"weight_bits": weight_bits}
    image = compile_with_progress(str(path), hw, progress=progress, extra_on_pass=keep, **opts)
    compile_s = time.perf_counter() - t0
    outs = image.metadata.get("outputs") or {}
    if len(outs) != 1:
        raise ModelImportError(f"a digits model has one output, this one has {sorted(outs)}",
                               where=f"file {path}", field="outputs")
    out = next(iter(outs.values()))
    pop, signal = str(out["population"]), str(out["signal"])
    if in_name not in {p.name for p in image.input_populations}:
        raise ModelImportError(f"the record's input {in_name!r} is not an input of the model",
                               where=f"file {path}", field="chip_run.input")

    # Float reference: the compiler's float model of the same (normalized) graph.
    t1 = time.perf_counter()
    fr = simulate(graphs["normalize"], {in_name: test.x}, steps=run_steps)
    float_s = time.perf_counter() - t1
    f_rec = fr.v[pop] if signal == "v" else fr.spikes[pop].astype(np.float64)
    float_pred = decode_readout(loss, f_rec, signal)

    # The chip: one image, the test split in batches.
    probes = [f"{pop}.v"] if signal == "v" else []
    run = run_batched(image, {in_name: test.x}, run_steps, probes=probes, spikes="all",
                      batch_size=batch_size, progress=progress, desc="emulator")
    c_rec = run.probes[f"{pop}.v"] if signal == "v" else run.spikes[pop]
    chip_pred = decode_readout(loss, c_rec, signal)
    labels = np.asarray(test.y, np.int64)
    n = len(labels)
    res = QuickstartResult(
        model=path, record=rec, image=image, labels=labels, float_pred=float_pred,
        chip_pred=chip_pred, float_accuracy=float(np.mean(float_pred == labels)),
        chip_accuracy=float(np.mean(chip_pred == labels)),
        identical=float(np.mean(float_pred == chip_pred)), totals=run.totals,
        spikes_per_population={p.name: float(run.spikes[p.name].sum()) / n
                               for p in image.lif_populations
                               if p.spiking and p.name in run.spikes},
        run_steps=run_steps, input_steps=T, compile_seconds=compile_s,
        chip_seconds=run.seconds, float_seconds=float_s, plots=[])
    if out_dir is not None:
        odir = Path(out_dir)
        odir.mkdir(parents=True, exist_ok=True)
        res.plots = [
            _raster_plot(odir / "raster.png", test.x, run, fr, in_name, pop, signal, image,
                         labels, chip_pred, float_pred),
            _quantization_plot(odir / "quantization.png", graphs["normalize"],
                               graphs["quantize"], image),
        ]
    return res


# ------------------------------------------------------------------------------ plots
def _raster_plot(path: Path, x: Any, run: Any, fr: Any, in_name: str, pop: str, signal: str,
                 image: ChipImage, labels: Any, chip_pred: Any, float_pred: Any) -> Path:
    """Spike rasters of one test sample in every population, and the readout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    k = 0
    hidden = [p.name for p in image.lif_populations if p.name != pop and p.name in run.spikes]
    rows = 2 + len(hidden)
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.0 + 1.8 * rows), sharex=True)
    steps = run.steps
    xs = np.zeros((steps, x.shape[-1]), bool)
    xs[: x.shape[1]] = x[k]
    panels: list[tuple[str, Any]] = [(f"input '{in_name}'", xs)]
    panels += [(f"'{h}'", run.spikes[h][k]) for h in hidden]
    for ax, (title, s) in zip(axes, panels):
        t, i = np.nonzero(s)
        ax.scatter(t, i, s=4, marker="|", color="black")
        ax.set_ylabel("neuron")
        ax.set_ylim(-1, s.shape[1])
        ax.set_title(f"{title}: {int(s.sum())} spikes", fontsize=9, loc="left")
    ax = axes[-1]
    if signal == "v":
        scale = float(image.metadata["outputs"][next(iter(image.metadata["outputs"]))]["scale"])
        chip_v = run.probes[f"{pop}.v"][k] / scale
        for j in range(chip_v.shape[1]):
            line, = ax.plot(chip_v[:, j], lw=1.2, label=str(j))
            ax.plot(fr.v[pop][k][:, j], lw=0.8, ls=":", color=line.get_color())
        ax.set_ylabel("v (float units)")
        ax.set_title(f"readout '{pop}' v: chip (solid), float reference (dotted)", fontsize=9,
                     loc="left")
        ax.legend(ncol=10, fontsize=6, loc="upper left", title="class", title_fontsize=6)
    else:
        t, i = np.nonzero(run.spikes[pop][k])
        ax.scatter(t, i, s=6, marker="|", color="black")
        ax.set_ylabel("neuron")
        ax.set_title(f"output '{pop}' spikes", fontsize=9, loc="left")
    ax.set_xlabel("step")
    fig.suptitle(f"test sample {k}: digit {labels[k]}, chip predicts {chip_pred[k]}, float "
                 f"reference predicts {float_pred[k]}", fontsize=10)
    fig.tight_layout()
    from neurochip.core.safeio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def _quantization_plot(path: Path, fgraph: Graph, qgraph: Graph, image: ChipImage) -> Path:
    """Per projection: float vs chip weights, and the error in weight steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from compiler.ir import Dense
    from compiler.passes.quantize import dequantize_graph

    deq = {e.name: e for e in dequantize_graph(qgraph, image.hw).edges}
    report = image.metadata.get("quantization") or {}
    pairs = []
    for e in fgraph.edges:
        d = deq.get(e.name)
        if d is not None and isinstance(e.synapses, Dense) and isinstance(d.synapses, Dense):
            pairs.append((e, np.asarray(e.synapses.weight), np.asarray(d.synapses.weight)))
    rows = max(len(pairs), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(9, 3.0 * rows + 0.6), squeeze=False)
    for (e, w, q), (ax1, ax2) in zip(pairs, axes):
        entry = report.get(e.post, {})
        pr = (entry.get("projections") or {}).get(e.name, {})
        step = float(pr.get("step") or 0.0)
        ax1.scatter(w.ravel(), q.ravel(), s=3, alpha=0.5)
        lim = float(np.abs(w).max()) if w.size else 1.0
        ax1.plot([-lim, lim], [-lim, lim], lw=0.8, color="grey")
        ax1.set_xlabel("float weight")
        ax1.set_ylabel("chip weight (float units)")
        ax1.set_title(f"{e.name} ({e.pre} -> {e.post}): scale {entry.get('scale', 0):.4g}, "
                      f"weight_exp {pr.get('weight_exp')}", fontsize=9, loc="left")
        err = (q - w).ravel() / step if step else (q - w).ravel()
        ax2.hist(err, bins=41, color="tab:orange")
        ax2.set_xlabel("chip - float (weight steps)" if step else "chip - float")
        ax2.set_title(f"relative error {pr.get('rel_weight_error', 0):.3%}, "
                      f"{pr.get('zeroed', 0):.2%} zeroed", fontsize=9, loc="left")
    if not pairs:
        axes[0][0].text(0.5, 0.5, "no dense projections", ha="center")
    fig.suptitle(f"per-layer quantization for '{image.hw.name}'", fontsize=10)
    fig.tight_layout()
    from neurochip.core.safeio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ report
def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def report(res: QuickstartResult) -> list[str]:
    """The lines the command prints."""
    from neurochip.commands.inspect_cmd import describe, table

    rec = res.record
    img = res.image
    d = describe(img)
    n = len(res.labels)
    t = res.totals
    layers = [str(p.size) for p in img.input_populations + img.lif_populations]
    cmd = rec.get("command", "unknown")
    lines = [
        f"neurochip quickstart: {res.model.name} on '{img.hw.name}'",
        f"  model     {'-'.join(layers)} network, trained by `{cmd}`",
        f"  data      scikit-learn digits test split: {n} samples, '{rec['data']['encoding']}' "
        f"rate code, {res.input_steps} steps (+{res.run_steps - res.input_steps} steps of "
        f"latency on the chip)",
        f"  compiled  once in {res.compile_seconds:.2f} s: {img.n_neurons} neurons, "
        f"{img.n_synapses} synapses, "
        + ", ".join(sorted({f"{c.num_weight_bits}-bit weights" for c in img.connections})),
        f"float accuracy: {_pct(res.float_accuracy)} (float reference simulator)",
        f"chip accuracy: {_pct(res.chip_accuracy)}",
        f"identically classified by float reference and chip: {_pct(res.identical)} "
        f"({round(res.identical * n)} of {n})",
        f"per inference (mean over {n} samples, {res.run_steps} steps each):",
        f"  spikes        {t.get('spikes', 0.0):10.1f}   ("
        + ", ".join(f"{k} {v:.1f}" for k, v in res.spikes_per_population.items()) + ")",
        f"  synaptic ops  {t.get('syn_ops', 0.0):10.0f}",
        f"  cycles        {t.get('cycles_max_core', 0.0):10.0f}   (slowest core, summed "
        "over steps)",
        f"  latency       {t.get('latency_ns', 0.0) / 1e3:10.2f} us",
        f"  energy        {t.get('energy_pj', 0.0) / 1e6:10.3f} uJ",
        f"core usage: {d['cores_used']} of {d['cores_total']} cores",
        table(["core", "neurons", "synapse memory", "input axons", "output axons",
               "populations"],
              [[c["core"], f"{c['neurons']}/{c['neurons_max']}",
                f"{c['synapse_kib']:.2f} KiB ({c['synapse_fill']:.1%})",
                f"{c['input_axons']}/{c['input_axons_max']}",
                f"{c['output_axons']}/{c['output_axons_max']}", ", ".join(c["populations"])]
               for c in d["cores"]]),
    ]
    diff = round(100 * (res.chip_accuracy - res.float_accuracy), 1) + 0.0  # no "-0.0"
    ok1 = res.chip_accuracy >= res.float_accuracy - MAX_ACCURACY_DROP - 1e-12
    ok2 = res.identical >= MIN_IDENTICAL
    lines.append(f"targets: chip >= float - 0.5 points: {'met' if ok1 else 'MISSED'} "
                 f"({diff:+.1f} points); identical >= 99 %: "
                 f"{'met' if ok2 else 'MISSED'}")
    lines.append(f"emulator {res.chip_seconds:.2f} s, float reference {res.float_seconds:.2f} s")
    if res.plots:
        lines.append("wrote " + ", ".join(str(p) for p in res.plots))
    return lines


def targets_met(res: QuickstartResult) -> bool:
    return (res.chip_accuracy >= res.float_accuracy - MAX_ACCURACY_DROP - 1e-12
            and res.identical >= MIN_IDENTICAL)


def _quickstart(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    res = run_quickstart(args.model, args.hw, weight_bits=args.weight_bits,
                         batch_size=args.batch_size,
                         out_dir=None if args.no_plots else args.out, progress=not args.quiet)
    for line in report(res):
        print(line)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    if args.check and not targets_met(res):
        return 1
    return 0

"""Agreement of the chip with each exporter's own model, per file: prints a table and
writes JSON (default ``bench_results/exporters.json``).

    python tools/bench_exporters.py [--out bench_results/exporters.json] [--extra FILE.nir]

Files (all committed, none needs torch):

* ``tests/golden/exporters``: snnTorch 1.0.0 feed-forward (spike entries against snnTorch's
  recording, immediate reset), snnTorch recurrent digits (accuracy and prediction
  agreement), Norse 1.1.0 feed-forward (spike entries against Norse's recording);
* ``tests/golden/snntorch_digits`` (``tools/make_snntorch_files.py``): snnTorch digits
  classifiers, feed-forward and recurrent, zero and subtract reset, with and without bias;
* ``tests/golden/nir_paper``: the NIR paper's Norse LIF neuron at dt = 1e-4 (spike times
  against the paper's Norse and Lava recordings) and the two snnTorch Braille RNNs (output
  spike entries and class predictions against a numpy model of snnTorch's equations on
  seeded random spikes, ``tests/compiler/frontends/test_nir_paper.py``).

``--extra`` adds any NIR file (e.g. the paper's ``cnn_sinabs.nir``): the float model
against the chip on random spike input (no framework reference), with the options
``--dt`` / ``--reset`` when the file needs them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import neurochip  # noqa: E402
from compiler.float_sim import simulate  # noqa: E402
from compiler.frontends.nir import read_nir  # noqa: E402

GOLD = ROOT / "tests" / "golden"


def _quiet(fn: Any, *a: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _npz(p: Path) -> dict[str, Any]:
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def _predict(spikes: Any) -> Any:
    c = spikes.sum(axis=1)
    best = c.max(axis=1, keepdims=True)
    return np.where((c == best).sum(axis=1) > 1, -1, c.argmax(axis=1))


def _classifier(path: Path, d: dict[str, Any], reset: str) -> dict[str, Any]:
    x = np.unpackbits(d["x_packed"], axis=-1, count=int(d["n_in"])).astype(bool)
    T = int(d["steps"])
    image = _quiet(neurochip.compile, str(path), "loihi_like", reset=reset)
    out = image.metadata["outputs"]["output"]["population"]
    run = neurochip.Emulator(image).run({"input": x}, steps=T + 2, spikes=[out])
    pred = _predict(run.spikes[out])
    return {"exporter": "snnTorch", "reference": "snnTorch accuracy on digits test split",
            "framework_accuracy": float(d["accuracy"]),
            "chip_accuracy": float(np.mean(pred == d["labels"])),
            "same_predictions": float(np.mean(pred == d["predictions"]))}


def exporters_dir() -> dict[str, Any]:
    out: dict[str, Any] = {}
    here = GOLD / "exporters"
    d = _npz(here / "snntorch_ff.npz")
    image = _quiet(neurochip.compile, str(here / "snntorch_ff.nir"), "loihi_like",
                   reset="subtract")
    T = d["x"].shape[1]
    run = neurochip.Emulator(image).run({"input": d["x"]}, steps=T + 2)
    ent = [np.mean(run.spikes[p][:, k: k + T] == d[f"{p}_immediate"])
           for k, p in ((1, "lif1"), (2, "lif2"))]
    out["exporters/snntorch_ff"] = {"exporter": "snnTorch 1.0.0",
                                    "reference": "snnTorch spikes (reset_delay=False)",
                                    "spike_entries": float(np.mean(ent))}
    out["exporters/snntorch_rec"] = _classifier(here / "snntorch_rec.nir",
                                                _npz(here / "snntorch_rec.npz"), "subtract")
    d = _npz(here / "norse_ff.npz")
    image = _quiet(neurochip.compile, str(here / "norse_ff.nir"), "loihi_like",
                   dt=float(d["dt"]))
    T = d["x"].shape[1]
    o = image.metadata["outputs"]["output"]["population"]
    run = neurochip.Emulator(image).run({"input": d["x"]}, steps=T + 2)
    hid = next(p.name for p in image.lif_populations if p.name != o)
    out["exporters/norse_ff"] = {
        "exporter": "Norse 1.1.0", "reference": "Norse spikes",
        "spike_entries": float(np.mean([np.mean(run.spikes[hid][:, 1: T + 1] == d["hidden"]),
                                        np.mean(run.spikes[o][:, 2: T + 2] == d["out"])]))}
    return out


def snntorch_digits() -> dict[str, Any]:
    here = GOLD / "snntorch_digits"
    out: dict[str, Any] = {}
    if not (here / "MANIFEST.json").exists():
        return out
    man = json.loads((here / "MANIFEST.json").read_text())
    for name, info in sorted(man["files"].items()):
        r = _classifier(here / f"{name}.nir", _npz(here / f"{name}.npz"), info["reset"])
        r["exporter"] = f"snnTorch {man['versions']['snntorch']}"
        r["framework_accuracy_delayed_reset"] = info.get("snntorch_accuracy_delayed_reset")
        out[f"snntorch_digits/{name}"] = r
    return out


def nir_paper() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests" / "compiler" / "frontends"))
    from test_nir_paper import FILES, snntorch_model

    here = GOLD / "nir_paper"
    out: dict[str, Any] = {}
    ref = _npz(here / "lif_spikes.npz")
    T = int(ref["steps"])
    x = np.zeros((T, 1), bool)
    x[ref["input"], 0] = True
    image = _quiet(neurochip.compile, str(here / "lif_norse.nir"), "loihi_like", dt=1e-4)
    o = image.metadata["outputs"]["output"]["population"]
    got = np.nonzero(neurochip.Emulator(image).run({"input": x}, steps=T + 1)
                     .spikes[o][:, 0])[0]
    out["nir_paper/lif_norse"] = {
        "exporter": "Norse", "reference": "the paper's recordings, dt = 1e-4",
        "chip_spike_steps": got.tolist(), "norse_spike_steps": ref["norse"].tolist(),
        "lava_fixed_spike_steps": ref["lava_cpu_fixed"].tolist(),
        "equal_to_lava_fixed": bool(np.array_equal(got, ref["lava_cpu_fixed"])),
        "equal_to_norse_plus_one_step": bool(np.array_equal(got, ref["norse"] + 1))}
    rng = np.random.default_rng(0)
    B, T = 64, 256
    x = rng.random((B, T, 12)) < 0.1
    for name, reset in FILES.values():
        _, want = snntorch_model(here / name, reset, x)
        g = _quiet(read_nir, here / name, reset=reset)
        fl = simulate(g, {"input": x}, steps=T + 2).spikes["lif2"][:, 2: T + 2]
        image = _quiet(neurochip.compile, str(here / name), "loihi_like", reset=reset)
        chip = neurochip.Emulator(image).run({"input": x}, steps=T + 2,
                                             spikes=["lif2"]).spikes["lif2"][:, 2: T + 2]
        q = image.metadata["quantization"]
        out[f"nir_paper/{name[:-4]}"] = {
            "exporter": "snnTorch", "reference": "numpy model of snnTorch's equations",
            "float_spike_entries": float(np.mean(fl == want)),
            "chip_spike_entries": float(np.mean(chip == want)),
            "chip_class_agreement": float(np.mean(chip.sum(1).argmax(1) ==
                                                  want.sum(1).argmax(1))),
            "zeroed": {k: q[p]["projections"][k]["zeroed"]
                       for p, k in (("lif2", "fc2"), ("lif1.lif", "lif1.w_rec"))}}
    return out


def extra(path: Path, dt: float | None, reset: str | None) -> dict[str, Any]:
    g = _quiet(read_nir, path, dt=dt, reset=reset)
    inp = next(iter(g.inputs))
    n = g.nodes[inp].size
    rng = np.random.default_rng(0)
    B, T = 8, 40
    x = rng.random((B, T, n)) < 0.1
    image = _quiet(neurochip.compile, str(path), "loihi_like", dt=dt, reset=reset)
    o = next(iter(image.metadata["outputs"].values()))["population"]
    depth = len(g.populations)
    fl = simulate(g, {inp: x}, steps=T + depth).spikes[o]
    chip = neurochip.Emulator(image).run({inp: x}, steps=T + depth, spikes=[o]).spikes[o]
    return {f"extra/{path.name}": {
        "exporter": image.metadata["import"]["profile"], "reference": "float model",
        "chip_spike_entries": float(np.mean(chip == fl)),
        "same_predictions": float(np.mean(_predict(chip) == _predict(fl)))}}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{100 * v:.1f} %"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench_results" / "exporters.json")
    ap.add_argument("--extra", type=Path, action="append", default=[])
    ap.add_argument("--dt", type=float, default=None)
    ap.add_argument("--reset", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows: dict[str, Any] = {}
    rows.update(exporters_dir())
    rows.update(snntorch_digits())
    rows.update(nir_paper())
    for p in args.extra:
        rows.update(extra(p, args.dt, args.reset))
    keys = ["spike_entries", "framework_accuracy", "chip_accuracy", "same_predictions",
            "float_spike_entries", "chip_spike_entries", "chip_class_agreement",
            "equal_to_lava_fixed", "equal_to_norse_plus_one_step", "zeroed"]
    print(f"{'file':38s} {'exporter':16s} measures")
    for name, r in rows.items():
        vals = "; ".join(f"{k} {_fmt(r[k])}" for k in keys if r.get(k) is not None)
        print(f"{name:38s} {r['exporter']:16s} {vals}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"files": rows, "seconds": time.perf_counter() - t0}
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

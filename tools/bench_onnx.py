"""ONNX files from the wild: does each import, and does it behave like its framework?

For every file of ``tests/golden/onnx/`` (written by ``tools/make_onnx_files.py`` with
torch.onnx, snnTorch, Norse and Sinabs):

* **SNN cells**: import (default options), the float model's and the chip's (emulator,
  8-bit weights, calibrated on the file's own inputs) output spikes against the
  framework's own, on the recorded inputs (shifted by the chip's one step per layer);
  the number of import warnings.
* **ANN classifiers**: accuracy of the ANN (``onnx.reference.ReferenceEvaluator``) and of
  the converted network on the chip, and the fraction of identical predictions, on the
  digits test split (or its first ``--n`` images).

Prints a table and writes JSON (default ``bench_results/onnx.json``)::

    python tools/bench_onnx.py [--n 450] [--steps 64] [--out bench_results/onnx.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FILES = ROOT / "tests" / "golden" / "onnx"
LAYERS = 2  # the SNN files are Linear -> cell -> Linear -> cell


def snn_row(path: Path) -> dict[str, Any]:
    import neurochip
    from compiler.float_sim import simulate
    from compiler.frontends.onnx import read_onnx
    from emulator.chip import Emulator

    d = np.load(path.with_suffix(".npz"))
    x, ref = d["x"], d["spikes"] > 0
    row: dict[str, Any] = {"file": path.name, "kind": "snn"}
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            g = read_onnx(path)
            img = neurochip.compile(path, "loihi_like", calibration={"x": x})
    except Exception as exc:  # report, do not stop: this is a survey
        row.update(import_ok=False, error=f"{type(exc).__name__}: {exc}")
        return row
    out = next(iter(g.outputs.values()))
    fl = simulate(g, {"x": x}).spikes[out]
    chip = Emulator(img).run({"x": x}, steps=x.shape[1]).spikes[out]
    L = LAYERS
    row.update(import_ok=True, warnings=len({str(m.message) for m in w}),
               float_agreement=float(np.mean(fl[:, L:] == ref[:, :-L])),
               chip_agreement=float(np.mean(chip[:, L:] == ref[:, :-L])),
               framework_spikes=int(ref[:, :-L].sum()), chip_spikes=int(chip[:, L:].sum()),
               seconds=time.perf_counter() - t0)
    return row


def ann_row(path: Path, n: int, steps: int) -> dict[str, Any]:
    import onnx

    import neurochip
    from compiler.frontends.onnx.ann import ann_outputs, encode
    from emulator.chip import Emulator
    from neurochip.tasks.digits import digits_split

    Xtr, Xte, _, yte = digits_split()
    model = onnx.load(str(path))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]
    shape = tuple(dims)
    Xc = Xtr[:300].reshape(-1, *shape)
    Xt, yt = Xte[:n].reshape(-1, *shape), yte[:n]
    row: dict[str, Any] = {"file": path.name, "kind": "ann", "test_images": len(yt),
                           "steps": steps}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = neurochip.compile(path, "loihi_like", ann_calibration=Xc, ann_steps=steps)
    conv = img.metadata["import"]["conversion"]
    out = next(iter(model.graph.output)).name
    ann = ann_outputs(model, Xt)[out].argmax(1)
    r = Emulator(img).run({conv["input"]: encode(Xt, steps, conv["input_scale"])},
                          steps=steps, probes=[f"{conv['output']}.v"])
    pred = r.probes[f"{conv['output']}.v"][:, -1].argmax(-1)
    row.update(import_ok=True, ann_accuracy=float(np.mean(ann == yt)),
               chip_accuracy=float(np.mean(pred == yt)),
               same_prediction=float(np.mean(pred == ann)),
               seconds=time.perf_counter() - t0)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=450, help="test images for the ANN files")
    ap.add_argument("--steps", type=int, default=64, help="rate-code steps (ANN files)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench_results" / "onnx.json")
    args = ap.parse_args(argv)
    rows = []
    for p in sorted(FILES.glob("*.onnx")):
        rows.append(ann_row(p, args.n, args.steps) if p.name.startswith("ann_")
                    else snn_row(p))
    print(f"{'file':28s} {'import':6s} {'float/ANN':>9s} {'chip':>7s} {'same':>6s} {'warn':>4s}")
    for r in rows:
        if not r["import_ok"]:
            print(f"{r['file']:28s} {'FAIL':6s} {r['error'][:60]}")
        elif r["kind"] == "snn":
            print(f"{r['file']:28s} {'ok':6s} {r['float_agreement']:9.4f} "
                  f"{r['chip_agreement']:7.4f} {'':>6s} {r['warnings']:4d}")
        else:
            print(f"{r['file']:28s} {'ok':6s} {r['ann_accuracy']:9.4f} {r['chip_accuracy']:7.4f} "
                  f"{r['same_prediction']:6.3f}")
    print("SNN rows: spike agreement with the framework (float model, chip); ANN rows: "
          "accuracy (ANN, chip) and identical predictions")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "n": args.n, "steps": args.steps},
                                   indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

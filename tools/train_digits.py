"""Train the bundled digits model: ``neurochip/data/digits.{nir,json,png}``.

The model is exactly what ``neurochip train digits --seed 0 -o neurochip/data/digits.nir``
writes (run from the repository root); the command and seed are recorded in
``digits.json``, which holds no timings or timestamps, so training again reproduces both
files.

    python tools/train_digits.py            # train and write the bundled files
    python tools/train_digits.py --check    # train again elsewhere; compare with them
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUNDLED = Path("neurochip/data/digits.nir")
SEED = 0


def _train(out: Path) -> int:
    from neurochip.cli import main

    return main(["train", "digits", "--seed", str(SEED), "-o", str(out)])


def _check() -> int:
    import numpy as np

    from compiler.training.nir_io import import_nir

    ref_nir = ROOT / BUNDLED
    ref = json.loads(ref_nir.with_suffix(".json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "digits.nir"
        if _train(out) != 0:
            return 1
        new = json.loads(out.with_suffix(".json").read_text())
        a, b = import_nir(ref_nir), import_nir(out)
        same_bytes = out.read_bytes() == ref_nir.read_bytes()
    same_weights = all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    keys = ("float", "chip", "settings", "data", "seed", "chip_run")
    same_record = all(ref.get(k) == new.get(k) for k in keys)
    print(f"weights identical: {same_weights}; NIR bytes identical: {same_bytes}; "
          f"record identical: {same_record}")
    return 0 if (same_weights and same_record) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="retrain in a temporary folder and compare with the bundled model")
    args = ap.parse_args()
    if args.check:
        return _check()
    import os

    os.chdir(ROOT)
    return _train(BUNDLED)


if __name__ == "__main__":
    sys.exit(main())

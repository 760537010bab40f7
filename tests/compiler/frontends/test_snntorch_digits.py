"""snnTorch digits classifiers exported with snnTorch's NIR export keep their accuracy on
the chip (tests/golden/snntorch_digits, written by tools/make_snntorch_files.py).

Feed-forward and recurrent, zero and subtract reset, with and without bias (a bias into a
``Synaptic`` current is carried by the always-on bias neuron): the chip's accuracy on the
digits test split is within 1 point of snnTorch's and at least 95 % of the predictions are
snnTorch's. The reset must be given (snnTorch's file does not record it).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurochip
from neurochip.core.errors import ModelImportError

HERE = Path(__file__).resolve().parents[2] / "golden" / "snntorch_digits"
MANIFEST = json.loads((HERE / "MANIFEST.json").read_text())
NAMES = sorted(MANIFEST["files"])


def _predict(spikes: Any) -> Any:
    c = spikes.sum(axis=1)
    best = c.max(axis=1, keepdims=True)
    return np.where((c == best).sum(axis=1) > 1, -1, c.argmax(axis=1))


def test_the_four_kinds_are_there() -> None:
    kinds = {(f["recurrent"], f["reset"], f["bias"]) for f in MANIFEST["files"].values()}
    assert {k[0] for k in kinds} == {False, True}
    assert {k[1] for k in kinds} == {"zero", "subtract"}
    assert {k[2] for k in kinds} == {False, True}
    assert MANIFEST["versions"]["snntorch"] == "1.0.0"


@pytest.mark.parametrize("name", NAMES)
def test_chip_keeps_snntorchs_accuracy(name: str) -> None:
    info = MANIFEST["files"][name]
    with np.load(HERE / f"{name}.npz") as z:
        d = {k: z[k] for k in z.files}
    x = np.unpackbits(d["x_packed"], axis=-1, count=int(d["n_in"])).astype(bool)
    T = int(d["steps"])
    with pytest.raises(ModelImportError, match="reset"):
        neurochip.compile(str(HERE / f"{name}.nir"), "loihi_like")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = neurochip.compile(str(HERE / f"{name}.nir"), "loihi_like", reset=info["reset"])
    imp = image.metadata["import"]
    assert (imp["profile"], imp["reset"]) == ("snntorch", info["reset"])
    assert (imp["bias_source"] is not None) == info["bias"]
    out = image.metadata["outputs"]["output"]["population"]
    run = neurochip.Emulator(image).run({"input": x}, steps=T + 2, spikes=[out])
    pred = _predict(run.spikes[out])
    chip_acc = float(np.mean(pred == d["labels"]))
    snn_acc = float(d["accuracy"])
    assert snn_acc == pytest.approx(float(np.mean(d["predictions"] == d["labels"])))
    assert snn_acc > 0.8
    assert abs(chip_acc - snn_acc) <= 0.01, (chip_acc, snn_acc)
    assert np.mean(pred == d["predictions"]) >= 0.95

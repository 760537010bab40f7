"""Golden files: compiling tests/golden/*.nir and emulating them reproduces the stored
images and spike trains exactly (regenerate on purpose with tools/regen_golden.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurochip

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
NAMES = ["feed_forward", "recurrent", "convolutional"]


def _without_source(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest minus what depends on where the checkout lives or on float printing."""
    m = dict(manifest)
    meta = dict(m.pop("metadata"))
    meta.pop("import", None)
    meta.pop("quantization", None)
    m["metadata"] = meta
    return m


@pytest.mark.parametrize("name", NAMES)
def test_golden_image_and_spikes_reproduced(name: str) -> None:
    expected = neurochip.ChipImage.load(GOLDEN / f"{name}.nchip")
    image = neurochip.compile(GOLDEN / f"{name}.nir", "loihi_like")
    assert _without_source(image.manifest()) == _without_source(expected.manifest())
    assert image.arrays.keys() == expected.arrays.keys()
    for k, a in expected.arrays.items():
        assert image.arrays[k].dtype == a.dtype
        np.testing.assert_array_equal(image.arrays[k], a, err_msg=k)
    qe, qi = expected.metadata["quantization"], image.metadata["quantization"]
    for pop, entry in qe.items():
        for reg in ("scale", "du", "dv", "vth"):
            assert qi[pop][reg] == entry[reg]
    data = np.load(GOLDEN / f"{name}.npz")
    inputs = {k[len("input/"):]: data[k] for k in data.files if k.startswith("input/")}
    steps = next(iter(inputs.values())).shape[0]
    probes = [f"{k[len('probe/'):]}" for k in data.files if k.startswith("probe/")]
    r = neurochip.Emulator(image).run(inputs, steps=steps, probes=probes)
    n_spikes = 0
    for k in data.files:
        if k.startswith("spikes/"):
            np.testing.assert_array_equal(r.spikes[k[len("spikes/"):]], data[k], err_msg=k)
            n_spikes += int(data[k].sum())
        elif k.startswith("probe/"):
            np.testing.assert_array_equal(r.probes[k[len("probe/"):]], data[k], err_msg=k)
    assert n_spikes > 0


def test_golden_files_are_complete() -> None:
    for name in NAMES:
        for ext in (".nir", ".nchip", ".npz"):
            assert (GOLDEN / f"{name}{ext}").is_file(), f"{name}{ext} missing"

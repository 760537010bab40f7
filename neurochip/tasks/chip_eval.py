"""Evaluating a trained network on the chip: export NIR, compile, run the emulator.

This is the same path a user takes: :func:`~compiler.training.nir_io.export_nir` ->
``neurochip.compile(path, hw, weight_bits=...)`` -> ``neurochip.Emulator(image).run`` on
batches of samples (inputs (B, T, n)) for ``T + depth`` steps (every projection adds one
step on the chip, as in the float model) -> the loss's decoder on the readout's recorded
voltage (non-spiking readouts) or spikes.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from compiler.training.data import SpikeData
from compiler.training.losses import Loss, decode
from compiler.training.model import SpikingNet
from compiler.training.nir_io import export_nir

if TYPE_CHECKING:
    from neurochip.core.image import ChipImage

__all__ = ["ChipEvaluation", "compile_net", "evaluate_on_chip", "run_readout"]


@dataclass
class ChipEvaluation:
    """The metric on the chip, and what it cost per inference (emulator accounting).

    metric: accuracy (fraction) for classification losses, the mean van Rossum distance
    for ``van_rossum``; predictions: the decoded classes (None for van Rossum).
    """

    metric: float
    predictions: NDArray[np.int64] | None
    image: ChipImage
    seconds: float
    energy_uj: float  # mean per sample
    syn_ops: float  # mean per sample
    spikes: float  # mean per sample (all populations)


def compile_net(net: SpikingNet, hw: Any = "loihi_like", *, weight_bits: int | None = None,
                path: str | Path | None = None,
                training: Mapping[str, Any] | None = None) -> ChipImage:
    """Export ``net`` as NIR (to ``path``, or a temporary file) and compile it for ``hw``."""
    import neurochip

    if path is not None:
        p = export_nir(net, path, training=training)
        return neurochip.compile(str(p), hw, weight_bits=weight_bits)
    with tempfile.TemporaryDirectory() as tmp:
        p = export_nir(net, Path(tmp) / "model.nir", training=training)
        return neurochip.compile(str(p), hw, weight_bits=weight_bits)


def _readout(image: ChipImage) -> tuple[str, str]:
    out = image.metadata.get("outputs", {})
    if len(out) != 1:
        from neurochip.core.errors import ConfigError

        raise ConfigError(f"expected one output in the image, got {sorted(out)}",
                          where="chip evaluation", field="outputs")
    entry = next(iter(out.values()))
    return str(entry["population"]), str(entry["signal"])


def run_readout(image: ChipImage, net: SpikingNet, x: NDArray[np.bool_], *,
                batch_size: int = 512) -> tuple[NDArray[Any], dict[str, float]]:
    """The readout's recording (B, T + depth, n): v for a voltage readout, else spikes.

    Returns it with the mean per-sample totals of the emulator's accounting.
    """
    from emulator.chip import Emulator

    pop, signal = _readout(image)
    steps = net.steps(x.shape[1])
    recs: list[NDArray[Any]] = []
    totals: dict[str, float] = {"energy_pj": 0.0, "syn_ops": 0.0, "spikes": 0.0}
    em = Emulator(image)
    for s in range(0, len(x), batch_size):
        xb = x[s: s + batch_size]
        em.reset()
        if signal == "v":
            r = em.run({net.input_name: xb}, steps=steps, probes=[f"{pop}.v"], spikes=None)
            recs.append(r.probes[f"{pop}.v"])
        else:
            r = em.run({net.input_name: xb}, steps=steps, spikes=[pop])
            recs.append(r.spikes[pop])
        t = r.totals()
        for k in totals:
            totals[k] += t.get(k, 0.0) * len(xb)
    n = max(len(x), 1)
    return np.concatenate(recs), {k: v / n for k, v in totals.items()}


def evaluate_on_chip(net: SpikingNet, loss: Loss, data: SpikeData, hw: Any = "loihi_like", *,
                     weight_bits: int | None = None, path: str | Path | None = None,
                     training: Mapping[str, Any] | None = None,
                     image: ChipImage | None = None, batch_size: int = 512) -> ChipEvaluation:
    """``net`` compiled for ``hw`` (or the given ``image``) and run on the emulator.

    path / training: where to keep the exported NIR file, and the settings recorded in it.
    """
    t0 = time.perf_counter()
    img = image if image is not None else compile_net(net, hw, weight_bits=weight_bits,
                                                      path=path, training=training)
    rec, totals = run_readout(img, net, data.x, batch_size=batch_size)
    pred: NDArray[np.int64] | None = None
    if loss.name == "van_rossum":
        metric = loss.van_rossum_distance(rec, np.asarray(data.y))
    else:
        spiking = loss.needs_spiking_readout
        pred = decode(loss, None if spiking else rec, rec if spiking else None)
        metric = float(np.mean(pred == np.asarray(data.y))) if len(data) else 0.0
    return ChipEvaluation(metric, pred, img, time.perf_counter() - t0,
                          totals["energy_pj"] / 1e6, totals["syn_ops"], totals["spikes"])

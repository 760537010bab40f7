"""Top-level entry points: compile a model for a chip, export an image to Lava.

The compiler runs no chip; ``compile`` adds the float-vs-chip agreement on calibration
data by running the image on the emulator (a face-level step over the two peers).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurochip.core.errors import ConfigError
from neurochip.core.hw import HardwareSpec, load_hw
from neurochip.core.image import ChipImage
from neurochip.core.network import Network

if TYPE_CHECKING:
    from compiler.ir import Graph

__all__ = ["compile", "export_lava", "float_chip_agreement"]


def compile(model: Any, hw: HardwareSpec | str | Path = "loihi_like", **options: Any) -> ChipImage:
    """Compile ``model`` for ``hw`` and return its chip image.

    model: a register-level :class:`~neurochip.core.network.Network`, a path to a ``.nir``
    or ``.onnx`` file, a lava-dl netx ``.net`` file (options ``reset_interval``,
    ``placement``, ``name``; see :func:`compiler.pipeline.compile_netx`), or an IR graph
    (``compiler.ir.Graph``). Options for model files
    (``dt``, ``decay``, ``reset``, calibration...) are those of
    :func:`compiler.pipeline.compile_model`; with ``calibration`` the report gets the
    float-vs-chip agreement measured on the emulator; an ONNX ReLU classifier is converted
    by rate coding and needs ``ann_calibration`` (docs/compiler.md section 7.2).
    ``placement`` ("traffic", the default, or "greedy") chooses how chunks are placed on
    cores, for every kind of model; ``rates`` ({population: spikes per step}) weights a
    Network's traffic estimate.
    """
    from compiler import pipeline

    spec = load_hw(hw)
    if isinstance(model, Network):
        net_opts = {k: options.pop(k) for k in ("placement", "rates") if k in options}
        if options:
            raise ConfigError(f"options {sorted(options)} apply to model files and IR graphs, "
                              "not to register-level networks", where="compile")
        return pipeline.compile_network(model, spec, **net_opts)
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".net":
        return pipeline.compile_netx(model, spec, **options)
    options.setdefault("chip_check", float_chip_agreement)
    return pipeline.compile_model(model, spec, **options)


def float_chip_agreement(graph: Graph, image: ChipImage, calibration: Mapping[str, Any],
                         scales: Mapping[str, float]) -> dict[str, Any]:
    """Float reference (chip order) vs the fixed-point emulator on the calibration inputs:
    spike agreement of spiking populations, relative voltage error of readouts."""
    from compiler.float_sim import simulate
    from emulator.chip import Emulator

    fr = simulate(graph, calibration)
    probes = [f"{k}.v" for k, p in graph.populations.items() if not p.spiking]
    er = Emulator(image).run(calibration, steps=fr.steps, probes=probes, spikes="all")
    out: dict[str, Any] = {}
    for k, p in graph.populations.items():
        if p.spiking:
            a, b = fr.spikes[k], er.spikes[k]
            out[k] = {"spike_agreement": float(np.mean(a == b)) if a.size else 1.0,
                      "float_spikes": int(a.sum()), "chip_spikes": int(b.sum())}
        else:
            ref = fr.v[k]
            chip = er.probes[f"{k}.v"].astype(np.float64) / scales[k]
            n = float(np.linalg.norm(ref))
            out[k] = {"v_rel_error": float(np.linalg.norm(chip - ref)) / n if n else 0.0}
    return out


def export_lava(image: ChipImage | str | Path, inputs: Any = None, steps: int | None = None,
                **options: Any) -> Any:
    """Lava processes for an image (see :func:`compiler.lava.export_lava`: ``stock_only``,
    ``learning``, ``targets``, ``reward``, ``seed``)."""
    from compiler.lava import export_lava as _export

    if not isinstance(image, ChipImage):
        image = ChipImage.load(image)
    return _export(image, inputs, steps, **options)

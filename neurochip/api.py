"""Top-level entry points: compile a model for a chip, export an image to Lava."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurochip.errors import ConfigError
from neurochip.hw import HardwareSpec, load_hw
from neurochip.image import ChipImage
from neurochip.network import Network

__all__ = ["compile", "export_lava"]


def compile(model: Any, hw: HardwareSpec | str | Path = "loihi_like", **options: Any) -> ChipImage:
    """Compile ``model`` for ``hw`` and return its chip image.

    model: a register-level :class:`~neurochip.network.Network`, a path to a ``.nir`` or
    ``.onnx`` file, or an IR graph (``compiler.ir.Graph``). Options for model files
    (``dt``, ``decay``, ``reset``, calibration...) are described in ``compiler.frontends``.
    """
    spec = load_hw(hw)
    if isinstance(model, Network):
        if options:
            raise ConfigError(f"options {sorted(options)} apply to model files and IR graphs, "
                              "not to register-level networks", where="compile")
        from compiler.pipeline import compile_network

        return compile_network(model, spec)
    from compiler.pipeline import compile_model

    return compile_model(model, spec, **options)


def export_lava(image: ChipImage | str | Path) -> Any:
    """Lava processes for an image (see :mod:`compiler.lava_export`)."""
    from compiler.lava_export import export_lava as _export

    if not isinstance(image, ChipImage):
        image = ChipImage.load(image)
    return _export(image)

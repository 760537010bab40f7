"""Learning-curve pictures (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from compiler.training.trainer import History
from neurochip.core.safeio import atomic_path

__all__ = ["plot_learning_curve"]


def plot_learning_curve(history: History, path: str | Path, *, title: str = "",
                        finetune: History | None = None, metric: str = "accuracy",
                        chip_metric: float | None = None) -> Path:
    """Training loss and test metric per epoch; a chip-aware phase continues the curve.

    chip_metric: the metric measured on the chip at the end, drawn as a marker.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(9, 3.4))
    phases = [("float", history, "C0")]
    if finetune is not None and finetune.epochs:
        phases.append(("chip-aware", finetune, "C1"))
    offset = 0
    for label, h, color in phases:
        ep = [offset + e.epoch for e in h.epochs]
        ax_l.plot(ep, [e.loss for e in h.epochs], color=color, label=label)
        vals = [e.test_metric for e in h.epochs]
        if all(v is not None for v in vals):
            scale = 100.0 if metric == "accuracy" else 1.0
            ax_m.plot(ep, [scale * v for v in vals if v is not None], color=color, label=label)
        offset = ep[-1] if ep else offset
    if chip_metric is not None:
        scale = 100.0 if metric == "accuracy" else 1.0
        ax_m.plot([offset], [scale * chip_metric], "k*", markersize=10, label="on the chip")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("training loss")
    ax_l.set_yscale("log")
    ax_m.set_xlabel("epoch")
    ax_m.set_ylabel("test accuracy (%)" if metric == "accuracy" else f"test {metric}")
    for ax in (ax_l, ax_m):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=110, metadata={"Software": None},
                    format=p.suffix.lstrip(".") or "png")
    plt.close(fig)
    return p

"""Cost breakdowns for people: merging the breakdowns of batched runs, and a PNG (stacked
energy per layer; per-core time per step as a heat map, the slowest core and the busiest
router port marked). The numbers come from ``emulator.breakdown`` through
``Emulator.run(breakdown=True)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurochip.core.results import Breakdown

__all__ = ["ENERGY_PARTS", "merge", "plot_breakdown"]

#: the parts of a layer's energy, stacked in the plot
ENERGY_PARTS = ("energy_synapses_pj", "energy_neurons_pj", "energy_network_pj",
                "energy_static_pj")


def merge(parts: Sequence[tuple[Breakdown, int]]) -> Breakdown:
    """One breakdown of runs of several batches: (breakdown, samples) each; rows are per
    sample means, so they are averaged with the samples as weights."""
    if not parts:
        raise ValueError("nothing to merge")
    if len(parts) == 1:
        return parts[0][0]
    n = sum(b for _, b in parts)

    def avg(rows: Sequence[dict[str, float]]) -> dict[str, float]:
        return {k: sum(r[k] * b for r, (_, b) in zip(rows, parts)) / n for k in rows[0]}

    first = parts[0][0]
    layers = {k: avg([p.layers[k] for p, _ in parts]) for k in first.layers}
    cores = {k: avg([p.cores[k] for p, _ in parts]) for k in first.cores}
    for k, row in cores.items():
        row["port_max"] = max(p.cores[k]["port_max"] for p, _ in parts)
    busiest = max((p.busiest_port for p, _ in parts), key=lambda t: t[2])
    slow = max(cores, key=lambda c: cores[c]["slowest_steps"])
    cyc = [p.step_cycles for p, _ in parts if p.step_cycles is not None]
    ports = [p.step_ports for p, _ in parts if p.step_ports is not None]
    step_cycles = step_ports = None
    if len(cyc) == len(parts) and len(ports) == len(parts):
        w = np.array([b for _, b in parts], np.float64)
        step_cycles = np.tensordot(w / n, np.stack(cyc), axes=1)
        step_ports = np.max(np.stack(ports), axis=0)
    return Breakdown(layers, cores, busiest, slow, first.exact, step_cycles, step_ports)


def plot_breakdown(bd: Breakdown, path: str | Path, cycle_ns: float, title: str = "") -> Path:
    """Write the breakdown PNG to ``path``: left, energy per layer stacked by part; right,
    each core's busy time per step (heat map), the slowest core's row outlined and the
    busiest router port's (step, core) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    out = Path(path)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.5),
                                   gridspec_kw={"width_ratios": [1, 1.6]})
    names = list(bd.layers)
    bottom = np.zeros(len(names))
    for part in ENERGY_PARTS:
        vals = np.array([bd.layers[n].get(part, 0.0) for n in names]) / 1e6
        ax0.bar(names, vals, bottom=bottom, label=part[len("energy_"):-len("_pj")])
        bottom += vals
    ax0.set_ylabel("energy per sample (uJ)")
    ax0.set_title("energy per layer")
    ax0.legend(fontsize=8)
    cores = list(bd.cores)
    if bd.step_cycles is not None and bd.step_cycles.size:
        img = np.asarray(bd.step_cycles).T * cycle_ns / 1e3  # (cores, T) in us
        im = ax1.imshow(img, aspect="auto", interpolation="nearest", cmap="viridis",
                        extent=(-0.5, img.shape[1] - 0.5, len(cores) - 0.5, -0.5))
        fig.colorbar(im, ax=ax1, label="core busy time per step (us)")
        k = cores.index(bd.slowest_core)
        ax1.add_patch(Rectangle((-0.5, k - 0.5), img.shape[1], 1, fill=False, ec="red",
                                lw=2, label=f"slowest core ({bd.slowest_core})"))
        c, t, m = bd.busiest_port
        ax1.plot([t], [cores.index(c)], marker="x", color="white", ms=12, mew=3, ls="",
                 label=f"busiest router port (core {c}, step {t}: {m} messages)")
        ax1.legend(fontsize=8, loc="upper right")
    if len(cores) <= 32:  # beyond that the labels would overlap
        ax1.set_yticks(range(len(cores)))
        ax1.set_yticklabels([str(c) for c in cores])
    ax1.set_xlabel("step")
    ax1.set_ylabel("core")
    ax1.set_title("time per core")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

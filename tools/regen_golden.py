"""Regenerate the compiler's golden files in ``tests/golden/`` (on purpose only).

For each small model (feed-forward, recurrent with a delay, convolutional) this writes

* ``<name>.nir``    the model, written with neurochip's NIR writer (seeded, deterministic);
* ``<name>.nchip``  the chip image ``neurochip.compile`` makes of it on ``loihi_like``;
* ``<name>.npz``    the input spikes and the emulator's spike trains and readout voltages.

``tests/compiler/test_golden.py`` checks that compiling and emulating the ``.nir`` files
reproduces the images and spike trains exactly, so a refactor that changes them fails.
Run ``python tools/regen_golden.py`` only when a change of the results is intended, and
say why in the commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import neurochip  # noqa: E402
from compiler.frontends.nir import write_nir  # noqa: E402
from compiler.ir import Conv, Dense, Graph, Input, Neurons, Projection, layered_graph, pool  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
HW = "loihi_like"
STEPS = 60


def feed_forward() -> tuple[Graph, dict[str, np.ndarray], float]:
    rng = np.random.default_rng(100)
    g = layered_graph(n_in=16, input_name="in", layers=[
        dict(name="hid", weight=rng.normal(0.1, 0.5, (20, 16)), alpha=0.75, beta=0.875,
             threshold=1.0, bias=rng.normal(0, 0.02, 20)),
        dict(name="out", weight=rng.normal(0, 0.5, (4, 20)), alpha=0.5, beta=0.9,
             threshold=None)])
    return g, {"in": rng.random((STEPS, 16)) < 0.3}, 1e-3


def recurrent() -> tuple[Graph, dict[str, np.ndarray], float]:
    rng = np.random.default_rng(200)
    base = layered_graph(n_in=8, input_name="in", layers=[
        dict(name="rec", weight=rng.normal(0.2, 0.6, (24, 8)), alpha=0.5, beta=0.9,
             threshold=1.0, reset="zero", recurrent=rng.normal(0, 0.3, (24, 24))),
        dict(name="spk", weight=rng.normal(0.1, 0.5, (6, 24)), alpha=0.0, beta=0.8,
             threshold=0.8, reset="zero")])
    # The readout layer sees the recurrent layer two extra steps late.
    edges = tuple(Projection(e.name, e.pre, e.post, e.synapses, delay=2)
                  if e.name == "spk.w" else e for e in base.edges)
    g = Graph(base.nodes, edges, base.outputs)
    return g, {"in": rng.random((STEPS, 8)) < 0.25}, 1e-4


def convolutional() -> tuple[Graph, dict[str, np.ndarray], float]:
    rng = np.random.default_rng(300)
    conv = Conv(rng.normal(0.15, 0.5, (4, 2, 3, 3)), (2, 8, 8), padding=1)
    pl = pool("sum", (4, 8, 8), (2, 2))
    nodes = {"img": Input((2, 8, 8)),
             "conv1": Neurons((4, 8, 8), alpha=0.0, beta=1.0, threshold=1.0),
             "pool1": Neurons((4, 4, 4), alpha=0.0, beta=0.5, threshold=0.5),
             "fc": Neurons((5,), alpha=0.25, beta=0.9, threshold=1.0)}
    edges = (Projection("c1", "img", "conv1", conv),
             Projection("p1", "conv1", "pool1", pl),
             Projection("f1", "pool1", "fc", Dense(rng.normal(0.05, 0.3, (5, 64)))))
    g = Graph(nodes, edges, {"class": "fc"})
    return g, {"img": rng.random((STEPS, 128)) < 0.2}, 1e-3


MODELS = {"feed_forward": feed_forward, "recurrent": recurrent, "convolutional": convolutional}


def run(image: neurochip.ChipImage, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Emulate ``STEPS`` steps; spikes of every population, v of every readout."""
    readouts = [p.name for p in image.lif_populations if not p.spiking]
    r = neurochip.Emulator(image).run(inputs, steps=STEPS, probes=[f"{k}.v" for k in readouts])
    out: dict[str, Any] = {f"spikes/{k}": v for k, v in r.spikes.items()}
    out.update({f"probe/{k}": v for k, v in r.probes.items()})
    return out


def regenerate(outdir: Path = GOLDEN) -> list[str]:
    outdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, make in MODELS.items():
        g, inputs, dt = make()
        nir_path = write_nir(g, outdir / f"{name}.nir", {"golden": name}, dt=dt)
        image = neurochip.compile(nir_path, HW)
        image.save(outdir / f"{name}.nchip")
        result = run(image, inputs)
        np.savez_compressed(outdir / f"{name}.npz",
                            **{f"input/{k}": v for k, v in inputs.items()}, **result)
        n_spk = {k[len("spikes/"):]: int(v.sum()) for k, v in result.items()
                 if k.startswith("spikes/")}
        lines.append(f"{name:<14} {image.n_neurons:>5} neurons {image.n_synapses:>6} synapses  "
                     f"spikes {n_spk}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=GOLDEN, help="output folder")
    args = ap.parse_args(argv)
    for line in regenerate(args.out):
        print(line)
    print(f"golden files written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

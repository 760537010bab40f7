"""Train snnTorch digits classifiers and export them with snnTorch's NIR export, for
``tests/golden/snntorch_digits/``.

The tests only read what this script writes (``*.nir`` and ``*.npz``, a few tens of KiB
each), so neither CI nor the project's environment needs torch. Run it once, in a
throwaway environment with torch, snntorch 1.0.0, nir and scikit-learn::

    python tools/make_snntorch_files.py --dump-data /tmp/digits.npz   # project's Python
    DIGITS_NPZ=/tmp/digits.npz /path/to/torchenv/bin/python tools/make_snntorch_files.py

Four models cover both resets, both layouts and both bias settings:

=============  ==========  ========  =====
file           layout      reset     bias
=============  ==========  ========  =====
``ff_zero_bias``        feed-forward  zero      yes
``ff_subtract``         feed-forward  subtract  no
``rec_zero``            recurrent     zero      no
``rec_subtract_bias``   recurrent     subtract  yes
=============  ==========  ========  =====

Each is ``Linear(64, 48) -> Synaptic/RSynaptic(48) -> Linear(48, 10) -> Synaptic(10)``
(alpha 0.75, beta 0.875, threshold 1), trained with BPTT on the project's digits split and
rate code (``neurochip.tasks.digits.digits_spikes(20, "regular")``), spike-count cross
entropy; the prediction is the argmax of the output spike count (a tie is no decision, -1).

The neurons reset in the step of the spike (snnTorch's ``reset_delay=False``, the order
the chip and snnTorch's own NIR import use). snnTorch's ``RSynaptic`` ignores
``reset_delay=False`` (its immediate reset writes a local variable), so the recurrent
models are trained as ``Synaptic(reset_delay=False)`` with an explicit recurrent
``Linear``, the same equations; for the export the trained weights are copied into an
``RSynaptic`` net, so the file is exactly what snnTorch 1.0.0 writes for it. The ``npz``
holds the test inputs (bit-packed), labels, snnTorch's predictions and accuracy, and the
accuracy of the same weights under snnTorch's default one-step-late reset
(``accuracy_delayed_reset``), which no reset mode of the chip reproduces.

Exporter bugs worked around: scalar neuron parameters are given per neuron (snnTorch
#334), sample data without the batch dimension, and the recurrent ``Linear`` has no bias.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "golden" / "snntorch_digits"
sys.path.insert(0, str(ROOT))

MODELS = {"rec_zero": (True, "zero", False), "ff_zero_bias": (False, "zero", True),
          "rec_subtract_bias": (True, "subtract", True), "ff_subtract": (False, "subtract", False)}
T, N_IN, N_HID, N_OUT = 20, 64, 48, 10
ALPHA, BETA, THETA = 0.75, 0.875, 1.0
EPOCHS = 15
BATCH, LR = 256, 5e-3


def _to_numpy(graph: Any) -> Any:
    import nir
    import torch

    for node in graph.nodes.values():
        if isinstance(node, nir.NIRGraph):
            _to_numpy(node)
            continue
        for f in dataclasses.fields(node):
            v = getattr(node, f.name)
            if isinstance(v, torch.Tensor):
                setattr(node, f.name, v.detach().cpu().numpy())
    return graph


def _predict(counts: Any) -> Any:
    best = counts.max(axis=1, keepdims=True)
    return np.where((counts == best).sum(axis=1) > 1, -1, counts.argmax(axis=1))


@dataclasses.dataclass
class _Split:
    x: Any
    y: Any


def _digits() -> tuple[_Split, _Split]:
    """The project's digits split as spikes; from ``$DIGITS_NPZ`` when the torch
    environment cannot import neurochip (write it with ``--dump-data PATH``, run by the
    project's Python)."""
    import os

    path = os.environ.get("DIGITS_NPZ")
    if path:
        with np.load(path) as z:
            return _Split(z["xtr"], z["ytr"]), _Split(z["xte"], z["yte"])
    from neurochip.tasks.digits import digits_spikes

    tr, te = digits_spikes(T, "regular")
    return _Split(tr.x, tr.y), _Split(te.x, te.y)


def train_one(name: str, recurrent: bool, reset: str, bias: bool) -> dict[str, Any]:
    import nir
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    train, test = _digits()

    def syn(n: int, delay: bool) -> Any:
        return snn.Synaptic(alpha=torch.full((n,), ALPHA), beta=torch.full((n,), BETA),
                            threshold=torch.full((n,), THETA), init_hidden=False,
                            reset_mechanism=reset, reset_delay=delay)

    module: Any = torch.nn.Module

    class Net(module):
        def __init__(self, delay: bool) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(N_IN, N_HID, bias=bias)
            self.lif1 = syn(N_HID, delay)
            self.rec = torch.nn.Linear(N_HID, N_HID, bias=False) if recurrent else None
            self.fc2 = torch.nn.Linear(N_HID, N_OUT, bias=bias)
            self.lif2 = syn(N_OUT, delay)
            with torch.no_grad():
                self.fc1.weight.mul_(3.0)
                if self.rec is not None:
                    self.rec.weight.mul_(0.5)

        def counts(self, xb: Any) -> Any:
            B = xb.shape[0]
            syn1, mem1 = torch.zeros(B, N_HID), torch.zeros(B, N_HID)
            syn2, mem2 = torch.zeros(B, N_OUT), torch.zeros(B, N_OUT)
            s1 = torch.zeros(B, N_HID)
            total = torch.zeros(B, N_OUT)
            for t in range(xb.shape[1]):
                cur = self.fc1(xb[:, t])
                if self.rec is not None:
                    cur = cur + self.rec(s1)
                s1, syn1, mem1 = self.lif1(cur, syn1, mem1)
                s2, syn2, mem2 = self.lif2(self.fc2(s1), syn2, mem2)
                total = total + s2
            return total

    def evaluate(net: Any) -> tuple[Any, Any]:
        with torch.no_grad():
            c = net.counts(torch.tensor(test.x, dtype=torch.float32)).numpy()
        return _predict(c), c

    net = Net(delay=False)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    Xtr = torch.tensor(train.x, dtype=torch.float32)
    ytr = torch.tensor(train.y)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(ytr), generator=gen)
        for s in range(0, len(perm), BATCH):
            idx = perm[s: s + BATCH]
            loss = torch.nn.functional.cross_entropy(net.counts(Xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 4 or epoch == EPOCHS - 1:
            pred, _ = evaluate(net)
            print(f"  {name}, epoch {epoch + 1}: loss {loss.item():.3f}, test accuracy "
                  f"{100 * np.mean(pred == test.y):.1f} %", flush=True)
    pred, counts = evaluate(net)
    acc = float(np.mean(pred == test.y))
    delayed = Net(delay=True)
    delayed.load_state_dict(net.state_dict())
    pred_d, _ = evaluate(delayed)

    # The export: snnTorch's own modules holding the trained weights.
    class Export(module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(N_IN, N_HID, bias=bias)
            if recurrent:
                self.lif1 = snn.RSynaptic(alpha=torch.full((N_HID,), ALPHA),
                                          beta=torch.full((N_HID,), BETA),
                                          threshold=torch.full((N_HID,), THETA),
                                          linear_features=N_HID, init_hidden=True,
                                          reset_mechanism=reset)
                self.lif1.recurrent = torch.nn.Linear(N_HID, N_HID, bias=False)
            else:
                self.lif1 = snn.Synaptic(alpha=torch.full((N_HID,), ALPHA),
                                         beta=torch.full((N_HID,), BETA),
                                         threshold=torch.full((N_HID,), THETA),
                                         init_hidden=True, reset_mechanism=reset)
            self.fc2 = torch.nn.Linear(N_HID, N_OUT, bias=bias)
            self.lif2 = snn.Synaptic(alpha=torch.full((N_OUT,), ALPHA),
                                     beta=torch.full((N_OUT,), BETA),
                                     threshold=torch.full((N_OUT,), THETA), init_hidden=True,
                                     reset_mechanism=reset)

        def forward(self, xt: Any) -> Any:
            return self.lif2(self.fc2(self.lif1(self.fc1(xt))))

    ex = Export()
    with torch.no_grad():
        ex.fc1.load_state_dict(net.fc1.state_dict())
        ex.fc2.load_state_dict(net.fc2.state_dict())
        if recurrent:
            ex.lif1.recurrent.load_state_dict(net.rec.state_dict())
    graph = _to_numpy(export_to_nir(ex, torch.zeros(N_IN)))
    nir.write(str(OUT / f"{name}.nir"), graph, compression=None)
    nir.read(str(OUT / f"{name}.nir"))
    np.savez_compressed(OUT / f"{name}.npz", x_packed=np.packbits(test.x, axis=-1), n_in=N_IN,
                        steps=T, labels=test.y, predictions=pred,
                        counts=counts.astype(np.int16), accuracy=acc,
                        accuracy_delayed_reset=float(np.mean(pred_d == test.y)))
    print(f"wrote {name}: accuracy {100 * acc:.1f} % (delayed reset "
          f"{100 * np.mean(pred_d == test.y):.1f} %)", flush=True)
    return {"recurrent": recurrent, "reset": reset, "bias": bias, "steps": T,
            "epochs": EPOCHS, "layers": [N_IN, N_HID, N_OUT], "test_samples": len(pred),
            "snntorch_accuracy": acc,
            "snntorch_accuracy_delayed_reset": float(np.mean(pred_d == test.y))}


def main() -> int:
    if sys.argv[1:2] == ["--dump-data"]:
        from neurochip.tasks.digits import digits_spikes

        tr, te = digits_spikes(T, "regular")
        np.savez_compressed(sys.argv[2], xtr=tr.x, ytr=tr.y, xte=te.x, yte=te.y)
        return 0
    try:
        import nir
        import snntorch
        import torch
    except ImportError:
        sys.exit("this script needs torch, snntorch, nir and scikit-learn (see its docstring)")
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    only = sys.argv[1:] or list(MODELS)
    man_path = OUT / "MANIFEST.json"
    manifest: dict[str, Any] = (json.loads(man_path.read_text()) if man_path.exists() else
                                {"files": {}})
    manifest["written_by"] = "tools/make_snntorch_files.py"
    manifest["versions"] = {"torch": torch.__version__.split("+")[0],
                            "snntorch": snntorch.__version__, "nir": nir.__version__}
    for name in only:
        manifest["files"][name] = train_one(name, *MODELS[name])
        man_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

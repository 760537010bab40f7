"""Write the NIR files of ``tests/golden/exporters/`` with the exporters of snnTorch and Norse.

The tests only read the files this script writes (``*.nir`` and ``*.npz``), so neither CI
nor the project's environment needs torch. Run it once, in a throwaway environment::

    python3 -m venv /tmp/exporters
    /tmp/exporters/bin/pip install torch snntorch==1.0.0 norse==1.1.0 nir==1.0.8 \\
        nirtorch==2.6 scikit-learn
    /tmp/exporters/bin/python tools/make_exporter_files.py

Everything is seeded; the versions used are recorded in ``MANIFEST.json``. Files written:

``snntorch_ff.nir`` / ``.npz``
    A feed-forward snnTorch net ``Linear(8, 12) -> Synaptic -> Linear(12, 4) -> Synaptic``
    (alpha 0.5, beta 0.75, threshold 4), weights set to multiples of 1/128 whose largest
    value is 127/128, so that the chip's 8-bit weights, 12-bit decays and threshold hold
    them exactly. ``npz``: input spikes ``x`` (B, T, 8) and snnTorch's own spike trains and
    membranes of both layers, run twice on the same exported file: with
    ``reset_delay=False`` (the threshold is subtracted in the step of the spike, as the chip
    does; keys ``*_immediate``) and with snnTorch's default ``reset_delay=True`` (the
    undecayed threshold is subtracted one step later; keys ``*_delayed``). The NIR file is
    the same for both: NIR records neither setting.
``snntorch_rec.nir`` / ``.npz``
    A recurrent snnTorch classifier ``Linear(64, 48) -> RSynaptic(48, all-to-all) ->
    Linear(48, 10) -> Synaptic`` trained with BPTT (snnTorch's default reset, spike-count
    cross entropy) on the project's digits split and rate code
    (``neurochip.tasks.digits.digits_spikes``). ``npz``: the test inputs (bit-packed), the
    labels, snnTorch's predictions (argmax of the output spike count; a tie is no
    decision, -1) and its accuracy.
``norse_ff.nir`` / ``.npz``
    A feed-forward Norse net ``Linear(6, 10) -> LIFCell -> Linear(10, 3) -> LIFCell``
    (Norse's own step, dt = 1 ms, tau_syn = 4 ms, tau_mem = 8 ms), exported with
    ``norse.torch.utils.export_nir.to_nir``. ``npz``: inputs and Norse's spike trains.

Exporter bugs worked around (see also nir-notes section 4):

* snnTorch 1.0.0 writes scalar ``alpha``/``beta``/``threshold`` as 0-d arrays, so a
  ``CubaLIF`` gets the input type ``[]`` and type inference fails (snnTorch #334); we give
  every neuron parameter as a per-neuron tensor.
* ``export_to_nir`` needs sample data without the batch dimension (``torch.zeros(n)``),
  otherwise the ``Input`` node's type includes the batch and type inference fails.
* ``RSynaptic``'s recurrent ``nn.Linear`` has a bias that snnTorch's own forward pass adds
  to the synaptic current every step; we replace it with a bias-free ``Linear`` before
  training so the exported ``w_rec`` is a plain ``Linear``.
* Norse 1.1.0's ``to_nir(..., dt=dt)`` writes ``tau = dt / tau_inv``, i.e. ``dt * tau``
  (norse #411); we pass ``dt=1.0`` so the file holds the time constants in seconds. It
  stores torch tensors and 0-d parameters that ``nir.write`` cannot write; we give
  per-neuron parameters and convert every field to numpy. Norse's exporter writes
  ``w_in = 1`` although its ``LIFCell`` adds each input to the current with gain 1 (the
  NIR ``CubaLIF`` reading gives ``dt/tau_syn``): the file is written as Norse writes it,
  and the tests document the difference.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "golden" / "exporters"
sys.path.insert(0, str(ROOT))


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        sys.exit("this script needs torch, snntorch, norse, nir and scikit-learn; see its "
                 "docstring for a throwaway environment")
    torch.manual_seed(0)
    torch.set_num_threads(2)
    return torch


def _to_numpy(graph: Any) -> Any:
    """Every field of every node (recursively) as numpy, so ``nir.write`` accepts it."""
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


def _write(name: str, graph: Any, arrays: dict[str, Any]) -> None:
    import nir

    # Uncompressed: for files this small gzip's per-dataset chunks only add bytes.
    nir.write(str(OUT / f"{name}.nir"), graph, compression=None)
    nir.read(str(OUT / f"{name}.nir"))  # the file reads back with type checking
    np.savez_compressed(OUT / f"{name}.npz", **arrays)
    size = sum((OUT / f"{name}.{ext}").stat().st_size for ext in ("nir", "npz"))
    print(f"wrote {name}.nir/.npz ({size / 1024:.1f} KiB)")


# ------------------------------------------------------------------------- snnTorch, FF
def snntorch_feed_forward() -> dict[str, Any]:
    torch = _torch()
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    n_in, n_hid, n_out, T, B = 8, 12, 4, 60, 6
    alpha, beta, theta = 0.5, 0.75, 4.0
    rng = np.random.default_rng(1)
    # Multiples of 1/128 with the largest exactly 127/128: the chip's scale then maps every
    # weight onto its 8-bit grid without rounding.
    W1 = rng.integers(-40, 100, (n_hid, n_in)) / 128
    W2 = rng.integers(-40, 90, (n_out, n_hid)) / 128
    W1[0, 0] = W2[0, 0] = 127 / 128
    x = rng.random((B, T, n_in)) < 0.25

    def synaptic(n: int, reset_delay: bool) -> Any:
        return snn.Synaptic(alpha=torch.full((n,), alpha), beta=torch.full((n,), beta),
                            threshold=torch.full((n,), theta), init_hidden=True,
                            reset_delay=reset_delay)

    module: Any = torch.nn.Module

    class Net(module):
        def __init__(self, reset_delay: bool) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(n_in, n_hid, bias=False)
            self.lif1 = synaptic(n_hid, reset_delay)
            self.fc2 = torch.nn.Linear(n_hid, n_out, bias=False)
            self.lif2 = synaptic(n_out, reset_delay)
            with torch.no_grad():
                self.fc1.weight.copy_(torch.tensor(W1))
                self.fc2.weight.copy_(torch.tensor(W2))

        def forward(self, xt: Any) -> Any:
            return self.lif2(self.fc2(self.lif1(self.fc1(xt))))

    arrays: dict[str, Any] = {"x": x, "alpha": alpha, "beta": beta, "threshold": theta}
    graph = None
    for reset_delay, key in ((False, "immediate"), (True, "delayed")):
        net = Net(reset_delay)
        rec: dict[str, list[Any]] = {"lif1": [], "lif2": [], "mem1": [], "mem2": []}
        net.lif1.reset_mem()
        net.lif2.reset_mem()
        with torch.no_grad():
            for t in range(T):
                s1 = net.lif1(net.fc1(torch.tensor(x[:, t], dtype=torch.float32)))
                s2 = net.lif2(net.fc2(s1))
                rec["lif1"].append(s1.numpy().astype(bool))
                rec["lif2"].append(s2.numpy().astype(bool))
                rec["mem1"].append(net.lif1.mem.numpy().copy())
                rec["mem2"].append(net.lif2.mem.numpy().copy())
        for k, v in rec.items():
            arrays[f"{k}_{key}"] = np.stack(v, axis=1)
        if graph is None:
            graph = export_to_nir(net, torch.zeros(n_in))
    _write("snntorch_ff", _to_numpy(graph), arrays)
    return {"layers": [n_in, n_hid, n_out], "steps": T, "samples": B,
            "spikes_immediate": int(arrays["lif1_immediate"].sum()
                                    + arrays["lif2_immediate"].sum()),
            "spikes_delayed": int(arrays["lif1_delayed"].sum() + arrays["lif2_delayed"].sum())}


# ------------------------------------------------------------------- snnTorch, recurrent
def snntorch_recurrent() -> dict[str, Any]:
    torch = _torch()
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    from neurochip.tasks.digits import digits_spikes

    T, n_in, n_hid, n_out = 20, 64, 48, 10
    alpha, beta, theta = 0.75, 0.875, 1.0
    train, test = digits_spikes(T, "regular")

    module: Any = torch.nn.Module

    class Net(module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(n_in, n_hid, bias=False)
            self.lif1 = snn.RSynaptic(alpha=torch.full((n_hid,), alpha),
                                      beta=torch.full((n_hid,), beta),
                                      threshold=torch.full((n_hid,), theta),
                                      linear_features=n_hid, init_hidden=True)
            self.lif1.recurrent = torch.nn.Linear(n_hid, n_hid, bias=False)
            self.fc2 = torch.nn.Linear(n_hid, n_out, bias=False)
            self.lif2 = snn.Synaptic(alpha=torch.full((n_out,), alpha),
                                     beta=torch.full((n_out,), beta),
                                     threshold=torch.full((n_out,), theta), init_hidden=True)
            with torch.no_grad():
                self.fc1.weight.mul_(3.0)
                self.lif1.recurrent.weight.mul_(0.5)

        def forward(self, xt: Any) -> Any:
            return self.lif2(self.fc2(self.lif1(self.fc1(xt))))

        def counts(self, xb: Any) -> Any:
            """Output spike counts (B, n_out) over a batch of spike trains (B, T, n_in)."""
            self.lif1.reset_mem()
            self.lif1.spk = torch.zeros(0)
            self.lif2.reset_mem()
            return torch.stack([self(xb[:, t]) for t in range(xb.shape[1])], 1).sum(1)

    def predict(net: Net, X: Any) -> Any:
        with torch.no_grad():
            c = net.counts(torch.tensor(X, dtype=torch.float32)).numpy()
        best = c.max(axis=1, keepdims=True)
        return np.where((c == best).sum(axis=1) > 1, -1, c.argmax(axis=1)), c

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    Xtr = torch.tensor(train.x, dtype=torch.float32)
    ytr = torch.tensor(train.y)
    gen = torch.Generator().manual_seed(0)
    epochs = 30
    for epoch in range(epochs):
        perm = torch.randperm(len(ytr), generator=gen)
        for s in range(0, len(perm), 64):
            idx = perm[s: s + 64]
            counts = net.counts(Xtr[idx])
            loss = torch.nn.functional.cross_entropy(counts, ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 4 or epoch == epochs - 1:
            pred, _ = predict(net, test.x)
            print(f"  recurrent snnTorch, epoch {epoch + 1}: loss {loss.item():.3f}, test "
                  f"accuracy {100 * np.mean(pred == test.y):.1f} %")
    pred, counts = predict(net, test.x)
    acc = float(np.mean(pred == test.y))
    graph = export_to_nir(net, torch.zeros(n_in))
    arrays = {"x_packed": np.packbits(test.x, axis=-1), "n_in": n_in, "steps": T,
              "labels": test.y, "predictions": pred, "counts": counts.astype(np.int16),
              "accuracy": acc}
    _write("snntorch_rec", _to_numpy(graph), arrays)
    return {"layers": [n_in, n_hid, n_out], "recurrent": "lif1", "steps": T,
            "epochs": epochs, "test_samples": len(pred), "snntorch_accuracy": acc,
            "data": "neurochip.tasks.digits.digits_spikes(20, 'regular')[1]"}


# ---------------------------------------------------------------------------- Norse, FF
def norse_feed_forward() -> dict[str, Any]:
    torch = _torch()
    import norse.torch as norse
    from norse.torch.utils.export_nir import to_nir

    n_in, n_hid, n_out, T, B = 6, 10, 3, 50, 4
    dt = 1e-3
    rng = np.random.default_rng(2)

    def params(n: int) -> Any:
        return norse.LIFParameters(tau_syn_inv=torch.full((n,), 250.0),
                                   tau_mem_inv=torch.full((n,), 125.0),
                                   v_th=torch.full((n,), 1.0), v_leak=torch.zeros(n),
                                   v_reset=torch.zeros(n))

    model = norse.SequentialState(torch.nn.Linear(n_in, n_hid, bias=False),
                                  norse.LIFCell(params(n_hid), dt=dt),
                                  torch.nn.Linear(n_hid, n_out, bias=False),
                                  norse.LIFCell(params(n_out), dt=dt))
    with torch.no_grad():
        # Multiples of 1/128, the largest 127/128 (exact on the chip, as above).
        W1 = rng.integers(-16, 64, (n_hid, n_in)) / 128
        W2 = rng.integers(-16, 80, (n_out, n_hid)) / 128
        W1[0, 0] = W2[0, 0] = 127 / 128
        model[0].weight.copy_(torch.tensor(W1))
        model[2].weight.copy_(torch.tensor(W2))
    x = rng.random((B, T, n_in)) < 0.3
    s1, s2 = [], []
    state: list[Any] = [None, None]
    with torch.no_grad():
        for t in range(T):
            h = model[0](torch.tensor(x[:, t], dtype=torch.float32))
            z1, state[0] = model[1](h, state[0])
            z2, state[1] = model[3](model[2](z1), state[1])
            s1.append(z1.numpy().astype(bool))
            s2.append(z2.numpy().astype(bool))
    graph = to_nir(model, torch.zeros(n_in), dt=1.0)
    arrays = {"x": x, "dt": dt, "hidden": np.stack(s1, 1), "out": np.stack(s2, 1)}
    _write("norse_ff", _to_numpy(graph), arrays)
    return {"layers": [n_in, n_hid, n_out], "steps": T, "samples": B, "dt": dt,
            "nodes": sorted(graph.nodes)}


def main() -> int:
    torch = _torch()
    import nir
    import nirtorch
    import norse
    import snntorch

    OUT.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "written_by": "tools/make_exporter_files.py",
        "versions": {"torch": torch.__version__.split("+")[0], "snntorch": snntorch.__version__,
                     "norse": norse.__version__, "nir": nir.__version__,
                     "nirtorch": getattr(nirtorch, "__version__", "unknown")},
        "files": {},
    }
    manifest["files"]["snntorch_ff"] = snntorch_feed_forward()
    manifest["files"]["norse_ff"] = norse_feed_forward()
    manifest["files"]["snntorch_rec"] = snntorch_recurrent()
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the ONNX files of ``tests/golden/onnx/`` with torch.onnx and the SNN frameworks.

The tests only read what this script writes (``*.onnx`` and ``*.npz``), so neither CI nor
the project's environment needs torch. Run it once, in a throwaway environment::

    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch snntorch==1.0.0 norse==1.1.0 sinabs==3.1.3 \\
        onnx scikit-learn
    PYTHONPATH=$PWD /tmp/torchenv/bin/python tools/make_onnx_files.py

Everything is seeded; the versions used are recorded in ``MANIFEST.json``.

**Spiking cells** (``<framework>_<variant>.onnx`` + ``.npz``): ``Linear -> cell -> Linear
-> cell`` exported with ``torch.onnx.export`` as ONE time step, the way these frameworks'
users export them: the graph inputs are the input ``x`` and the cells' state tensors, the
graph outputs the last cell's spikes and the new states. The framework's own step function
computes the step (snnTorch ``Leaky``/``Synaptic.forward``, Norse ``LIFCell``/``LIFBoxCell``,
Sinabs' ``lif_forward_single`` with the layer's own parameters, which is what ``IAF``/``LIF``
run per step). The ``npz`` holds the input spikes ``x`` (B, T, n_in) and the framework's
output spikes ``spikes`` (B, T, n_out), from running the torch modules step by step (and,
checked here, the exported graph run with ``onnx.reference`` gives the same).

**ANN classifiers** (``ann_mlp.onnx``, ``ann_cnn.onnx`` + ``.npz``): an MLP
``64-64-32-10`` and a small CNN (Conv+BatchNorm+ReLU, AveragePool, a residual block, a
``view(N, -1)`` flatten that exports as Shape/Gather/Concat/Reshape, Linear) trained with
Adam on the project's digits split (``neurochip.tasks.digits.digits_split``, images in
[0, 1]). ``npz``: torch's test predictions and accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx.reference import ReferenceEvaluator
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "tests" / "golden" / "onnx"
B, T = 4, 40


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], in_names: list[str],
            out_names: list[str], path: Path, dynamic: bool = False) -> None:
    axes = {n: {0: "N"} for n in in_names + out_names} if dynamic else None
    torch.onnx.export(module, args, str(path), input_names=in_names, output_names=out_names,
                      opset_version=17, dynamo=False, dynamic_axes=axes)
    onnx.checker.check_model(onnx.load(str(path)))


def _spikes(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return (rng.random((B, T, n)) < rate).astype(np.float32)


def _linear(n_in: int, n_out: int, scale: float, seed: int, bias: bool = False) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n_out, n_in, generator=g) * scale)
        if bias:
            lin.bias.copy_(torch.randn(n_out, generator=g) * scale * 0.2)
    return lin


class TwoLayer(nn.Module):
    """Linear -> cell -> Linear -> cell; ``step`` is one framework step."""

    def __init__(self, n_in: int, n_hid: int, n_out: int, cells: list[Any], step: Any,
                 nstate: int, seed: int, scale: tuple[float, float], bias: bool = False):
        super().__init__()
        self.fc1 = _linear(n_in, n_hid, scale[0], seed, bias)
        self.fc2 = _linear(n_hid, n_out, scale[1], seed + 1, bias)
        self.cells = nn.ModuleList([c for c in cells if isinstance(c, nn.Module)])
        self.cell_objs = cells
        self.step_fn = step
        self.nstate = nstate
        self.sizes = (n_hid, n_out)

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = self.nstate
        s1, s2 = states[:k], states[k:]
        spk1, n1 = self.step_fn(self.cell_objs[0], self.fc1(x), s1)
        spk2, n2 = self.step_fn(self.cell_objs[1], self.fc2(spk1), s2)
        return (spk2, *n1, *n2)

    def zero_state(self, b: int) -> list[torch.Tensor]:
        return [torch.zeros(b, n) for n in self.sizes for _ in range(self.nstate)]


def _snntorch_leaky(cell: Any, cur: torch.Tensor, s: tuple[torch.Tensor, ...]) -> Any:
    spk, mem = cell(cur, s[0])
    return spk, (mem,)


def _snntorch_rleaky(cell: Any, cur: torch.Tensor, s: tuple[torch.Tensor, ...]) -> Any:
    spk, mem = cell(cur, s[0], s[1])
    return spk, (spk, mem)  # the spikes are state too: the next step's recurrent input


def _snntorch_rsynaptic(cell: Any, cur: torch.Tensor, s: tuple[torch.Tensor, ...]) -> Any:
    spk, syn, mem = cell(cur, s[0], s[1], s[2])
    return spk, (spk, syn, mem)


def _snntorch_synaptic(cell: Any, cur: torch.Tensor, s: tuple[torch.Tensor, ...]) -> Any:
    spk, syn, mem = cell(cur, s[0], s[1])
    return spk, (syn, mem)


def _norse(cell: Any, cur: torch.Tensor, s: tuple[torch.Tensor, ...]) -> Any:
    from norse.torch.functional.lif import LIFFeedForwardState
    from norse.torch.functional.lif_box import LIFBoxFeedForwardState

    st = LIFFeedForwardState(v=s[0], i=s[1]) if len(s) == 2 else LIFBoxFeedForwardState(v=s[0])
    z, ns = cell(cur, st)
    return z, ((ns.v, ns.i) if len(s) == 2 else (ns.v,))


def _sinabs(layer: Any, cur: torch.Tensor, s: tuple[torch.Tensor, ...]) -> Any:
    from sinabs.layers.functional.lif import lif_forward_single

    state = {"v_mem": s[0]} if len(s) == 1 else {"v_mem": s[0], "i_syn": s[1]}
    keys = list(state)  # the step adds a scratch "i_syn" to the dict it is given
    spikes, new = lif_forward_single(
        input_data=cur, alpha_mem=layer.alpha_mem_calculated,
        alpha_syn=layer.alpha_syn_calculated, state=state,
        spike_threshold=layer.spike_threshold, spike_fn=layer.spike_fn,
        reset_fn=layer.reset_fn, surrogate_grad_fn=layer.surrogate_grad_fn,
        min_v_mem=layer.min_v_mem, norm_input=layer.norm_input)
    return spikes, tuple(new[k] for k in keys)


def _sinabs_reference(net: TwoLayer, x: np.ndarray) -> np.ndarray:
    """Sinabs' own layers on the whole (B, T, n) input, as Sinabs users run them."""
    l1, l2 = net.cell_objs
    for layer in (l1, l2):
        layer.reset_states()
    xt = torch.from_numpy(x)
    with torch.no_grad():
        h = l1(net.fc1(xt))
        return l2(net.fc2(h)).numpy()


def _run_steps(net: TwoLayer, x: np.ndarray) -> np.ndarray:
    states = net.zero_state(x.shape[0])
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            res = net(torch.from_numpy(x[:, t]), *states)
            out.append(res[0].numpy())
            states = list(res[1:])
    return np.stack(out, axis=1)


def _run_onnx(path: Path, x: np.ndarray, sizes: tuple[int, int], nstate: int) -> np.ndarray:
    sess = ReferenceEvaluator(str(path))
    ins = [i.name for i in onnx.load(str(path)).graph.input]
    states = [np.zeros((x.shape[0], n), np.float32) for n in sizes for _ in range(nstate)]
    out = []
    for t in range(x.shape[1]):
        res = sess.run(None, dict(zip(ins, [x[:, t], *states])))
        out.append(res[0])
        states = list(res[1:])
    return np.stack(out, axis=1)


def _recurrent(cls: Any, sizes: tuple[int, int], seed: int, scale: float, **kw: Any) -> list[Any]:
    """Two snnTorch recurrent cells (all-to-all recurrent Linear), seeded weights."""
    torch.manual_seed(seed)
    cells = [cls(linear_features=n, **kw) for n in sizes]
    with torch.no_grad():
        for c in cells:
            c.recurrent.weight.mul_(scale)
    return cells


def _per_neuron_leaky(sizes: tuple[int, int], seed: int) -> list[Any]:
    """snnTorch Leaky cells with one (trainable) beta per neuron."""
    import snntorch as snn

    g = torch.Generator().manual_seed(seed)
    return [snn.Leaky(beta=0.6 + 0.35 * torch.rand(n, generator=g), learn_beta=True)
            for n in sizes]


def snn_files(only: set[str] | None = None) -> dict[str, Any]:
    import norse.torch as norse
    import sinabs.activation as sa
    import sinabs.layers as sl
    import snntorch as snn

    rng = np.random.default_rng(12)
    variants: list[tuple[str, str, Any, int, tuple[float, float], bool, dict[str, Any]]] = [
        ("snntorch_leaky", "Leaky(beta=0.9) x2, subtract reset (snnTorch's default)",
         lambda: [snn.Leaky(beta=0.9), snn.Leaky(beta=0.8)], 1, (0.6, 0.7), False,
         {"step": _snntorch_leaky}),
        ("snntorch_leaky_zero", "Leaky(beta=0.7, threshold=0.5, reset 'zero'), biases",
         lambda: [snn.Leaky(beta=0.7, threshold=0.5, reset_mechanism="zero"),
                  snn.Leaky(beta=0.95, threshold=0.5, reset_mechanism="zero")], 1, (0.4, 0.5),
         True, {"step": _snntorch_leaky}),
        ("snntorch_leaky_nodelay", "Leaky(beta=0.85, reset_delay=False)",
         lambda: [snn.Leaky(beta=0.85, reset_delay=False),
                  snn.Leaky(beta=0.6, reset_delay=False)], 1, (0.6, 0.8), False,
         {"step": _snntorch_leaky}),
        ("snntorch_synaptic", "Synaptic(alpha=0.6, beta=0.85, reset_delay=False)",
         lambda: [snn.Synaptic(alpha=0.6, beta=0.85, reset_delay=False),
                  snn.Synaptic(alpha=0.5, beta=0.9, reset_delay=False)], 2, (0.4, 0.5),
         False, {"step": _snntorch_synaptic}),
        ("norse_lifcell", "LIFCell(tau_syn_inv=200, tau_mem_inv=100), dt=1e-3 (defaults)",
         lambda: [norse.LIFCell(), norse.LIFCell()], 2, (3.0, 3.0), False,
         {"step": _norse}),
        ("norse_lifcell_tau", "LIFCell(tau_syn_inv=250, tau_mem_inv=125, v_th=0.5)",
         lambda: [norse.LIFCell(norse.LIFParameters(tau_syn_inv=torch.tensor(250.0),
                                                    tau_mem_inv=torch.tensor(125.0),
                                                    v_th=torch.tensor(0.5))),
                  norse.LIFCell(norse.LIFParameters(tau_syn_inv=torch.tensor(250.0),
                                                    tau_mem_inv=torch.tensor(125.0),
                                                    v_th=torch.tensor(0.5)))],
         2, (2.0, 2.0), False, {"step": _norse}),
        ("norse_lifboxcell", "LIFBoxCell (no synaptic current), dt=1e-3",
         lambda: [norse.LIFBoxCell(), norse.LIFBoxCell()], 1, (10.0, 10.0), False,
         {"step": _norse}),
        ("sinabs_iaf", "IAF(spike_fn=SingleSpike), subtract reset",
         lambda: [sl.IAF(spike_fn=sa.SingleSpike), sl.IAF(spike_fn=sa.SingleSpike)], 1,
         (0.9, 1.0), False, {"step": _sinabs, "sinabs": True}),
        ("sinabs_iaf_multispike", "IAF() defaults: MultiSpike (several spikes per step)",
         lambda: [sl.IAF(), sl.IAF()], 1, (1.0, 0.8), False, {"step": _sinabs, "sinabs": True}),
        ("sinabs_lif", "LIF(tau_mem=10, tau_syn=5, SingleSpike, norm_input)",
         lambda: [sl.LIF(tau_mem=10.0, tau_syn=5.0, spike_fn=sa.SingleSpike),
                  sl.LIF(tau_mem=10.0, tau_syn=5.0, spike_fn=sa.SingleSpike)], 2,
         (1.5, 2.0), False, {"step": _sinabs, "sinabs": True}),
        ("sinabs_lif_zero", "LIF(tau_mem=8, SingleSpike, MembraneReset), biases",
         lambda: [sl.LIF(tau_mem=8.0, spike_fn=sa.SingleSpike, reset_fn=sa.MembraneReset()),
                  sl.LIF(tau_mem=8.0, spike_fn=sa.SingleSpike, reset_fn=sa.MembraneReset())],
         1, (4.0, 5.0), True, {"step": _sinabs, "sinabs": True}),
        ("snntorch_rleaky", "RLeaky(beta=0.9, all-to-all recurrent), subtract reset",
         lambda: _recurrent(snn.RLeaky, (16, 5), 7, 0.8, beta=0.9), 2, (0.6, 0.7), False,
         {"step": _snntorch_rleaky}),
        ("snntorch_rleaky_zero", "RLeaky(beta=0.8, reset 'zero', threshold=0.5), biases",
         lambda: _recurrent(snn.RLeaky, (16, 5), 8, 0.6, beta=0.8, threshold=0.5,
                            reset_mechanism="zero"), 2, (0.4, 0.5), True,
         {"step": _snntorch_rleaky}),
        ("snntorch_rsynaptic", "RSynaptic(alpha=0.6, beta=0.85, reset_delay=False)",
         lambda: _recurrent(snn.RSynaptic, (16, 5), 9, 0.5, alpha=0.6, beta=0.85,
                            reset_delay=False), 3, (0.4, 0.5), False,
         {"step": _snntorch_rsynaptic}),
        ("snntorch_leaky_perneuron", "Leaky(beta=one per neuron, learn_beta), subtract reset",
         lambda: _per_neuron_leaky((16, 5), 11), 1, (0.6, 0.7), False,
         {"step": _snntorch_leaky}),
    ]
    made = {}
    for k, (name, what, cells, nstate, scale, bias, opt) in enumerate(variants):
        n_in, n_hid, n_out = 10, 16, 5
        if only is not None and name not in only:
            _spikes(rng, n_in, 0.3)  # keep the input of the later variants unchanged
            continue
        net = TwoLayer(n_in, n_hid, n_out, cells(), opt["step"], nstate, 100 + k, scale, bias)
        net.eval()
        x = _spikes(rng, n_in, 0.3)
        ref = _run_steps(net, x)
        if opt.get("sinabs"):
            own = _sinabs_reference(net, x)
            assert np.array_equal(own, ref), f"{name}: step wrapper differs from Sinabs' layer"
        st = [f"state{i}_{j}" for i in (1, 2) for j in range(nstate)]
        ins = ["x", *st]
        outs = ["spikes", *[s + "_out" for s in st]]
        path = OUT / f"{name}.onnx"
        example = (torch.from_numpy(x[:1, 0]), *net.zero_state(1))
        _export(net, example, ins, outs, path, dynamic=True)
        via_onnx = _run_onnx(path, x, (n_hid, n_out), nstate)
        assert np.array_equal(via_onnx, ref), f"{name}: the ONNX graph differs from torch"
        np.savez_compressed(OUT / f"{name}.npz", x=x, spikes=ref)
        ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
        made[name] = {"what": what, "ops": ops, "output_spikes": int(ref.sum()),
                      "max_spike_value": float(ref.max())}
        print(name, ops, int(ref.sum()), float(ref.max()))
    return made


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.bn1(self.conv1(x))))
        r = torch.relu(self.bn2(self.conv2(h)))
        h = torch.relu(h + self.conv3(r))  # residual block
        return self.fc(h.view(h.size(0), -1))


def ann_files() -> dict[str, Any]:
    # run with the repository on PYTHONPATH (the torch environment also needs pyyaml,
    # pydantic and numba for neurochip's imports)
    from neurochip.tasks.digits import digits_split

    Xtr, Xte, ytr, yte = digits_split()
    made = {}
    for name, cls, shape in (("ann_mlp", MLP, (64,)), ("ann_cnn", CNN, (1, 8, 8))):
        torch.manual_seed(0)
        net = cls()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        xtr = torch.tensor(Xtr, dtype=torch.float32).reshape(-1, *shape)
        ttr = torch.tensor(ytr)
        for _epoch in range(60):
            net.train()
            perm = torch.randperm(len(xtr))
            for i in range(0, len(xtr), 64):
                idx = perm[i:i + 64]
                opt.zero_grad()
                nn.functional.cross_entropy(net(xtr[idx]), ttr[idx]).backward()
                opt.step()
        net.eval()
        xte = torch.tensor(Xte, dtype=torch.float32).reshape(-1, *shape)
        with torch.no_grad():
            pred = net(xte).argmax(1).numpy()
        acc = float(np.mean(pred == yte))
        path = OUT / f"{name}.onnx"
        _export(net, (xte[:1],), ["image"], ["logits"], path, dynamic=True)
        sess = ReferenceEvaluator(str(path))
        p2 = sess.run(None, {"image": xte.numpy()})[0].argmax(1)
        assert np.mean(p2 == pred) > 0.99, name
        np.savez_compressed(OUT / f"{name}.npz", torch_pred=pred, torch_accuracy=acc)
        ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
        made[name] = {"torch_accuracy": acc, "ops": ops, "input_shape": list(shape)}
        print(name, acc, ops)
    return made


def main() -> None:
    import argparse

    import norse
    import sinabs
    import snntorch

    ap = argparse.ArgumentParser(description="write the ONNX reference files")
    ap.add_argument("--only", nargs="*", help="write only these SNN files (the others and "
                    "the ANN files stay as they are; MANIFEST.json is updated)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.only:
        manifest = json.loads((OUT / "MANIFEST.json").read_text())
        manifest["snn"].update(snn_files(set(args.only)))
        (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
        print("updated", OUT)
        return
    manifest = {"tool": "tools/make_onnx_files.py", "steps": T, "batch": B,
                "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                             "snntorch": snntorch.__version__,
                             "norse": getattr(norse, "__version__", "1.1.0"),
                             "sinabs": sinabs.__version__},
                "snn": snn_files(), "ann": ann_files()}
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()

"""The torch side of ``tools/bench_training.py --only speed``: run in a Python that has torch
(and snnTorch), never by the project's own environment or CI.

    /path/to/torchenv/bin/python tools/bench_training_torch.py CASES.npz

``CASES.npz`` (written by ``bench_training.py``) holds, per case, the bool spikes ``X``
(N, T, n_in), the labels, the initial weights and the settings. The script then answers one
JSON command per line on stdin:

* ``{"case": c, "impl": "torch" | "snntorch", "dtype": "float32", "batches": k}``: train
  ``k`` mini-batches from the initial weights (forward, cross-entropy of the readout's
  maximum membrane over time, backward, Adam) and answer the wall time of each;
* ``{"case": c, "impl": "torch", "dtype": "float64", "grads": "out.npz"}``: write the
  gradients of the first batch at the initial weights (the "same maths" check).

"torch" is a plain loop of the project's float model (``docs/conventions.md``): one step of
latency per projection, reset subtract with the reset detached, the fast-sigmoid surrogate;
the input projection is one product over all steps. "snntorch" runs ``snn.Synaptic`` /
``snn.RSynaptic`` neurons (snnTorch's own reset timing) on the same projections.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class _FastSigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, k: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.k = k
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g / (1.0 + ctx.k * x.abs()) ** 2, None


class Case:
    def __init__(self, data: Any, name: str) -> None:
        cfg = json.loads(str(data[f"{name}/config"]))
        self.cfg = cfg
        self.X = data[f"{name}/X"]
        self.Y = data[f"{name}/Y"]
        self.w0 = {k: data[f"{name}/{k}"] for k in ("W1", "V1", "W2") if f"{name}/{k}" in data}
        self.B = int(cfg["batch"])
        self.steps = int(cfg["steps"])

    def batch(self, b: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.X) // self.B
        sl = slice((b % n) * self.B, (b % n + 1) * self.B)
        x = torch.from_numpy(self.X[sl]).to(dtype).transpose(0, 1)
        x = F.pad(x, (0, 0, 0, 0, 0, self.steps - x.shape[0]))
        return x, torch.from_numpy(self.Y[sl]).long()


def _plain_loss(case: Case, p: dict[str, torch.Tensor], x: torch.Tensor,
                y: torch.Tensor) -> torch.Tensor:
    c = case.cfg
    a, be, th, k = c["alpha"], c["beta"], c["threshold"], c["steepness"]
    T, B, _ = x.shape
    W1, W2 = p["W1"], p["W2"]
    V1 = p.get("V1")
    nh = W1.shape[0]
    d1 = x[:-1] @ W1.T  # drive of steps 1 .. T-1
    i = torch.zeros(B, nh, dtype=x.dtype)
    u = torch.zeros(B, nh, dtype=x.dtype)
    s = torch.zeros(B, nh, dtype=x.dtype)
    spikes = []
    for t in range(T):
        if t > 0:
            drive = d1[t - 1] if V1 is None else d1[t - 1] + s @ V1.T
            i = a * i + drive
        else:
            i = a * i
        pm = be * u + i
        s = _FastSigmoid.apply(pm - th, k)
        u = pm - th * s.detach()
        spikes.append(s)
    S = torch.stack(spikes)
    d2 = S[:-1] @ W2.T
    i2 = torch.zeros(B, W2.shape[0], dtype=x.dtype)
    v2 = torch.zeros(B, W2.shape[0], dtype=x.dtype)
    vs = [v2]
    for t in range(1, T):
        i2 = a * i2 + d2[t - 1]
        v2 = be * v2 + i2
        vs.append(v2)
    return F.cross_entropy(torch.stack(vs).max(dim=0).values, y)


class _Snn:
    def __init__(self, case: Case, p: dict[str, torch.Tensor]) -> None:
        import snntorch as snn
        from snntorch import surrogate

        c = case.cfg
        grad = surrogate.fast_sigmoid(slope=c["steepness"])
        nh, nin = p["W1"].shape
        no = p["W2"].shape[0]
        dt = p["W1"].dtype
        self.fc1 = torch.nn.Linear(nin, nh, bias=False).to(dt)
        self.fc2 = torch.nn.Linear(nh, no, bias=False).to(dt)
        with torch.no_grad():
            self.fc1.weight.copy_(p["W1"])
            self.fc2.weight.copy_(p["W2"])
        self.recurrent = "V1" in p
        if self.recurrent:
            self.lif1 = snn.RSynaptic(c["alpha"], c["beta"], threshold=c["threshold"],
                                      spike_grad=grad, all_to_all=True, linear_features=nh,
                                      reset_mechanism="subtract").to(dt)
            with torch.no_grad():
                self.lif1.recurrent.weight.copy_(p["V1"])
                if self.lif1.recurrent.bias is not None:
                    self.lif1.recurrent.bias.zero_()
        else:
            self.lif1 = snn.Synaptic(c["alpha"], c["beta"], threshold=c["threshold"],
                                     spike_grad=grad, reset_mechanism="subtract").to(dt)
        self.lif2 = snn.Synaptic(c["alpha"], c["beta"], threshold=1e9, spike_grad=grad,
                                 reset_mechanism="none").to(dt)
        self.params = list(self.fc1.parameters()) + list(self.fc2.parameters()) + (
            list(self.lif1.recurrent.parameters()) if self.recurrent else [])

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cur1 = self.fc1(x)
        if self.recurrent:
            spk, syn, mem = self.lif1.reset_mem()
        else:
            syn, mem = self.lif1.reset_mem()
        syn2, mem2 = self.lif2.reset_mem()
        vs = []
        for t in range(x.shape[0]):
            if self.recurrent:
                spk, syn, mem = self.lif1(cur1[t], spk, syn, mem)
            else:
                spk, syn, mem = self.lif1(cur1[t], syn, mem)
            _, syn2, mem2 = self.lif2(self.fc2(spk), syn2, mem2)
            vs.append(mem2)
        return F.cross_entropy(torch.stack(vs).max(dim=0).values, y)


def _setup(case: Case, impl: str, dtype: torch.dtype) -> tuple[Any, list[torch.Tensor]]:
    p = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in case.w0.items()}
    if impl == "torch":
        return (lambda x, y: _plain_loss(case, p, x, y)), list(p.values())
    snn_model = _Snn(case, {k: v.detach() for k, v in p.items()})
    return snn_model.loss, snn_model.params


def main() -> int:
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    data = np.load(sys.argv[1])
    cases = {n: Case(data, n) for n in json.loads(str(data["cases"]))}
    import snntorch

    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "snntorch": snntorch.__version__, "threads": torch.get_num_threads()}),
          flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        case = cases[cmd["case"]]
        dtype = {"float32": torch.float32, "float64": torch.float64}[cmd["dtype"]]
        loss_fn, params = _setup(case, cmd["impl"], dtype)
        if "grads" in cmd:
            x, y = case.batch(0, dtype)
            loss_fn(x, y).backward()
            names = list(case.w0) if cmd["impl"] == "torch" else []
            np.savez(cmd["grads"], **{k: q.grad.numpy() for k, q in zip(names, params)})
            print(json.dumps({"ok": True}), flush=True)
            continue
        opt = torch.optim.Adam(params, lr=float(case.cfg["lr"]))
        times = []
        for b in range(int(cmd["batches"])):
            t0 = time.perf_counter()
            x, y = case.batch(b, dtype)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(x, y)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        print(json.dumps({"times": times, "loss": float(loss)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

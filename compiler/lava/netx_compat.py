"""Make lava-dl 0.6.0's netx importable without torch (the reference the netx tests run).

netx builds plain Lava processes; torch comes in only through two imports:
``lava.lib.dl.netx.sequential_modules`` (a torch wrapper netx's package ``__init__``
imports) and ``lava.lib.dl.slayer.neuron.rf`` (slayer's resonate-and-fire parameter function,
whose package ``__init__`` imports all of slayer, i.e. torch). A meta-path finder serves
those modules (and the slayer packages above it) as stubs: the stub function raises
for RF layers, which need it. Nothing on disk changes; Lava's own 3.11 fix
(:mod:`compiler.lava.compat`) is installed first.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

from compiler.lava.compat import import_lava
from neurochip.core.errors import LavaExportError

__all__ = ["import_netx", "netx_available", "run_netx_lava"]

_STUB_PACKAGES = ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron")
_STUB_MODULES = ("lava.lib.dl.netx.sequential_modules", "lava.lib.dl.slayer.neuron.rf")


def _rf_params(*_: Any, **__: Any) -> Any:
    raise LavaExportError("resonate-and-fire netx layers need slayer (torch), which the "
                          "torch-free netx import leaves out", where="lava-dl netx")


class _StubLoader(importlib.abc.Loader):
    def __init__(self, origin: str | None) -> None:
        self.origin = origin

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        mod = ModuleType(spec.name)
        # the real file's path: Lava looks for process models next to every module of a
        # package (and fails on a module without a file); it then skips the file itself
        # because it cannot import torch
        mod.__file__ = self.origin or __file__
        if spec.name in _STUB_PACKAGES:
            mod.__path__ = []
        if spec.name.endswith(".rf"):
            mod.neuron_params = _rf_params  # type: ignore[attr-defined]
        return mod

    def exec_module(self, module: ModuleType) -> None:
        return None


class _NoTorchFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname in _STUB_PACKAGES or fullname in _STUB_MODULES:
            real = importlib.machinery.PathFinder.find_spec(fullname, path)
            origin = real.origin if real is not None else None
            return importlib.machinery.ModuleSpec(fullname, _StubLoader(origin),
                                                  is_package=fullname in _STUB_PACKAGES)
        return None


def _install_hook() -> None:
    if not any(isinstance(f, _NoTorchFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoTorchFinder())


def import_netx() -> ModuleType:
    """Import and return ``lava.lib.dl.netx`` (with Lava's 3.11 fix and without torch)."""
    import_lava()
    _install_hook()
    try:
        return importlib.import_module("lava.lib.dl.netx")
    except ModuleNotFoundError as exc:
        raise LavaExportError(
            f"lava-dl is not installed ({exc.name} missing); install it with "
            "`pip install --no-deps --ignore-requires-python lava-dl==0.6.0` "
            "(the Makefile's setup does this)", where="lava-dl netx") from None


def netx_available() -> bool:
    """True when lava-dl's netx can be imported this way."""
    try:
        import_netx()
    except LavaExportError:
        return False
    return True


def run_netx_lava(path: Any, steps: int, *, bias: dict[int, Any] | None = None,
                  inputs: Any = None, probe_state: bool = True,
                  layers: Any = None, reset_interval: int | None = None,
                  timeout_s: float | None = 600.0) -> list[dict[str, Any]]:
    """Run a netx file in Lava's fixed-point CPU models (lava-dl's ``hdf5.Network``).

    bias: {block index: bias mantissas, flattened in C order of the block's (x, y, c)
    shape} for the blocks' neurons (lava-dl feeds images this way); inputs: (T, n) ints
    sent to ``net.inp`` by a ring buffer. Returns per block (netx's ``net.layers``) its
    spikes "s" (T, n; graded payloads as ints) and, with probe_state, its state variables
    ("u", "v" of LIF neurons; "sigma", "act", "residue" of sigma-delta ones), flattened in
    C order
    (layers: the block indices to monitor, default all; the others get empty dicts).
    Lava is stopped on every path.
    """
    import numpy as np

    from compiler.lava.runner import run_and_read

    netx = import_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    net = netx.hdf5.Network(net_config=str(path), reset_interval=reset_interval)
    for i, b in (bias or {}).items():
        nrn = net.layers[i].neuron
        nrn.bias_mant.init = np.asarray(b, np.int64).reshape(nrn.bias_mant.shape).astype(np.int32)
    if inputs is not None:
        x = np.asarray(inputs)
        shape = tuple(net.inp.shape)
        src = RingBuffer(data=np.moveaxis(x.reshape(x.shape[0], *shape), 0, -1).astype(np.int32))
        src.s_out.connect(net.inp)
    targets: list[tuple[str, Any, Any]] = []
    spikes: dict[str, Any] = {}
    probes: dict[str, Any] = {}
    watch = set(range(len(net.layers)) if layers is None else layers)
    for i, layer in enumerate(net.layers):
        if i not in watch:
            continue
        nrn = layer.neuron
        shape = tuple(nrn.s_out.shape)
        state = [v for v in ("u", "v", "sigma", "act", "residue") if hasattr(nrn, v)]
        names = [("s", nrn.s_out)] + ([(v, getattr(nrn, v)) for v in state]
                                      if probe_state else [])
        for var, target in names:
            mon = Monitor()
            mon.probe(target, steps)
            key = f"{i}.{var}"
            probes[key] = np.zeros((steps, *shape), np.int32)
            targets.append((key, target, mon))
    run_and_read(net, Loihi2SimCfg(select_tag="fixed_pt"), RunSteps(num_steps=steps), targets,
                 spikes, probes, timeout_s)
    out: list[dict[str, Any]] = []
    for i in range(len(net.layers)):
        if i not in watch:
            out.append({})
            continue
        out.append({k.split(".", 1)[1]: v.reshape(steps, -1).astype(np.int64)
                    for k, v in probes.items() if k.split(".", 1)[0] == str(i)})
    return out

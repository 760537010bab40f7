"""A board that injects seeded faults into any other board: ``faulty:SPEC+INNER``.

SPEC is ``KIND=RATE[,KIND=RATE...][,seed=S]``; every fault is drawn from one generator
seeded with S (default 0), so the same calls give the same faults:

* ``drop=p`` — each output spike is lost with probability p;
* ``duplicate=p`` — each output spike is also delivered one step later with probability p;
* ``stuck=p`` — a fraction p of the LIF neurons (at least one) fire at every step,
  chosen when the image is loaded;
* ``bitflip=p`` — each synapse weight byte has one bit flipped with probability p (at
  least one), when the image is loaded (read_weights shows them, as real memory would);
* ``delay=p`` — each step's outputs (spikes and probes) arrive one step late with
  probability p;
* ``jitter=p`` — each step's reported latency grows by up to 50 % with probability p, and
  each call sleeps up to 2 ms (a link with latency jitter);
* ``disconnect=p`` — each step of a run loses the link with probability p: the run raises
  :class:`BoardConnectionError` naming the step, and the inner board is reset.

Faults that touch outputs apply to what the board returns; the inner board's own state is
that of a healthy board (as with faults on a link or in readout).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from neurochip.board import Board, BoardConnectionError
from neurochip.errors import BoardError

if TYPE_CHECKING:
    from neurochip import ChipImage, RunResult

__all__ = ["FAULT_KINDS", "FaultSpec", "FaultyBoard"]

FAULT_KINDS = ("drop", "duplicate", "stuck", "bitflip", "delay", "jitter", "disconnect")


@dataclass
class FaultSpec:
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        where = f"faulty board spec {text!r}"
        rates: dict[str, float] = {}
        seed = 0
        for item in filter(None, (s.strip() for s in text.split(","))):
            key, eq, val = item.partition("=")
            if not eq:
                raise BoardError(f"{item!r} is not KIND=RATE", where=where)
            if key == "seed":
                try:
                    seed = int(val)
                except ValueError:
                    raise BoardError(f"seed must be an integer, got {val!r}", where=where,
                                     field="seed") from None
                continue
            if key not in FAULT_KINDS:
                raise BoardError(f"unknown fault kind {key!r}; kinds are "
                                 f"{', '.join(FAULT_KINDS)}", where=where, field=key)
            try:
                rate = float(val)
            except ValueError:
                rate = float("nan")
            if not 0.0 <= rate <= 1.0:
                raise BoardError(f"rate must be in [0, 1], got {val!r}", where=where, field=key)
            if key in rates:
                raise BoardError(f"{key!r} given twice", where=where, field=key)
            rates[key] = rate
        if not rates:
            raise BoardError("no fault given; e.g. drop=0.05,seed=1", where=where)
        return cls(rates, seed)

    def __str__(self) -> str:
        return ",".join([f"{k}={v:g}" for k, v in self.rates.items()] + [f"seed={self.seed}"])


class FaultyBoard(Board):
    """Wraps ``inner`` and injects the faults of ``spec`` (a FaultSpec or its text)."""

    backend = "faulty"

    def __init__(self, inner: Board, spec: FaultSpec | str) -> None:
        super().__init__()
        self.inner = inner
        self.spec = spec if isinstance(spec, FaultSpec) else FaultSpec.parse(spec)
        self.name = f"faulty:{self.spec}+{inner.name}"
        self.rng = np.random.default_rng(self.spec.seed)
        #: LIF neuron indices (image order) stuck at firing
        self.stuck: NDArray[np.int64] = np.zeros(0, np.int64)
        #: (connection, synapse index, bit) of every flipped weight bit
        self.flips: list[tuple[str, int, int]] = []
        self.chunked_runs = getattr(inner, "chunked_runs", True)
        #: how many faults of each kind were injected so far
        self.injected: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)

    def rate(self, kind: str) -> float:
        return self.spec.rates.get(kind, 0.0)

    def _load(self, image: ChipImage) -> None:
        from neurochip import ChipImage

        self.rng = np.random.default_rng(self.spec.seed)
        p = self.rate("bitflip")
        self.flips = []
        if p > 0:
            arrays = dict(image.arrays)
            sites = [(i, c.name) for i, c in enumerate(image.connections)
                     if arrays[f"conn/{i}/w"].size]
            for i, name in sites:
                w = arrays[f"conn/{i}/w"].copy()
                hit = np.flatnonzero(self.rng.random(w.size) < p)
                for k in hit:
                    bit = int(self.rng.integers(0, 8))
                    w[k] ^= np.uint8(1 << bit)
                    self.flips.append((name, int(k), bit))
                arrays[f"conn/{i}/w"] = w
            if not self.flips and sites:
                i, name = sites[int(self.rng.integers(0, len(sites)))]
                w = arrays[f"conn/{i}/w"].copy()
                k, bit = int(self.rng.integers(0, w.size)), int(self.rng.integers(0, 8))
                w[k] ^= np.uint8(1 << bit)
                self.flips.append((name, k, bit))
                arrays[f"conn/{i}/w"] = w
            self.injected["bitflip"] += len(self.flips)
            image = ChipImage(image.hw, list(image.populations), list(image.connections),
                              list(image.cores), arrays, image.learning, dict(image.metadata))
        n = image.n_neurons
        p = self.rate("stuck")
        if p > 0 and n:
            k = max(1, round(p * n))
            self.stuck = np.sort(self.rng.choice(n, size=min(k, n), replace=False))
            self.injected["stuck"] += int(self.stuck.size)
        else:
            self.stuck = np.zeros(0, np.int64)
        self.inner.load(image)

    def _sleep(self) -> None:
        if self.rate("jitter") > 0:
            time.sleep(float(self.rng.random()) * 0.002)

    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all"
            ) -> RunResult:
        r = self.inner.run(inputs, steps, probes=probes, spikes=spikes)
        T = r.steps
        rng = self.rng
        pd = self.rate("disconnect")
        if pd > 0 and T:
            lost = np.flatnonzero(rng.random(T) < pd)
            if lost.size:
                self.injected["disconnect"] += 1
                self.inner.reset()
                t = int(r.t_start + lost[0])
                raise BoardConnectionError(f"link lost at step {t}; the board was reset",
                                           where=self.name, field="step", value=t)
        self._sleep()
        ax = 1 if r.batched else 0
        pops = {p.name: p for p in self.image.lif_populations}
        for name, s in r.spikes.items():
            s = s.copy()
            if self.rate("drop") > 0:
                gone = s & (rng.random(s.shape) < self.rate("drop"))
                self.injected["drop"] += int(gone.sum())
                s &= ~gone
            if self.rate("duplicate") > 0 and T > 1:
                dup = s & (rng.random(s.shape) < self.rate("duplicate"))
                moved = np.zeros_like(dup)
                if ax:
                    moved[:, 1:] = dup[:, :-1]
                else:
                    moved[1:] = dup[:-1]
                self.injected["duplicate"] += int((moved & ~s).sum())
                s |= moved
            if self.stuck.size:
                p = pops[name]
                local = self.stuck[(self.stuck >= p.offset) & (self.stuck < p.offset + p.size)]
                s[..., local - p.offset] = True
            r.spikes[name] = s
        pdl = self.rate("delay")
        if pdl > 0 and T > 1:
            late = np.flatnonzero(rng.random(T - 1) < pdl)
            self.injected["delay"] += int(late.size)
            for t in late[::-1]:
                groups: tuple[dict[str, Any], ...] = (r.spikes, r.probes)
                for group in groups:
                    for name, a in group.items():
                        a = a.copy()
                        if ax:
                            a[:, t + 1] = a[:, t]
                            a[:, t] = 0
                        else:
                            a[t + 1] = a[t]
                            a[t] = 0
                        group[name] = a
        pj = self.rate("jitter")
        if pj > 0 and T:
            lat = r.latency_cycles.copy()
            hit = rng.random(lat.shape) < pj
            extra = (lat * rng.random(lat.shape) * 0.5).astype(lat.dtype) + 1
            r.latency_cycles = np.where(hit, lat + extra, lat)
            self.injected["jitter"] += int(hit.sum())
        return r

    def learn(self, inputs: Mapping[str, Any], targets: Mapping[str, Any] | None = None,
              reward: Any = None, *, epochs: int = 1, shuffle: int | None = None,
              reset: bool = True) -> Any:
        self._sleep()
        return self.inner.learn(inputs, targets, reward, epochs=epochs, shuffle=shuffle,
                                reset=reset)

    def read_weights(self, connection: str) -> NDArray[np.int64]:
        return self.inner.read_weights(connection)

    def write_weights(self, connection: str, weights: Any) -> None:
        self.inner.write_weights(connection, weights)

    def read_state(self) -> dict[str, NDArray[np.int64]]:
        return self.inner.read_state()

    def write_state(self, u: Any = None, v: Any = None) -> None:
        self.inner.write_state(u, v)

    def reset(self) -> None:
        self.inner.reset()

    def supported_ops(self) -> list[str]:
        return self.inner.supported_ops()

    def info(self) -> dict[str, Any]:
        out = self.inner.info()
        out = {**out, "board": self.name, "backend": f"faulty+{out.get('backend')}",
               "faults": dict(self.spec.rates), "seed": self.spec.seed}
        if self._digest is not None:
            out["image"] = self._digest  # the image as given (bit flips are faults)
        return out

    def close(self) -> None:
        self.inner.close()

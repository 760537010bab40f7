"""Golden vectors: record a run once, replay it against any board.

A recording (``.ngold``) is a zip of ``manifest.json``, the chip image (``image.nchip``) and
``.npy`` arrays (never pickled): the inputs, every recorded spike train and probe, the
per-step counters, cycles, latency and energy, and the weights of every connection; the
manifest holds the hashes of the image and of its hardware spec and the recording board's
``info()``.

:func:`replay` loads the recording's image on a board, checks the weights it reads back,
runs the same inputs and compares everything, exactly by default, or within a
:class:`Tolerance` for boards that are not bit-exact (spike-time jitter in steps, relative
spike-count error, absolute error per probe). The :class:`ReplayReport` names the first
divergence (step, population, neuron, expected, got) and summarises every difference.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from neurochip.board import Board, UnsupportedOperation, image_digest, open_board
from neurochip.core.safeio import atomic_path
from neurochip.errors import BoardError, ConfigError, ImageFormatError

if TYPE_CHECKING:
    from neurochip import ChipImage, RunResult

__all__ = ["Divergence", "Recording", "ReplayReport", "Tolerance", "record", "replay"]

FORMAT = "neurochip-golden"
VERSION = 1
_MAX_MEMBERS = 4096
_MAX_MEMBER = 1 << 30
_MAX_TOTAL = 4 << 30


# ------------------------------------------------------------------------------------------
# Recordings
# ------------------------------------------------------------------------------------------


@dataclass
class Recording:
    """One recorded run: image, inputs, what was recorded and what the board answered."""

    image: ChipImage
    inputs: dict[str, NDArray[Any]]
    steps: int
    probes: list[str]
    spikes: list[str]
    result: RunResult
    weights: dict[str, NDArray[np.int64]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def image_hash(self) -> str:
        return str(self.meta.get("image", {}).get("digest") or image_digest(self.image))

    def save(self, path: str | Path) -> Path:
        """Write the recording (``*.ngold``); the file is replaced atomically."""
        path = Path(path)
        r = self.result
        arrays: dict[str, NDArray[Any]] = {}
        for k, v in self.inputs.items():
            arrays[f"inputs/{k}"] = np.asarray(v)
        for k, v in r.spikes.items():
            arrays[f"spikes/{k}"] = v
        for k, v in r.probes.items():
            arrays[f"probes/{k}"] = v
        for k, v in r.counters.items():
            arrays[f"counters/{k}"] = v
        for k, v in self.weights.items():
            arrays[f"weights/{k}"] = v
        arrays["cycles"] = r.cycles
        arrays["latency_cycles"] = r.latency_cycles
        arrays["energy"] = r.energy
        man = {
            "format": FORMAT, "version": VERSION, **self.meta,
            "steps": self.steps, "probes": self.probes, "spikes": self.spikes,
            "batched": bool(r.batched), "cores": [int(c) for c in r.cores],
            "cycle_ns": float(r.cycle_ns), "t_start": int(r.t_start),
            "members": {k: {"dtype": v.dtype.str, "shape": list(v.shape)}
                        for k, v in arrays.items()},
        }
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            img_path = self.image.save(Path(d) / "image.nchip")
            with atomic_path(path) as tmp, \
                    zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                zf.writestr("manifest.json", json.dumps(man, indent=1, sort_keys=True))
                zf.write(img_path, "image.nchip")
                for k, v in arrays.items():
                    buf = io.BytesIO()
                    np.save(buf, np.ascontiguousarray(v), allow_pickle=False)
                    zf.writestr(f"arrays/{k}.npy", buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        """Read a recording written by :meth:`save` (sizes checked before reading)."""
        import tempfile

        from neurochip import ChipImage, RunResult

        path = Path(path)
        where = f"recording {path}"
        if not path.is_file():
            raise ConfigError("file does not exist", where=where)
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ImageFormatError(f"not a recording (not a readable zip: {exc})",
                                   where=where) from None
        with zf:
            infos = zf.infolist()
            if len(infos) > _MAX_MEMBERS:
                raise ImageFormatError(f"{len(infos)} members; at most {_MAX_MEMBERS}",
                                       where=where)
            if sum(i.file_size for i in infos) > _MAX_TOTAL or any(
                    i.file_size > _MAX_MEMBER for i in infos):
                raise ImageFormatError("members too large", where=where)
            try:
                man = json.loads(zf.read("manifest.json"))
                blob = zf.read("image.nchip")
            except KeyError as exc:
                raise ImageFormatError(f"member missing: {exc}", where=where) from None
            except (ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ImageFormatError(f"corrupt: {exc}", where=where) from None
            if not isinstance(man, dict) or man.get("format") != FORMAT:
                raise ImageFormatError("not a neurochip recording (wrong 'format')",
                                       where=where)
            if man.get("version") != VERSION:
                raise ImageFormatError(f"recording version {man.get('version')!r}; this "
                                       f"neurochip reads version {VERSION}", where=where)
            arrays: dict[str, NDArray[Any]] = {}
            members = man.get("members")
            if not isinstance(members, dict):
                raise ImageFormatError("manifest has no member table", where=where)
            for k, m in members.items():
                try:
                    a = np.load(io.BytesIO(zf.read(f"arrays/{k}.npy")), allow_pickle=False)
                except KeyError:
                    raise ImageFormatError(f"array {k!r} is missing", where=where) from None
                except (ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise ImageFormatError(f"array {k!r} is corrupt: {exc}",
                                           where=where) from None
                if a.dtype.str != m.get("dtype") or list(a.shape) != m.get("shape"):
                    raise ImageFormatError(f"array {k!r} is {a.dtype.str} {a.shape}; the "
                                           f"manifest says {m}", where=where)
                arrays[k] = a
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "image.nchip"
            p.write_bytes(blob)
            image = ChipImage.load(p)

        def group(prefix: str) -> dict[str, NDArray[Any]]:
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

        try:
            result = RunResult(group("spikes/"), group("probes/"), group("counters/"),
                               arrays["cycles"], arrays["latency_cycles"], arrays["energy"],
                               list(man["cores"]), float(man["cycle_ns"]), int(man["t_start"]),
                               int(man["steps"]), bool(man["batched"]))
            meta = {k: man[k] for k in ("image", "board", "neurochip") if k in man}
            rec = cls(image, group("inputs/"), int(man["steps"]), list(man["probes"]),
                      list(man["spikes"]), result, group("weights/"), meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageFormatError(f"manifest is incomplete: {exc}", where=where) from None
        digest = man.get("image", {}).get("digest")
        if digest is not None and digest != image_digest(image):
            raise ImageFormatError("the image does not match its recorded hash",
                                   where=where, field="image.digest")
        return rec


def _board(board: Board | str) -> tuple[Board, bool]:
    if isinstance(board, Board):
        return board, False
    return open_board(board), True


def record(image: ChipImage | str | Path, inputs: Mapping[str, Any] | None = None,
           steps: int | None = None, *, probes: Iterable[str] | str = "all",
           spikes: str | Iterable[str] | None = "all", board: Board | str = "emulator",
           path: str | Path | None = None) -> Recording:
    """Run ``image`` on ``board`` and keep everything as golden vectors.

    probes: names, or "all" for u and v of every LIF population. Saved to ``path`` if
    given. The default board is the emulator (bit-exact with the reference model).
    """
    from neurochip import ChipImage
    from neurochip.core.results import recorded_populations

    if not isinstance(image, ChipImage):
        image = ChipImage.load(image)
    plist = ([f"{p.name}.{v}" for p in image.lif_populations for v in "vu"]
             if probes == "all" else [str(p) for p in probes])
    pops = recorded_populations(image, spikes, "record")
    b, owned = _board(board)
    try:
        b.load(image)
        weights: dict[str, NDArray[np.int64]] = {}
        try:
            weights = {c.name: b.read_weights(c.name) for c in image.connections}
        except UnsupportedOperation:
            pass
        ins = {k: np.asarray(v) for k, v in (inputs or {}).items()}
        result = b.run(ins, steps, probes=plist, spikes=pops)
        info = b.info()
    finally:
        if owned:
            b.close()
    import neurochip

    meta = {"image": {"digest": image_digest(image),
                      "hw": {"name": image.hw.name, "hash": image.hw.spec_hash}},
            "board": _jsonable(info), "neurochip": neurochip.__version__}
    rec = Recording(image, ins, int(result.steps), plist, pops, result, weights, meta)
    if path is not None:
        rec.save(path)
    return rec


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


# ------------------------------------------------------------------------------------------
# Tolerances and reports
# ------------------------------------------------------------------------------------------


@dataclass
class Tolerance:
    """How close a board must come to a recording (the default: exactly equal).

    jitter: a spike may move by up to this many steps (spike counts per neuron must match);
    rate: per neuron, the spike count may differ by this fraction of the recorded count
    (at least one spike) — spike times are then not compared unless jitter is given;
    probe: absolute error allowed on every probe; per_probe: {probe: absolute error};
    counters: compare counters, cycles, latency and energy (exactly) when the board
    reports them.
    """

    jitter: int = 0
    rate: float | None = None
    probe: float = 0.0
    per_probe: dict[str, float] = field(default_factory=dict)
    counters: bool = True

    @property
    def exact(self) -> bool:
        return (self.jitter == 0 and self.rate is None and self.probe == 0
                and not any(self.per_probe.values()))

    @classmethod
    def parse(cls, items: Iterable[str]) -> Tolerance:
        """From ``KEY=VALUE`` texts: jitter=STEPS, rate=FRACTION, probe=ABS,
        probe:NAME=ABS, counters=on|off (comma-separated or repeated)."""
        tol = cls()
        for text in items:
            for item in filter(None, (s.strip() for s in text.split(","))):
                key, eq, val = item.partition("=")
                where = f"tolerance {item!r}"
                if not eq:
                    raise ConfigError("use KEY=VALUE (jitter, rate, probe, probe:NAME, "
                                      "counters)", where=where)
                try:
                    if key == "jitter":
                        tol.jitter = int(val)
                        if tol.jitter < 0:
                            raise ValueError
                    elif key == "rate":
                        tol.rate = float(val)
                        if not 0 <= tol.rate < float("inf"):
                            raise ValueError
                    elif key == "probe":
                        tol.probe = float(val)
                        if not 0 <= tol.probe < float("inf"):
                            raise ValueError
                    elif key.startswith("probe:") and len(key) > 6:
                        x = float(val)
                        if not 0 <= x < float("inf"):
                            raise ValueError
                        tol.per_probe[key[6:]] = x
                    elif key == "counters":
                        if val not in ("on", "off"):
                            raise ValueError
                        tol.counters = val == "on"
                    else:
                        raise ConfigError("unknown key; use jitter, rate, probe, probe:NAME "
                                          "or counters", where=where)
                except ValueError:
                    raise ConfigError(f"bad value {val!r}", where=where) from None
        return tol


@dataclass
class Divergence:
    """Where a board first differed from a recording."""

    kind: str  # "spikes", "probe", "counter", "weights" or "error"
    what: str  # population, probe, counter or connection name (or the error type)
    step: int | None = None
    neuron: int | None = None
    sample: int | None = None
    expected: Any = None
    got: Any = None
    detail: str = ""

    def __str__(self) -> str:
        parts = []
        if self.step is not None:
            parts.append(f"step {self.step}")
        if self.sample is not None:
            parts.append(f"sample {self.sample}")
        label = {"spikes": "population", "probe": "probe", "counter": "counter",
                 "weights": "connection", "error": "board error"}.get(self.kind, self.kind)
        parts.append(f"{label} '{self.what}'")
        if self.neuron is not None:
            parts.append(f"{'synapse (post, pre)' if self.kind == 'weights' else 'neuron'} "
                         f"{self.neuron}")
        head = ", ".join(parts)
        body = f": expected {self.expected}, got {self.got}" if self.kind != "error" else ""
        return head + body + (f" ({self.detail})" if self.detail else "")


@dataclass
class ReplayReport:
    ok: bool
    first: Divergence | None
    divergences: list[Divergence]
    #: per compared item, how many elements differ (0 when equal)
    counts: dict[str, int]
    not_compared: list[str]
    board: dict[str, Any]
    tolerance: Tolerance

    def summary(self) -> str:
        mode = "exact" if self.tolerance.exact else f"tolerance {self.tolerance}"
        name = self.board.get("board", "?")
        lines = [f"replay on {name} ({mode}): "
                 + ("REPRODUCED" if self.ok else "DIVERGED")]
        if self.first is not None:
            lines.append(f"first divergence: {self.first}")
        bad = {k: v for k, v in self.counts.items() if v}
        lines.append(f"compared {len(self.counts)} items, {len(bad)} differ")
        for k, v in bad.items():
            lines.append(f"  {k}: {v} differences")
        for k in self.not_compared:
            lines.append(f"  not compared: {k}")
        return "\n".join(lines)


def _first_index(mask: NDArray[np.bool_], batched: bool) -> tuple[int, int | None, int]:
    """(step, sample, neuron) of the earliest True of a (T, n) or (B, T, n) mask."""
    idx = np.argwhere(mask)
    if batched:
        order = np.lexsort((idx[:, 2], idx[:, 0], idx[:, 1]))
        b, t, i = idx[order[0]]
        return int(t), int(b), int(i)
    t, i = idx[0]
    return int(t), None, int(i)


def _spike_divergence(name: str, exp: NDArray[Any], got: NDArray[Any], batched: bool,
                      t0: int, tol: Tolerance) -> tuple[int, Divergence | None]:
    if tol.jitter == 0 and tol.rate is None:
        mask = exp != got
        n = int(mask.sum())
        if not n:
            return 0, None
        t, b, i = _first_index(mask, batched)
        e = exp[b, t, i] if batched else exp[t, i]
        return n, Divergence("spikes", name, t0 + t, i, b, "spike" if e else "no spike",
                             "no spike" if e else "spike")
    E = exp if batched else exp[None]
    G = got if batched else got[None]
    bad: list[tuple[int, int, int, Divergence]] = []
    for b in range(E.shape[0]):
        ce, cg = E[b].sum(0), G[b].sum(0)
        for i in range(E.shape[2]):
            if tol.rate is not None and abs(int(cg[i]) - int(ce[i])) > tol.rate * max(
                    int(ce[i]), 1):
                te = np.flatnonzero(E[b, :, i])
                tg = np.flatnonzero(G[b, :, i])
                m = min(te.size, tg.size)
                t = int(te[m]) if te.size > m else int(tg[m]) if tg.size > m else 0
                bad.append((t, b, i, Divergence(
                    "spikes", name, t0 + t, i, b if batched else None, f"{int(ce[i])} spikes",
                    f"{int(cg[i])} spikes", f"rate tolerance {tol.rate:g}")))
                continue
            if tol.rate is not None and tol.jitter == 0:
                continue
            te, tg = np.flatnonzero(E[b, :, i]), np.flatnonzero(G[b, :, i])
            m = min(te.size, tg.size)
            far = np.flatnonzero(np.abs(te[:m] - tg[:m]) > tol.jitter)
            if far.size or te.size != tg.size:
                k = int(far[0]) if far.size else m
                t = int(min(te[k] if k < te.size else 1 << 62, tg[k] if k < tg.size else 1 << 62))
                bad.append((t, b, i, Divergence(
                    "spikes", name, t0 + t, i, b if batched else None,
                    f"spike at step {t0 + int(te[k])}" if k < te.size else "no spike",
                    f"spike at step {t0 + int(tg[k])}" if k < tg.size else "no spike",
                    f"jitter tolerance {tol.jitter} steps")))
    if not bad:
        return 0, None
    bad.sort(key=lambda x: (x[0], x[1], x[2]))
    return len(bad), bad[0][3]


def _array_divergence(kind: str, name: str, exp: NDArray[Any], got: NDArray[Any],
                      batched: bool, t0: int, atol: float, per_step: bool = False
                      ) -> tuple[int, Divergence | None]:
    if exp.shape != got.shape:
        return int(exp.size) or 1, Divergence(kind, name, None, None, None, f"shape {exp.shape}",
                                               f"shape {got.shape}")
    diff = np.abs(exp.astype(np.float64) - got.astype(np.float64))
    mask = diff > atol
    n = int(mask.sum())
    if not n:
        return 0, None
    if per_step:  # (T,) or (B, T): no neuron axis
        m2 = mask[..., None]
        t, b, _ = _first_index(m2, batched)
        e = exp[b, t] if batched else exp[t]
        g = got[b, t] if batched else got[t]
        return n, Divergence(kind, name, t0 + t, None, b, _num(e), _num(g))
    t, b, i = _first_index(mask, batched)
    e = exp[b, t, i] if batched else exp[t, i]
    g = got[b, t, i] if batched else got[t, i]
    detail = f"core column {i}" if kind == "counter" else (f"tolerance {atol:g}" if atol else "")
    return n, Divergence(kind, name, t0 + t, None if kind == "counter" else i, b, _num(e),
                         _num(g), detail)


def _num(x: Any) -> Any:
    x = np.asarray(x).item()
    return x


def replay(recording: Recording | str | Path, board: Board | str = "emulator", *,
           tolerance: Tolerance | None = None) -> ReplayReport:
    """Replay ``recording`` on ``board`` and compare (see the module docstring).

    A board that fails while replaying (a lost link, a crash) is a divergence of kind
    "error" at the step it names; a board that cannot be opened or loaded raises.
    """
    rec = recording if isinstance(recording, Recording) else Recording.load(recording)
    tol = tolerance or Tolerance()
    b, owned = _board(board)
    divs: list[Divergence] = []
    counts: dict[str, int] = {}
    skipped: list[str] = []
    try:
        b.load(rec.image)
        info = _jsonable(b.info())
        want_hw = rec.meta.get("image", {}).get("hw", {}).get("hash")
        have_hw = (info.get("hw") or {}).get("hash")
        if have_hw is not None and want_hw is not None and have_hw != want_hw:
            raise BoardError(f"board holds hardware spec {have_hw[:12]}, the recording "
                             f"{want_hw[:12]}", where=b.name, field="hw")
        have_img = info.get("image")
        if have_img is not None and have_img != rec.image_hash:
            raise BoardError(f"board reports image {str(have_img)[:12]} after loading the "
                             f"recording's image {rec.image_hash[:12]}", where=b.name,
                             field="image")
        for name, w in rec.weights.items():
            try:
                got_w = b.read_weights(name)
            except UnsupportedOperation as exc:
                skipped.append(f"weights ({exc.message})")
                break
            mask = got_w != w if got_w.shape == w.shape else np.ones((1, 1), bool)
            counts[f"weights {name}"] = int(mask.sum())
            if mask.any():
                r, q = (int(x) for x in np.argwhere(mask)[0])
                divs.append(Divergence("weights", name, None, (r, q), None,  # type: ignore[arg-type]
                                       int(w[r, q]) if got_w.shape == w.shape else w.shape,
                                       int(got_w[r, q]) if got_w.shape == w.shape
                                       else got_w.shape))
        b.reset()
        try:
            got = b.run(rec.inputs, rec.steps, probes=rec.probes, spikes=rec.spikes)
        except BoardError as exc:
            if isinstance(exc, UnsupportedOperation):
                raise
            step = exc.value if exc.field == "step" else None
            divs.append(Divergence("error", type(exc).__name__, step, None, None,
                                   detail=exc.message))
            counts["run"] = 1
            got = None
        if got is not None:
            _compare(rec, got, tol, divs, counts, skipped)
    finally:
        if owned:
            b.close()
    first = _earliest(divs)
    return ReplayReport(not divs, first, divs, counts, skipped, info, tol)


def _earliest(divs: list[Divergence]) -> Divergence | None:
    if not divs:
        return None
    rank = {"weights": 0, "error": 3, "spikes": 1, "probe": 2, "counter": 4}

    def key(d: Divergence) -> tuple[int, int, int]:
        if d.kind == "weights":
            return (-1, 0, 0)
        return (d.step if d.step is not None else 1 << 62, rank.get(d.kind, 9), d.sample or 0)

    return min(divs, key=key)


def _compare(rec: Recording, got: RunResult, tol: Tolerance, divs: list[Divergence],
             counts: dict[str, int], skipped: list[str]) -> None:
    want = rec.result
    batched = want.batched
    t0 = 0
    if got.steps != want.steps or got.batched != want.batched:
        divs.append(Divergence("error", "shape", None, None, None,
                               f"{want.steps} steps (batched {want.batched})",
                               f"{got.steps} steps (batched {got.batched})"))
        counts["run"] = 1
        return
    for name in rec.spikes:
        if name not in got.spikes:
            divs.append(Divergence("spikes", name, None, None, None, "recorded", "missing"))
            counts[f"spikes {name}"] = 1
            continue
        n, d = _spike_divergence(name, want.spikes[name], got.spikes[name], batched, t0, tol)
        counts[f"spikes {name}"] = n
        if d is not None:
            divs.append(d)
    for name in rec.probes:
        if name not in got.probes:
            divs.append(Divergence("probe", name, None, None, None, "recorded", "missing"))
            counts[f"probe {name}"] = 1
            continue
        atol = tol.per_probe.get(name, tol.probe)
        n, d = _array_divergence("probe", name, want.probes[name], got.probes[name], batched,
                                 t0, atol)
        counts[f"probe {name}"] = n
        if d is not None:
            divs.append(d)
    if not tol.counters:
        skipped.append("counters, cycles, latency and energy (counters=off)")
        return
    if got.extra.get("accounting") is False or (want.counters and not got.counters):
        skipped.append("counters, cycles, latency and energy (the board does not report "
                       "them)")
        return
    for name in want.counters:
        if name not in got.counters:
            divs.append(Divergence("counter", name, None, None, None, "recorded", "missing"))
            counts[f"counter {name}"] = 1
            continue
        n, d = _array_divergence("counter", name, want.counters[name], got.counters[name],
                                 batched, t0, 0)
        counts[f"counter {name}"] = n
        if d is not None:
            divs.append(d)
    for name in ("cycles", "energy"):
        n, d = _array_divergence("counter", name, getattr(want, name), getattr(got, name),
                                 batched, t0, 0)
        counts[name] = n
        if d is not None:
            divs.append(d)
    n, d = _array_divergence("counter", "latency", want.latency_cycles, got.latency_cycles,
                             batched, t0, 0, per_step=True)
    counts["latency"] = n
    if d is not None:
        divs.append(d)

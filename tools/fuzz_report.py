"""Fault injection report: thousands of corrupted inputs, each run in a child process.

Families: image bytes (bit flips of signed .nchip files), zip structure (lying sizes,
duplicates, truncation, bombs, strays), manifest fields (signed: the digest must catch it;
unsigned: the verifier must, or the image must run correctly), array contents (re-signed
images with boundary values: the verifier must catch them or they must run correctly), NIR
parameters and structure (HDF5 datasets replaced, reshaped, deleted), YAML fields, API
calls, CLI arguments and board frames (malformed or out-of-range requests sent to a board
server in the worker after the handshake, sometimes after loading an image: every reply
must be a typed error or a correct answer, and the server must go on serving).

Each case runs in a worker child process under a memory limit (``resource.setrlimit``
RLIMIT_AS = the worker's size after start-up + ``--mem-gib``); a worker that dies is a
``crash`` (and is replaced), one that does not answer within ``--timeout`` s a ``hang``,
a MemoryError under the limit a ``blowup``. The worker classifies the rest: ``typed``
(a neurochip error), ``ok`` (accepted and correct: the Numba emulator and the reference
agree; a file reads back as written), ``silent`` (corrupted data accepted), ``untyped``.
NIR files carry no digest, so an accepted NIR mutation that changes the compiled image is
counted apart (``nir_changed``), not as a silent acceptance of a corrupted image.

    PYTHONPATH=. python tools/fuzz_report.py --cases 5000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
NAMES = ["feed_forward", "recurrent", "convolutional"]
FAMILIES = {  # family: share of the cases
    "image_bytes": 0.15, "zip_structure": 0.09, "manifest": 0.15, "arrays": 0.15,
    "nir": 0.13, "yaml": 0.09, "api": 0.09, "cli": 0.07, "board_frames": 0.08,
}
OUTCOMES = ["typed", "ok", "silent", "untyped", "crash", "hang", "blowup", "nir_changed"]


# ====================================================================== worker side


class _Worker:
    def __init__(self, tmp: Path) -> None:
        import io
        import zipfile

        import numpy as np

        import neurochip

        self.np, self.io, self.zipfile, self.nc = np, io, zipfile, neurochip
        self.tmp = tmp
        self.images = {n: neurochip.ChipImage.load(GOLDEN / f"{n}.nchip") for n in NAMES}
        self.signed: dict[str, bytes] = {}
        for n, img in self.images.items():
            p = img.save(tmp / f"{n}.nchip")
            self.signed[n] = p.read_bytes()
        from neurochip.fuzz import run_image

        for img in self.images.values():  # compile the kernels before the limit is set
            run_image(img, steps=2)
        self.hw_yaml = (ROOT / "hw_configs" / "loihi_like.yaml").read_text()
        self.nir_images: dict[str, Any] = {}
        self.bombs: dict[tuple[str, int], bytes] = {}
        from neurochip.board import EmulatorBoard
        from neurochip.board_remote import BoardServer, _image_bytes
        from neurochip.board_wire import pack

        self.board_server = BoardServer(("127.0.0.1", 0), EmulatorBoard, read_timeout=1.0,
                                        idle_timeout=10.0, max_frame=1 << 20,
                                        max_neuron_steps=10**6)
        self.board_server.start()
        ff = self.images["feed_forward"]
        self.load_frame = pack({"id": 1, "op": "load", "digest": ff.digest},
                               {"image": _image_bytes(ff)})

    # ------------------------------------------------------------------ helpers
    def members(self, data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
        with self.zipfile.ZipFile(self.io.BytesIO(data)) as zf:
            man = json.loads(zf.read("manifest.json"))
            return man, {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}

    def load_check(self, data: bytes, original: Any, must_reject: bool) -> str | None:
        """Load ``data``; accepted: 'silent' if it must have been rejected or differs."""
        from neurochip.fuzz import run_image

        img = self.nc.ChipImage.from_bytes(data)
        if must_reject and not img.equals(original):
            return "silent"
        run_image(img, steps=4)
        return None

    # ------------------------------------------------------------------ families
    def image_bytes(self, rng: Any) -> Any:
        from neurochip.fuzz import flip_bytes

        n = NAMES[int(rng.integers(3))]
        data = flip_bytes(self.signed[n], rng, int(rng.integers(1, 5)))
        return lambda: self.load_check(data, self.images[n], True)

    def zip_structure(self, rng: Any) -> Any:
        import struct

        from neurochip.fuzz import nchip_bytes

        n = NAMES[int(rng.integers(3))]
        raw = self.signed[n]
        man, members = self.members(raw)
        op = int(rng.integers(9))
        if op == 0:  # truncated
            data = raw[: int(rng.integers(len(raw)))]
        elif op == 1:  # a member missing
            k = sorted(members)[int(rng.integers(len(members)))]
            data = nchip_bytes(man, {m: v for m, v in members.items() if m != k})
        elif op == 2:  # a stray member
            data = nchip_bytes(man, {**members, "arrays/x.npy": b"\x93NUMPY"})
        elif op == 3:  # a bomb: a member inflating to far more than its compressed size
            big = int(rng.choice([1 << 26, 1 << 28]))
            if (n, big) not in self.bombs:
                k = "arrays/neurons/core.npy"
                buf = self.io.BytesIO()
                with self.zipfile.ZipFile(buf, "w",
                                          compression=self.zipfile.ZIP_DEFLATED) as zf:
                    zf.writestr("manifest.json", json.dumps(man))
                    for m, v in members.items():
                        if m == k:
                            with zf.open(m, "w", force_zip64=True) as fh:
                                chunk = bytes(1 << 20)
                                for _ in range(big >> 20):
                                    fh.write(chunk)
                        else:
                            zf.writestr(m, v)
                self.bombs[(n, big)] = buf.getvalue()
            data = self.bombs[(n, big)]
        elif op == 4:  # the central directory lies about a size
            data = bytearray(raw)
            cd = data.rfind(b"PK\x01\x02")
            off = cd + 24  # uncompressed size field
            struct.pack_into("<I", data, off, int(rng.choice([0, 1, 2**31, 2**32 - 1])))
            data = bytes(data)
        elif op == 5:  # a duplicate member
            k = sorted(members)[int(rng.integers(len(members)))]
            buf = self.io.BytesIO()
            with self.zipfile.ZipFile(buf, "w") as zf:
                zf.writestr("manifest.json", json.dumps(man))
                for m, v in members.items():
                    zf.writestr(m, v)
                zf.writestr(k, members[k][::-1])
            data = buf.getvalue()
        elif op == 6:  # not a zip at all / empty
            data = [b"", b"PK", b"\x00" * 100, raw[::-1]][int(rng.integers(4))]
        elif op == 7:  # deeply nested JSON
            d = int(rng.choice([100, 10_000, 200_000]))
            data = nchip_bytes(man, members).replace(b'"metadata": {', b'"metadata": {"x": '
                                                     + b"[" * d + b"]" * d + b", ", 1)
        else:  # the encryption flag set on a member
            data = bytearray(raw)
            cd = data.rfind(b"PK\x01\x02")
            data[cd + 8] |= 1
            data = bytes(data)
        return lambda: self.load_check(data, self.images[n], True)

    def manifest(self, rng: Any) -> Any:
        from neurochip.fuzz import mutate_manifest, nchip_bytes

        n = NAMES[int(rng.integers(3))]
        man, members = self.members(self.signed[n])
        digests = man["digests"]
        bad, _what = mutate_manifest(man, rng)
        signed = bool(rng.integers(2))
        if signed:
            bad["digests"] = digests
        data = nchip_bytes(bad, members)
        return lambda: self.load_check(data, self.images[n], signed)

    def arrays(self, rng: Any) -> Any:
        from neurochip.fuzz import mutate_arrays

        n = NAMES[int(rng.integers(3))]
        img, _what = mutate_arrays(self.images[n], rng)
        path = self.tmp / "arr.nchip"

        def case() -> None:
            # written (re-signed) and read back: only the verifier stands in the way
            from neurochip.core.image import ChipImage

            ChipImage.save(img, path)
            self.load_check(path.read_bytes(), img, False)

        return case

    def nir(self, rng: Any) -> Any:
        from neurochip.fuzz import mutate_nir_file

        n = NAMES[int(rng.integers(3))]
        src = GOLDEN / f"{n}.nir"
        dst = self.tmp / "m.nir"
        what = mutate_nir_file(src, dst, rng)

        def case() -> str | None:
            from neurochip.api import compile as nc_compile

            img = nc_compile(str(dst), "loihi_like")
            from neurochip.fuzz import run_image

            run_image(img, steps=3)
            base = self.nir_images.get(n)
            if base is None:
                base = self.nir_images[n] = nc_compile(str(src), "loihi_like")
            return None if _same_network(img, base) else f"nir_changed: {what}"

        return case

    def yaml(self, rng: Any) -> Any:
        from neurochip.fuzz import mutate_hw_yaml

        text, _what = mutate_hw_yaml(self.hw_yaml, rng)
        path = self.tmp / "hw.yaml"
        path.write_text(text)

        def case() -> None:
            import numpy as np

            hw = self.nc.load_hw(path)
            net = self.nc.Network(hw)
            net.add_input("in", 4)
            net.add_lif("out", 3, du=100, dv=100, vth=10)
            net.connect("in", "out", np.full((3, 4), 40))
            from neurochip.fuzz import run_image

            run_image(self.nc.compile(net, hw), steps=3)

        return case

    def api(self, rng: Any) -> Any:
        np = self.np
        from neurochip.fuzz import INTERESTING

        def pick() -> Any:
            return INTERESTING[int(rng.integers(len(INTERESTING)))]

        op = int(rng.integers(5))
        img = self.images[NAMES[int(rng.integers(3))]]

        def case() -> None:
            nc = self.nc
            if op == 0:
                net = nc.Network()
                net.add_input("in", pick() if rng.integers(2) else 4)
                net.add_lif("o", pick() if rng.integers(3) == 0 else 3,
                            du=pick() if rng.integers(3) == 0 else 10,
                            dv=pick() if rng.integers(3) == 0 else 10,
                            vth=pick() if rng.integers(3) == 0 else 10,
                            bias_mant=pick() if rng.integers(3) == 0 else 0)
                try:
                    w = np.full((3, 4), pick() if rng.integers(2) else 4)
                except (ValueError, TypeError):  # a value numpy cannot fill with
                    w = np.full((3, 4), 4)
                net.connect("in", "o", w,
                            weight_exp=pick() if rng.integers(3) == 0 else 0,
                            delay=pick() if rng.integers(3) == 0 else 0)
                from neurochip.fuzz import run_image

                run_image(nc.compile(net, "loihi_like"), steps=3)
            elif op == 1:
                em = nc.Emulator(img)
                p = img.input_populations[0]
                em.run({p.name: np.ones((int(rng.integers(1, 5)), p.size), bool)},
                       steps=pick())
            elif op == 2:
                em = nc.Emulator(img)
                p = img.input_populations[0]
                shape = [(3, p.size), (3, p.size + 1), (2, 3, p.size), (3,), (0, p.size)][
                    int(rng.integers(5))]
                v = pick() if rng.integers(2) else 1
                try:
                    x = np.full(shape, v)
                except (ValueError, TypeError):  # a value numpy cannot fill with
                    x = np.full(shape, 1)
                em.run({p.name: x})
            elif op == 3:
                em = nc.Emulator(img)
                p = img.input_populations[0]
                em.run({p.name: np.ones((2, p.size), bool)},
                       probes=[str(pick()), f"{img.lif_populations[0].name}.v"][
                           : int(rng.integers(1, 3))])
            else:
                nc.Emulator(img, backend=pick(), threads=None)

        return case

    def cli(self, rng: Any) -> Any:
        from neurochip.fuzz import INTERESTING

        np = self.np
        x = self.tmp / "x.npz"
        if not x.exists():
            np.savez(x, **{"in": np.zeros((3, 16), bool)})
        ff = str(GOLDEN / "feed_forward.nchip")
        bad = str(INTERESTING[int(rng.integers(len(INTERESTING)))])
        out = str(self.tmp / "o.npz")
        cands = [
            ["run", ff, "-i", str(x), "-o", out, "--steps", bad],
            ["run", ff, "-i", str(x), "-o", out, "--batch-size", bad],
            ["run", ff, "-i", str(x), "-o", out, "--threads", bad],
            ["run", ff, "-i", bad, "-o", out],
            ["run", bad, "-i", str(x), "-o", out],
            ["run", ff, "-i", str(x), "-o", out, "--probe", bad],
            ["run", ff, "-i", str(x), "-o", out, "--spikes", bad],
            ["run", ff, "-i", str(x), "-o", str(self.tmp / "no" / "o.npz")],
            ["compile", str(GOLDEN / "feed_forward.nir"), "--dt", bad, "-o",
             str(self.tmp / "c.nchip"), "-q"],
            ["compile", str(GOLDEN / "feed_forward.nir"), "--weight-bits", bad, "-o",
             str(self.tmp / "c.nchip"), "-q"],
            ["compile", str(GOLDEN / "feed_forward.nir"), "--hw", bad, "-o",
             str(self.tmp / "c.nchip"), "-q"],
            ["compile", bad],
            ["inspect", bad],
            ["inspect", ff, bad],
            [bad],
        ]
        argv = cands[int(rng.integers(len(cands)))]

        def case() -> str | None:
            import contextlib
            import io

            from neurochip.cli import main

            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    rc = main(argv)
                except SystemExit as exc:
                    rc = int(exc.code or 0) if isinstance(exc.code, (int, type(None))) else 2
            lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
            if rc == 2 and len(lines) == 1:
                from neurochip.errors import ConfigError

                raise ConfigError(lines[0])  # the typed outcome
            if rc == 0:
                return None
            raise RuntimeError(f"exit status {rc}: {err.getvalue()[-300:]}")

        return case


    def board_frames(self, rng: Any) -> Any:
        import socket

        from neurochip.board import BoardConnectionError, BoardTimeout, wire_error_types
        from neurochip.board_wire import VERSION, pack, recv_frame
        from neurochip.fuzz import board_frame

        frame, what = board_frame(rng)
        preload = bool(rng.integers(2))
        port = self.board_server.port
        typed = set(wire_error_types())

        def talk(frames: list[bytes]) -> list[dict[str, Any]]:
            s = socket.create_connection(("127.0.0.1", port), 5.0)
            try:
                s.sendall(pack({"id": 0, "op": "hello", "protocol": VERSION}))
                if not recv_frame(s, "fuzz", wait=5.0, read_timeout=5.0)[0]["ok"]:
                    raise RuntimeError("hello refused")
                replies = []
                for f in frames:
                    s.sendall(f)
                    if f is self.load_frame:
                        while True:
                            r, _ = recv_frame(s, "fuzz", wait=10.0, read_timeout=10.0)
                            if "progress" not in r:
                                break
                        if not r["ok"]:
                            raise RuntimeError(f"load refused: {r}")
                s.shutdown(socket.SHUT_WR)
                while True:
                    try:
                        r, _ = recv_frame(s, "fuzz", wait=10.0, read_timeout=10.0)
                    except BoardTimeout:
                        return [{"hang": True}]
                    except BoardConnectionError:
                        return replies
                    replies.append(r)
            finally:
                s.close()

        def case() -> str | None:
            replies = talk(([self.load_frame] if preload else []) + [frame])
            if any(r.get("hang") for r in replies):
                return "hang"
            bad = [r for r in replies if not r.get("ok")]
            for r in bad:
                if r.get("error") not in typed or str(r.get("message", "")).startswith(
                        "internal error"):
                    raise RuntimeError(f"{what}: untyped reply {str(r)[:200]}")
            if talk([])[:1] != []:  # the server still greets a new client
                raise RuntimeError("the server stopped serving")
            if bad:
                from neurochip.errors import BoardError

                raise BoardError(f"{what}: {bad[0].get('error')}: {bad[0].get('message')}")
            return None

        return case


def _same_network(a: Any, b: Any) -> bool:
    """Same registers, synapses and placement (metadata such as the source may differ)."""
    import numpy as np

    ma, mb = a.manifest(), b.manifest()
    ma.pop("metadata")
    mb.pop("metadata")
    return bool(ma == mb and all(np.array_equal(v, b.arrays[k]) for k, v in a.arrays.items()))


def worker_main(tmp: str, mem_gib: float) -> None:
    import numpy as np

    from neurochip.fuzz import classify

    w = _Worker(Path(tmp))
    vm = resource.getrlimit(resource.RLIMIT_AS)
    size = _vm_bytes()
    limit = size + int(mem_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, vm[1]))
    print(json.dumps({"ready": True, "vm_mb": size >> 20}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        rng = np.random.default_rng([req["seed"], list(FAMILIES).index(req["family"])])
        t = time.perf_counter()
        try:
            case = getattr(w, req["family"])(rng)
            outcome, detail = classify(case)
            if outcome == "ok" and detail.startswith("nir_changed"):
                outcome = "nir_changed"
            if outcome == "ok" and detail == "hang":
                outcome = "hang"
        except MemoryError:
            outcome, detail = "blowup", "MemoryError under the memory limit"
        except Exception as exc:  # building the case failed: a bug of this tool
            outcome, detail = "tool_error", f"{type(exc).__name__}: {exc}"
        if outcome == "untyped" and detail.startswith("MemoryError"):
            outcome = "blowup"
        print(json.dumps({"outcome": outcome, "detail": detail,
                          "s": time.perf_counter() - t}), flush=True)


def _vm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


# ====================================================================== parent side


class _Child:
    def __init__(self, tmp: Path, mem_gib: float) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="1")
        self.p = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(tmp), "--mem-gib", str(mem_gib)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, bufsize=1)
        ready = self.read(600)
        if ready is None or not ready.get("ready"):
            raise RuntimeError("fuzz worker did not start")

    def read(self, timeout: float) -> dict[str, Any] | None:
        assert self.p.stdout is not None
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            return None
        line = self.p.stdout.readline()
        return json.loads(line) if line else None

    def kill(self) -> None:
        self.p.kill()
        self.p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case (hang)")
    ap.add_argument("--mem-gib", type=float, default=1.0, help="memory a case may add")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench_results" / "fuzz_report.json")
    ap.add_argument("--family", action="append", default=[], choices=list(FAMILIES),
                    help="only these families (repeatable)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker, args.mem_gib)
        return 0

    import tempfile

    cases: list[tuple[str, int]] = []
    fams = FAMILIES if not args.family else {f: FAMILIES[f] for f in args.family}
    for fam, share in fams.items():
        cases += [(fam, args.seed * 1_000_000 + i) for i in range(round(args.cases * share))]
    # interleave the families so every worker sees all of them
    cases.sort(key=lambda c: (c[1], c[0]))
    t0 = time.perf_counter()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as td:
        workers = [_Child(Path(td) / f"w{i}", args.mem_gib) for i in range(args.workers)]
        busy: dict[int, tuple[str, int, float]] = {}
        todo = list(reversed(cases))
        done = 0
        while todo or busy:
            for i, w in enumerate(workers):
                if i not in busy and todo:
                    fam, seed = todo.pop()
                    assert w.p.stdin is not None
                    w.p.stdin.write(json.dumps({"family": fam, "seed": seed}) + "\n")
                    w.p.stdin.flush()
                    busy[i] = (fam, seed, time.perf_counter())
            ready, _, _ = select.select([workers[i].p.stdout for i in busy], [], [], 1.0)
            for i in list(busy):
                fam, seed, started = busy[i]
                w = workers[i]
                outcome = None
                if w.p.stdout in ready:
                    res = w.read(0.1)
                    if res is None:  # the worker died: a crash of that case
                        outcome, detail = "crash", f"worker exit {w.p.poll()}"
                    else:
                        outcome, detail = res["outcome"], res["detail"]
                elif time.perf_counter() - started > args.timeout:
                    outcome, detail = "hang", f"no answer in {args.timeout} s"
                if outcome is None:
                    continue
                if outcome in ("crash", "hang"):
                    w.kill()
                    workers[i] = _Child(Path(td) / f"w{i}", args.mem_gib)
                counts[fam][outcome] += 1
                if outcome not in ("typed", "ok") and len(examples[fam + ":" + outcome]) < 5:
                    examples[fam + ":" + outcome].append(f"seed {seed}: {detail}")
                del busy[i]
                done += 1
                if done % 500 == 0:
                    print(f"  {done}/{len(cases)} cases, {time.perf_counter() - t0:.0f} s",
                          file=sys.stderr, flush=True)
        for w in workers:
            w.kill()
    seconds = time.perf_counter() - t0
    return report(counts, examples, seconds, args)


def report(counts: dict[str, Counter[str]], examples: dict[str, list[str]], seconds: float,
           args: argparse.Namespace) -> int:
    cols = ["cases", *OUTCOMES, "tool_error", "typed %"]
    print(f"{'family':<15}" + "".join(f"{c:>12}" for c in cols))
    total: Counter[str] = Counter()
    rows = {}
    for fam in FAMILIES:
        c = counts[fam]
        n = sum(c.values())
        total.update(c)
        bad = n - c["ok"] - c["nir_changed"]
        pct = 100.0 * c["typed"] / bad if bad else 100.0
        rows[fam] = {"cases": n, **{o: c[o] for o in [*OUTCOMES, "tool_error"]},
                     "typed_pct_of_rejected_or_failed": pct}
        print(f"{fam:<15}" + "".join(f"{v:>12}" for v in [n, *[c[o] for o in OUTCOMES],
                                                          c["tool_error"]])
              + f"{pct:>11.2f}%")
    n = sum(total.values())
    bad = n - total["ok"] - total["nir_changed"]
    pct = 100.0 * total["typed"] / bad if bad else 100.0
    print(f"{'all':<15}" + "".join(f"{v:>12}" for v in [n, *[total[o] for o in OUTCOMES],
                                                         total["tool_error"]])
          + f"{pct:>11.2f}%")
    print(f"{n} cases in {seconds:.0f} s ({args.workers} workers, memory limit +"
          f"{args.mem_gib} GiB per worker, {args.timeout} s per case)")
    print("'typed %': typed errors among the cases not accepted as correct")
    for k, v in sorted(examples.items()):
        print(f"  {k}:")
        for e in v:
            print(f"    {e[:200]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"cases": n, "seconds": seconds, "workers": args.workers,
               "mem_gib": args.mem_gib, "timeout_s": args.timeout, "families": rows,
               "total": {**{o: total[o] for o in [*OUTCOMES, "tool_error"]},
                         "typed_pct_of_rejected_or_failed": pct},
               "examples": examples}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Board benchmark: the board protocol over loopback against the local emulator.

    python tools/bench_board.py [--quick] [--out bench_results/board.json]

(a) the bundled digits model (neurochip/data/digits.nir) compiled for loihi_like, the
    450-sample test split (the quickstart's spike code and run length, batches of 150):
    a local emulator board against a tcp:// board served by ``neurochip board-serve`` in
    another process on 127.0.0.1 (each session in its worker process, the default; target:
    tcp throughput >= 0.8x local); the results must be equal;
(b) the round trip of a 1-step run on a tiny network (target <= 0.3 ms), with the local
    1-step run, a protocol-only request (reset), the same on an in-process server
    (``board-serve --in-process``) and raw loopback TCP: a Python echo process that reads
    the bytes of the run request and answers with the bytes of its reply;
(c) a 10^6-step run of the tiny network streamed over tcp:// with a 5 s call timeout
    (spikes not recorded; counters come back for every step).
Prints a table and writes JSON. Times are the best of several repeats; on a shared
machine compare the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import neurochip  # noqa: E402
from neurochip.board import EmulatorBoard  # noqa: E402
from neurochip.board import open_board as _open_board  # noqa: E402


def serve(uri: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "neurochip.cli", "board-serve", "--port", "0",
                          "--board", uri, *extra], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None
    return p, p.stdout.readline().strip()


ECHO = """
import socket, sys
n_in, n_out = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = bytearray(n_in); view = memoryview(buf); out = bytes(n_out)
while True:
    got = 0
    while got < n_in:
        k = c.recv_into(view[got:])
        if not k:
            sys.exit(0)
        got += k
    c.sendall(out)
"""


def raw_tcp(n_in: int, n_out: int, k: int) -> float:
    """Seconds per round trip of n_in bytes out and n_out back over loopback (Python on
    both sides, TCP_NODELAY, like the board protocol)."""
    import socket

    p = subprocess.Popen([sys.executable, "-c", ECHO, str(n_in), str(n_out)],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        port = int(p.stdout.readline())
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req = bytes(n_in)
        buf = bytearray(n_out)
        view = memoryview(buf)

        def once() -> None:
            s.sendall(req)
            got = 0
            while got < n_out:
                got += s.recv_into(view[got:])

        for _ in range(200):
            once()
        t = per_call(once, k)
        s.close()
        return t
    finally:
        p.wait(10)


def frame_sizes(board: Any) -> tuple[int, int]:
    """Bytes of a 1-step run request and of its reply, as RemoteBoard and the server
    frame them."""
    from neurochip.board_remote import result_arrays
    from neurochip.board_wire import pack

    req = pack({"steps": 1, "probes": [], "spikes": "all", "chunk": None, "id": 1000,
                "op": "run"})
    meta, arrays = result_arrays(board.run(steps=1))
    rep = pack({"id": 1000, "ok": True, "final": True, "result": meta,
                "progress": {"done": 1, "steps": 1}}, arrays)
    return len(req), len(rep)


def digits() -> tuple[neurochip.ChipImage, dict[str, Any], int, list[str]]:
    from neurochip.commands.quickstart_cmd import BUNDLED_MODEL, _read_record
    from neurochip.tasks.digits import digits_spikes

    rec = _read_record(BUNDLED_MODEL)
    image = neurochip.compile(str(BUNDLED_MODEL), "loihi_like")
    test = digits_spikes(int(rec["data"]["steps"]), str(rec["data"]["encoding"]))[1]
    out = next(iter(image.metadata["outputs"].values()))
    probes = [f"{out['population']}.v"] if out["signal"] == "v" else []
    return image, {str(rec["chip_run"]["input"]): test.x}, int(rec["chip_run"]["run_steps"]), \
        probes


def run_split(board: Any, inputs: dict[str, Any], steps: int, probes: list[str],
              batch: int = 150) -> list[Any]:
    n = next(iter(inputs.values())).shape[0]
    parts = []
    for s in range(0, n, batch):
        board.reset()
        parts.append(board.run({k: v[s: s + batch] for k, v in inputs.items()}, steps,
                               probes=probes, spikes="all"))
    return parts


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def cpu_per_call(fn: Any, n: int, server_pid: int | None) -> tuple[float, float]:
    """CPU seconds per call spent by this process and by the server process: unlike wall
    time, hardly changed by other load on the machine."""
    c0, s0 = time.process_time(), cpu_seconds(server_pid) if server_pid else 0.0
    for _ in range(n):
        fn()
    c1, s1 = time.process_time(), cpu_seconds(server_pid) if server_pid else 0.0
    return (c1 - c0) / n, (s1 - s0) / n


def per_call(fn: Any, n: int, rounds: int = 5) -> float:
    """Median over rounds of the mean seconds per call."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t) / n)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, 10^5-step run")
    ap.add_argument("--out", default=str(ROOT / "bench_results" / "board.json"))
    ap.add_argument("--busy-poll", type=float, default=None, metavar="S",
                    help="seconds the client and the servers poll for a frame before sleeping "
                         "(default: the protocol's default; 0 = never poll)")
    args = ap.parse_args(argv)
    repeat = 2 if args.quick else 4
    poll = () if args.busy_poll is None else ("--busy-poll", str(args.busy_poll))

    def open_board(uri: str) -> Any:
        from neurochip.board_remote import RemoteBoard

        board = _open_board(uri)
        if args.busy_poll is not None and isinstance(board, RemoteBoard):
            board.busy_poll = args.busy_poll
        return board

    proc, uri = serve("emulator", *poll)
    results: dict[str, Any] = {"uri": uri, "busy_poll": args.busy_poll}
    try:
        # (a) digits test split
        image, inputs, steps, probes = digits()
        local = EmulatorBoard("numba")
        local.load(image)
        remote = open_board(uri)
        remote.load(image)
        run_split(local, inputs, steps, probes)
        run_split(remote, inputs, steps, probes)  # warm up both (JIT, caches)
        t_local, t_tcp = float("inf"), float("inf")
        for _ in range(repeat):  # interleaved, so a change of load hits both alike
            t, a = best(lambda: run_split(local, inputs, steps, probes), 1)
            t_local = min(t_local, t)
            t, b = best(lambda: run_split(remote, inputs, steps, probes), 1)
            t_tcp = min(t_tcp, t)
        same = all(np.array_equal(x.spikes[k], y.spikes[k]) for x, y in zip(a, b)
                   for k in x.spikes) and all(
            np.array_equal(x.probes[k], y.probes[k]) for x, y in zip(a, b) for k in x.probes)
        n = next(iter(inputs.values())).shape[0]
        results["digits"] = {"samples": n, "steps": steps, "local_s": t_local, "tcp_s": t_tcp,
                             "ratio": t_tcp / t_local, "throughput_ratio": t_local / t_tcp,
                             "target_throughput_ratio": 0.8, "identical": same}
        remote.close()

        # (b) 1-step round trip
        from neurochip.hil import demo_image

        tiny = demo_image()
        local.load(tiny)
        remote = open_board(uri)
        remote.load(tiny)
        for _ in range(200):
            local.run(steps=1)
            remote.run(steps=1)
        k = 300 if args.quick else 1000
        n_in, n_out = frame_sizes(local)
        # the same on a fresh server process (one that has not run batches before), and on
        # an in-process server; rounds interleaved so load changes hit every variant alike
        proc2, uri2 = serve("emulator", *poll)
        proc3, uri3 = serve("emulator", "--in-process", *poll)
        try:
            fresh = open_board(uri2)
            fresh.load(tiny)
            inproc = open_board(uri3)
            inproc.load(tiny)
            for _ in range(200):
                fresh.run(steps=1)
                inproc.run(steps=1)
            t1_local, t1_tcp, t_proto, t1_fresh, t1_inproc = [], [], [], [], []
            for _ in range(3):
                t1_local.append(per_call(lambda: local.run(steps=1), k, 3))
                t1_tcp.append(per_call(lambda: remote.run(steps=1), k, 3))
                t_proto.append(per_call(lambda: remote.reset(), k, 3))
                t1_fresh.append(per_call(lambda: fresh.run(steps=1), k, 3))
                t1_inproc.append(per_call(lambda: inproc.run(steps=1), k, 3))
            fresh.close()
            inproc.close()
        finally:
            for pr in (proc2, proc3):
                pr.terminate()
                pr.wait(10)
        # CPU per call (a quiet machine's round trip is about client + server CPU plus the
        # kernel's loopback latency): the session's worker is the server's only child
        workers = children(proc.pid)
        kc = 3000 if args.quick else 10000
        cpu_client, cpu_server = cpu_per_call(lambda: remote.run(steps=1), kc,
                                              workers[0] if len(workers) == 1 else None)
        cpu_local = cpu_per_call(lambda: local.run(steps=1), kc, None)[0]
        remote.close()
        t_raw = raw_tcp(n_in, n_out, k)
        med = statistics.median
        results["round_trip"] = {
            "local_run_ms": med(t1_local) * 1e3, "tcp_run_ms": med(t1_tcp) * 1e3,
            "tcp_overhead_ms": (med(t1_tcp) - med(t1_local)) * 1e3,
            "tcp_run_fresh_server_ms": med(t1_fresh) * 1e3,
            "tcp_run_in_process_server_ms": med(t1_inproc) * 1e3,
            "protocol_only_ms": med(t_proto) * 1e3, "raw_tcp_ms": t_raw * 1e3,
            "request_bytes": n_in, "reply_bytes": n_out,
            "tcp_over_local_plus_raw": med(t1_tcp) / (med(t1_local) + t_raw),
            "cpu_client_ms": cpu_client * 1e3, "cpu_server_ms": cpu_server * 1e3,
            "cpu_local_run_ms": cpu_local * 1e3, "target_ms": 0.3}

        # (c) a long run streamed with a short call timeout
        long_steps = 100_000 if args.quick else 1_000_000
        remote = open_board(uri + "?timeout=5")
        remote.load(tiny)
        frames: list[int] = []
        t = time.perf_counter()
        r = remote.run(steps=long_steps, spikes=None,
                       on_progress=lambda d, total: frames.append(d))  # type: ignore[call-arg]
        t_long = time.perf_counter() - t
        results["long_run"] = {"steps": r.steps, "seconds": t_long, "progress_frames":
                               len(frames), "call_timeout_s": 5.0, "completed":
                               r.steps == long_steps}
        remote.close()
    finally:
        proc.terminate()
        proc.wait(10)

    d, rt, lr = results["digits"], results["round_trip"], results["long_run"]
    ok_rt = "met" if rt["tcp_run_ms"] <= 0.3 else "NOT met"
    ok_tp = "met" if d["throughput_ratio"] >= 0.8 else "NOT met"
    rows = [
        ("digits 450 samples, local emulator", f"{d['local_s']:.3f} s", ""),
        ("digits 450 samples, tcp:// (loopback)", f"{d['tcp_s']:.3f} s",
         f"throughput {d['throughput_ratio']:.2f}x local (target >= 0.8x: {ok_tp}), "
         f"identical: {d['identical']}"),
        ("1-step run, local", f"{rt['local_run_ms']:.3f} ms", ""),
        ("1-step run, tcp:// round trip", f"{rt['tcp_run_ms']:.3f} ms",
         f"target <= 0.3 ms: {ok_rt}; overhead {rt['tcp_overhead_ms']:.3f} ms"),
        ("raw loopback TCP, same bytes", f"{rt['raw_tcp_ms']:.3f} ms",
         f"{rt['request_bytes']} B out, {rt['reply_bytes']} B back; tcp run = "
         f"{rt['tcp_over_local_plus_raw']:.2f}x (local run + raw TCP)"),
        ("1-step run, tcp://: CPU per call", f"{rt['cpu_client_ms'] + rt['cpu_server_ms']:.3f} ms",
         f"client {rt['cpu_client_ms']:.3f} + server worker {rt['cpu_server_ms']:.3f} ms; "
         f"local run {rt['cpu_local_run_ms']:.3f} ms"),
        ("1-step run, tcp://, in-process server", f"{rt['tcp_run_in_process_server_ms']:.3f} ms",
         "board-serve --in-process (no worker process)"),
        ("1-step run, tcp://, fresh server", f"{rt['tcp_run_fresh_server_ms']:.3f} ms",
         "a server process that ran no batch before"),
        ("protocol-only request (reset)", f"{rt['protocol_only_ms']:.3f} ms", ""),
        (f"{lr['steps']:,}-step run streamed", f"{lr['seconds']:.2f} s",
         f"{lr['progress_frames']} progress frames, 5 s call timeout, "
         f"completed: {lr['completed']}"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'board benchmark':<{w}}  {'time':>10}  notes")
    for name, val, note in rows:
        print(f"{name:<{w}}  {val:>10}  {note}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

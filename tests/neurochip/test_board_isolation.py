"""Board server sessions in worker processes: a crash, a blow-up or an overrun of one
session ends in a typed error for its client; the server and the other sessions go on.
Per-request budgets (time, memory, neuron-steps); images over the wire must be signed.

The isolated server runs in a fresh process (it forks per session, which the test process
may not do once Numba's OpenMP threads have started)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import neurochip
from neurochip.board import (
    BoardBudgetExceeded,
    BoardConnectionError,
    BoardWorkerCrashed,
    EmulatorBoard,
)
from neurochip.board_remote import BoardServer, RemoteBoard, _image_bytes
from neurochip.board_wire import VERSION, pack, recv_frame
from neurochip.errors import ConfigError
from neurochip.hil import demo_image, demo_inputs

ROOT = Path(__file__).resolve().parents[2]

SERVER = textwrap.dedent('''
    import os, signal, sys, time
    import numpy as np
    from neurochip.board import EmulatorBoard
    from neurochip.board_remote import BoardServer

    class Trap(EmulatorBoard):
        """Steps 13: segfault; 14: allocate 64 GiB; 15: hang; 16: 0.3 s per step."""
        def run(self, inputs=None, steps=None, **kw):
            if steps == 13:
                os.kill(os.getpid(), signal.SIGSEGV)
            if steps == 14:
                np.ones(1 << 33)
            if steps == 15:
                time.sleep(60)
            if steps == 1 and kw.get("probes") == ["l2.v", "l2.v"]:
                time.sleep(0.3)
            return super().run(inputs, steps, **kw)

    srv = BoardServer(("127.0.0.1", 0), Trap, isolate=True, max_request_seconds=1.0,
                      max_memory=1 << 30, max_neuron_steps=10**7,
                      idle_timeout=float(sys.argv[1]))
    print(srv.uri, flush=True)
    srv.serve_forever(0.05)
''')


def start(tmp: Path, idle: float = 60.0) -> tuple[subprocess.Popen[str], str, int]:
    script = tmp / "isolated_server.py"
    script.write_text(SERVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, str(script), str(idle)], stdout=subprocess.PIPE,
                         text=True, env=env)
    assert p.stdout is not None
    uri = p.stdout.readline().strip()
    assert uri.startswith("tcp://"), uri
    return p, uri, int(uri.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str],
                                                                          int]]:
    p, _, port = start(tmp_path_factory.mktemp("iso"))
    try:
        yield p, port
    finally:
        p.terminate()
        p.wait(10)


@pytest.fixture
def image() -> neurochip.ChipImage:
    return demo_image()


def test_a_crashing_session_gets_a_typed_error_and_the_others_go_on(isolated, image) -> None:
    proc, port = isolated
    a, b = RemoteBoard("127.0.0.1", port, timeout=20), RemoteBoard("127.0.0.1", port,
                                                                   timeout=20)
    try:
        a.load(image)
        b.load(image)
        x = demo_inputs(12)
        before = b.run({"in": x}, probes=["l2.v"])
        with pytest.raises(BoardWorkerCrashed, match="SIGSEGV"):
            a.run(steps=13)
        b.reset()  # the other session is untouched: same board, same answers
        again = b.run({"in": x}, probes=["l2.v"])
        np.testing.assert_array_equal(again.probes["l2.v"], before.probes["l2.v"])
        assert b.reconnects == 0
        assert a.run(steps=3).steps == 3 and a.reconnects == 1  # a fresh session
        assert proc.poll() is None
    finally:
        a.close()
        b.close()


def test_a_memory_blow_up_is_a_typed_budget_error_and_the_session_goes_on(isolated,
                                                                            image) -> None:
    _, port = isolated
    with RemoteBoard("127.0.0.1", port, timeout=20) as a:
        a.load(image)
        with pytest.raises(BoardBudgetExceeded, match="out of memory") as err:
            a.run(steps=14)
        assert err.value.field == "max_memory"
        assert a.run(steps=3).steps == 3 and a.reconnects == 0


def test_a_request_past_the_time_budget_is_stopped(isolated, image) -> None:
    proc, port = isolated
    with RemoteBoard("127.0.0.1", port, timeout=20) as a:
        a.load(image)
        t = time.monotonic()
        with pytest.raises(BoardBudgetExceeded, match="time budget of 1 s"):
            a.run(steps=15)  # one chunk that hangs: the worker is killed
        assert time.monotonic() - t < 10
        assert a.run(steps=2).steps == 2 and a.reconnects == 1
        # a chunked run stops itself at the budget; the session goes on
        with RemoteBoard("127.0.0.1", port, timeout=20, chunk=1) as c:
            c.load(image)
            with pytest.raises(BoardBudgetExceeded, match=r"after \d+ of 40 steps"):
                c.run(steps=40, probes=["l2.v", "l2.v"])
            assert c.run(steps=2).steps == 2 and c.reconnects == 0
    assert proc.poll() is None


def test_a_run_over_the_neuron_step_budget_is_refused_before_it_starts(isolated,
                                                                         image) -> None:
    _, port = isolated
    with RemoteBoard("127.0.0.1", port, timeout=20) as a:
        a.load(image)
        t = time.monotonic()
        with pytest.raises(BoardBudgetExceeded, match="neuron-steps") as err:
            a.run(steps=10**6)
        assert time.monotonic() - t < 5
        assert err.value.field == "max_neuron_steps"
        with pytest.raises(BoardBudgetExceeded):
            a.run({"in": np.zeros((100, 3000, image.input_populations[0].size), bool)})
        assert a.run(steps=3).steps == 3


def _sockets_of(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_holds_only_its_own_connection(isolated, image) -> None:
    proc, port = isolated
    boards = [RemoteBoard("127.0.0.1", port, timeout=20) for _ in range(3)]
    try:
        for b in boards:
            b.load(image)
        kids = set()
        for task in os.listdir(f"/proc/{proc.pid}/task"):
            with open(f"/proc/{proc.pid}/task/{task}/children") as f:
                kids |= {int(x) for x in f.read().split()}
        assert len(kids) == 3
        # not the listening socket, not another session's connection
        assert [_sockets_of(k) for k in sorted(kids)] == [1, 1, 1]
    finally:
        for b in boards:
            b.close()


def test_isolation_is_refused_in_a_process_running_openmp_threads(monkeypatch) -> None:
    from neurochip import board_remote

    monkeypatch.setattr(board_remote, "_omp_in_use", lambda: True)
    with pytest.raises(ConfigError, match="OpenMP"):
        BoardServer(("127.0.0.1", 0), EmulatorBoard, isolate=True)
    with pytest.raises(ConfigError, match="positive"):
        BoardServer(("127.0.0.1", 0), EmulatorBoard, max_request_seconds=0)
    with pytest.raises(ConfigError, match="needs a worker process"):
        BoardServer(("127.0.0.1", 0), EmulatorBoard, max_memory=1 << 30)


# ------------------------------------------------------------------ images over the wire
@pytest.fixture
def server() -> Iterator[BoardServer]:
    with BoardServer(("127.0.0.1", 0), EmulatorBoard, read_timeout=2.0) as srv:
        yield srv


def _load_reply(srv: BoardServer, header: dict[str, object], blob: np.ndarray) -> dict:
    s = socket.create_connection(("127.0.0.1", srv.port), 5.0)
    try:
        s.sendall(pack({"id": 0, "op": "hello", "protocol": VERSION}))
        recv_frame(s, "test", wait=5.0, read_timeout=5.0)
        s.sendall(pack({"id": 1, "op": "load", **header}, {"image": blob}))
        while True:
            reply, _ = recv_frame(s, "test", wait=10.0, read_timeout=10.0)
            if "progress" not in reply:
                return reply
    finally:
        s.close()


def test_images_over_the_wire_must_be_signed_and_match_their_digest(server, image) -> None:
    import io
    import zipfile

    from neurochip.fuzz import nchip_bytes

    blob = _image_bytes(image)
    ok = _load_reply(server, {"digest": image.digest}, blob)
    assert ok["ok"] and ok["digest"] == image.digest
    bad = _load_reply(server, {"digest": "0" * 64}, blob)
    assert bad["error"] == "ImageError" and "digest" in bad["message"]
    with zipfile.ZipFile(io.BytesIO(blob.tobytes())) as zf:
        man = json.loads(zf.read("manifest.json"))
        members = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    man.pop("digests")
    unsigned = np.frombuffer(nchip_bytes(man, members), np.uint8)
    bad = _load_reply(server, {}, unsigned)
    assert bad["error"] == "ImageError" and "must carry its digests" in bad["message"]
    # an unsigned image in the client's hands is signed when it is sent
    with RemoteBoard("127.0.0.1", server.port) as b:
        b.load(neurochip.ChipImage.from_bytes(unsigned.tobytes()))
        assert b.run(steps=2).steps == 2


def test_a_lost_worker_between_requests_closes_quietly(isolated, image) -> None:
    _, port = isolated
    with RemoteBoard("127.0.0.1", port, timeout=20) as a:
        a.load(image)
        a.reset()
        # the worker of a repeatable request that died is reconnected transparently
        assert a.info()["protocol"] == 2
        with pytest.raises((BoardWorkerCrashed, BoardConnectionError)):
            a.run(steps=13)
        assert a.read_state() is not None

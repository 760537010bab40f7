"""Board protocol 2: framing limits, typed errors, streaming, cancellation, timeouts,
reconnection, authentication and a server that survives bad clients (127.0.0.1 only,
bounded loops)."""

from __future__ import annotations

import functools
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import neurochip
from neurochip import board_wire
from neurochip.board import (
    BoardAuthError,
    BoardBusy,
    BoardCancelled,
    BoardConnectionError,
    BoardProtocolError,
    BoardTimeout,
    EmulatorBoard,
    UnsupportedOperation,
    open_board,
)
from neurochip.board_remote import BoardServer, RemoteBoard
from neurochip.board_wire import MAGIC, pack, recv_frame
from neurochip.errors import BoardError, EmulatorInputError
from neurochip.hil import demo_image, demo_inputs

ROOT = str(Path(neurochip.__file__).resolve().parents[1])


class CountingBoard(EmulatorBoard):
    """An emulator board that counts its runs and says when it was closed."""

    boards: ClassVar[list[CountingBoard]] = []

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__("numba")
        self.runs = 0
        self.delay = delay
        self.closed = threading.Event()
        CountingBoard.boards.append(self)

    def run(self, *a: Any, **k: Any) -> Any:
        self.runs += 1
        if self.delay:
            time.sleep(self.delay)
        return super().run(*a, **k)

    def close(self) -> None:
        self.closed.set()


@pytest.fixture
def image() -> neurochip.ChipImage:
    return demo_image()


@pytest.fixture
def server() -> Iterator[BoardServer]:
    with BoardServer(("127.0.0.1", 0), EmulatorBoard, read_timeout=2.0) as srv:
        yield srv


def raw(srv: BoardServer, hello: bool = True) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), 2.0)
    if hello:
        s.sendall(pack({"id": 0, "op": "hello", "protocol": 2}))
        reply, _ = recv_frame(s, "test", wait=2.0, read_timeout=2.0)
        assert reply["ok"] and reply["protocol"] == 2
    return s


def closed_by_server(s: socket.socket) -> bool:
    s.settimeout(3.0)
    try:
        while s.recv(65536):
            pass
    except OSError:
        return True
    return True


def still_serves(srv: BoardServer, image: neurochip.ChipImage) -> None:
    with RemoteBoard("127.0.0.1", srv.port, timeout=10) as b:
        b.load(image)
        x = demo_inputs(12)
        got = b.run({"in": x}, probes=["l0.v"])
        want = neurochip.Emulator(image).run({"in": x}, probes=["l0.v"])
        np.testing.assert_array_equal(got.probes["l0.v"], want.probes["l0.v"])


# ------------------------------------------------------------------ versions and frames
def test_a_protocol_1_client_gets_a_typed_protocol_error(server) -> None:
    s = raw(server, hello=False)
    msg = json.dumps({"op": "info"}).encode()
    s.sendall(struct.pack(">I", len(msg)) + msg + struct.pack(">I", 0))
    (n,) = struct.unpack(">I", s.recv(4))
    reply = json.loads(s.recv(n))
    assert reply["ok"] is False and reply["error"] == "BoardProtocolError"
    assert "protocol 2" in reply["message"]
    s.close()


def test_a_protocol_2_client_names_a_silent_or_old_server() -> None:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    try:
        with pytest.raises(BoardProtocolError, match="no protocol-2 answer"):
            RemoteBoard("127.0.0.1", lsock.getsockname()[1], connect_timeout=0.3)
    finally:
        lsock.close()


def test_frames_round_trip_arrays_as_raw_buffers() -> None:
    a, b = socket.socketpair()
    arrays = {"x": np.arange(12, dtype=np.int32).reshape(3, 4), "m": np.eye(3, dtype=bool),
              "e": np.zeros((0, 5)), "f": np.linspace(0, 1, 7, dtype=np.float32)}
    frame = pack({"id": 3, "op": "t"}, arrays)
    assert b"\x93NUMPY" not in frame and b"PK" not in frame[:16]  # no npy, no zip
    a.sendall(frame)
    header, got = recv_frame(b, "test", wait=1.0)
    assert header == {"id": 3, "op": "t"}
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        np.testing.assert_array_equal(got[k], v)
    with pytest.raises(BoardProtocolError, match="dtype"):
        pack({}, {"o": np.array([None], dtype=object)})
    a.close()
    b.close()


def test_an_oversize_length_prefix_is_refused_before_allocation(image) -> None:
    with BoardServer(("127.0.0.1", 0), EmulatorBoard, max_frame=1 << 20) as srv:
        s = raw(srv)
        s.sendall(struct.pack(">3sBIQ", MAGIC, 2, 100, 1 << 60))  # an exabyte payload
        reply, _ = recv_frame(s, "test", wait=3.0, read_timeout=3.0)
        assert reply["error"] == "BoardProtocolError" and "exceeds the maximum" in \
            reply["message"]
        assert closed_by_server(s)
        with RemoteBoard("127.0.0.1", srv.port) as b:  # a frame over the limit, for real
            with pytest.raises(BoardError):
                b.run({"in": np.zeros((100_000, 12), bool)})
        still_serves(srv, image)


BAD_FRAMES = [
    b"GET / HTTP/1.1\r\n\r\n",                                        # not a board frame
    struct.pack(">3sBIQ", MAGIC, 9, 2, 0) + b"{}",                    # unknown version
    struct.pack(">3sBIQ", MAGIC, 2, 5, 0) + b"{oops",                 # bad JSON
    struct.pack(">3sBIQ", MAGIC, 2, 2, 0) + b"[]",                    # not an object
    struct.pack(">3sBIQ", MAGIC, 2, 4, 0) + b"\xff\xfe{}",            # not UTF-8
    pack({"id": 1, "op": "run", "arrays": [["x", "|O", [1], 0]]}),    # object dtype
    pack({"id": 1, "op": "run", "arrays": [["x", "<i4", [-1], 0]]}),  # negative shape
    pack({"id": 1, "op": "run", "arrays": [["x", "<i8", [10**6], 0]]}),  # past the payload
    pack({"id": 1, "op": "run", "arrays": "nope"}),                   # bad table
    pack({"id": 1, "op": "run", "arrays": [["x", "<i4", [1], 0, 9]]}),  # bad entry
    struct.pack(">3sBIQ", MAGIC, 2, 50, 0) + b"{",                     # truncated, then gone
    b"\x00" * 3,                                                      # a torn prefix
]


@pytest.mark.parametrize("frame", BAD_FRAMES, ids=range(len(BAD_FRAMES)))
def test_malformed_frames_get_a_typed_error_or_a_close_and_the_server_survives(
        server, image, frame) -> None:
    s = raw(server)
    s.sendall(frame)
    s.shutdown(socket.SHUT_WR) if frame.endswith(b"{") or len(frame) < 4 else None
    s.settimeout(3.0)
    try:
        reply, _ = recv_frame(s, "test", wait=3.0, read_timeout=3.0)
        assert reply["ok"] is False and reply["error"] in ("BoardProtocolError",
                                                           "EmulatorInputError")
    except BoardConnectionError:
        pass  # closed without a word: also fine, never a hang
    s.close()
    still_serves(server, image)


def test_unknown_operations_and_missing_hello_are_typed_errors(server) -> None:
    s = raw(server, hello=False)
    s.sendall(pack({"id": 1, "op": "info"}))
    reply, _ = recv_frame(s, "test", wait=3.0, read_timeout=3.0)
    assert reply["error"] == "BoardProtocolError" and "hello" in reply["message"]
    s.close()
    s = raw(server)
    s.sendall(pack({"id": 5, "op": "format_disk"}))
    reply, _ = recv_frame(s, "test", wait=3.0, read_timeout=3.0)
    assert reply["id"] == 5 and reply["error"] == "BoardError" and "unknown operation" in \
        reply["message"]
    s.sendall(pack({"id": 6, "op": "info"}))  # the connection survives an error
    reply, _ = recv_frame(s, "test", wait=3.0, read_timeout=3.0)
    assert reply["id"] == 6 and reply["ok"] and reply["info"]["protocol"] == 2
    s.close()


def test_typed_errors_cross_the_wire(server, image) -> None:
    with RemoteBoard("127.0.0.1", server.port) as b:
        with pytest.raises(BoardError, match="no chip image loaded"):
            b.run(steps=3)
        b.load(image)
        with pytest.raises(EmulatorInputError, match="bad probe") as e:
            b.run(steps=3, probes=["nope.v"])
        assert e.value.where.startswith(b.name) and e.value.field == "probes"
        with pytest.raises(UnsupportedOperation, match="no learning configuration"):
            b.learn({"in": demo_inputs(4, batch=2)})
        assert b.run(steps=2).steps == 2


# ------------------------------------------------------------------ streaming and cancel
def test_a_long_run_streams_in_chunks_within_a_short_timeout(image) -> None:
    with BoardServer(("127.0.0.1", 0), EmulatorBoard, progress_interval=0.05) as srv:
        with RemoteBoard("127.0.0.1", srv.port, timeout=0.5) as b:
            b.load(image)
            seen: list[tuple[int, int]] = []
            steps = 60_000
            x = np.zeros((steps, 12), bool)
            x[::5, :6] = True
            r = b.run({"in": x}, spikes=["l2"], on_progress=lambda d, t: seen.append((d, t)))
            assert len(seen) >= 2 and seen[-1][1] == steps
            assert [d for d, _ in seen] == sorted(d for d, _ in seen)
            want = neurochip.Emulator(image).run({"in": x}, spikes=["l2"])
            np.testing.assert_array_equal(r.spikes["l2"], want.spikes["l2"])
            np.testing.assert_array_equal(r.cycles, want.cycles)
            assert r.steps == steps and r.t_start == 0


def test_chunks_are_sized_to_fit_the_clients_frames(server, image) -> None:
    x = demo_inputs(3000, batch=4)
    pr = [f"{p.name}.{v}" for p in image.lif_populations for v in "uv"]
    want = neurochip.Emulator(image).run({"in": x}, probes=pr)
    with RemoteBoard("127.0.0.1", server.port, max_frame=256 << 10) as b:
        b.load(image)
        got = b.run({"in": x}, probes=pr)  # about 2 MB of results in frames of <= 256 KiB
        assert len(b.last_progress) >= 8
    for k in pr:
        np.testing.assert_array_equal(got.probes[k], want.probes[k])


def test_fixed_chunks_give_the_same_result(server, image) -> None:
    x = demo_inputs(40, batch=2)
    want = neurochip.Emulator(image).run({"in": x}, probes=["l1.u"])
    with RemoteBoard("127.0.0.1", server.port, chunk=7) as b:
        b.load(image)
        got = b.run({"in": x}, probes=["l1.u"])
        assert len(b.last_progress) == 5
    np.testing.assert_array_equal(got.probes["l1.u"], want.probes["l1.u"])
    np.testing.assert_array_equal(got.spikes["l2"], want.spikes["l2"])
    np.testing.assert_array_equal(got.energy, want.energy)


def test_cancel_stops_a_run_and_the_connection_goes_on(image) -> None:
    CountingBoard.boards.clear()
    with BoardServer(("127.0.0.1", 0), lambda: CountingBoard(0.01)) as srv:
        with RemoteBoard("127.0.0.1", srv.port, chunk=10) as b:
            b.load(image)

            def cancel_soon(done: int, total: int) -> None:
                if done >= 30:
                    threading.Thread(target=b.cancel).start()

            with pytest.raises(BoardCancelled, match="cancelled"):
                b.run(steps=100_000, spikes=None, on_progress=cancel_soon)
            assert CountingBoard.boards[0].runs < 2_000  # of 10,000 chunks
            assert b.run(steps=5).steps == 5


def test_the_server_stops_working_when_its_client_vanishes_mid_run(image) -> None:
    CountingBoard.boards.clear()
    with BoardServer(("127.0.0.1", 0), lambda: CountingBoard(0.005)) as srv:
        b = RemoteBoard("127.0.0.1", srv.port, chunk=20)
        b.load(image)

        class Vanish(Exception):
            pass

        def vanish(done: int, total: int) -> None:
            raise Vanish

        with pytest.raises(Vanish):
            b.run(steps=1_000_000, spikes=None, on_progress=vanish)
        worker = CountingBoard.boards[0]
        assert worker.closed.wait(5.0), "the server kept the vanished client's board"
        assert worker.runs < 500  # of 50,000 chunks
        b.close()
        still_serves(srv, image)


def test_a_slow_client_that_stops_reading_is_dropped(image) -> None:
    CountingBoard.boards.clear()
    with BoardServer(("127.0.0.1", 0), CountingBoard, read_timeout=0.3) as srv:
        s = raw(srv)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        blob = np.frombuffer((image.save("/tmp/_slow.nchip")).read_bytes(), np.uint8)
        s.sendall(pack({"id": 1, "op": "load"}, {"image": blob}))
        reply, _ = recv_frame(s, "test", wait=10, read_timeout=10)
        assert reply["ok"]
        s.sendall(pack({"id": 2, "op": "run", "steps": 400_000, "probes": ["l2.v", "l0.v"],
                        "chunk": 200_000}))
        worker = CountingBoard.boards[0]
        assert worker.closed.wait(10.0), "the server kept blocking on a client not reading"
        s.close()
        still_serves(srv, image)


def test_twenty_concurrent_clients_each_get_their_own_answers(server, image) -> None:
    want = {}
    for i in range(20):
        x = demo_inputs(15, seed=100 + i)
        want[i] = (x, neurochip.Emulator(image).run({"in": x}, probes=["l1.v"]))
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with RemoteBoard("127.0.0.1", server.port, timeout=30) as b:
                b.load(image)
                x, w = want[i]
                for _ in range(2):
                    b.reset()
                    got = b.run({"in": x}, probes=["l1.v"])
                    np.testing.assert_array_equal(got.probes["l1.v"], w.probes["l1.v"])
                    np.testing.assert_array_equal(got.spikes["l2"], w.spikes["l2"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[0]
    still_serves(server, image)


def test_one_board_shared_by_threads_never_mixes_replies(server, image) -> None:
    with RemoteBoard("127.0.0.1", server.port) as b:
        b.load(image)
        got: dict[int, int] = {}

        def ask(n: int) -> None:
            for _ in range(5):
                got.setdefault(n, 0)
                assert b.run(steps=n, spikes=None).steps == n
                got[n] += 1

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(1, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert got == {n: 5 for n in range(1, 9)}


# ------------------------------------------------------------------ limits and timeouts
def test_the_connection_limit_answers_busy(image) -> None:
    with BoardServer(("127.0.0.1", 0), EmulatorBoard, max_connections=2) as srv:
        a, b = RemoteBoard("127.0.0.1", srv.port), RemoteBoard("127.0.0.1", srv.port)
        with pytest.raises(BoardBusy, match="limit of 2"):
            RemoteBoard("127.0.0.1", srv.port)
        a.close()
        deadline = time.monotonic() + 5
        while True:  # the slot frees once the server sees the close
            try:
                c = RemoteBoard("127.0.0.1", srv.port)
                break
            except BoardBusy:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        c.load(image)
        assert c.run(steps=3).steps == 3
        b.close()
        c.close()


def test_an_idle_connection_is_closed_and_the_client_reconnects(image) -> None:
    with BoardServer(("127.0.0.1", 0), EmulatorBoard, idle_timeout=1.0) as srv:
        with RemoteBoard("127.0.0.1", srv.port) as b:
            b.load(image)
            time.sleep(2.0)
            assert b.info()["image"] is not None  # reconnected, image reprogrammed
            assert b.reconnects == 1
            b.run(steps=4)
            time.sleep(2.0)
            with pytest.raises(BoardConnectionError, match="not repeated"):
                b.run(steps=4)  # the state it ran on is gone: never silently rerun
            r = b.run(steps=4)
            assert r.t_start == 0 and b.reconnects == 2


def test_a_timeout_drops_the_connection_so_a_late_reply_is_never_taken(image) -> None:
    delay = {"s": 5.0}
    with BoardServer(("127.0.0.1", 0), lambda: CountingBoard(delay["s"]),
                     progress_interval=10.0) as srv:
        with RemoteBoard("127.0.0.1", srv.port, timeout=1.5) as b:
            b.load(image)
            with pytest.raises(BoardTimeout):
                b.run(steps=1_500)
            delay["s"] = 0
            r = b.run(steps=20)  # a new connection: the late 1,500-step reply is gone
            assert r.steps == 20 and b.reconnects == 1


def test_per_call_timeouts_from_the_uri_and_open_board(server) -> None:
    b = open_board(f"{server.uri}?timeout=2.5&connect_timeout=1")
    assert isinstance(b, RemoteBoard) and (b.timeout, b.connect_timeout) == (2.5, 1.0)
    b.close()
    b = open_board(f"{server.uri}?timeout=2.5", timeout=7)
    assert b.timeout == 7  # type: ignore[attr-defined]
    b.close()
    for bad in ("?timeout=-1", "?timeout=abc", "?retries=3", "?timeout=1&timeout=2"):
        with pytest.raises(BoardError):
            open_board(server.uri + bad)
    for bad in ("tcp://nohost", "tcp://h:99999", "fpga", "faulty:drop=2+emulator",
                "faulty:melt=0.1+emulator", "faulty:drop=0.1", "faulty:seed=x,drop=0.1+null"):
        with pytest.raises(BoardError):
            open_board(bad)
    with pytest.raises(BoardConnectionError, match="cannot connect"):
        RemoteBoard("127.0.0.1", 1)


def test_a_lost_connection_is_not_repeated_for_a_run_and_reconnects_after(server,
                                                                          image) -> None:
    with RemoteBoard("127.0.0.1", server.port) as b:
        b.load(image)
        b.run(steps=5)
        assert b._sock is not None
        b._sock.shutdown(socket.SHUT_RDWR)  # the link dies under the client
        with pytest.raises(BoardConnectionError, match="not repeated"):
            b.run(steps=5)
        r = b.run(steps=5)
        assert r.t_start == 0 and b.reconnects == 1  # a fresh board, image reprogrammed
        assert b.info()["image"] is not None


def test_the_server_binds_loopback_by_default() -> None:
    with BoardServer() as srv:
        assert srv.host == "127.0.0.1"


# ------------------------------------------------------------------ authentication
def test_a_shared_token_is_proven_never_sent(image, monkeypatch) -> None:
    token = "correct horse battery staple"
    sent: list[bytes] = []
    real = board_wire.pack

    def spy(header: Any, arrays: Any = None) -> bytes:
        frame = real(header, arrays)
        sent.append(frame)
        return frame

    monkeypatch.setattr("neurochip.board_remote.pack", spy)
    with BoardServer(("127.0.0.1", 0), EmulatorBoard, token=token) as srv:
        monkeypatch.delenv("NEUROCHIP_BOARD_TOKEN", raising=False)
        with pytest.raises(BoardAuthError, match="requires a token"):
            RemoteBoard("127.0.0.1", srv.port)
        with pytest.raises(BoardAuthError, match="authentication failed"):
            RemoteBoard("127.0.0.1", srv.port, token="wrong")
        with RemoteBoard("127.0.0.1", srv.port, token=token) as b:
            b.load(image)
            assert b.run(steps=3).steps == 3
        monkeypatch.setenv("NEUROCHIP_BOARD_TOKEN", token)
        with open_board(srv.uri) as b2:
            assert b2.info()["protocol"] == 2
    assert sent and not any(token.encode() in f for f in sent)


def test_a_client_refuses_a_server_that_cannot_prove_the_token() -> None:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def impostor() -> None:  # knows the protocol, not the token
        conn, _ = lsock.accept()
        with conn:
            recv_frame(conn, "impostor", wait=5, read_timeout=5)
            conn.sendall(pack({"id": 0, "ok": True, "protocol": 2, "challenge": "00" * 16}))
            recv_frame(conn, "impostor", wait=5, read_timeout=5)
            conn.sendall(pack({"id": 0, "ok": True, "mac": "ab" * 32}))
            time.sleep(0.2)

    th = threading.Thread(target=impostor, daemon=True)
    th.start()
    try:
        with pytest.raises(BoardAuthError, match="could not prove"):
            RemoteBoard("127.0.0.1", lsock.getsockname()[1], token="a")
    finally:
        th.join(5)
        lsock.close()


# ------------------------------------------------------------------ fast paths
def _frame_bytes(parts: list[Any]) -> bytes:
    return b"".join(p if isinstance(p, bytes) else memoryview(p).cast("B").tobytes()
                    for p in parts)


def test_run_replies_encoded_from_a_cached_layout_equal_the_generic_frames(image) -> None:
    from neurochip.board_remote import ResultFrames, result_arrays
    from neurochip.board_wire import pack_parts

    board = EmulatorBoard()
    board.load(image)
    frames = ResultFrames()
    results = [board.run(steps=1), board.run(steps=1), board.run(steps=4, probes=["l1.v"]),
               board.run(steps=0), board.run(steps=2, spikes=None), board.run(steps=1)]
    board.reset()
    results.append(board.run({"in": demo_inputs(900, batch=4)}, probes=["l2.v"]))
    results[1].extra["note"] = "kept"
    for i, r in enumerate(results):
        rid: Any = ["odd", i] if i == 2 else i
        meta, arrays = result_arrays(r)
        generic = pack_parts({"id": rid, "ok": True, "final": i % 2 == 0, "result": meta,
                              "progress": {"done": 3, "steps": 9}}, arrays)
        fast = frames.pack(rid, r, 3, 9, i % 2 == 0)
        assert len(fast) == len(generic)  # one buffer when small, scatter-gather when large
        a, b = socket.socketpair()
        got = []
        for parts in (generic, fast):
            sender = threading.Thread(target=a.sendall, args=(_frame_bytes(parts),))
            sender.start()
            got.append(recv_frame(b, "test", wait=5.0, read_timeout=5.0))
            sender.join()
        a.close()
        b.close()
        (h1, a1), (h2, a2) = got
        assert h1 == h2 and h2["id"] == rid and h2["result"]["t_start"] == r.t_start
        assert list(a1) == list(a2)
        for k in a1:
            assert a1[k].dtype == a2[k].dtype and a1[k].shape == a2[k].shape
            np.testing.assert_array_equal(a1[k], a2[k])
    assert len(frames._layouts) == 6  # 7 results: 1-step runs without extras share one


def test_busy_poll_takes_a_frame_early_and_backs_off_after_a_miss() -> None:
    a, b = socket.socketpair()
    poll = board_wire.BusyPoll(0.05)
    a.sendall(pack({"id": 1}))
    t = time.perf_counter()
    assert recv_frame(b, "test", wait=1.0, poll=poll)[0] == {"id": 1}
    assert time.perf_counter() - t < 0.05 and (poll._misses, poll._skip) == (0, 0)
    threading.Timer(0.2, a.sendall, args=(pack({"id": 2}),)).start()
    t = time.perf_counter()
    assert recv_frame(b, "test", wait=1.0, poll=poll)[0] == {"id": 2}  # polled, then slept
    assert time.perf_counter() - t >= 0.15 and (poll._misses, poll._skip) == (1, 2)
    a.sendall(pack({"id": 3}))
    recv_frame(b, "test", wait=1.0, poll=poll)
    assert poll._skip == 1  # skipped this poll
    never = board_wire.BusyPoll(0.0)
    t = time.perf_counter()
    with pytest.raises(BoardTimeout):
        recv_frame(b, "test", wait=0.01, poll=never)
    assert time.perf_counter() - t < 0.5
    a.close()
    b.close()


def test_busy_poll_options_of_the_client_and_the_server(image) -> None:
    with BoardServer(("127.0.0.1", 0), EmulatorBoard, busy_poll=0.0) as srv:
        b = open_board(f"{srv.uri}?busy_poll=0")
        assert isinstance(b, RemoteBoard) and b.busy_poll == 0.0
        b.close()
        with open_board(f"{srv.uri}?busy_poll=0.001") as b:
            assert b.busy_poll == 0.001  # type: ignore[attr-defined]
            b.load(image)
            local = EmulatorBoard()
            local.load(image)
            for steps in (1, 1, 5):
                r, want = b.run(steps=steps, probes=["l1.v"]), local.run(steps=steps,
                                                                         probes=["l1.v"])
                assert r.t_start == want.t_start
                for k in want.spikes:
                    np.testing.assert_array_equal(r.spikes[k], want.spikes[k])
                np.testing.assert_array_equal(r.probes["l1.v"], want.probes["l1.v"])
                np.testing.assert_array_equal(r.energy, want.energy)
        for bad in ("?busy_poll=-1", "?busy_poll=abc", "?busy_poll=inf"):
            with pytest.raises(BoardError, match="busy_poll"):
                open_board(srv.uri + bad)
        with pytest.raises(BoardError, match="busy_poll"):
            RemoteBoard("127.0.0.1", srv.port, busy_poll=-0.5)
    with pytest.raises(neurochip.errors.ConfigError, match="busy_poll"):
        BoardServer(("127.0.0.1", 0), EmulatorBoard, busy_poll=float("nan"))


def test_each_kind_of_request_learns_on_its_own_whether_to_poll(image) -> None:
    """Short requests keep their busy poll while the long runs between them stop polling
    after their replies miss it (a polling client would take a core from a server that
    computes on every core)."""
    slow = functools.partial(CountingBoard, 0.03)  # every run takes 30 ms on the server
    with BoardServer(("127.0.0.1", 0), slow, busy_poll=0.0) as srv, \
            RemoteBoard("127.0.0.1", srv.port, busy_poll=0.005) as b:
        b.load(image)
        x = demo_inputs(6, batch=3)
        for _ in range(4):
            b.reset()
            b.run({"in": x})
        reset = b._poller("reset", {}, None)
        batch = b._poller("run", {"steps": None}, {"inputs/in": x})
        assert batch is not reset and batch is not b._poller("run", {"steps": 1}, None)
        assert reset._misses == 0  # reset replies come within the poll: it goes on
        assert batch._misses >= 2 and batch._skip > 0  # the batch runs' replies never did
        b.busy_poll = 0.002  # a new setting starts every kind afresh
        assert b._poller("run", {"steps": None}, {"inputs/in": x})._misses == 0


def test_run_replies_send_the_emulators_counters_without_stacking_a_copy(image) -> None:
    from neurochip.board_remote import _result_list, _stacked

    board = EmulatorBoard()
    board.load(image)
    batched = board.run({"in": demo_inputs(5, batch=2)})
    board.reset()
    for r in (batched, board.run(steps=3)):
        vals = list(r.counters.values())
        whole = _stacked(vals)
        assert whole is not None and all(np.shares_memory(whole, v) for v in vals)
        np.testing.assert_array_equal(whole, np.stack(vals, -1))
        sent = dict(_result_list(r))["counters"]
        assert np.shares_memory(sent, vals[0])  # the record itself, not a stacked copy
    # counters that are not views of one array in order are stacked as before
    r.counters = dict(reversed(list(r.counters.items())))
    assert _stacked(list(r.counters.values())) is None
    np.testing.assert_array_equal(dict(_result_list(r))["counters"],
                                  np.stack(list(r.counters.values()), -1))


_FAULTS = """
import resource, sys, threading
import numpy as np
if sys.argv[1] == "keep":
    from neurochip.board_remote import keep_freed_memory
    assert keep_freed_memory()
out = []
def session():  # a session's calls: a reply's buffers, then the next run's record
    for i in range(40):
        reply = np.ones(1 << 20, np.uint8)
        frame = bytearray(2 << 20)
        f0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        spikes = np.zeros((150, 30, 174), np.uint8); spikes[:] = 1
        counters = np.zeros((150, 30, 2, 12), np.int64); counters[:] = 1
        out.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - f0)
        del reply, frame, spikes, counters
th = threading.Thread(target=session); th.start(); th.join()
print(sum(out[10:]) / 30)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_a_board_server_process_reuses_freed_memory_instead_of_faulting_it_in() -> None:
    """A session thread's arrays, freed after each reply, came back as fresh pages on
    every call (hundreds of page faults per digits batch); the server's malloc settings
    (neurochip board-serve sets them) keep them for the next call."""
    import subprocess

    def faults(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True,
                             text=True, check=True, env={**os.environ, "PYTHONPATH": ROOT})
        return float(out.stdout.strip())

    assert faults("plain") > 100
    assert faults("keep") < 5

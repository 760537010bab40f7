"""Hypothesis-driven fuzzing of board frames (the wire protocol).

Every malformed frame must end in a typed error (a BoardError from the reader, a typed
error frame from the server) or a clean close, never an untyped exception, a hang, or a
server that stops serving. Bounded: small frames, a few hundred examples, socket timeouts.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurochip
from neurochip.board import BoardConnectionError, EmulatorBoard, wire_error_types
from neurochip.board_remote import BoardServer, RemoteBoard
from neurochip.board_wire import MAGIC, VERSION, pack, recv_frame
from neurochip.errors import BoardError
from neurochip.hil import demo_image

PREFIX = struct.Struct(">3sBIQ")

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)),
    max_leaves=12)

DTYPES = ["|b1", "|u1", "|i1", "<i2", "<u2", "<i4", "<u4", "<i8", "<f4", "<f8", ">i4",
          "<c16", "|O", "<U3", "V8", "<M8[s]", "x", 7, None, [["a", "<i4"]]]
ARRAY_NAMES = ["image", "weights", "u", "v", "reward", "inputs/in", "targets/l2",
               "inputs/nope", "", "inputs/"]


@st.composite
def array_table(draw: Any) -> tuple[list[Any], int]:
    """A table of arrays (some entries broken) and the payload size it claims to need."""
    rows: list[Any] = []
    end = 0
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 9)) == 0:
            rows.append(draw(json_value))  # not a row at all
            continue
        name = draw(st.sampled_from(ARRAY_NAMES) | st.text(max_size=6))
        dt = draw(st.sampled_from(DTYPES))
        shape = draw(st.lists(st.integers(-2, 6) | st.sampled_from([2**40, 2**63]),
                              max_size=3) | json_value)
        off = draw(st.integers(-1, 64) | st.sampled_from([2**62]) | json_value)
        rows.append([name, dt, shape, off])
        try:
            n = int(np.prod(shape)) * np.dtype(dt).itemsize
            end = max(end, int(off) + n) if 0 <= n < 4096 and 0 <= int(off) < 4096 else end
        except Exception:  # a broken row needs no payload
            pass
    return rows, end


@st.composite
def request_header(draw: Any) -> dict[str, Any]:
    h: dict[str, Any] = {"id": draw(st.integers(-2, 2**40) | json_value),
                         "op": draw(st.sampled_from(
                             ["info", "load", "run", "learn", "read_weights",
                              "write_weights", "read_state", "write_state", "reset",
                              "cancel", "hello", "auth", "close"]) | st.text(max_size=6))}
    for key, values in (("steps", st.integers(-3, 40) | st.sampled_from([2**40, 2**63])
                         | json_value),
                        ("probes", st.lists(st.sampled_from(["l0.v", "l2.u", "x.v", "l0"])
                                            | json_leaf, max_size=3) | json_value),
                        ("spikes", st.sampled_from(["all", "l2", None, ["l0"], ["zz"]])
                         | json_value),
                        ("chunk", st.integers(-1, 5) | json_value),
                        ("connection", st.sampled_from(["in->l0", "l0->l1", "?"])
                         | json_value),
                        ("epochs", st.integers(-1, 3) | json_value),
                        ("shuffle", st.integers(-1, 3) | json_value),
                        ("targets", st.booleans() | json_value),
                        ("digest", st.text(max_size=8) | json_value),
                        ("protocol", st.integers(0, 3) | json_value)):
        if draw(st.booleans()):
            h[key] = draw(values)
    return h


@st.composite
def frame(draw: Any) -> bytes:
    """A frame that is malformed in one of many ways (or occasionally well formed)."""
    kind = draw(st.integers(0, 5))
    if kind == 0:  # arbitrary bytes
        return bytes(draw(st.binary(max_size=64)))
    header = draw(request_header())
    rows, need = draw(array_table())
    if kind == 1:  # well-formed arrays of allowed dtypes with a request header
        arrays = {}
        for name in draw(st.lists(st.sampled_from(ARRAY_NAMES), max_size=3, unique=True)):
            dt = draw(st.sampled_from(["|b1", "|u1", "<i4", "<i8", "<f8"]))
            shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
            arrays[name] = np.zeros(shape, dt)
        return pack(header, arrays)
    header["arrays"] = rows
    body = json.dumps(header).encode()
    if kind == 3:  # a header that is not JSON, or not an object
        body = draw(st.sampled_from([body[: len(body) // 2], b"[1,2]", b"\xff\xfe",
                                     b"[" * 5000 + b"]" * 5000, b"null", b""]))
    payload = bytes(draw(st.binary(min_size=need, max_size=need + 8)))
    hlen, plen = len(body), len(payload)
    version = VERSION
    if kind == 4:  # lying lengths or a wrong version
        hlen = draw(st.sampled_from([0, 1, hlen + 1, hlen - 1, 2**32 - 1]) | st.just(hlen))
        plen = draw(st.sampled_from([0, plen + 1, 2**40, 2**64 - 1]) | st.just(plen))
        version = draw(st.sampled_from([0, 1, VERSION, 3, 255]))
    raw = PREFIX.pack(MAGIC, version, max(hlen, 0), max(plen, 0)) + body + payload
    if kind == 5:  # flipped bytes or truncated
        b = bytearray(raw)
        for i in draw(st.lists(st.integers(0, len(b) - 1), max_size=3)):
            b[i] ^= draw(st.integers(1, 255))
        cut = draw(st.integers(0, len(b)))
        return bytes(b[:cut])
    return raw


def check_arrays(arrays: dict[str, Any]) -> None:
    for name, a in arrays.items():
        assert isinstance(name, str) and isinstance(a, np.ndarray)
        assert a.dtype.kind in "biuf" and a.dtype.itemsize <= 8


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(frame())
def test_the_frame_reader_gives_a_typed_error_or_arrays_for_any_bytes(data: bytes) -> None:
    a, b = socket.socketpair()
    try:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)  # a torn frame then ends with a close, not a wait
        try:
            header, arrays = recv_frame(b, "fuzz", max_frame=1 << 20, wait=2.0,
                                        read_timeout=2.0)
        except BoardError:
            return
        assert isinstance(header, dict)
        check_arrays(arrays)
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------ against a live server


@pytest.fixture(scope="module")
def server() -> Iterator[BoardServer]:
    with BoardServer(("127.0.0.1", 0), EmulatorBoard, read_timeout=1.0, idle_timeout=5.0,
                     max_frame=1 << 20, max_neuron_steps=10**6) as srv:
        yield srv


@pytest.fixture(scope="module")
def image_bytes() -> bytes:
    """A well-formed load request of the demo image."""
    from neurochip.board_remote import _image_bytes

    img: neurochip.ChipImage = demo_image()
    return pack({"id": 1, "op": "load", "digest": img.digest}, {"image": _image_bytes(img)})


def _talk(srv: BoardServer, frames: list[bytes], load: bytes | None) -> list[dict[str, Any]]:
    """Say hello (and load an image), send frames, close the sending side; every reply
    until the server closes."""
    s = socket.create_connection(("127.0.0.1", srv.port), 3.0)
    try:
        s.sendall(pack({"id": 0, "op": "hello", "protocol": VERSION}))
        hello, _ = recv_frame(s, "fuzz", wait=5.0, read_timeout=5.0)
        assert hello["ok"]
        if load is not None:
            s.sendall(load)
            while True:  # heartbeats, then the answer
                reply, _ = recv_frame(s, "fuzz", wait=10.0, read_timeout=10.0)
                if "progress" not in reply:
                    break
            assert reply["ok"], reply
        for f in frames:
            s.sendall(f)
        s.shutdown(socket.SHUT_WR)
        replies = []
        while True:
            try:
                reply, arrays = recv_frame(s, "fuzz", wait=10.0, read_timeout=10.0)
            except BoardConnectionError:  # closed (a timeout, BoardTimeout, is a hang)
                return replies
            check_arrays(arrays)
            replies.append(reply)
    finally:
        s.close()


TYPED = set(wire_error_types())


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(frames=st.lists(frame(), min_size=1, max_size=2), preload=st.booleans())
def test_the_server_answers_every_malformed_frame_with_a_typed_error(
        server: BoardServer, image_bytes: bytes, frames: list[bytes], preload: bool) -> None:
    replies = _talk(server, frames, image_bytes if preload else None)
    for r in replies:
        assert isinstance(r, dict) and "ok" in r
        if not r["ok"]:
            assert r["error"] in TYPED, r
            assert not str(r.get("message", "")).startswith("internal error"), r


def test_the_server_still_serves_after_the_fuzzing(server: BoardServer) -> None:
    img = demo_image()
    with RemoteBoard("127.0.0.1", server.port, timeout=10) as b:
        b.load(img)
        assert b.run(steps=4).steps == 4

"""Frames of the board protocol, version 2.

A frame is::

    b"NCB" + version (1 byte, 2) | header length (u32, big-endian) | payload length (u64)
    | header: UTF-8 JSON object | payload: raw array buffers

The header lists the payload's arrays as ``"arrays": [[name, dtype, shape, offset], ...]``
(dtype a numpy type string of a bool, integer or float type; C order). Both lengths are
checked against the receiver's maximum frame size *before* anything is allocated; the
header's nesting depth and every array's dtype, shape and extent are checked before use.
Nothing is ever unpickled or evaluated.

Protocol 1 (a 4-byte header length, JSON, a 4-byte length and an ``.npz``) is recognised
only to answer it with a clear error.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.board import BoardConnectionError, BoardProtocolError, BoardTimeout

__all__ = [
    "DEFAULT_BUSY_POLL",
    "DEFAULT_MAX_FRAME",
    "ENCODER",
    "MAGIC",
    "VERSION",
    "BusyPoll",
    "frame_parts",
    "pack",
    "pack_parts",
    "recv_frame",
    "send",
    "send_dtype",
]

MAGIC = b"NCB"
VERSION = 2
_PREFIX = struct.Struct(">3sBIQ")
PREFIX_SIZE = _PREFIX.size
#: default largest frame (header + payload) a side accepts
DEFAULT_MAX_FRAME = 256 << 20
#: default seconds a side polls for the next frame before sleeping (see :func:`recv_frame`)
DEFAULT_BUSY_POLL = 0.0005
_MAX_HEADER = 8 << 20
_KINDS = "biuf"


#: compact JSON (one encoder for every frame: json.dumps with separators builds a new one)
ENCODER = json.JSONEncoder(separators=(",", ":"))
#: a frame whose payload is at most this many bytes is joined into one buffer (fewer
#: buffers to hand the kernel costs less than copying a few kilobytes)
_JOIN_BELOW = 1 << 16
#: dtypes already checked for sending, and their type strings
_SEND_DTYPES: dict[np.dtype[Any], str] = {}


def send_dtype(dt: np.dtype[Any], name: str) -> str:
    """The type string of an array's dtype in a frame's table (a typed error for a dtype
    that frames do not carry)."""
    s = _SEND_DTYPES.get(dt)
    if s is not None:
        return s
    if dt.kind not in _KINDS or dt.itemsize > 8 or dt.fields is not None or dt.subdtype:
        raise BoardProtocolError(f"array {name!r} has dtype {dt}; frames carry bool, "
                                 f"integer and float arrays only", where="board frame")
    if len(_SEND_DTYPES) < 64:
        _SEND_DTYPES[dt] = dt.str
    return dt.str


def pack_parts(header: Mapping[str, Any], arrays: Mapping[str, Any] | None = None
               ) -> list[Any]:
    """One frame as a list of buffers: what :func:`send` hands to the kernel. A small frame
    is one buffer; a large one is the prefix + header, then each array's own memory (not
    copied), sent in one scatter-gather call."""
    parts: list[Any] = []
    off = 0
    if arrays:
        table = []
        for name, value in arrays.items():
            a = value if type(value) is np.ndarray and value.flags.c_contiguous \
                else np.ascontiguousarray(value)
            table.append([name, send_dtype(a.dtype, name), a.shape, off])
            if a.size:
                parts.append(a)
            off += a.nbytes
        header = {**header, "arrays": table}
    return frame_parts(ENCODER.encode(header).encode(), parts, off)


def frame_parts(header: bytes, arrays: list[NDArray[Any]], size: int) -> list[Any]:
    """A frame from its encoded header and its arrays (C-contiguous, non-empty, in table
    order, ``size`` bytes together), as :func:`pack_parts` returns it."""
    head = _PREFIX.pack(MAGIC, VERSION, len(header), size) + header
    if size <= _JOIN_BELOW:
        buffers: list[Any] = [head, *arrays]
        return [b"".join(buffers)] if arrays else [head]
    return [head, *(a.reshape(-1).view(np.uint8) for a in arrays)]


def pack(header: Mapping[str, Any], arrays: Mapping[str, Any] | None = None) -> bytes:
    """One frame: ``header`` (JSON-able) and ``arrays`` as raw buffers."""
    parts = pack_parts(header, arrays)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _timeout(sock: socket.socket, seconds: float | None) -> None:
    """Set the socket's timeout when it differs (each change is a system call)."""
    if sock.gettimeout() != seconds:
        sock.settimeout(seconds)


def _recv_into(sock: socket.socket, buf: memoryview, where: str) -> None:
    got = 0
    n = len(buf)
    while got < n:
        try:
            k = sock.recv_into(buf[got:], min(n - got, 1 << 22))
        except TimeoutError:
            raise BoardTimeout("timed out in the middle of a frame", where=where) from None
        except OSError as exc:
            raise BoardConnectionError(f"connection failed: {exc}", where=where) from None
        if k == 0:
            raise BoardConnectionError("connection closed by the other side", where=where)
        got += k


class BusyPoll:
    """Polls a socket for the next frame before its reader sleeps in the kernel: a frame
    that arrives within ``seconds`` is then taken without the wake-up latency of a
    sleeping process (on a virtual machine, often more than the work of a short call), at
    the price of that much CPU time. The poll yields the CPU at every turn (so the other
    side, should it share this CPU, runs at once), and a poll that sees nothing makes the
    next ones be skipped (2, 4, ... up to 64 frames, until one sees its frame again), so
    a slow or CPU-starved peer costs little polling. ``seconds`` = 0: never poll."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self._misses = 0
        self._skip = 0

    def __call__(self, sock: socket.socket, wait: float | None) -> None:
        if self.seconds <= 0:
            return
        if self._skip:
            self._skip -= 1
            return
        end = time.perf_counter() + (self.seconds if wait is None else min(self.seconds, wait))
        ready, now, pause = select.select, time.perf_counter, os.sched_yield
        while not ready([sock], (), (), 0)[0]:
            if now() >= end:
                self._misses = min(self._misses + 1, 6)
                self._skip = 1 << self._misses
                return
            pause()
        self._misses = 0


def recv_frame(sock: socket.socket, where: str, *, max_frame: int = DEFAULT_MAX_FRAME,
               wait: float | None = None, read_timeout: float | None = None,
               poll: BusyPoll | None = None) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Read one frame: (header, arrays).

    ``wait``: seconds to wait for the frame to start (None: forever); ``read_timeout``: for
    the rest of it once it started; ``poll``: a :class:`BusyPoll` to run before sleeping in
    the kernel for the frame to start. Raises BoardTimeout,
    BoardConnectionError (the other side went away) or BoardProtocolError (the frame is
    malformed or too large; the stream cannot be trusted after it).
    """
    pre = bytearray(PREFIX_SIZE)
    view = memoryview(pre)
    if poll is not None:
        poll(sock, wait)
    _timeout(sock, wait)
    try:
        k = sock.recv_into(view, PREFIX_SIZE)
    except TimeoutError:
        raise BoardTimeout(f"no frame within {wait} s", where=where) from None
    except OSError as exc:
        raise BoardConnectionError(f"connection failed: {exc}", where=where) from None
    if k == 0:
        raise BoardConnectionError("connection closed by the other side", where=where)
    if bytes(pre[:min(k, 3)]) != MAGIC[:min(k, 3)]:
        magic = b""  # judged on what arrived (a protocol-1 frame may be short)
    else:
        _timeout(sock, read_timeout)
        if k < PREFIX_SIZE:
            _recv_into(sock, view[k:], where)
        magic = MAGIC
    if magic != MAGIC:
        if pre[0] == 0:  # a protocol-1 frame starts with a 4-byte big-endian length
            raise BoardProtocolError("a protocol-1 frame; this side speaks protocol 2",
                                     where=where, value=1, limit=VERSION)
        raise BoardProtocolError(f"not a board frame (starts with {bytes(pre[:4])!r})",
                                 where=where)
    _, version, hlen, plen = _PREFIX.unpack(bytes(pre))
    if version != VERSION:
        raise BoardProtocolError(f"frame of protocol {version}; this side speaks {VERSION}",
                                 where=where, value=version, limit=VERSION)
    if hlen > min(_MAX_HEADER, max_frame) or hlen + plen > max_frame:
        raise BoardProtocolError(
            f"frame of {hlen + plen} bytes (header {hlen}) exceeds the maximum of "
            f"{max_frame} bytes", where=where, value=hlen + plen, limit=max_frame)
    body = bytearray(hlen + plen)
    _recv_into(sock, memoryview(body), where)
    hb = body[:hlen]
    payload = memoryview(body)[hlen:]
    try:
        header = json.loads(hb.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BoardProtocolError(f"malformed frame header: {exc}", where=where) from None
    if not isinstance(header, dict):
        raise BoardProtocolError("frame header must be a JSON object", where=where)
    return header, _arrays(header.pop("arrays", []), payload, where)


_DTYPES: dict[str, np.dtype[Any]] = {}


def _dtype(dt: Any, name: str, where: str) -> np.dtype[Any]:
    d = _DTYPES.get(dt) if isinstance(dt, str) else None
    if d is not None:
        return d
    try:
        d = np.dtype(dt)
    except TypeError:
        raise BoardProtocolError(f"array {name!r}: unknown dtype {dt!r}", where=where) from None
    if d.kind not in _KINDS or d.itemsize > 8 or d.fields is not None or d.subdtype:
        raise BoardProtocolError(f"array {name!r}: dtype {dt!r} is not allowed", where=where)
    if len(_DTYPES) < 64:
        _DTYPES[dt] = d
    return d


def _arrays(table: Any, payload: memoryview, where: str) -> dict[str, NDArray[Any]]:
    out: dict[str, NDArray[Any]] = {}
    if type(table) is not list:
        raise BoardProtocolError("'arrays' must be a list", where=where)
    size = len(payload)
    for row in table:
        try:
            name, dt, shape, off = row
            if type(shape) is not list or len(shape) > 32:
                raise ValueError
            count = 1
            for s in shape:
                if type(s) is not int or s < 0:
                    raise ValueError
                count *= s
            if type(name) is not str or type(off) is not int or off < 0:
                raise ValueError
        except (ValueError, TypeError):
            raise BoardProtocolError(f"bad array entry {str(row)[:80]}; expected [name, dtype, "
                                     f"shape, offset]", where=where) from None
        dtype = _dtype(dt, name, where)
        nbytes = count * dtype.itemsize
        if off + nbytes > size:
            raise BoardProtocolError(
                f"array {name!r} ({nbytes} bytes at {off}) runs past the payload of "
                f"{size} bytes", where=where)
        if name in out:
            raise BoardProtocolError(f"array {name!r} appears twice", where=where)
        out[name] = np.frombuffer(payload, dtype, count, off).reshape(shape)
    return out


def send(sock: socket.socket, frame: bytes | list[Any], where: str,
         timeout: float | None) -> None:
    """Send a frame (bytes, or the buffers of :func:`pack_parts`) within ``timeout``
    seconds (a receiver that stops reading fails it)."""
    _timeout(sock, timeout)
    try:
        if isinstance(frame, list):
            _send_parts(sock, frame)
        else:
            sock.sendall(frame)
    except TimeoutError:
        raise BoardTimeout(f"the other side did not take a frame within {timeout} s",
                           where=where) from None
    except OSError as exc:
        raise BoardConnectionError(f"connection failed: {exc}", where=where) from None


def _send_parts(sock: socket.socket, parts: list[Any]) -> None:
    if len(parts) == 1:
        sock.sendall(parts[0])
        return
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        n = sock.sendmsg(views[:256])
        while n:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


def peer_gone(sock: socket.socket) -> bool:
    """Whether the other side closed the connection (without consuming any data)."""
    sock.setblocking(False)
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)
    return data == b""


def linger_close(sock: socket.socket, seconds: float = 0.5, most: int = 1 << 22) -> None:
    """Half-close and read what the other side still sends (briefly, capped) before the
    caller closes: closing with unread input makes the kernel send a reset, which can
    destroy the last frame (an error reply) before the other side reads it."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + seconds
        got = 0
        while got < most:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            got += len(data)
    except OSError:
        pass


def monotonic() -> float:
    return time.monotonic()

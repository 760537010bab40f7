"""The board protocol, version 2: :class:`RemoteBoard` (client) and :class:`BoardServer`.

Frames are described in :mod:`neurochip.board_wire`. A connection starts with ``hello``
(the server answers with its protocol version, its maximum frame size and, when it holds a
shared token, a challenge); with a token the client answers ``auth`` with an HMAC-SHA256 of
the challenge and its own nonce, and the server proves itself the same way (the token never
crosses the wire). Every request carries an ``id``; every reply frame repeats it.

Requests: ``info``, ``load`` (the ``.nchip`` bytes), ``run``, ``learn``, ``read_weights``,
``write_weights``, ``read_state``, ``write_state``, ``reset``, ``cancel`` (no reply) and
``close``. A run is executed in chunks: after each chunk the server sends its results in a
``progress`` frame, so no reply needs a long socket timeout, and between chunks it stops
when the client cancels or goes away. Slow operations that cannot be chunked send a
heartbeat ``progress`` frame every ``progress_interval`` seconds. A failure is a frame
``{"ok": false, "error": TYPE, "message": ...}`` that the client raises as that type.

The server binds to loopback by default, serves one fresh board per connection, and has a
maximum frame size, idle and read timeouts, a connection limit and a send timeout (a client
that stops reading is dropped).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from neurochip.board import (
    PROTOCOL_VERSION,
    Board,
    BoardAuthError,
    BoardBudgetExceeded,
    BoardBusy,
    BoardCancelled,
    BoardConnectionError,
    BoardProtocolError,
    BoardTimeout,
    BoardWorkerCrashed,
    EmulatorBoard,
    wire_error_types,
)
from neurochip.board_wire import (
    DEFAULT_BUSY_POLL,
    DEFAULT_MAX_FRAME,
    ENCODER,
    BusyPoll,
    frame_parts,
    linger_close,
    pack,
    pack_parts,
    peer_gone,
    recv_frame,
    send,
    send_dtype,
)
from neurochip.errors import (
    BoardError,
    ConfigError,
    EmulatorInputError,
    ImageError,
    NeurochipError,
)

if TYPE_CHECKING:
    from neurochip import ChipImage, RunResult

__all__ = ["BoardServer", "RemoteBoard"]

_AUTH_CLIENT = b"neurochip-board-2|client|"
_AUTH_SERVER = b"neurochip-board-2|server|"
#: operations a client may repeat after reconnecting when nothing changed the board since
_REPEATABLE = {"info", "load", "reset", "read_weights", "read_state"}


def _mac(token: str, label: bytes, a: bytes, b: bytes) -> str:
    return hmac.new(token.encode(), label + a + b, hashlib.sha256).hexdigest()


# ------------------------------------------------------------------------------------------
# Results on the wire
# ------------------------------------------------------------------------------------------


def _result_list(r: Any) -> list[tuple[str, NDArray[Any]]]:
    """A run result's arrays in frame order (the counters stacked into one array)."""
    out = [(f"spikes/{k}", v) for k, v in r.spikes.items()]
    out += [(f"probes/{k}", v) for k, v in r.probes.items()]
    if r.counters:  # one array (..., T, cores, counter) instead of one per counter
        whole = _stacked(list(r.counters.values()))
        out.append(("counters", whole if whole is not None else
                    np.stack(list(r.counters.values()), -1)))
    out += [("cycles", r.cycles), ("latency_cycles", r.latency_cycles), ("energy", r.energy)]
    return out


def _stacked(vals: list[NDArray[Any]]) -> NDArray[Any] | None:
    """The array that the counters are views of, when they are its last axis in order
    (as the emulator returns them): sent as it is instead of stacked anew."""
    b = vals[0].base
    if (not isinstance(b, np.ndarray) or not b.flags.c_contiguous
            or b.size != vals[0].size * len(vals)):
        return None
    whole = b.reshape((*vals[0].shape, len(vals)))
    addr = whole.__array_interface__["data"][0]
    for i, v in enumerate(vals):
        if (v.base is not b or v.dtype != whole.dtype or v.strides != whole.strides[:-1]
                or v.__array_interface__["data"][0] != addr + i * whole.itemsize):
            return None
    return whole


def _result_extra(r: Any) -> dict[str, Any]:
    return {k: v for k, v in r.extra.items() if isinstance(v, (bool, int, float, str))}


def result_arrays(r: Any) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    meta = {"cores": [int(c) for c in r.cores], "cycle_ns": float(r.cycle_ns),
            "t_start": int(r.t_start), "steps": int(r.steps), "batched": bool(r.batched),
            "counters": list(r.counters)}
    extra = _result_extra(r)
    if extra:
        meta["extra"] = extra
    return meta, dict(_result_list(r))


class ResultFrames:
    """Reply frames of run results, as :func:`result_arrays` and
    :func:`~neurochip.board_wire.pack_parts` make them. What repeats from run to run (the
    result's cores and counters, the table of arrays) is encoded once per layout, so a
    reply of a short run costs little more than its bytes."""

    def __init__(self, most: int = 64) -> None:
        self._layouts: dict[tuple[Any, ...], tuple[str, str, int]] = {}
        self._most = most

    def pack(self, rid: Any, r: Any, done: int, total: int, final: bool) -> list[Any]:
        items = [(name, a if type(a) is np.ndarray and a.flags.c_contiguous
                  else np.ascontiguousarray(a)) for name, a in _result_list(r)]
        extra = _result_extra(r)
        key = (tuple([(name, a.dtype, a.shape) for name, a in items]), tuple(r.cores),
               r.cycle_ns, r.batched, tuple(r.counters), tuple(extra.items()))
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layout(r, items, extra)
            if len(self._layouts) >= self._most:
                self._layouts.clear()
            self._layouts[key] = layout
        meta, table, size = layout
        rid_json = str(rid) if type(rid) is int else ENCODER.encode(rid)
        head = (f'{{"id":{rid_json},"ok":true,"final":{"true" if final else "false"},'
                f'"result":{{"t_start":{int(r.t_start)},"steps":{int(r.steps)},{meta}}},'
                f'"progress":{{"done":{int(done)},"steps":{int(total)}}},"arrays":{table}}}'
                ).encode()
        return frame_parts(head, [a for _, a in items if a.size], size)

    @staticmethod
    def _layout(r: Any, items: list[tuple[str, NDArray[Any]]], extra: dict[str, Any]
                ) -> tuple[str, str, int]:
        meta: dict[str, Any] = {"cores": [int(c) for c in r.cores],
                                "cycle_ns": float(r.cycle_ns), "batched": bool(r.batched),
                                "counters": list(r.counters)}
        if extra:
            meta["extra"] = extra
        table, off = [], 0
        for name, a in items:
            table.append([name, send_dtype(a.dtype, name), a.shape, off])
            off += a.nbytes
        return ENCODER.encode(meta)[1:-1], ENCODER.encode(table), off


def result_from(meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> RunResult:
    from neurochip import RunResult

    spikes: dict[str, NDArray[Any]] = {}
    probes: dict[str, NDArray[Any]] = {}
    for k, v in arrays.items():
        if k.startswith("spikes/"):
            spikes[k[7:]] = v
        elif k.startswith("probes/"):
            probes[k[7:]] = v
    try:
        names = list(meta.get("counters", []))
        stacked = arrays.get("counters")
        if names and (stacked is None or stacked.shape[-1] != len(names)):
            have = None if stacked is None else stacked.shape
            raise ValueError(f"{len(names)} counters named, array {have}")
        counters = ({str(k): stacked[..., i] for i, k in enumerate(names)}
                    if names and stacked is not None else {})
        return RunResult(spikes, probes, counters,
                         arrays["cycles"], arrays["latency_cycles"], arrays["energy"],
                         list(meta["cores"]), float(meta["cycle_ns"]), int(meta["t_start"]),
                         int(meta["steps"]), bool(meta["batched"]),
                         dict(meta.get("extra", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise BoardProtocolError(f"malformed run result: {exc}", where="board frame") from None


def concat_results(parts: list[RunResult]) -> RunResult:
    """Join the results of consecutive runs (chunks) into one."""
    from neurochip import RunResult

    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    ax = 1 if first.batched else 0

    def cat(xs: list[NDArray[Any]], axis: int) -> NDArray[Any]:
        return np.concatenate(xs, axis=axis)

    return RunResult(
        {k: cat([p.spikes[k] for p in parts], ax) for k in first.spikes},
        {k: cat([p.probes[k] for p in parts], ax) for k in first.probes},
        {k: cat([p.counters[k] for p in parts], ax) for k in first.counters},
        cat([p.cycles for p in parts], ax), cat([p.latency_cycles for p in parts], ax),
        cat([p.energy for p in parts], ax), first.cores, first.cycle_ns, first.t_start,
        sum(p.steps for p in parts), first.batched, dict(first.extra))


def _history_arrays(h: Any) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    arrays = {"order": h.order, "energy_pj": h.energy_pj, "latency_ns": h.latency_ns}
    for k, v in h.counters.items():
        arrays[f"counters/{k}"] = v
    for k, v in h.spike_counts.items():
        arrays[f"spike_counts/{k}"] = v
    return {"wall_s": float(h.wall_s), "steps": int(h.steps),
            "epoch_metrics": list(h.epoch_metrics)}, arrays


def _history_from(meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> Any:
    from emulator.learning.engine import LearnHistory

    def group(prefix: str) -> dict[str, NDArray[Any]]:
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    return LearnHistory(arrays["order"], group("counters/"), arrays["energy_pj"],
                        arrays["latency_ns"], group("spike_counts/"), float(meta["wall_s"]),
                        int(meta["steps"]), list(meta.get("epoch_metrics", [])))


def _prefixed(arrays: Mapping[str, NDArray[Any]], prefix: str) -> dict[str, NDArray[Any]]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


# ------------------------------------------------------------------------------------------
# Client
# ------------------------------------------------------------------------------------------


class RemoteBoard(Board):
    """A board reached over TCP with the board protocol (version 2).

    timeout: seconds to wait for any frame of a reply (a long run streams a frame per
    chunk, so this bounds silence, not the length of a run); on a timeout the connection
    is dropped (a late reply can never be taken for the next one). connect_timeout: for
    connecting and the handshake. token: the server's shared secret (default
    ``$NEUROCHIP_BOARD_TOKEN``). retries: reconnection attempts (exponential backoff from
    ``backoff`` seconds). busy_poll: seconds to poll for a reply before sleeping (a short
    call's reply is then taken without the wake-up latency of a sleeping process; 0: never
    poll). One lock serialises calls, so a board may be shared by threads.

    After a lost connection the next call reconnects and reprograms the last image; a call
    that may have changed the board's state (run, learn, write_*) is never repeated: it
    raises :class:`BoardConnectionError` saying the state is gone.
    """

    backend = "remote"

    def __init__(self, host: str, port: int, timeout: float | None = None, *,
                 connect_timeout: float | None = None, token: str | None = None,
                 retries: int = 3, backoff: float = 0.05, max_frame: int = DEFAULT_MAX_FRAME,
                 chunk: int | None = None, busy_poll: float | None = None) -> None:
        super().__init__()
        self.host, self.port = host, int(port)
        self.name = f"tcp://{host}:{port}"
        self.timeout = 10.0 if timeout is None else float(timeout)
        self.connect_timeout = 5.0 if connect_timeout is None else float(connect_timeout)
        self.token = token if token is not None else os.environ.get("NEUROCHIP_BOARD_TOKEN")
        self.retries, self.backoff = int(retries), float(backoff)
        self.max_frame = int(max_frame)
        self._poll_s = 0.0
        self._polls: dict[tuple[str, int], BusyPoll] = {}
        self.busy_poll = DEFAULT_BUSY_POLL if busy_poll is None else busy_poll
        #: steps per chunk of a run (None: the server adapts chunks to ~progress_interval)
        self.chunk = chunk
        self.reconnects = 0
        #: how many progress frames the last call received
        self.last_progress: list[dict[str, Any]] = []
        self._sock: socket.socket | None = None
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._next_id = 0
        self._current: int | None = None
        self._dirty = False
        self._closed = False
        self.remote_info: dict[str, Any] = {}
        self._connect()

    @property
    def busy_poll(self) -> float:
        """Seconds to poll for a reply before sleeping (0: never poll)."""
        return self._poll_s

    @busy_poll.setter
    def busy_poll(self, seconds: float) -> None:
        s = float(seconds)
        if not s >= 0 or s == float("inf"):
            raise BoardError(f"busy_poll must be 0 or a positive number of seconds, got "
                             f"{seconds!r}", where=self.name, field="busy_poll")
        self._poll_s = s
        self._polls.clear()

    def _poller(self, op: str, header: Mapping[str, Any],
                arrays: Mapping[str, Any] | None) -> BusyPoll:
        """The busy poll of one kind of request: an operation and, for runs, the size of
        the work (steps x samples, to a power of two). Each kind learns on its own whether
        its replies come within the poll (a short run's do; a batch's do not, and polling
        for it would take a core from the server while it computes)."""
        size = 0
        if op in ("run", "learn"):
            steps, batch = header.get("steps"), 1
            for a in (arrays or {}).values():
                shape: tuple[int, ...] = tuple(getattr(a, "shape", ()))
                if len(shape) >= 2:
                    steps = steps if isinstance(steps, int) else int(shape[-2])
                    batch = max(batch, int(shape[0]) if len(shape) == 3 else 1)
            size = (max(int(steps), 1) * batch).bit_length() if isinstance(steps, int) else 0
        key = (op, size)
        poll = self._polls.get(key)
        if poll is None:
            if len(self._polls) >= 64:
                self._polls.clear()
            poll = self._polls[key] = BusyPoll(self._poll_s)
        return poll

    # -------------------------------------------------------------- connection
    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout)
        except OSError as exc:
            raise BoardConnectionError(f"cannot connect: {exc}", where=self.name) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            hello = self._handshake(sock)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.remote_info = hello

    def _handshake(self, sock: socket.socket) -> dict[str, Any]:
        ct = self.connect_timeout
        send(sock, pack({"id": 0, "op": "hello", "protocol": PROTOCOL_VERSION,
                         "max_frame": self.max_frame}), self.name, ct)
        try:
            reply, _ = recv_frame(sock, self.name, max_frame=self.max_frame, wait=ct,
                                  read_timeout=ct)
        except BoardTimeout:
            raise BoardProtocolError(
                f"no protocol-{PROTOCOL_VERSION} answer within {ct} s (a protocol-1 board "
                f"server?)", where=self.name) from None
        self._raise_if_error(reply)
        if reply.get("protocol") != PROTOCOL_VERSION:
            raise BoardProtocolError(f"board speaks protocol {reply.get('protocol')!r}, this "
                                     f"client {PROTOCOL_VERSION}", where=self.name)
        challenge = reply.get("challenge")
        if challenge is not None:
            if not self.token:
                raise BoardAuthError("the board server requires a token (give token= or set "
                                     "NEUROCHIP_BOARD_TOKEN)", where=self.name)
            cnonce = secrets.token_bytes(16)
            nonce = bytes.fromhex(str(challenge))
            send(sock, pack({"id": 0, "op": "auth", "cnonce": cnonce.hex(),
                             "mac": _mac(self.token, _AUTH_CLIENT, nonce, cnonce)}),
                 self.name, ct)
            ok, _ = recv_frame(sock, self.name, max_frame=self.max_frame, wait=ct,
                               read_timeout=ct)
            self._raise_if_error(ok)
            want = _mac(self.token, _AUTH_SERVER, nonce, cnonce)
            if not hmac.compare_digest(str(ok.get("mac", "")), want):
                raise BoardAuthError("the board server could not prove it holds the token",
                                     where=self.name)
        return reply

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _reconnect(self) -> None:
        delay = self.backoff
        last: BoardError | None = None
        for _ in range(max(self.retries, 1)):
            try:
                self._connect()
            except BoardConnectionError as exc:
                last = exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.reconnects += 1
            self._dirty = False
            if self._image is not None:
                self._transact("load", {"digest": self._image.digest},
                               {"image": _image_bytes(self._image)})
            return
        assert last is not None
        raise last

    # -------------------------------------------------------------- calls
    def _raise_if_error(self, reply: Mapping[str, Any]) -> None:
        if reply.get("ok", False):
            return
        if reply.get("closed"):  # the server ended the session: the next call reconnects
            self._drop()
        name = str(reply.get("error", "BoardError"))
        cls = wire_error_types().get(name, BoardError)
        where = reply.get("where")
        where = f"{self.name}: {where}" if where else self.name
        msg = str(reply.get("message", ""))
        if cls is BoardError and name != "BoardError":
            msg = f"{name}: {msg}"
        try:
            err = cls(msg, where=where, field=reply.get("field"))  # type: ignore[call-arg]
        except TypeError:
            err = BoardError(f"{name}: {msg}", where=where)
        raise err

    def _transact(self, op: str, header: dict[str, Any],
                  arrays: Mapping[str, Any] | None = None,
                  on_progress: Callable[[dict[str, Any], dict[str, NDArray[Any]]], None]
                  | None = None) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        sock = self._sock
        if sock is None:
            raise BoardConnectionError("not connected", where=self.name)
        self._next_id += 1
        rid = self._next_id
        frame = pack_parts({**header, "id": rid, "op": op}, arrays)
        poll = self._poller(op, header, arrays)
        with self._send_lock:
            self._current = rid
            try:
                send(sock, frame, self.name, self.timeout)
            except BoardError:
                self._current = None
                self._drop()
                raise
        self.last_progress = []
        try:
            while True:
                try:
                    reply, got = recv_frame(sock, self.name, max_frame=self.max_frame,
                                            wait=self.timeout, read_timeout=self.timeout,
                                            poll=poll)
                except BaseException:  # a timeout, a lost link or an interrupt: a late
                    self._drop()       # reply must never be taken for the next one
                    raise
                if reply.get("id") != rid:
                    self._drop()
                    raise BoardProtocolError(f"reply for request {reply.get('id')!r} while "
                                             f"waiting for {rid}", where=self.name)
                self._raise_if_error(reply)
                if "progress" in reply and not reply.get("final", False):
                    self.last_progress.append(dict(reply["progress"]))
                    if on_progress is not None:
                        try:
                            on_progress(reply, got)
                        except BaseException:
                            self._drop()  # the rest of this reply will never be read
                            raise
                    continue
                return reply, got
        finally:
            self._current = None

    def _call(self, op: str, header: dict[str, Any] | None = None,
              arrays: Mapping[str, Any] | None = None,
              on_progress: Callable[[dict[str, Any], dict[str, NDArray[Any]]], None]
              | None = None) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        with self._lock:
            if self._closed:
                raise BoardError("board is closed", where=self.name)
            repeatable = op in _REPEATABLE and not self._dirty
            if self._sock is None:
                self._reconnect()
            try:
                return self._transact(op, header or {}, arrays, on_progress)
            except BoardTimeout:
                raise
            except BoardConnectionError as exc:
                if not repeatable:
                    raise BoardConnectionError(
                        f"connection lost during {op!r} ({exc.message}); it is not repeated, "
                        f"and the board's state is gone: the next call reconnects and "
                        f"reprograms the image only", where=self.name) from None
                self._reconnect()
                return self._transact(op, header or {}, arrays, on_progress)

    def cancel(self) -> bool:
        """Ask the server to stop the run in progress (from another thread); whether one
        was in progress. The run then raises :class:`BoardCancelled`."""
        with self._send_lock:
            rid, sock = self._current, self._sock
            if rid is None or sock is None:
                return False
            send(sock, pack({"id": rid, "op": "cancel"}), self.name, self.timeout)
            return True

    # -------------------------------------------------------------- operations
    def info(self) -> dict[str, Any]:
        reply, _ = self._call("info")
        out = dict(reply.get("info", {}))
        out["link"] = {"board": self.name, "protocol": PROTOCOL_VERSION,
                       "reconnects": self.reconnects}
        return out

    def _load(self, image: ChipImage) -> None:
        self._call("load", {"digest": image.digest}, {"image": _image_bytes(image)})
        self._dirty = False

    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all",
            on_progress: Callable[[int, int], None] | None = None) -> RunResult:
        """Run remotely; results stream back in chunks. on_progress(done, steps)."""
        self.image  # noqa: B018  (raises when nothing was loaded)
        spk: Any = spikes if (spikes is None or isinstance(spikes, str)) else list(spikes)
        header: dict[str, Any] = {"steps": steps, "probes": [str(p) for p in probes],
                                  "spikes": spk, "chunk": self.chunk}
        parts: list[RunResult] = []

        def got(reply: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> None:
            if "result" in reply:
                parts.append(result_from(reply["result"], arrays))
            p = reply["progress"]
            if on_progress is not None and "done" in p:
                on_progress(int(p["done"]), int(p["steps"]))

        arrays = {f"inputs/{k}": np.asarray(v) for k, v in (inputs or {}).items()}
        self._dirty = True
        reply, last = self._call("run", header, arrays, got)
        if "result" in reply:
            parts.append(result_from(reply["result"], last))
        if not parts:
            raise BoardProtocolError("the run returned no result", where=self.name)
        return concat_results(parts)

    def learn(self, inputs: Mapping[str, Any], targets: Mapping[str, Any] | None = None,
              reward: Any = None, *, epochs: int = 1, shuffle: int | None = None,
              reset: bool = True) -> Any:
        arrays = {f"inputs/{k}": np.asarray(v) for k, v in inputs.items()}
        arrays.update({f"targets/{k}": np.asarray(v) for k, v in (targets or {}).items()})
        if reward is not None:
            arrays["reward"] = np.asarray(reward)
        self._dirty = True
        reply, got = self._call("learn", {"epochs": epochs, "shuffle": shuffle,
                                          "reset": reset, "targets": targets is not None},
                                arrays)
        return _history_from(reply["history"], got)

    def read_weights(self, connection: str) -> NDArray[np.int64]:
        _, got = self._call("read_weights", {"connection": connection})
        return np.array(got["weights"], np.int64)

    def write_weights(self, connection: str, weights: Any) -> None:
        self._dirty = True
        self._call("write_weights", {"connection": connection},
                   {"weights": np.asarray(weights)})

    def read_state(self) -> dict[str, NDArray[np.int64]]:
        _, got = self._call("read_state")
        return {k: np.array(v, np.int64) for k, v in got.items()}

    def write_state(self, u: Any = None, v: Any = None) -> None:
        arrays = {k: np.asarray(x) for k, x in (("u", u), ("v", v)) if x is not None}
        self._dirty = True
        self._call("write_state", {}, arrays)

    def reset(self) -> None:
        self._call("reset")
        self._dirty = False

    def supported_ops(self) -> list[str]:
        return list(self.info().get("ops", []))

    def close(self) -> None:
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
            if self._sock is not None:
                try:
                    send(self._sock, pack({"id": 0, "op": "close"}), self.name, 1.0)
                except BoardError:
                    pass
            self._drop()


def _image_bytes(image: ChipImage) -> NDArray[np.uint8]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = image.save(Path(d) / "image.nchip")
        return np.frombuffer(path.read_bytes(), np.uint8)


# ------------------------------------------------------------------------------------------
# Server
# ------------------------------------------------------------------------------------------


class _Gone(Exception):
    """The client went away; stop working for it."""


class _Handler(socketserver.BaseRequestHandler):
    server: BoardServer

    def handle(self) -> None:
        srv = self.server
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.where = "board server"
        self._state: Any = None  # shared with the supervisor when isolated
        self._started = 0.0
        if not srv._slots.acquire(blocking=False):
            self._reply_error(0, BoardBusy(f"the server is at its limit of "
                                           f"{srv.max_connections} connections", where=self.where))
            linger_close(sock)
            return
        board: Board | None = None
        self._pool: Any = None
        self._rates: dict[tuple[bool, bool, bool], float] = {}
        self._progress: dict[str, int] = {}
        self._client_max = srv.max_frame
        self._results = ResultFrames()
        self._sized: Any = None
        self._step_bytes: dict[tuple[Any, ...], int] = {}
        try:
            if not self._greet():
                return
            if srv.isolate:
                self._serve_in_worker()
                return
            board = srv.make_board()
            self._serve(board)
        except _Gone:
            pass
        finally:
            linger_close(sock)
            srv._slots.release()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if board is not None:
                board.close()

    # -------------------------------------------------------------- worker process
    def _serve_in_worker(self) -> None:
        """Serve this connection's session in a forked worker process and supervise it: a
        crash or a blow-up of the worker ends this session only, with a typed error frame
        (BoardWorkerCrashed, BoardBudgetExceeded) when the stream allows one."""
        import mmap

        srv = self.server
        self._state = mmap.mmap(-1, _STATE.size)  # anonymous and shared with the child
        with srv._fork_lock:
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                code = 0
                try:
                    self._worker_main()
                except BaseException:  # the supervisor reports the exit status
                    code = 70
                finally:
                    os._exit(code)
            srv._workers.add(pid)
        try:
            killed, status = self._supervise(pid)
        finally:
            srv._workers.discard(pid)
        started, rid, sending, _ = _STATE.unpack(self._state)
        if status == 0 and not killed:
            return
        if sending or not started:  # mid-frame (the stream is broken) or between requests
            return                    # (nobody waits for an answer): just close
        if killed:
            err: BoardError = BoardBudgetExceeded(
                f"request {rid:.0f} ran past the time budget of {srv.max_request_seconds:g} s "
                f"and its worker was stopped; the board's state is gone",
                where=self.where, field="max_request_seconds",
                value=round(time.monotonic() - started, 3), limit=srv.max_request_seconds)
        else:
            how = (f"killed by signal {-status} ({_signal_name(-status)})" if status < 0
                   else f"exit status {status}")
            during = f" during request {rid:.0f}" if started else ""
            err = BoardWorkerCrashed(f"the worker process of this session died{during} "
                                     f"({how}); the board's state is gone", where=self.where)
        self._reply_error(int(rid) if started else 0, err, closed=True)

    def _supervise(self, pid: int) -> tuple[bool, int]:
        """Wait for the worker; stop it when a request overruns the time budget (with a
        grace period, the worker itself stops chunked runs at the budget).
        Returns (killed for the budget, status: exit code or -signal)."""
        srv = self.server
        limit = srv.max_request_seconds
        grace = None if limit is None else limit + max(1.0, 0.1 * limit)
        killed = False
        delay = 0.002
        while True:
            try:
                done, raw = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return killed, 0
            if done:
                if os.WIFSIGNALED(raw):
                    return killed, -os.WTERMSIG(raw)
                return killed, os.WEXITSTATUS(raw) if os.WIFEXITED(raw) else 1
            if grace is not None and not killed:
                started = _STATE.unpack(self._state)[0]
                if started and time.monotonic() - started > grace:
                    killed = True
                    _kill(pid)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _worker_main(self) -> None:
        srv = self.server
        sock: socket.socket = self.request
        _detach_other_sockets(sock.fileno())
        _die_with_parent()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if srv.max_memory is not None:
            import resource

            size = _vm_size()
            soft = size + int(srv.max_memory)
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard == resource.RLIM_INFINITY or soft < hard:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        try:
            board = srv.make_board()
        except Exception as exc:
            self._reply_error(0, exc, closed=True)
            return
        try:
            self._serve(board)
        except _Gone:
            pass
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            board.close()
            linger_close(sock)

    def _mark(self, rid: Any, sending: bool | None = None) -> None:
        """Record the request in progress (and whether a frame is being sent) for the
        supervisor of an isolated session."""
        if self._state is None:
            return
        if sending is None:
            num = float(rid) if isinstance(rid, (int, float)) and not isinstance(rid, bool) \
                else 0.0
            _STATE.pack_into(self._state, 0, self._started, num, 0, 0)
        else:
            self._state[_SENDING_AT] = 1 if sending else 0

    # -------------------------------------------------------------- frames
    def _send(self, header: dict[str, Any], arrays: Mapping[str, Any] | None = None) -> None:
        self._send_frame(pack_parts(header, arrays))

    def _send_frame(self, frame: list[Any]) -> None:
        if self._state is not None:
            self._mark(None, True)
        try:
            send(self.request, frame, self.where, self.server.read_timeout)
        except BoardError:
            raise _Gone() from None
        finally:
            if self._state is not None:
                self._mark(None, False)

    def _reply_error(self, rid: Any, exc: BaseException, *, closed: bool = False) -> None:
        if isinstance(exc, MemoryError):
            limit = self.server.max_memory
            exc = BoardBudgetExceeded(
                "the request ran out of memory" + (
                    f" (the session's budget is {limit >> 20} MiB)" if limit else ""),
                where=self.where, field="max_memory", limit=limit)
        head: dict[str, Any]
        if isinstance(exc, NeurochipError):
            head = {"error": type(exc).__name__, "message": exc.message, "where": exc.where,
                    "field": exc.field}
        else:
            head = {"error": "BoardError", "message": f"internal error: {type(exc).__name__}: "
                                                      f"{exc}", "where": self.where}
        if closed:
            head["closed"] = True
        try:
            self._send({"id": rid, "ok": False, **head})
        except _Gone:
            pass

    def _recv(self, wait: float | None, poll: BusyPoll | None = None
              ) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        srv = self.server
        return recv_frame(self.request, self.where, max_frame=srv.max_frame, wait=wait,
                          read_timeout=srv.read_timeout, poll=poll)

    def _greet(self) -> bool:
        srv = self.server
        try:
            header, _ = self._recv(srv.read_timeout)
        except BoardProtocolError as exc:
            if exc.value == 1:
                self._answer_v1()
            else:
                self._reply_error(0, exc)
            return False
        except BoardError:
            return False
        if header.get("op") != "hello" or header.get("protocol") != PROTOCOL_VERSION:
            self._reply_error(header.get("id", 0), BoardProtocolError(
                f"expected hello for protocol {PROTOCOL_VERSION}, got op "
                f"{header.get('op')!r} protocol {header.get('protocol')!r}", where=self.where))
            return False
        theirs = header.get("max_frame")
        if isinstance(theirs, int) and not isinstance(theirs, bool) and theirs > 0:
            self._client_max = min(theirs, srv.max_frame)
        hello: dict[str, Any] = {"id": header.get("id", 0), "ok": True,
                                 "protocol": PROTOCOL_VERSION, "max_frame": srv.max_frame}
        nonce = secrets.token_bytes(16)
        if srv.token:
            hello["challenge"] = nonce.hex()
        self._send(hello)
        if not srv.token:
            return True
        try:
            auth, _ = self._recv(srv.read_timeout)
        except BoardError:
            return False
        try:
            cnonce = bytes.fromhex(str(auth.get("cnonce", "")))
        except ValueError:
            cnonce = b""
        want = _mac(srv.token, _AUTH_CLIENT, nonce, cnonce)
        if auth.get("op") != "auth" or len(cnonce) < 16 or not hmac.compare_digest(
                str(auth.get("mac", "")), want):
            self._reply_error(auth.get("id", 0), BoardAuthError(
                "authentication failed", where=self.where))
            return False
        self._send({"id": auth.get("id", 0), "ok": True,
                    "mac": _mac(srv.token, _AUTH_SERVER, nonce, cnonce)})
        return True

    def _answer_v1(self) -> None:
        import json
        import struct

        msg = json.dumps({"ok": False, "error": "BoardProtocolError",
                          "message": f"this board server speaks protocol {PROTOCOL_VERSION}; "
                                     f"upgrade the client (protocol 1 is not served)",
                          "protocol": PROTOCOL_VERSION}).encode()
        try:
            self.request.settimeout(1.0)
            self.request.sendall(struct.pack(">I", len(msg)) + msg + struct.pack(">I", 0))
        except OSError:
            pass

    # -------------------------------------------------------------- requests
    def _serve(self, board: Board) -> None:
        srv = self.server
        poll = BusyPoll(srv.busy_poll)
        while True:
            try:
                header, arrays = self._recv(srv.idle_timeout, poll)
            except BoardProtocolError as exc:
                self._reply_error(0, exc)  # the stream cannot be trusted after a bad frame
                return
            except BoardError:
                return  # idle timeout or the client went away
            rid = header.get("id")
            op = header.get("op")
            if op == "close":
                return
            if op == "cancel":
                continue  # a cancel that arrived after its run ended
            self._started = time.monotonic()
            self._mark(rid)
            try:
                self._dispatch(board, rid, op, header, arrays)
            except _Gone:
                return
            except BoardProtocolError as exc:
                self._reply_error(rid, exc)
                return
            except (Exception, MemoryError) as exc:  # every failure: a typed error frame
                self._reply_error(rid, exc)
            finally:
                self._started = 0.0
                self._mark(None)

    def _dispatch(self, board: Board, rid: Any, op: Any, header: dict[str, Any],
                  arrays: dict[str, NDArray[Any]]) -> None:
        where = self.where
        if op == "info":
            self._send({"id": rid, "ok": True, "info": board.info()})
        elif op == "load":
            blob = arrays.get("image")
            if blob is None or blob.dtype != np.uint8 or blob.ndim != 1:
                raise BoardError("load needs the image bytes as a uint8 array 'image'",
                                 where=where)
            want = header.get("digest")
            self._background(rid, lambda: _load_bytes(board, blob, want, where))
            self._send({"id": rid, "ok": True, "digest": board.image.digest})
        elif op == "run":
            self._run(board, rid, header, arrays)
        elif op == "learn":
            self._learn(board, rid, header, arrays)
        elif op == "read_weights":
            w = board.read_weights(str(header.get("connection")))
            self._send({"id": rid, "ok": True}, {"weights": w})
        elif op == "write_weights":
            if "weights" not in arrays:
                raise BoardError("write_weights needs an array 'weights'", where=where)
            conn, w = str(header.get("connection")), arrays["weights"]
            self._background(rid, lambda: board.write_weights(conn, w))
            self._send({"id": rid, "ok": True})
        elif op == "read_state":
            self._send({"id": rid, "ok": True}, board.read_state())
        elif op == "write_state":
            board.write_state(arrays.get("u"), arrays.get("v"))
            self._send({"id": rid, "ok": True})
        elif op == "reset":
            board.reset()
            self._send({"id": rid, "ok": True})
        else:
            raise BoardError(f"unknown operation {op!r}", where=where)

    def _watch(self, rid: Any) -> None:
        """Between chunks: stop if the client went away or cancelled this request."""
        sock = self.request
        if peer_gone(sock):
            raise _Gone()
        import select

        r, _, _ = select.select([sock], [], [], 0)
        if not r:
            return
        try:
            header, _ = self._recv(self.server.read_timeout)
        except BoardProtocolError:
            raise  # answered with the error, then the connection ends
        except BoardError:
            raise _Gone() from None
        if header.get("op") == "cancel" and header.get("id") == rid:
            raise BoardCancelled("the run was cancelled by the client", where=self.where)
        raise BoardProtocolError(f"request {header.get('op')!r} arrived while request {rid} "
                                 f"is running; send one request at a time", where=self.where)

    def _background(self, rid: Any, work: Callable[[], Any]) -> Any:
        """Run ``work`` on this connection's worker thread, sending a heartbeat every
        progress_interval and stopping (at the next chance) if the client goes away."""
        from concurrent.futures import TimeoutError as FutureTimeout

        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="board-worker")
        fut = self._pool.submit(work)
        while True:
            try:
                return fut.result(self.server.progress_interval)
            except FutureTimeout:
                pass
            try:
                self._watch(rid)
                self._send({"id": rid, "ok": True,
                            "progress": {**self._progress, "alive": True}})
            except BaseException:
                fut.cancel()
                # the work cannot be interrupted; wait for it so the board is not closed
                # under it, then give up on this client
                fut.exception()
                raise

    def _run(self, board: Board, rid: Any, header: dict[str, Any],
             arrays: dict[str, NDArray[Any]]) -> None:
        inputs = _prefixed(arrays, "inputs/")
        steps = header.get("steps")
        probes = header.get("probes", [])
        spikes = header.get("spikes", "all")
        if not isinstance(probes, list) or not all(isinstance(p, str) for p in probes):
            raise EmulatorInputError("probes must be a list of names", where=self.where,
                                     field="probes")
        if not (spikes is None or isinstance(spikes, str) or (
                isinstance(spikes, list) and all(isinstance(s, str) for s in spikes))):
            raise EmulatorInputError("spikes must be 'all', a name, a list or null",
                                     where=self.where, field="spikes")
        if steps is None:
            if not inputs:
                raise EmulatorInputError("give inputs or a number of steps", where=self.where,
                                         field="steps")
            steps = max(int(a.shape[-2]) if a.ndim >= 2 else 0 for a in inputs.values())
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise EmulatorInputError(f"steps must be a non-negative int, got {steps!r}",
                                     where=self.where, field="steps")
        total = int(steps)
        batch_n = max([a.shape[0] for a in inputs.values() if a.ndim == 3], default=1)
        self._check_work(board, total * batch_n, f"{total} steps x {batch_n} samples")
        fixed = header.get("chunk")
        if not getattr(board, "chunked_runs", True):
            r = self._background(rid, lambda: board.run(inputs, total, probes=probes,
                                                        spikes=spikes))
            self._send_frame(self._results.pack(rid, r, total, total, True))
            return
        chunk = int(fixed) if isinstance(fixed, int) and fixed > 0 else 1024
        # a chunk's results must fit the client's frames: bound the steps by a byte estimate
        per_step = batch_n * self._bytes_per_step(board, probes, spikes)
        most = max(1, (self._client_max // 2) // max(per_step, 1))
        chunk = min(chunk, most)
        target = self.server.progress_interval
        done = 0
        while True:
            self._progress = {"done": done, "steps": total}
            n = min(chunk, total - done)
            part = {k: (a[:, done:done + n] if a.ndim == 3 else a[done:done + n])
                    for k, a in inputs.items()}
            t0 = time.perf_counter()
            batch = max([a.shape[0] for a in inputs.values() if a.ndim == 3], default=0)
            key = (batch > 0, bool(probes), spikes is None)
            rate = self._rates.get(key)
            quick = rate is not None and rate * n * max(batch, 1) < target / 4
            try:
                if quick:  # known to be short: no hand-off to the worker thread
                    r = board.run(part, n, probes=probes, spikes=spikes)
                else:
                    r = self._background(rid, lambda p=part, k=n: board.run(  # type: ignore[misc]
                        p, k, probes=probes, spikes=spikes))
            except NeurochipError as exc:
                if done:
                    exc.message = f"{exc.message} (after {done} of {total} steps)"
                raise
            dt = time.perf_counter() - t0
            done += n
            final = done >= total
            self._send_frame(self._results.pack(rid, r, done, total, final))
            if n:  # bookkeeping after the reply is on its way
                self._rates[key] = dt / (n * max(batch, 1))
            if final:
                return
            self._watch(rid)
            limit = self.server.max_request_seconds
            if limit is not None and time.monotonic() - self._started > limit:
                raise BoardBudgetExceeded(
                    f"the run ran past the time budget of {limit:g} s after {done} of "
                    f"{total} steps (the board holds the state after step {done})",
                    where=self.where, field="max_request_seconds",
                    value=round(time.monotonic() - self._started, 3), limit=limit)
            if not fixed:
                scale = target / max(dt, 1e-6)
                chunk = int(min(max(chunk * min(max(scale, 0.25), 4.0), 16), 1 << 20, most))

    def _bytes_per_step(self, board: Board, probes: list[str], spikes: Any) -> int:
        """:func:`_bytes_per_step`, remembered for the loaded image."""
        try:
            img: Any = board.image
        except BoardError:
            img = None
        if img is not self._sized:
            self._sized, self._step_bytes = img, {}
        key = (tuple(probes), spikes if not isinstance(spikes, list) else tuple(spikes))
        n = self._step_bytes.get(key)
        if n is None:
            n = self._step_bytes[key] = _bytes_per_step(board, probes, spikes)
        return n

    def _learn(self, board: Board, rid: Any, header: dict[str, Any],
               arrays: dict[str, NDArray[Any]]) -> None:
        inputs = _prefixed(arrays, "inputs/")
        targets = _prefixed(arrays, "targets/") if header.get("targets") else None
        reward = arrays.get("reward")
        epochs = header.get("epochs", 1)
        shuffle = header.get("shuffle")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise EmulatorInputError(f"epochs must be a positive int, got {epochs!r}",
                                     where=self.where, field="epochs")
        if shuffle is not None and (isinstance(shuffle, bool) or not isinstance(shuffle, int)):
            raise EmulatorInputError(f"shuffle must be an int seed or null, got {shuffle!r}",
                                     where=self.where, field="shuffle")
        samples = max([a.shape[0] if a.ndim == 3 else 1 for a in inputs.values()], default=1)
        steps = max([a.shape[-2] if a.ndim >= 2 else 1 for a in inputs.values()], default=1)
        self._check_work(board, epochs * samples * steps,
                         f"{epochs} epochs x {samples} samples x {steps} steps")
        h = self._background(rid, lambda: board.learn(
            inputs, targets, reward, epochs=epochs, shuffle=shuffle,
            reset=bool(header.get("reset", True))))
        meta, out = _history_arrays(h)
        self._send({"id": rid, "ok": True, "history": meta}, out)


    def _check_work(self, board: Board, steps: int, what: str) -> None:
        """Refuse a request of more than max_neuron_steps (steps x samples x neurons)."""
        limit = self.server.max_neuron_steps
        if limit is None:
            return
        try:
            n = max(board.image.n_neurons, 1)
        except BoardError:
            return  # nothing loaded: the board names that itself
        work = int(steps) * n
        if work > limit:
            raise BoardBudgetExceeded(
                f"{what} x {n} neurons = {work:,} neuron-steps exceeds this server's budget "
                f"of {limit:,} per request; split the request", where=self.where,
                field="max_neuron_steps", value=work, limit=limit)


def _bytes_per_step(board: Board, probes: list[str], spikes: Any) -> int:
    """An upper estimate of the result bytes of one step of one sample."""
    try:
        img = board.image
    except BoardError:
        return 1024
    sizes = {p.name: p.size for p in img.lif_populations}
    if spikes is None:
        rec = 0
    elif isinstance(spikes, str):
        rec = img.n_neurons if spikes == "all" else sizes.get(spikes, 0)
    else:
        rec = sum(sizes.get(s, 0) for s in spikes)
    probed = sum(sizes.get(p.rpartition(".")[0], 0) for p in probes)
    return rec + 4 * probed + 8 * max(len(img.cores), 1) * 24 + 64


def _load_bytes(board: Board, blob: NDArray[np.uint8], want: Any, where: str) -> None:
    """Load an image received over the wire: it must be signed (carry its digests, which
    load checks along with the verifier) and, when the client names the digest it sent,
    be that image."""
    from neurochip.core.image import ChipImage

    image = ChipImage.from_bytes(blob.tobytes(), where=f"{where}: image")
    if not image.signed:
        raise ImageError("an image sent to a board server must carry its digests (save it "
                         "with this version of neurochip)", member="manifest.json:digests",
                         where=f"{where}: image")
    if want is not None and want != image.digest:
        raise ImageError(f"the image received has digest {image.digest}, the client sent "
                         f"{str(want)[:80]}", member="image", where=f"{where}: image")
    board.load(image)


# ------------------------------------------------------------------------------------------
# Worker processes
# ------------------------------------------------------------------------------------------

#: shared state of an isolated session: request start (monotonic), request id, sending, pad
_STATE = struct.Struct("ddBB")
_SENDING_AT = 16


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _vm_size() -> int:
    """This process's virtual memory size in bytes (what RLIMIT_AS bounds)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _detach_other_sockets(keep: int) -> None:
    """In a forked worker: point every inherited socket except ``keep`` (the listening
    socket, other sessions' connections) at /dev/null, so this process never holds another
    session's connection open. The descriptors stay taken, so no number is reused under a
    socket object that still names it."""
    import stat

    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            if fd in (keep, null):
                continue
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)


#: glibc's malloc settings of a board server process (see :func:`keep_freed_memory`)
SERVER_TRIM_THRESHOLD = 256 << 20
SERVER_MMAP_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in this process for reuse (a board server's):
    blocks up to 32 MiB come from the heap and up to 256 MiB of free heap stay mapped.

    The session's calls run on a thread other than the main one, whose malloc arena gives
    freed memory back to the system after each call; the next call's result arrays were
    then page-faulted in afresh (measured on the digits benchmark: about 500 faults and
    0.9 ms per batch of 150, a third of the emulator's own time). Returns whether the
    settings took (False off glibc, where nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        m_trim, m_mmap = -1, -3  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD (malloc.h)
        return bool(libc.mallopt(m_trim, SERVER_TRIM_THRESHOLD)) and bool(
            libc.mallopt(m_mmap, SERVER_MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


def _die_with_parent() -> None:
    """Linux: the worker gets SIGKILL when the server thread that forked it goes away."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _omp_in_use() -> bool:
    """Whether this process already started Numba's GNU OpenMP threads (a fork is then
    unsafe: the child would be terminated)."""
    par = sys.modules.get("numba.np.ufunc.parallel")
    if par is None or not getattr(par, "_is_initialized", False):
        return False
    try:
        import numba

        return str(numba.threading_layer()) == "omp"
    except (ValueError, AttributeError):
        return False


def _warm(board_factory: Callable[[], Board]) -> None:
    """Load the emulator's kernels once in the server process, so every forked worker
    starts with them (a fresh process reads them from the cache in about a second)."""
    board = board_factory()
    try:
        if isinstance(board, EmulatorBoard):
            from neurochip.hil import demo_image

            board.load(demo_image())
            board.run(steps=2, probes=[])
    finally:
        board.close()


class BoardServer(socketserver.ThreadingTCPServer):
    """Serve a board (one fresh board per connection) with the board protocol.

    board_factory: makes the board of each connection (e.g. ``lambda:
    open_board("reference")``). token: a shared secret clients must prove they hold.
    max_frame: largest accepted frame in bytes; idle_timeout: seconds a connection may
    wait between requests; read_timeout: seconds for the rest of a started frame and for a
    client to take a sent one; max_connections: connections served at once (others get a
    BoardBusy error); progress_interval: seconds between progress frames of a long call.

    isolate: serve each connection's session in a worker process forked from the server
    (POSIX), so a crash or a blow-up of one session cannot take down the server or other
    sessions; the client gets :class:`BoardWorkerCrashed`. The server process must not
    have started Numba's OpenMP threads (``neurochip board-serve`` isolates by default).
    Per-request budgets, refused or stopped with :class:`BoardBudgetExceeded`:
    max_request_seconds (a chunked run stops at the budget; any other request overrunning
    it has its isolated worker killed), max_memory (bytes a worker may add to its size
    after the fork; isolated sessions only), max_neuron_steps (steps x samples x neurons
    of a run or a learning call, checked before it starts). None: no limit.
    busy_poll: seconds a session polls for its next request after a reply before sleeping
    (a client's next call is then taken without the wake-up latency of a sleeping
    process; 0: never poll).
    """

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int] = ("127.0.0.1", 0),
                 board_factory: Callable[[], Board] = EmulatorBoard, *,
                 token: str | None = None, max_frame: int = DEFAULT_MAX_FRAME,
                 idle_timeout: float = 300.0, read_timeout: float = 30.0,
                 max_connections: int = 32, progress_interval: float = 0.25,
                 isolate: bool = False, max_request_seconds: float | None = None,
                 max_memory: int | None = None, max_neuron_steps: int | None = None,
                 warm: bool = True, busy_poll: float = DEFAULT_BUSY_POLL) -> None:
        self.make_board = board_factory
        self.token = token or None
        self.max_frame = int(max_frame)
        self.idle_timeout = float(idle_timeout)
        self.read_timeout = float(read_timeout)
        self.max_connections = int(max_connections)
        self.progress_interval = float(progress_interval)
        self.isolate = bool(isolate)
        self.max_request_seconds = None if max_request_seconds is None else float(
            max_request_seconds)
        self.max_memory = None if max_memory is None else int(max_memory)
        self.max_neuron_steps = None if max_neuron_steps is None else int(max_neuron_steps)
        self.busy_poll = float(busy_poll)
        if not self.busy_poll >= 0:
            raise ConfigError("must be 0 or a positive number of seconds",
                              where="board server", field="busy_poll", value=busy_poll)
        for name in ("max_request_seconds", "max_memory", "max_neuron_steps"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError("must be positive", where="board server", field=name,
                                  value=v)
        if self.max_memory is not None and not self.isolate:
            raise ConfigError("a memory budget needs a worker process per session "
                              "(isolate=True)", where="board server", field="max_memory")
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._fork_lock = threading.Lock()
        self._workers: set[int] = set()
        if self.isolate:
            if not hasattr(os, "fork"):
                raise ConfigError("isolated sessions need os.fork (a POSIX system)",
                                  where="board server", field="isolate")
            if warm and not _omp_in_use():
                _warm(board_factory)
            if _omp_in_use():
                raise ConfigError(
                    "isolated sessions fork the server process, which has already started "
                    "Numba's OpenMP threads (a forked worker would be terminated); serve "
                    "from a fresh process (neurochip board-serve) or set "
                    "NUMBA_THREADING_LAYER=workqueue", where="board server", field="isolate")
        super().__init__(address, _Handler)

    @property
    def host(self) -> str:
        return str(self.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def uri(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def start(self) -> threading.Thread:
        """Serve in a background thread (call stop() or shutdown() to end)."""
        th = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        th.start()
        return th

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        for pid in list(self._workers):
            _kill(pid)

    def __enter__(self) -> BoardServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Boards: one interface for the emulator, a remote board, and a null board.

Hardware-in-the-loop testing runs the *same* test against the emulator and a board::

    with neurochip.board.open_board("tcp://10.0.0.7:7410") as board:   # or "emulator"
        board.load(image)
        result = board.run({"in": spikes}, probes=["out.v"])

* ``EmulatorBoard`` runs the chip image on the bit-exact emulator (``backend="numba"`` or
  ``"reference"``);
* ``RemoteBoard`` speaks the board protocol (below) to a board server — a lab machine with
  silicon attached, or ``neurochip board-serve`` wrapping any local board;
* ``NullBoard`` accepts and checks everything but computes nothing (silent results), for
  testing host-side code without hardware.

Board protocol (TCP): every message is a 4-byte big-endian length, a UTF-8 JSON header,
another 4-byte length, and an optional ``.npz`` payload (never pickled). Requests carry
``{"op": "info" | "load" | "run" | "reset" | "close", ...}``; replies carry
``{"ok": true, ...}`` or ``{"ok": false, "error": type, "message": text}``. ``load`` sends
the ``.nchip`` bytes; ``run`` sends inputs as arrays and returns spikes, probes and
counters as arrays.
"""

from __future__ import annotations

import io
import json
import socket
import socketserver
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import BoardError, NeurochipError

__all__ = ["Board", "BoardServer", "EmulatorBoard", "NullBoard", "RemoteBoard", "open_board"]

PROTOCOL_VERSION = 1
_MAX_MESSAGE = 1 << 31


class Board(ABC):
    """A target that runs chip images: emulator, remote silicon, or nothing at all."""

    name = "board"

    def __init__(self) -> None:
        self._image: Any = None

    @property
    def image(self) -> Any:
        if self._image is None:
            raise BoardError("no chip image loaded; call load(image) first", where=self.name)
        return self._image

    def load(self, image: Any) -> None:
        """Program the board with a chip image (a ChipImage or a path to one)."""
        from neurochip.core.image import ChipImage

        if not isinstance(image, ChipImage):
            image = ChipImage.load(image)
        self._image = image
        self._load(image)

    @abstractmethod
    def _load(self, image: Any) -> None: ...

    @abstractmethod
    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all") -> Any:
        """Run like :meth:`neurochip.Emulator.run` and return a RunResult."""

    @abstractmethod
    def reset(self) -> None: ...

    def info(self) -> dict[str, Any]:
        return {"board": self.name, "protocol": PROTOCOL_VERSION}

    def close(self) -> None:  # noqa: B027  (nothing to release by default)
        """Release the board (idempotent)."""

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EmulatorBoard(Board):
    """The emulator behind the board interface."""

    def __init__(self, backend: str = "numba") -> None:
        super().__init__()
        self.backend = backend
        self.name = f"emulator[{backend}]"
        self._em: Any = None

    def _load(self, image: Any) -> None:
        from emulator.chip import Emulator

        self._em = Emulator(image, backend=self.backend)  # type: ignore[arg-type]

    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all") -> Any:
        if self._em is None:
            raise BoardError("no chip image loaded; call load(image) first", where=self.name)
        return self._em.run(inputs, steps, probes=probes, spikes=spikes)

    def reset(self) -> None:
        if self._em is not None:
            self._em.reset()


class NullBoard(Board):
    """Checks every request like a real board but computes nothing (all results silent)."""

    name = "null"

    def __init__(self) -> None:
        super().__init__()
        self._em: Any = None
        self.calls: list[str] = []

    def _load(self, image: Any) -> None:
        from emulator.chip import Emulator

        self._em = Emulator(image)  # used only to validate requests and shape results
        self.calls.append("load")

    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all") -> Any:
        from emulator.chip import RunResult

        if self._em is None:
            raise BoardError("no chip image loaded; call load(image) first", where=self.name)
        em = self._em
        X, T, batched = em._inputs(inputs, steps)
        names, _, _, spans = em._probes(probes)
        rec = em._recorded(spikes)
        lead = (X.shape[0],) if batched else ()
        pops = {p.name: p for p in em.image.populations}
        k = len(em.image.cores)
        z = np.zeros((*lead, T, k), np.int64)
        self.calls.append("run")
        return RunResult(
            spikes={n: np.zeros((*lead, T, pops[n].size), bool) for n in rec},
            probes={n: np.zeros((*lead, T, b - a), np.int32) for n, (a, b) in zip(names, spans)},
            counters={}, cycles=z, latency_cycles=np.zeros((*lead, T), np.int64),
            energy=z.astype(np.float64), cores=list(em.image.used_cores), cycle_ns=1.0,
            t_start=0, steps=T, batched=batched)

    def reset(self) -> None:
        self.calls.append("reset")


# ------------------------------------------------------------------------------------------
# Wire format
# ------------------------------------------------------------------------------------------


def _pack(header: dict[str, Any], arrays: Mapping[str, NDArray[Any]] | None = None,
          blob: bytes | None = None) -> bytes:
    h = json.dumps(header).encode()
    if arrays:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        payload = buf.getvalue()
    else:
        payload = blob or b""
    return struct.pack(">I", len(h)) + h + struct.pack(">I", len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int, where: str) -> bytes:
    chunks, got = [], 0
    while got < n:
        try:
            part = sock.recv(min(n - got, 1 << 20))
        except OSError as exc:
            raise BoardError(f"connection failed: {exc}", where=where) from None
        if not part:
            raise BoardError("connection closed by the other side", where=where)
        chunks.append(part)
        got += len(part)
    return b"".join(chunks)


def _recv(sock: socket.socket, where: str) -> tuple[dict[str, Any], bytes]:
    (hlen,) = struct.unpack(">I", _recv_exact(sock, 4, where))
    if hlen > _MAX_MESSAGE:
        raise BoardError(f"message header of {hlen} bytes is too large", where=where)
    try:
        header = json.loads(_recv_exact(sock, hlen, where))
    except json.JSONDecodeError as exc:
        raise BoardError(f"malformed message header: {exc}", where=where) from None
    (plen,) = struct.unpack(">I", _recv_exact(sock, 4, where))
    payload = _recv_exact(sock, plen, where) if plen else b""
    return header, payload


def _arrays(payload: bytes) -> dict[str, NDArray[Any]]:
    if not payload:
        return {}
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _result_arrays(r: Any) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    arrays: dict[str, NDArray[Any]] = {}
    for k, v in r.spikes.items():
        arrays[f"spikes/{k}"] = v
    for k, v in r.probes.items():
        arrays[f"probes/{k}"] = v
    for k, v in r.counters.items():
        arrays[f"counters/{k}"] = v
    arrays["cycles"] = r.cycles
    arrays["latency_cycles"] = r.latency_cycles
    arrays["energy"] = r.energy
    meta = {"cores": list(r.cores), "cycle_ns": r.cycle_ns, "t_start": r.t_start,
            "steps": r.steps, "batched": r.batched}
    return meta, arrays


def _result_from(meta: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> Any:
    from emulator.chip import RunResult

    def group(prefix: str) -> dict[str, NDArray[Any]]:
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    return RunResult(group("spikes/"), group("probes/"), group("counters/"), arrays["cycles"],
                     arrays["latency_cycles"], arrays["energy"], meta["cores"],
                     meta["cycle_ns"], meta["t_start"], meta["steps"], meta["batched"])


# ------------------------------------------------------------------------------------------
# Remote board (client) and board server
# ------------------------------------------------------------------------------------------


class RemoteBoard(Board):
    """A board reached over TCP with the board protocol."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        super().__init__()
        self.name = f"tcp://{host}:{port}"
        try:
            self._sock: socket.socket | None = socket.create_connection((host, port), timeout)
        except OSError as exc:
            raise BoardError(f"cannot connect: {exc}", where=self.name) from None
        remote = self._call({"op": "info"})[0]
        if remote.get("protocol") != PROTOCOL_VERSION:
            raise BoardError(f"board speaks protocol {remote.get('protocol')}, this client "
                             f"{PROTOCOL_VERSION}", where=self.name)
        self.remote_info = remote

    def _call(self, header: dict[str, Any], arrays: Mapping[str, NDArray[Any]] | None = None,
              blob: bytes | None = None) -> tuple[dict[str, Any], bytes]:
        if self._sock is None:
            raise BoardError("board is closed", where=self.name)
        try:
            self._sock.sendall(_pack(header, arrays, blob))
        except OSError as exc:
            raise BoardError(f"connection failed: {exc}", where=self.name) from None
        reply, payload = _recv(self._sock, self.name)
        if not reply.get("ok", False):
            raise BoardError(f"{reply.get('error', 'error')}: {reply.get('message', '')}",
                             where=self.name)
        return reply, payload

    def info(self) -> dict[str, Any]:
        return dict(self.remote_info)

    def _load(self, image: Any) -> None:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            path = image.save(Path(d) / "image.nchip")
            self._call({"op": "load"}, blob=path.read_bytes())

    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all") -> Any:
        self.image  # noqa: B018  (raises when nothing was loaded)
        spk: Any = spikes if (spikes is None or isinstance(spikes, str)) else list(spikes)
        header = {"op": "run", "steps": steps, "probes": list(probes), "spikes": spk}
        reply, payload = self._call(header, {k: np.asarray(v) for k, v in (inputs or {}).items()})
        return _result_from(reply["result"], _arrays(payload))

    def reset(self) -> None:
        self._call({"op": "reset"})

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.sendall(_pack({"op": "close"}))
            except OSError:
                pass
            self._sock.close()
            self._sock = None


class _Handler(socketserver.BaseRequestHandler):
    server: BoardServer

    def handle(self) -> None:
        board = self.server.make_board()
        sock: socket.socket = self.request
        try:
            while True:
                try:
                    header, payload = _recv(sock, "board server")
                except BoardError:
                    return
                op = header.get("op")
                if op == "close":
                    return
                try:
                    reply, arrays, blob = self._dispatch(board, op, header, payload)
                    sock.sendall(_pack({"ok": True, **reply}, arrays, blob))
                except NeurochipError as exc:
                    sock.sendall(_pack({"ok": False, "error": type(exc).__name__,
                                        "message": str(exc)}))
        finally:
            board.close()

    @staticmethod
    def _dispatch(board: Board, op: Any, header: dict[str, Any], payload: bytes
                  ) -> tuple[dict[str, Any], dict[str, NDArray[Any]] | None, bytes | None]:
        if op == "info":
            return board.info(), None, None
        if op == "load":
            import tempfile
            from pathlib import Path

            with tempfile.TemporaryDirectory() as d:
                p = Path(d) / "image.nchip"
                p.write_bytes(payload)
                board.load(p)
            return {}, None, None
        if op == "reset":
            board.reset()
            return {}, None, None
        if op == "run":
            r = board.run(_arrays(payload), header.get("steps"), probes=header.get("probes", []),
                          spikes=header.get("spikes", "all"))
            meta, arrays = _result_arrays(r)
            return {"result": meta}, arrays, None
        raise BoardError(f"unknown operation {op!r}", where="board server")


class BoardServer(socketserver.ThreadingTCPServer):
    """Serve a board (one fresh board per connection) with the board protocol."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], board_factory: Any) -> None:
        self.make_board = board_factory
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> threading.Thread:
        """Serve in a background thread (call shutdown() to stop)."""
        th = threading.Thread(target=self.serve_forever, daemon=True)
        th.start()
        return th


def open_board(spec: str = "emulator") -> Board:
    """"emulator", "reference", "null", or "tcp://HOST:PORT"."""
    if spec in ("emulator", "numba"):
        return EmulatorBoard("numba")
    if spec == "reference":
        return EmulatorBoard("reference")
    if spec == "null":
        return NullBoard()
    if spec.startswith("tcp://"):
        host, _, port = spec[len("tcp://"):].rpartition(":")
        if not host or not port.isdigit():
            raise BoardError(f"bad board address {spec!r}; use tcp://HOST:PORT", where="board")
        return RemoteBoard(host, int(port))
    raise BoardError(f"unknown board {spec!r}; use emulator, reference, null or tcp://HOST:PORT",
                     where="board")

"""Boards: one interface for every target that runs chip images.

Hardware-in-the-loop testing runs the *same* test against each board::

    with neurochip.board.open_board("tcp://10.0.0.7:7410?timeout=5") as board:
        board.load(image)
        result = board.run({"in": spikes}, probes=["out.v"])

Boards are named by a URI (see :func:`open_board`):

* ``emulator`` — the Numba emulator; ``reference`` — the pure-Python reference model (an
  independent implementation of the same chip); ``lava`` — the image exported to Lava
  processes and run on Lava's CPU runtime (:mod:`neurochip.board_lava`);
* ``null`` — checks every request, computes nothing (silent results);
* ``tcp://HOST:PORT[?timeout=S]`` — a board server speaking the board protocol
  (:mod:`neurochip.board_remote`): a lab machine with silicon, or ``neurochip board-serve``;
* ``faulty:KIND=RATE[,...][,seed=S]+INNER`` — any board with seeded faults injected
  (:mod:`neurochip.board_faulty`).

Every board has the same operations: ``load``, ``run`` (batches, probes), ``learn``,
``read_weights`` / ``write_weights``, ``read_state`` / ``write_state``, ``reset``, ``info``
and ``close``. A board that cannot do an operation raises :class:`UnsupportedOperation`
(the pytest plugin turns that into a skip with its reason).
"""

from __future__ import annotations

import platform
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import BoardError, EmulatorInputError

if TYPE_CHECKING:
    from neurochip import ChipImage, RunResult
    from neurochip.board_remote import BoardServer, RemoteBoard  # noqa: F401

__all__ = [
    "Board",
    "BoardAuthError",
    "BoardBudgetExceeded",
    "BoardBusy",
    "BoardCancelled",
    "BoardConnectionError",
    "BoardProtocolError",
    "BoardTimeout",
    "BoardWorkerCrashed",
    "EmulatorBoard",
    "NullBoard",
    "UnsupportedOperation",
    "image_digest",
    "open_board",
]

#: version of the board protocol spoken by RemoteBoard and BoardServer
PROTOCOL_VERSION = 2


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


class UnsupportedOperation(BoardError):
    """The board cannot do this operation at all (e.g. on-chip learning on Lava)."""


class BoardConnectionError(BoardError):
    """The link to a remote board failed or was lost."""


class BoardTimeout(BoardConnectionError):
    """A remote board did not answer in time (the connection was dropped)."""


class BoardProtocolError(BoardError):
    """A frame broke the board protocol (bad magic, version, size or header)."""


class BoardAuthError(BoardError):
    """The shared-token challenge-response failed."""


class BoardBusy(BoardError):
    """The board server is at its connection limit."""


class BoardCancelled(BoardError):
    """A run was cancelled before it finished."""


class BoardBudgetExceeded(BoardError):
    """A request went past the board server's per-request budget (time, memory, or steps x
    neurons); ``field`` names the budget, ``value`` and ``limit`` the amounts."""


class BoardWorkerCrashed(BoardError):
    """The worker process serving this connection on the board server died (a crash, or
    killed); the board's state is gone and the next call reconnects."""


#: error types a board server may name on the wire, rebuilt by the client as these types
def wire_error_types() -> dict[str, type[Exception]]:
    from neurochip import errors

    out: dict[str, type[Exception]] = {
        name: getattr(errors, name) for name in errors.__all__
        if isinstance(getattr(errors, name), type)}
    for cls in (UnsupportedOperation, BoardConnectionError, BoardTimeout, BoardProtocolError,
                BoardAuthError, BoardBusy, BoardCancelled, BoardBudgetExceeded,
                BoardWorkerCrashed):
        out[cls.__name__] = cls
    return out


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def image_digest(image: ChipImage) -> str:
    """The image's content digest (:attr:`neurochip.ChipImage.digest`, what ``inspect`` shows
    and a saved ``.nchip`` records): what ``info`` reports and golden recordings carry."""
    return image.digest


def _versions() -> dict[str, str]:
    import neurochip

    return {"neurochip": neurochip.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def with_weights(image: ChipImage, connection: str, weights: Any, where: str) -> ChipImage:
    """A copy of ``image`` whose ``connection`` holds ``weights`` (post, pre).

    The weights must be what the connection's sign mode and weight bits can hold, and zero
    where the connection has no synapse; anything else is a typed error, never rounded.
    """
    from neurochip import ChipImage
    from neurochip.core import fixedpoint as fx

    try:
        i = image.connection_index(connection)
    except KeyError:
        have = [c.name for c in image.connections]
        raise EmulatorInputError(f"no connection {connection!r}; connections are {have}",
                                 where=where, field="connection") from None
    c = image.connections[i]
    W = np.asarray(weights)
    if W.shape != (c.n_post, c.n_pre) or W.dtype.kind not in "iu":
        raise EmulatorInputError(
            f"weights have shape {W.shape} and dtype {W.dtype}; expected integers of shape "
            f"({c.n_post}, {c.n_pre})", where=where, field=connection)
    W = W.astype(np.int64)
    pre, post = image.synapse_coords(i)
    mask = np.zeros(W.shape, bool)
    mask[post, pre] = True
    stray = np.argwhere(~mask & (W != 0))
    if stray.size:
        r, q = (int(x) for x in stray[0])
        raise EmulatorInputError(
            f"weight ({r}, {q}) is {int(W[r, q])} but the connection has no synapse there",
            where=where, field=connection)
    w = W[post, pre]
    if c.storage == "conv":  # one kernel shared by the synapses: the weights must agree
        _, _, kidx = image.conv_geometry(i).pre_major()
        kern = np.zeros(image.arrays[f"conn/{i}/w"].size, np.int64)
        kern[kidx] = w
        bad_k = np.flatnonzero(kern[kidx] != w)
        if bad_k.size:
            k = int(bad_k[0])
            raise EmulatorInputError(
                f"weight ({int(post[k])}, {int(pre[k])}) = {int(w[k])} differs from the other "
                f"synapses of its kernel tap ({int(kern[kidx[k]])}); a shared-weight "
                "convolution holds one kernel", where=where, field=connection,
                value=int(w[k]))
        w = kern
    eff = fx.effective_weights(w, c.sign_mode, c.num_weight_bits, image.hw.formats.weight_bits)
    bad = np.flatnonzero(eff != w)
    if bad.size:
        k = int(bad[0])
        what = (f"kernel value {k}" if c.storage == "conv"
                else f"weight ({int(post[k])}, {int(pre[k])})")
        raise EmulatorInputError(
            f"{what} = {int(w[k])} cannot be held by sign mode "
            f"{c.sign_mode!r} with {c.num_weight_bits} weight bits (it would become "
            f"{int(eff[k])})", where=where, field=connection, value=int(w[k]))
    b, decode, shift = fx.encode_weight_bytes(w, c.sign_mode)
    if (decode, shift) != (c.decode, c.wshift):
        raise EmulatorInputError("these weights need another weight encoding",
                                 where=where, field=connection)
    arrays = dict(image.arrays)
    arrays[f"conn/{i}/w"] = np.ascontiguousarray(b)
    return ChipImage(image.hw, list(image.populations), list(image.connections),
                     list(image.cores), arrays, image.learning, dict(image.metadata))


# ------------------------------------------------------------------------------------------
# The interface
# ------------------------------------------------------------------------------------------


class Board(ABC):
    """A target that runs chip images: emulator, remote silicon, or nothing at all."""

    name = "board"
    #: what info() reports as "backend"
    backend = "board"

    def __init__(self) -> None:
        self._image: ChipImage | None = None
        self._digest: str | None = None

    # -------------------------------------------------------------- image
    @property
    def image(self) -> ChipImage:
        if self._image is None:
            raise BoardError("no chip image loaded; call load(image) first", where=self.name)
        return self._image

    def load(self, image: Any) -> None:
        """Program the board with a chip image (a ChipImage or a path to one)."""
        from neurochip.core.image import ChipImage

        if not isinstance(image, ChipImage):
            image = ChipImage.load(image)
        self._load(image)
        self._image = image
        self._digest = image_digest(image)

    @abstractmethod
    def _load(self, image: ChipImage) -> None: ...

    # -------------------------------------------------------------- running
    @abstractmethod
    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all"
            ) -> RunResult:
        """Run like :meth:`neurochip.Emulator.run` and return a RunResult."""

    def learn(self, inputs: Mapping[str, Any], targets: Mapping[str, Any] | None = None,
              reward: Any = None, *, epochs: int = 1, shuffle: int | None = None,
              reset: bool = True) -> Any:
        """Learn on chip from a stream of samples (see :meth:`neurochip.Emulator.learn`)."""
        raise UnsupportedOperation(f"the {self.backend} board has no on-chip learning",
                                   where=self.name)

    @abstractmethod
    def reset(self) -> None:
        """Forget the neuron state (u, v, pending input, step counter); weights stay."""

    # -------------------------------------------------------------- readback
    def read_weights(self, connection: str) -> NDArray[np.int64]:
        """Current weights of a connection, (post, pre) (learned or written ones if any)."""
        raise UnsupportedOperation(f"the {self.backend} board cannot read weights",
                                   where=self.name)

    def write_weights(self, connection: str, weights: Any) -> None:
        """Reprogram a connection's weights, (post, pre); the neuron state is reset."""
        raise UnsupportedOperation(f"the {self.backend} board cannot write weights",
                                   where=self.name)

    def read_state(self) -> dict[str, NDArray[np.int64]]:
        """{"u": (B, N), "v": (B, N)} of every LIF neuron (image order)."""
        raise UnsupportedOperation(f"the {self.backend} board cannot read neuron state",
                                   where=self.name)

    def write_state(self, u: Any = None, v: Any = None) -> None:
        """Overwrite u and/or v of every neuron, (B, N) or (N,)."""
        raise UnsupportedOperation(f"the {self.backend} board cannot write neuron state",
                                   where=self.name)

    # -------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        """Backend, hardware spec (name + hash), loaded image hash, protocol, versions."""
        img = self._image
        return {
            "board": self.name,
            "backend": self.backend,
            "hw": None if img is None else {"name": img.hw.name, "hash": img.hw.spec_hash},
            "image": self._digest,
            "protocol": PROTOCOL_VERSION,
            "versions": _versions(),
            "ops": self.supported_ops(),
        }

    def supported_ops(self) -> list[str]:
        """The operations this board implements (others raise UnsupportedOperation)."""
        ops = ["load", "run", "reset", "info", "close"]
        for op in ("learn", "read_weights", "write_weights", "read_state", "write_state"):
            if getattr(type(self), op) is not getattr(Board, op):
                ops.append(op)
        return ops

    def close(self) -> None:  # noqa: B027  (nothing to release by default)
        """Release the board (idempotent)."""

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: below this many neurons the emulator runs a single sample on one thread anyway
_THREADED_NEURONS = 16_384


class EmulatorBoard(Board):
    """The emulator (``backend="numba"``) or the reference model (``"reference"``)."""

    def __init__(self, backend: str = "numba", threads: int | None = None) -> None:
        super().__init__()
        if backend not in ("numba", "reference"):
            raise BoardError(f"unknown emulator backend {backend!r}; use numba or reference",
                             where="EmulatorBoard")
        self.backend = "emulator" if backend == "numba" else "reference"
        self.name = f"emulator[{backend}]"
        self._kind = backend
        self._threads = threads
        self._em: Any = None

    def _new(self, image: ChipImage) -> Any:
        from neurochip import Emulator

        return Emulator(image, backend=self._kind, threads=self._threads)  # type: ignore[arg-type]

    def _load(self, image: ChipImage) -> None:
        self._em = self._new(image)

    @property
    def emulator(self) -> Any:
        if self._em is None:
            raise BoardError("no chip image loaded; call load(image) first", where=self.name)
        return self._em

    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all"
            ) -> RunResult:
        em = self.emulator
        if self._threads is None:
            # one sample of a network too small to be split over threads gains nothing from
            # waking Numba's thread pool (which costs milliseconds on a busy machine);
            # results never depend on the thread count
            one = all(np.ndim(x) == 2 for x in (inputs or {}).values())
            em.threads = 1 if one and em.image.n_neurons < _THREADED_NEURONS else None
        return em.run(inputs, steps, probes=probes, spikes=spikes)

    def learn(self, inputs: Mapping[str, Any], targets: Mapping[str, Any] | None = None,
              reward: Any = None, *, epochs: int = 1, shuffle: int | None = None,
              reset: bool = True) -> Any:
        em = self.emulator
        if not em.image.learning:
            raise UnsupportedOperation("the loaded image has no learning configuration",
                                       where=self.name)
        return em.learn(inputs, targets, reward, epochs=epochs, shuffle=shuffle, reset=reset)

    def read_weights(self, connection: str) -> NDArray[np.int64]:
        em = self.emulator
        try:
            return np.asarray(em.weights(connection), np.int64)
        except KeyError:
            have = [c.name for c in em.image.connections]
            raise EmulatorInputError(f"no connection {connection!r}; connections are {have}",
                                     where=self.name, field="connection") from None

    def write_weights(self, connection: str, weights: Any) -> None:
        em = self.emulator
        base = em.learned_image() if em._learner is not None else em.image
        img = with_weights(base, connection, weights, self.name)
        self._em = self._new(img)

    def read_state(self) -> dict[str, NDArray[np.int64]]:
        return self.emulator.state()

    def write_state(self, u: Any = None, v: Any = None) -> None:
        self.emulator.set_state(u, v)

    def reset(self) -> None:
        if self._em is not None:
            self._em.reset()


class NullBoard(Board):
    """Checks every request like a real board but computes nothing (all results silent)."""

    name = "null"
    backend = "null"

    def __init__(self) -> None:
        super().__init__()
        self._em: Any = None
        self.calls: list[str] = []

    def _load(self, image: ChipImage) -> None:
        from neurochip import Emulator

        self._em = Emulator(image)  # used only to validate requests and shape results
        self.calls.append("load")

    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all"
            ) -> RunResult:
        from neurochip import RunResult

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
# URIs
# ------------------------------------------------------------------------------------------


def _query(text: str, uri: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in parse_qs(text, keep_blank_values=True, strict_parsing=False).items():
        if len(v) != 1:
            raise BoardError(f"option {k!r} given {len(v)} times", where=f"board {uri!r}")
        out[k] = v[0]
    return out


def _seconds(text: str, name: str, uri: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = float("nan")
    if not x > 0 or x == float("inf"):
        raise BoardError(f"{name} must be a positive number of seconds, got {text!r}",
                         where=f"board {uri!r}", field=name)
    return x


def open_board(uri: str = "emulator", *, timeout: float | None = None,
               connect_timeout: float | None = None, token: str | None = None) -> Board:
    """Open a board by URI.

    ``emulator`` (``numba``), ``reference``, ``lava``, ``null``,
    ``tcp://HOST:PORT[?timeout=S&connect_timeout=S&busy_poll=S]`` and
    ``faulty:KIND=RATE[,KIND=RATE...][,seed=S]+INNER`` (kinds: drop, duplicate, stuck,
    bitflip, delay, jitter, disconnect). ``timeout`` (seconds to wait for any frame of a
    reply; a long run streams progress well within it), ``connect_timeout`` and ``token``
    (the shared secret of a server started with one; default ``$NEUROCHIP_BOARD_TOKEN``)
    apply to tcp:// boards, the keyword arguments overriding the URI's options; ``busy_poll``
    (seconds to poll for a reply before sleeping, 0 = never; default 0.0005) too.
    """
    if not isinstance(uri, str) or not uri:
        raise BoardError(f"bad board URI {uri!r}", where="board")
    if uri.startswith("faulty:"):
        from neurochip.board_faulty import FaultyBoard

        spec, plus, inner = uri[len("faulty:"):].partition("+")
        if not plus or not inner:
            raise BoardError(f"bad faulty board {uri!r}; use faulty:KIND=RATE[,...][,seed=S]"
                             f"+INNER, e.g. faulty:drop=0.05,seed=1+emulator", where="board")
        return FaultyBoard(open_board(inner, timeout=timeout, connect_timeout=connect_timeout,
                                      token=token), spec)
    if uri.startswith("tcp://"):
        from neurochip.board_remote import RemoteBoard

        rest, _, q = uri[len("tcp://"):].partition("?")
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BoardError(f"bad board address {uri!r}; use tcp://HOST:PORT", where="board")
        opts = _query(q, uri)
        unknown = set(opts) - {"timeout", "connect_timeout", "busy_poll"}
        if unknown:
            raise BoardError(f"unknown option(s) {sorted(unknown)}; tcp:// boards take timeout, "
                             f"connect_timeout and busy_poll", where=f"board {uri!r}")
        t = timeout if timeout is not None else (
            _seconds(opts["timeout"], "timeout", uri) if "timeout" in opts else None)
        ct = connect_timeout if connect_timeout is not None else (
            _seconds(opts["connect_timeout"], "connect_timeout", uri)
            if "connect_timeout" in opts else None)
        poll = None
        if "busy_poll" in opts:
            poll = 0.0 if opts["busy_poll"] in ("0", "0.0") else _seconds(
                opts["busy_poll"], "busy_poll", uri)
        return RemoteBoard(host.strip("[]"), int(port), timeout=t, connect_timeout=ct,
                           token=token, busy_poll=poll)
    if uri in ("emulator", "numba"):
        return EmulatorBoard("numba")
    if uri == "reference":
        return EmulatorBoard("reference")
    if uri == "lava":
        from neurochip.board_lava import LavaBoard

        return LavaBoard()
    if uri == "null":
        return NullBoard()
    raise BoardError(f"unknown board {uri!r}; use emulator, reference, lava, null, "
                     f"tcp://HOST:PORT or faulty:SPEC+INNER", where="board")


def __getattr__(name: str) -> Any:
    # the remote board and server live in neurochip.board_remote (imported on first use)
    if name in ("RemoteBoard", "BoardServer"):
        from neurochip import board_remote

        return getattr(board_remote, name)
    raise AttributeError(f"module 'neurochip.board' has no attribute {name!r}")

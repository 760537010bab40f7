"""pytest plugin for hardware-in-the-loop tests (entry point ``neurochip`` in ``pytest11``).

Installed with neurochip, it is active in every project::

    @pytest.mark.hardware
    def test_my_network(board):              # a neurochip.board.Board
        board.load(image)
        assert board.run({"in": x}).spikes["out"].any()

    pytest --board=tcp://10.0.0.7:7410        # or emulator (default), reference, lava, ...
    NEUROCHIP_BOARD=lava pytest

* ``--board=URI`` (or ``$NEUROCHIP_BOARD``; default ``emulator``) picks the board of the
  ``board`` fixture; any URI of :func:`neurochip.board.open_board`.
* A board that cannot be opened skips its tests with the reason; so does an operation the
  board does not have (:class:`~neurochip.board.UnsupportedOperation`), e.g. learning on
  Lava. Every other failure fails.
* ``golden`` compares a run with a recorded one (:mod:`neurochip.golden`):
  ``golden.check("name", image, {"in": x})`` replays ``<test dir>/golden/name.ngold`` on
  the board (recorded first with ``--golden-update``, on ``--golden-board``, default
  ``reference``).
* the ``hardware`` marker; ``-m hardware`` selects the board tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from neurochip.board import Board, UnsupportedOperation, open_board
from neurochip.errors import BoardError

ENV = "NEUROCHIP_BOARD"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("neurochip", "neurochip hardware-in-the-loop")
    group.addoption("--board", dest="neurochip_board", default=None, metavar="URI",
                    help=f"board for the 'board' fixture: emulator (default), reference, "
                         f"lava, null, tcp://HOST:PORT[?timeout=S], faulty:SPEC+INNER "
                         f"(default: ${ENV} or emulator)")
    group.addoption("--board-timeout", dest="neurochip_board_timeout", type=float,
                    default=None, metavar="S",
                    help="seconds a tcp:// board may stay silent during a call")
    group.addoption("--golden-update", dest="neurochip_golden_update", action="store_true",
                    help="(re)record the golden vectors of golden.check on --golden-board")
    group.addoption("--golden-board", dest="neurochip_golden_board", default="reference",
                    metavar="URI", help="board that records golden vectors (default "
                                        "reference)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hardware: a hardware-in-the-loop test; runs on the board of --board=URI")


def board_uri(config: pytest.Config) -> str:
    """The board URI of this run: --board, else $NEUROCHIP_BOARD, else 'emulator'."""
    return str(config.getoption("neurochip_board") or os.environ.get(ENV) or "emulator")


def pytest_report_header(config: pytest.Config) -> str:
    return f"neurochip board: {board_uri(config)}"


def open_or_skip(uri: str, timeout: float | None = None) -> Board:
    """open_board(uri), or skip the test with the reason it cannot be opened."""
    try:
        return open_board(uri, timeout=timeout)
    except BoardError as exc:
        pytest.skip(f"board {uri!r} cannot be opened: {exc}")


@pytest.fixture
def board(request: pytest.FixtureRequest) -> Iterator[Board]:
    """The board named by --board (a fresh connection per test); skips if it cannot be
    opened."""
    b = open_or_skip(board_uri(request.config),
                     request.config.getoption("neurochip_board_timeout"))
    try:
        yield b
    finally:
        b.close()


class Golden:
    """Record once, replay on the test's board: see the module docstring."""

    def __init__(self, board: Board, request: pytest.FixtureRequest,
                 folder: Path | None = None) -> None:
        self.board = board
        self.config = request.config
        self.folder = folder or Path(str(request.path)).parent / "golden"

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.ngold"

    def check(self, name: str, image: Any, inputs: Mapping[str, Any] | None = None,
              steps: int | None = None, *, tolerance: Any = None, **record_options: Any
              ) -> Any:
        """Replay golden vectors ``name`` on the board; fail with the divergence report."""
        from neurochip import golden

        path = self.path(name)
        if self.config.getoption("neurochip_golden_update"):
            self.folder.mkdir(parents=True, exist_ok=True)
            golden.record(image, inputs, steps, board=self.config.getoption(
                "neurochip_golden_board"), path=path, **record_options)
        elif not path.exists():
            pytest.fail(f"no golden vectors {path}; record them with --golden-update",
                        pytrace=False)
        rec = golden.Recording.load(path)
        report = golden.replay(rec, self.board, tolerance=tolerance)
        if not report.ok:
            pytest.fail(report.summary(), pytrace=False)
        return report

    def record(self, image: Any, inputs: Mapping[str, Any] | None = None,
               steps: int | None = None, **options: Any) -> Any:
        """Record on --golden-board without saving (a Recording)."""
        from neurochip import golden

        return golden.record(image, inputs, steps,
                             board=self.config.getoption("neurochip_golden_board"), **options)

    def replay(self, recording: Any, *, tolerance: Any = None) -> Any:
        from neurochip import golden

        return golden.replay(recording, self.board, tolerance=tolerance)


@pytest.fixture
def golden(board: Board, request: pytest.FixtureRequest) -> Golden:
    """Golden vectors replayed on ``board``."""
    return Golden(board, request)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    rep = outcome.get_result()
    if call.excinfo is None or not call.excinfo.errisinstance(UnsupportedOperation):
        return
    if call.when not in ("setup", "call"):
        return
    exc = call.excinfo.value
    rep.outcome = "skipped"
    path, line = item.location[0], item.location[1] or 0
    rep.longrepr = (path, line + 1, f"Skipped: unsupported on this board: {exc}")

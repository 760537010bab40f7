"""Shared test options: ``--board`` selects the target of hardware-in-the-loop tests.

Tests marked ``hardware`` take the ``board`` fixture and run against ``--board`` (default:
the emulator), so the same tests check a physical board when one is attached.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--board", default="emulator",
                     help="board for hardware tests: emulator, reference, null or tcp://HOST:PORT")


@pytest.fixture
def board(request: pytest.FixtureRequest) -> Iterator[object]:
    from neurochip.board import open_board

    b = open_board(request.config.getoption("--board"))
    try:
        yield b
    finally:
        b.close()

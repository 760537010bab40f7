"""Boards: emulator, remote (over loopback TCP) and null boards behind one interface."""

from collections.abc import Iterator

import numpy as np
import pytest

import neurochip
from neurochip.board import BoardServer, EmulatorBoard, NullBoard, RemoteBoard, open_board
from neurochip.core.errors import BoardError
from neurochip.testing import random_inputs, random_network


@pytest.fixture(scope="module")
def image() -> neurochip.ChipImage:
    return neurochip.compile(random_network(7, max_size=20), "loihi_like")


@pytest.fixture
def server() -> Iterator[BoardServer]:
    with BoardServer(("127.0.0.1", 0), EmulatorBoard) as srv:
        yield srv


def probes_of(img: neurochip.ChipImage) -> list[str]:
    return [f"{p.name}.v" for p in img.lif_populations]


def test_remote_board_equals_local_emulator(image, server) -> None:
    x = random_inputs(1, 40, 12, 0.4, batch=2)
    local = neurochip.Emulator(image).run({"in": x}, probes=probes_of(image))
    with RemoteBoard("127.0.0.1", server.port) as board:
        assert board.info()["board"] == "emulator[numba]"
        board.load(image)
        r = board.run({"in": x[:, :25]}, probes=probes_of(image))
        r2 = board.run({"in": x[:, 25:]}, probes=probes_of(image))
        board.reset()
        again = board.run({"in": x}, probes=probes_of(image), spikes=["l0"])
    for k in local.probes:
        np.testing.assert_array_equal(np.concatenate([r.probes[k], r2.probes[k]], 1),
                                      local.probes[k])
        np.testing.assert_array_equal(again.probes[k], local.probes[k])
    np.testing.assert_array_equal(again.spikes["l0"], local.spikes["l0"])
    np.testing.assert_array_equal(r.cycles, local.cycles[:, :25])
    assert r2.t_start == 25 and set(again.spikes) == {"l0"}


def test_remote_errors_are_forwarded_with_their_types(image, server) -> None:
    with RemoteBoard("127.0.0.1", server.port) as board:
        with pytest.raises(BoardError, match="no chip image loaded"):
            board.run(steps=3)
        board.load(image)
        with pytest.raises(neurochip.errors.EmulatorInputError, match="bad probe"):
            board.run(steps=3, probes=["nope.v"])
        assert board.run(steps=2).steps == 2  # the connection survives an error


def test_connection_problems() -> None:
    with pytest.raises(BoardError, match="cannot connect"):
        RemoteBoard("127.0.0.1", 1)
    with pytest.raises(BoardError, match="bad board address"):
        open_board("tcp://nohost")
    with pytest.raises(BoardError, match="unknown board"):
        open_board("fpga")


def test_null_board_checks_requests_and_returns_silence(image) -> None:
    board = NullBoard()
    with pytest.raises(BoardError, match="no chip image"):
        board.run(steps=2)
    board.load(image)
    r = board.run({"in": np.ones((5, 12), bool)}, probes=probes_of(image))
    assert all(not s.any() for s in r.spikes.values())
    assert r.probes[probes_of(image)[0]].shape[0] == 5
    with pytest.raises(neurochip.core.errors.EmulatorInputError):
        board.run({"in": np.ones((5, 3), bool)})
    assert board.calls == ["load", "run"]


def test_board_serve_prints_its_uri_on_the_first_line_and_serves(image, tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    env.pop("NEUROCHIP_BOARD_TOKEN", None)
    p = subprocess.Popen([sys.executable, "-m", "neurochip.cli", "board-serve", "--host",
                          "127.0.0.1", "--port", "0", "--board", "reference"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout is not None
        uri = p.stdout.readline().strip()
        assert uri.startswith("tcp://127.0.0.1:")
        with open_board(uri) as b:
            assert b.info()["backend"] == "reference"
            b.load(image)
            assert b.run(steps=3).steps == 3
    finally:
        p.terminate()
        p.wait(10)
    bad = subprocess.run([sys.executable, "-m", "neurochip.cli", "board-serve", "--board",
                          "fpga", "--port", "0"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown board" in bad.stderr


@pytest.mark.parametrize("argv,message", [
    (["--max-memory", "-1"], "--max-memory"),
    (["--max-request-seconds", "-2"], "--max-request-seconds"),
    (["--max-neuron-steps", "-5"], "--max-neuron-steps"),
    (["--in-process", "--max-memory", "1000000"], "needs a worker process"),
])
def test_board_serve_budget_options_are_checked(argv, message) -> None:
    import contextlib
    import io

    from neurochip.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["board-serve", "--port", "0", *argv])
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and message in lines[0], err.getvalue()

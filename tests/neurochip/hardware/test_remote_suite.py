"""The suite's core checks over the board protocol: tcp:// wrapping the emulator and the
reference model, each served in-process on 127.0.0.1, so CI covers the remote path."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurochip.board import Board, open_board
from neurochip.board_remote import BoardServer

_spec = importlib.util.spec_from_file_location("neurochip_hil_suite",
                                               Path(__file__).with_name("test_suite.py"))
assert _spec is not None and _spec.loader is not None
suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite)

CORE = [
    "test_info_names_backend_hw_image_protocol_and_versions",
    "test_run_before_load_is_a_board_error",
    "test_spikes_equal_the_reference",
    "test_probes_of_u_and_v_equal_the_reference",
    "test_a_batch_runs_independent_samples",
    "test_state_carries_over_between_runs",
    "test_reset_starts_again_from_step_zero",
    "test_counters_cycles_and_energy_equal_the_reference",
    "test_long_run_in_one_call",
    "test_a_bad_probe_is_a_typed_error_and_the_board_survives",
    "test_written_weights_are_read_back_and_used",
    "test_read_state_equals_the_reference_after_a_run",
    "test_written_state_is_read_back_and_evolves_like_the_reference",
    "test_learning_equals_the_reference_learning_engine",
    "test_learning_needs_a_learning_configuration",
]
for _name in CORE:
    globals()[_name] = getattr(suite, _name)
image = suite.image


@pytest.fixture(scope="module", params=["emulator", "reference"])
def server(request: pytest.FixtureRequest) -> Iterator[BoardServer]:
    inner = request.param
    with BoardServer(("127.0.0.1", 0), lambda: open_board(inner)) as srv:
        yield srv


@pytest.fixture
def board(server: BoardServer) -> Iterator[Board]:
    b = open_board(server.uri + "?timeout=20")
    try:
        yield b
    finally:
        b.close()

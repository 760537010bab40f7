"""The public wrapper of the inference kernels: checks its arguments, builds the records
and picks the serial, batch-parallel or threaded loop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from emulator.kernels.neurons import narrow_ok
from emulator.kernels.records import (
    Inputs,
    Network,
    Record,
    SampleState,
    Threading,
    network_record,
    segments_to_list,
)
from emulator.kernels.step import run_batch_par, run_serial, run_threaded
from emulator.tables import N_COUNTERS, Tables
from neurochip.core.errors import EmulatorInputError

__all__ = ["KernelState", "check_kernel_arg", "general_flag", "kernel_network", "run_batch"]

# One sample runs multi-threaded (see step.run_threaded) from this many neurons on, and a
# connection's targets are split over the threads from this much work per step (synapses).
# Messages are charged on the threads from this many directly charged sources per step.
THREADED_MIN_NEURONS = 16384
THREADED_MIN_EVENTS = 16384
THREADED_MIN_SOURCES = 256


class KernelState:
    """Explicit state of B independent samples: current, voltage, delay ring, scratch and
    the auxiliary state slots of the models that have them."""

    def __init__(self, tables: Tables, batch: int) -> None:
        N = tables.n_neurons
        self.batch = batch
        self.u = np.zeros((batch, N), np.int32)
        self.v = np.zeros((batch, N), np.int32)
        self.ring = np.zeros((batch, tables.ring_slots * tables.ring_width), np.int32)
        self.scratch = np.zeros((batch, max(tables.scratch_len, 1)), np.int32)
        self.aux = np.zeros((batch, tables.aux_len), np.int32)
        self.t = 0

    def record(self) -> SampleState:
        """The kernels' (batched) SampleState record of these arrays."""
        return SampleState(self.u, self.v, self.ring, self.scratch, self.aux)

    def sample(self, b: int) -> SampleState:
        """The SampleState record of sample b (views)."""
        return SampleState(self.u[b], self.v[b], self.ring[b], self.scratch[b], self.aux[b])


def check_kernel_arg(name: str, arr: NDArray[Any], dtype: Any, ndim: int,
                     where: str = "emulator.kernels") -> None:
    """A kernel argument has the dtype, rank and C layout its kernel was compiled for."""
    if arr.dtype != dtype or arr.ndim != ndim or not arr.flags.c_contiguous:
        raise EmulatorInputError(
            f"kernel argument has dtype {arr.dtype}, ndim {arr.ndim}; expected {np.dtype(dtype)} "
            f"with ndim {ndim}, C-contiguous", where=where, field=name)


def kernel_network(tb: Tables, seg_list: NDArray[np.uint8] | None = None) -> Network:
    """The :class:`records.Network` of the tables (seg_list: per neuron segment, 1 when its
    spikes must be listed; default all), made once per tables and seg_list (a run of one
    step spends a fifth of its time making it)."""
    key = b"" if seg_list is None else np.ascontiguousarray(seg_list, np.uint8).tobytes()
    net = tb.records.get(key)
    if net is None:
        if len(tb.records) >= 8:
            tb.records.clear()
        net = tb.records[key] = network_record(tb, narrow_ok(tb), seg_list)
    return net


def general_flag(tb: Tables, graded_io: bool = False) -> bool | None:
    """The ``general`` argument of the run kernels (see ``step.inference_step``): None when
    every population is LIF, no connection carries graded spikes and the run has no graded
    host inputs or payload records (graded_io), else True."""
    return None if not (graded_io or tb.pop_model.any() or tb.c_graded.any()) else True


@contextmanager
def _thread_count(n: int) -> Iterator[None]:
    """Numba's thread count set to n inside the block (untouched when it already is)."""
    prev = numba.get_num_threads()
    if prev == n:
        yield
        return
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


def run_batch(tables: Tables, state: KernelState, steps: int, inp_ptr: NDArray[np.int64],
              inp_src: NDArray[np.int64], probe_idx: NDArray[np.int64],
              probe_var: NDArray[np.int8], rec_col: NDArray[np.int64],
              threads: int | None = None, inp_val: NDArray[np.int32] | None = None,
              graded_rec: bool = False
              ) -> tuple[NDArray[np.int32], NDArray[np.uint8], NDArray[np.int64]]:
    """Run ``steps`` steps of every sample; returns (probes, spikes, counters); with
    graded_rec, the payloads of the recorded spikes too (a fourth array, int32 like spikes).

    inp_ptr: (B, steps + 1) offsets into inp_src per step; inp_src: input source ids;
    inp_val: the payload of each (graded inputs; None: every input spike is binary).
    probe_idx/probe_var: neuron and state slot (0 = u, 1 = v, 2, 3 auxiliary) of each
    probe column.
    rec_col: per neuron, its column in the spike record, or -1.
    threads: how many threads to use (default: Numba's setting). Samples of a batch run
    on separate threads; a single sample of a large network (THREADED_MIN_NEURONS) splits
    its neuron segments and its larger connections over them. Results never depend on it.
    """
    B = state.batch
    check_kernel_arg("inp_ptr", inp_ptr, np.int64, 2)
    check_kernel_arg("inp_src", inp_src, np.int64, 1)
    check_kernel_arg("probe_idx", probe_idx, np.int64, 1)
    check_kernel_arg("probe_var", probe_var, np.int8, 1)
    check_kernel_arg("rec_col", rec_col, np.int64, 1)
    if inp_val is None:
        inp_val = np.zeros(0, np.int32)
    check_kernel_arg("inp_val", inp_val, np.int32, 1)
    if inp_val.size and inp_val.shape != inp_src.shape:
        raise EmulatorInputError("inp_val must have one entry per input spike",
                                 where="emulator.kernels", field="inp_val")
    if inp_ptr.shape != (B, steps + 1):
        raise EmulatorInputError(f"inp_ptr has shape {inp_ptr.shape}, expected {(B, steps + 1)}",
                                 where="emulator.kernels", field="inp_ptr")
    if rec_col.shape[0] != tables.n_neurons:
        raise EmulatorInputError("rec_col must have one entry per neuron",
                                 where="emulator.kernels", field="rec_col")
    max_threads = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if threads is not None and not 1 <= threads <= max_threads:
        raise EmulatorInputError(f"threads must be in 1..{max_threads}, got {threads}",
                                 where="emulator.kernels", field="threads")
    P = numba.get_num_threads() if threads is None else threads
    n_rec = int(rec_col.max()) + 1 if rec_col.size else 0
    nslots = tables.slot_core.size
    probes = np.zeros((B, steps, probe_idx.size), np.int32)
    spikes = np.zeros((B, steps, n_rec), np.uint8)
    counters = np.zeros((B, steps, max(nslots, 1), N_COUNTERS), np.int64)
    values = np.zeros((B, steps, n_rec if graded_rec else 0), np.int32)
    net = kernel_network(tables, segments_to_list(tables, rec_col))
    general = general_flag(tables, bool(inp_val.size) or graded_rec)
    T, t0 = np.int64(steps), np.int64(state.t)
    if steps > 0:
        if P > 1 and B > 1:
            with _thread_count(P):
                run_batch_par(T, t0, *net, Inputs(inp_ptr, inp_src, inp_val), state.record(),
                              Record(probe_idx, probe_var, rec_col, probes, spikes, counters,
                                     values), general)
        elif P > 1 and tables.n_neurons >= THREADED_MIN_NEURONS:
            with _thread_count(P):
                run_threaded(T, t0, net, Inputs(inp_ptr[0], inp_src, inp_val), state.sample(0),
                             Record(probe_idx, probe_var, rec_col, probes[0], spikes[0],
                                    counters[0], values[0]),
                             Threading(np.int64(P), np.int64(THREADED_MIN_EVENTS),
                                       np.int64(THREADED_MIN_SOURCES)))
        else:  # one sample, or one thread: no parallel region to wake up
            run_serial(T, t0, net, Inputs(inp_ptr, inp_src, inp_val), state.record(),
                       Record(probe_idx, probe_var, rec_col, probes, spikes, counters, values),
                       general)
    state.t += steps
    if graded_rec:
        return probes, spikes, counters, values  # type: ignore[return-value]
    return probes, spikes, counters

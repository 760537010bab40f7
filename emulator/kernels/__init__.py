"""Numba kernels of the emulator. Every ``@njit`` function of the emulator lives in this
package, split by concern:

* ``records``: the NamedTuple records the kernels take (each field documented there);
* ``neurons``: the LIF update and spike collection;
* ``synapses``: the row adds of each connection into the delay ring;
* ``weights``: the weight decode rule (that of ``neurochip.core.fixedpoint``);
* ``routing``: message grouping and charging (the path cost of ``emulator.paths``);
* ``step``: one step of one sample and the loops over steps, samples and threads;
* ``spikes``: host spikes to spike lists; ``accounting``: the cost model's kernel;
* ``run``: :func:`run_batch`, the public wrapper that checks dtypes and shapes.

The kernels must equal the pure-Python reference model (``emulator.reference``) bit for
bit; the tests check that on random networks.
"""

from emulator.kernels.accounting import account_steps
from emulator.kernels.neurons import _update_range, narrow_formats_ok, narrow_ok, trunc_shift
from emulator.kernels.records import Formats, Population, segments_to_list
from emulator.kernels.run import (
    THREADED_MIN_EVENTS,
    THREADED_MIN_NEURONS,
    THREADED_MIN_SOURCES,
    KernelState,
    check_kernel_arg,
    general_flag,
    kernel_network,
    run_batch,
)
from emulator.kernels.spikes import payload_lists, spike_lists

__all__ = ["THREADED_MIN_EVENTS", "THREADED_MIN_NEURONS", "THREADED_MIN_SOURCES", "Formats",
           "KernelState", "Population", "_update_range", "account_steps", "check_kernel_arg",
           "general_flag", "kernel_network", "narrow_formats_ok", "narrow_ok", "payload_lists",
           "run_batch", "segments_to_list", "spike_lists", "trunc_shift"]

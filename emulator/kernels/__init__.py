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

import os

#: How long (spins of a pause loop) GNU OpenMP's threads wait for the next parallel region
#: before they sleep, unless the user set GOMP_SPINCOUNT or OMP_WAIT_POLICY: libgomp reads
#: it when Numba first starts its threads, after this import. Its default of 300,000 spins
#: keeps a thread busy for milliseconds after every batched run; a board server or any
#: other process sharing the cores lost that time (measured: the digits batches over
#: tcp:// ran 4.5 ms slower right after a local run). 10,000 spins still covers the gaps
#: between the parallel regions of one step of a threaded sample.
GOMP_SPINCOUNT = "10000"
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT

from emulator.kernels.accounting import account_steps  # noqa: E402
from emulator.kernels.neurons import _update_range, narrow_formats_ok, narrow_ok, trunc_shift  # noqa: E402
from emulator.kernels.records import Formats, Population, segments_to_list  # noqa: E402
from emulator.kernels.run import (  # noqa: E402
    THREADED_MIN_EVENTS,
    THREADED_MIN_NEURONS,
    THREADED_MIN_SOURCES,
    KernelState,
    check_kernel_arg,
    general_flag,
    kernel_network,
    run_batch,
)
from emulator.kernels.spikes import payload_lists, spike_lists  # noqa: E402

__all__ = ["THREADED_MIN_EVENTS", "THREADED_MIN_NEURONS", "THREADED_MIN_SOURCES", "Formats",
           "KernelState", "Population", "_update_range", "account_steps", "check_kernel_arg",
           "general_flag", "kernel_network", "narrow_formats_ok", "narrow_ok", "payload_lists",
           "run_batch", "segments_to_list", "spike_lists", "trunc_shift"]

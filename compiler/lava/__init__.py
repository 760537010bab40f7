"""Export a chip image to Lava 0.10 processes, and run it there.

This is the only package that imports Lava, and it does so lazily (through
:func:`compiler.lava.compat.import_lava`), so importing it is cheap and works without Lava
installed. :mod:`~compiler.lava.checks` says what Lava can reproduce,
:mod:`~compiler.lava.processes` builds the processes, :mod:`~compiler.lava.network` wires
and runs them (with :mod:`~compiler.lava.runner`, which never lets a failed Lava worker
hang the caller) and :mod:`~compiler.lava.compat` makes Lava 0.10 importable.

What maps to what (emulator step t is Lava time step t + 1)::

    image                                     Lava 0.10 (Loihi2SimCfg, select_tag="fixed_pt")
    input population                          io.source.RingBuffer, data (n, T); column t
                                              is sent at step t + 1
    LIF population, reset "zero", spiking     lif.LIF (Lava's own PyLifModelBitAcc)
    non-spiking readout                       lif.LIF with vth 2^17 (never reached)
    LIF population, reset "subtract"          ChipLIF: the LIF process plus our fixed-point
                                              model (Lava's LIF arithmetic, our reset),
                                              announced by a LavaExportWarning
    lif_reset / ternary_lif population        lif.LIFReset / lif.TernaryLIF (Lava's models)
    sigma / delta / sigma_delta population    sdn.Sigma / sdn.Delta / sdn.SigmaDelta
    connection from a graded population       the synapse processes below with
                                              num_message_bits = its payload width
    dense connection, delay 0                 dense.Dense
    dense connection with delays              dense.DelayDense
    sparse connection, delay 0                sparse.Sparse
    sparse connection with delays             sparse.DelaySparse
    plastic connection (learning exported)    LearningDense / LearningSparse with a
                                              Loihi2F- or Loihi3FLearningRule
    learning population, third factor         ChipLearningLIF (our learning neuron)

:mod:`~compiler.lava.plan` decides (and ``neurochip inspect`` prints) which process each
part becomes and carries our core placement into every process's ``proc_params``;
:mod:`~compiler.lava.learning` writes our learning rules as Lava's.

Every synapse process gets its weights (post, pre), ``weight_exp``, ``num_weight_bits``
and ``sign_mode`` explicitly, so Lava neither re-detects the sign mode nor alters a
weight; :func:`check_exportable` proves beforehand that Lava's first-step clip and LSB
truncation leave every weight unchanged, and rejects with a
:class:`~neurochip.core.errors.LavaExportError` anything Lava cannot reproduce exactly.

Lava runs only processes connected to the one ``run`` is called on. When the image has
several unconnected parts, they are joined by empty ``Sparse`` links (no synapses, so they
add exact zeros); :attr:`LavaNetwork.links` holds them.
"""

from __future__ import annotations

from compiler.lava.checks import LAVA_FORMATS, LAVA_MAX_DELAY, LAVA_MODELS, check_exportable
from compiler.lava.learning import NOT_EXPRESSIBLE, plan_learning
from compiler.lava.network import (
    LEARNING_MODES,
    LavaNetwork,
    LavaResult,
    export_lava,
    learned_image,
    run_lava,
)
from compiler.lava.plan import LAVA_READOUT_VTH, LavaExportWarning, export_plan, placement_hints

__all__ = [
    "LAVA_FORMATS",
    "LAVA_MAX_DELAY",
    "LAVA_MODELS",
    "LAVA_READOUT_VTH",
    "LEARNING_MODES",
    "NOT_EXPRESSIBLE",
    "LavaExportWarning",
    "LavaNetwork",
    "LavaResult",
    "check_exportable",
    "export_lava",
    "export_plan",
    "learned_image",
    "placement_hints",
    "plan_learning",
    "run_lava",
]

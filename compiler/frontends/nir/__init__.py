"""NIR frontend: NIR graphs -> IR, and the NIR writer. The only package importing ``nir``.

Reading (:func:`read_nir`, :func:`from_nir`)
--------------------------------------------
NIR stores continuous-time ODEs without a time step. A file is discretised with

* ``dt``: the caller's, else ``neurochip.dt`` from the file's metadata, else inferred from
  the exporter's conventions (the *source profile*, below);
* ``decay``: ``"euler"`` (default; ``x <- (1 - dt/tau) x``) or ``"exp"`` (``exp(-dt/tau)``);
* ``reset``: ``"zero"`` or ``"subtract"``: the caller's, else ``neurochip.reset``, else the
  source profile's. ``v_reset`` is never used to guess the mode (it must be 0).

With ``d(tau)`` the chosen decay, every neuron node becomes a population of the IR
(``I[n] = alpha I[n-1] + g W S[n-1]``, ``U[n] = beta U[n-1] + I[n] + b``):

============  =============  =============  ==============================  =================
node          alpha          beta           input gain g                    bias b
============  =============  =============  ==============================  =================
CubaLIF/LI    d(tau_syn)     d(tau_mem)     w_in (1-alpha) r (1-beta)       (1-beta) v_leak
LIF / LI      0              d(tau)         r (1-beta)                      (1-beta) v_leak
IF / I        0              1              r dt                            0
Threshold     0              0              1                               0
============  =============  =============  ==============================  =================

(CubaLI, LI and I are non-spiking readouts.) Both profiles use ``gain = (1 - decay) * r``,
the exact solution for an input held over one step in the exponential case. Linear nodes
between two spiking nodes (Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d,
Flatten, Delay, subgraph ports) are composed into one projection per path; an Affine or
Conv bias becomes a constant membrane bias of the target (exact when alpha = 0, its
steady-state value ``g b / (1 - alpha)`` otherwise, noted in the import notes).

Source profiles (nir-notes section 5.2), tried in this order when no dt is known:

=========  =============================================  =====  ========  ========
profile    pattern                                        dt     decay     reset
=========  =============================================  =====  ========  ========
snntorch   r = tau_mem/dt, w_in = tau_syn/dt (lava-dl     dt     euler     subtract
           netx too)
spyx       r = 1 - dt/tau (r is beta), unit gains         dt     euler     subtract
rockpool   r = tau exp(-dt/tau)/dt                        dt     exp       subtract
sinabs     r = 1, IF only or tau > 1 (tau in steps)       1      exp       subtract
norse      r = 1, w_in = 1, tau in seconds (input gain w_in   ask    euler     zero
           into the current, as Norse's LIFCell)
=========  =============================================  =====  ========  ========

Population names are NIR node names (a subgraph holding exactly one neuron node, such as
an exporter's recurrent layer, names its population after the subgraph). Each top-level
Output node is resolved to the population it reads (its spikes, or ``v`` for a readout).
Anything the chip cannot run raises :class:`~neurochip.core.errors.ModelImportError` naming the
node, its type and the reason.

Writing (:func:`write_nir`, :func:`to_nir`)
-------------------------------------------
Float IR graphs (or a simple layer list, see :func:`compiler.ir.layered_graph`) are
written with the forward-Euler convention at ``dt`` (snnTorch's: ``r = tau_mem/dt``,
``w_in = tau_syn/dt``, unit gains), ``v_leak = b/(1 - beta)``, ``v_reset = 0`` and the
``neurochip.*`` metadata keys, so reading the file back gives the same IR.

Modules: :mod:`~compiler.frontends.nir.reader` (the importer), with its parts
:mod:`~compiler.frontends.nir.flatten` (nested graphs), :mod:`~compiler.frontends.nir.profiles`
(source profiles and discretisation), :mod:`~compiler.frontends.nir.shapes`,
:mod:`~compiler.frontends.nir.ops` (linear nodes) and :mod:`~compiler.frontends.nir.neurons`;
:mod:`~compiler.frontends.nir.writer` (the exporter); :mod:`~compiler.frontends.nir.base`
(what they share).
"""

from __future__ import annotations

from compiler.frontends.nir.base import (
                                         NEURON_TYPES,
                                         SUPPORTED_TYPES,
                                         Discretisation,
                                         NIRImportWarning,
)
from compiler.frontends.nir.reader import from_nir, read_nir
from compiler.frontends.nir.writer import to_nir, write_nir

__all__ = [
    "NEURON_TYPES",
    "SUPPORTED_TYPES",
    "Discretisation",
    "NIRImportWarning",
    "from_nir",
    "read_nir",
    "to_nir",
    "write_nir",
]


"""lava-dl netx frontend: HDF5 network exchange files (``*.net``) -> register-level Network.

netx files are already fixed point (slayer exports integer weights, decays and thresholds),
so they skip the float front passes: :func:`read_netx` builds the register-level
:class:`~neurochip.core.network.Network` that Lava's netx (lava-dl 0.6.0, ``hdf5.Network``)
would run, and ``neurochip.compile("model.net", hw)`` maps it. The semantics follow netx;
the mapping, layer by layer, is in ``docs/netx.md``. Reading uses h5py only; lava-dl is not
needed. :func:`write_netx` writes such files (tests and benchmarks build their networks
with it).
"""

from compiler.frontends.netx.reader import NETX_LAYER_TYPES, read_netx
from compiler.frontends.netx.writer import write_netx

__all__ = ["NETX_LAYER_TYPES", "read_netx", "write_netx"]

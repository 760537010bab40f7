"""The chip as data: the bottom layer, which imports nothing else of ours.

Modules, one concept each: ``errors`` (typed errors), ``hw`` (the hardware spec, validated
YAML), ``fixedpoint`` (every number format and its wrap / saturate / decode helpers),
``network`` (the register-level network builder), ``image`` (the ``.nchip`` chip image),
``results`` (what a run gives back), ``version``.
The compiler and the emulator are peers that import only this package.
"""

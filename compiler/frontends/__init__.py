"""Model frontends: each turns one file format into the IR (:mod:`compiler.ir`).

* :mod:`compiler.frontends.nir`: NIR graphs (``.nir`` files or ``nir.NIRGraph`` objects),
  and the NIR writer the training package uses;
* :mod:`compiler.frontends.onnx`: ONNX graphs following neurochip's spiking convention.

Each is the only module importing its format's package. Import options (``dt``,
``decay``, ``reset``) and the conventions assumed are described in ``docs/compiler.md``.
"""

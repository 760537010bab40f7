"""Compiler passes. Each pass is a pure function of its input; ``compiler.pipeline`` lists them."""

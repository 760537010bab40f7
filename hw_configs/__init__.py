"""Hardware descriptions (YAML), validated by :mod:`neurochip.core.hw`.

This folder is a package only so the YAML files ship with the installed toolchain.
"""

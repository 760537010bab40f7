"""Subcommands of the ``neurochip`` CLI (one module each, see ``neurochip.cli``)."""

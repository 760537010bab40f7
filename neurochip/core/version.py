"""The package version (one definition; ``neurochip.__version__`` re-exports it)."""

__version__ = "0.1.0"

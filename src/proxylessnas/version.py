"""The package version, in a module that imports nothing (the CLI and model cards read it)."""

__version__ = "0.1.0"

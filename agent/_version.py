"""azauth's version, as a constant: reading package metadata (importlib.metadata) at start-up
costs milliseconds on every command. tests/test_startup.py checks it equals pyproject.toml's."""

__version__ = "0.1.0"

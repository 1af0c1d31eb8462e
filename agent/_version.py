"""azauth's version, as a constant.

Reading package metadata (importlib.metadata) at start-up costs milliseconds on every command;
tests/test_startup.py checks that this equals the version in pyproject.toml.
"""

__version__ = "0.1.0"

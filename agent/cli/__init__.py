"""The ``azauth`` command line: one module per command, one place that maps errors to exit codes."""

from agent.cli.main import main

__all__ = ["main"]

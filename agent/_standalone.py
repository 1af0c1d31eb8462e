"""Whether this process is the ``azauth`` command rather than a program using the library.

Stdlib only, imports nothing. The console scripts (:mod:`agent._entry`) call :func:`mark_command`
before anything else of azauth is imported; modules then leave out what only library users need:
:mod:`agent._azure_core` hands out stand-ins for azure-core's base classes (about 45 ms of
imports: azure-core drags ``email``, ``http.client``, ``xml`` and ``platform`` in), and
:mod:`agent.logs` keeps ``rich`` out of structlog. A program that imports ``agent`` (or runs
``agent.cli.main.main`` in its own process) is never marked: it gets the real azure-core classes.
"""

from __future__ import annotations

__all__ = ["is_command", "mark_command"]

_command = False


def mark_command() -> None:
    """Record that this process is the ``azauth`` (or ``docker-credential-azauth``) command."""
    global _command  # noqa: PLW0603 - one fact about the whole process
    _command = True


def is_command() -> bool:
    """Whether :func:`mark_command` was called in this process."""
    return _command

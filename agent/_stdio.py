"""Standard streams that may be closed or broken — stdlib only (the warm fast path imports it).

A process started with ``>&-``, ``<&-`` or ``2>&-`` has no file descriptor 0, 1 or 2: Python sets
``sys.stdout`` (and friends) to ``None``, and the next file azauth opens would *become* fd 1 or 2,
so a token file could receive log lines. :func:`guard_standard_streams` puts ``/dev/null`` on every
closed descriptor first and remembers which ones were closed; commands that must print their
answer on stdout then refuse with a usage error (:func:`stdout_was_closed`) instead of silently
printing nowhere.

A reader that goes away (``azauth ... | head -c1``) is the other case: :func:`quiet_broken_pipe`
points stdout and stderr at ``/dev/null`` so the interpreter's final flush cannot print a
traceback, and the caller exits with 141 (128 + SIGPIPE), what a shell reports for a tool killed
by SIGPIPE.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "BROKEN_PIPE_EXIT",
    "guard_standard_streams",
    "quiet_broken_pipe",
    "stdout_was_closed",
]

BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE
_NAMES = ("stdin", "stdout", "stderr")
_closed: set[str] = set()


def guard_standard_streams() -> frozenset[str]:
    """Reserve fds 0-2 with ``/dev/null`` where closed; return the names of the closed ones.

    Idempotent: the names found closed on the first call are remembered for later calls.
    """
    for fd, name in enumerate(_NAMES):
        try:
            os.fstat(fd)
        except OSError:
            _closed.add(name)
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # pragma: no cover - fds are reserved lowest first
                os.dup2(opened, fd)
                os.close(opened)
        if getattr(sys, name) is None:
            mode = "r" if fd == 0 else "w"
            setattr(sys, name, open(fd, mode, closefd=False, encoding="utf-8"))  # noqa: SIM115
    return frozenset(_closed)


def stdout_was_closed() -> bool:
    """Whether the process started without a standard output (``>&-``)."""
    return "stdout" in _closed


def quiet_broken_pipe() -> int:
    """After a ``BrokenPipeError``: silence stdout and stderr, return :data:`BROKEN_PIPE_EXIT`."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would cost the warm path its import
            os.dup2(devnull, stream.fileno())
        except Exception:  # noqa: BLE001, S110 - best effort: the process is ending quietly
            pass
    os.close(devnull)
    return BROKEN_PIPE_EXIT

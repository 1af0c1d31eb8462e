"""Process hardening of the commands that hold secrets, as ssh-agent does it. Stdlib only.

:func:`harden_process` (Linux; elsewhere only the core limit) makes the process

* non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``): other processes of the same user, the command
  azauth runs among them, can no longer read ``/proc/<pid>/environ`` or ``/proc/<pid>/mem``,
  nor ``ptrace`` it; the kernel writes no core dump;
* and sets ``RLIMIT_CORE`` to 0, so no core file holds a token even where ``prctl`` is missing.

:func:`scrub_system_token` moves ``SYSTEM_ACCESSTOKEN`` out of ``os.environ`` (so no child
started later inherits it by accident) into a private variable that
:func:`stashed_value` answers from.

What this does not protect against: root (and anything with ``CAP_SYS_PTRACE``) still reads
any process's memory; a process that was already running as the same user before azauth
started keeps what it read; the warm path of ``azauth token`` (answered from the cache in a few
milliseconds) is not made non-dumpable, because loading ``ctypes`` would double its cost (it
sets ``RLIMIT_CORE`` only).
"""

from __future__ import annotations

import os
import sys

from agent import envvars

__all__ = [
    "SYSTEM_TOKEN_VARIABLE",
    "harden_process",
    "limit_core",
    "scrub_system_token",
    "stashed_value",
]

SYSTEM_TOKEN_VARIABLE = envvars.SYSTEM_ACCESSTOKEN
_PR_SET_DUMPABLE = 4  # <linux/prctl.h>
_stash: dict[str, str] = {}


def limit_core() -> bool:
    """Set ``RLIMIT_CORE`` to 0 (soft and hard); ``False`` where that is impossible."""
    try:
        import resource  # noqa: PLC0415 - POSIX only

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, OSError, ValueError):
        return False
    return True


def harden_process() -> bool:
    """Make this process non-dumpable and core-less; return whether ``prctl`` succeeded."""
    limit_core()
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # noqa: PLC0415 - only the commands that hold secrets pay for it

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def scrub_system_token() -> None:
    """Move ``SYSTEM_ACCESSTOKEN`` from ``os.environ`` into the private stash."""
    value = os.environ.pop(SYSTEM_TOKEN_VARIABLE, None)
    if value:
        _stash[SYSTEM_TOKEN_VARIABLE] = value


def stashed_value(name: str) -> str | None:
    """The value :func:`scrub_system_token` took out of the environment for ``name``, if any."""
    return _stash.get(name)

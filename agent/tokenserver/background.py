"""``azauth serve --background`` / ``--stop``: one token server for the whole job.

A pipeline job is a sequence of steps, each a new process. ``azauth serve --background`` in an
early step starts the server detached (its own session, stdin/stdout closed, stderr to a log
file next to the state file), waits until it listens, and prints its variables as Azure
Pipelines logging commands, so later steps find it:

- ``IDENTITY_ENDPOINT``, ``MSI_ENDPOINT``, ``AZAUTH_OIDC_REQUEST_URL`` and the chosen presets'
  plain variables with ``issecret=false``;
- ``IDENTITY_HEADER``, ``MSI_SECRET``, ``AZAUTH_OIDC_REQUEST_TOKEN``, ``ARM_OIDC_REQUEST_TOKEN``
  with ``issecret=true`` (after ``task.setsecret``): the agent masks them in logs and does not
  put them in later steps' environment by itself — each consuming step maps them with
  ``env: NAME: $(NAME)``.

The server records itself in a **state file** (JSON, ``0600`` in a ``0700`` directory:
``$AGENT_TEMPDIRECTORY/azauth/serve-<profile>.json`` in a pipeline, which the agent deletes
after the job) holding its pid, URL, deadline and variables; it removes the file when it stops.
A second ``--background`` for the same profile in the same job finds a live server there and
prints the same variables instead of starting another. The server ends at ``azauth serve
--stop`` (SIGTERM to the recorded pid, after checking the pid still runs ``azauth serve`` with
that state file), at its maximum lifetime (``--max-lifetime``, default 6 hours), or when the
agent ends the job's processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent import envvars
from agent._hardening import SYSTEM_TOKEN_VARIABLE, stashed_value
from agent.exceptions import UsageError
from agent.outputs._atomic import atomic_write
from agent.outputs.pipeline_variables import render_pipeline_variables

__all__ = [
    "DEFAULT_MAX_LIFETIME",
    "SECRET_VARIABLES",
    "ServerState",
    "check_private_directory",
    "default_state_file",
    "find_running",
    "read_state",
    "remove_state",
    "render_variables",
    "start_background",
    "stop_server",
    "write_state",
]

DEFAULT_MAX_LIFETIME = 6 * 3600.0
"""Seconds a background server runs at most (the longest a Microsoft-hosted job may run)."""

SECRET_VARIABLES = frozenset(
    {
        envvars.IDENTITY_HEADER,
        envvars.MSI_SECRET,
        envvars.AZAUTH_OIDC_REQUEST_TOKEN,
        envvars.ARM_OIDC_REQUEST_TOKEN,
    }
)
"""Variables that carry a server secret: ``issecret=true``."""

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0
_POLL = 0.05
_LOG_TAIL = 10


@dataclass(frozen=True)
class ServerState:
    """What the state file records (``variables`` hold secrets: never log them)."""

    pid: int
    url: str
    profile: str
    started: float
    deadline: float
    variables: dict[str, str] = dataclasses.field(repr=False)


def default_state_file(env: Mapping[str, str], profile: str) -> Path:
    """The default state file: ``$AGENT_TEMPDIRECTORY/azauth/serve-<profile>.json``.

    Outside a pipeline: under ``$XDG_RUNTIME_DIR``, else the system's temporary directory
    (``azauth-<uid>``).
    """
    agent_temp = env.get(envvars.AGENT_TEMPDIRECTORY)
    if agent_temp and Path(agent_temp).is_dir():
        base = Path(agent_temp) / "azauth"
    elif env.get(envvars.XDG_RUNTIME_DIR) and Path(env[envvars.XDG_RUNTIME_DIR]).is_dir():
        base = Path(env[envvars.XDG_RUNTIME_DIR]) / "azauth"
    else:
        base = Path(tempfile.gettempdir()) / f"azauth-{os.getuid()}"
    return base / f"serve-{profile}.json"


def check_private_directory(directory: Path) -> None:
    """Create ``directory`` (``0700``) or check that it is ours and not writable by others.

    The state file holds the server's secrets and says which process to signal: a directory
    someone else owns or can write to (a pre-created ``/tmp/azauth-<uid>``) could swap it.

    Raises:
        UsageError: the directory belongs to another user or is group/world-writable.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise UsageError(
            f"the state directory {directory} must be a directory owned by this user and "
            "writable by no one else"
        )


def write_state(path: Path, state: ServerState) -> None:
    """Write ``state`` atomically, ``0600`` (missing directories are created ``0700``)."""
    atomic_write(path, json.dumps(dataclasses.asdict(state)).encode(), mode=0o600)


def read_state(path: Path) -> ServerState | None:
    """The state in ``path``, or ``None`` when there is none or it is unreadable."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return ServerState(
            pid=int(data["pid"]),
            url=str(data["url"]),
            profile=str(data["profile"]),
            started=float(data["started"]),
            deadline=float(data["deadline"]),
            variables={str(k): str(v) for k, v in dict(data["variables"]).items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_state(path: Path, pid: int) -> None:
    """Remove ``path`` if it still records ``pid`` (a newer server's file is left alone)."""
    state = read_state(path)
    if state is not None and state.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _is_our_server(pid: int, path: Path) -> bool:
    """Whether ``pid`` is alive and, where ``/proc`` tells, runs ``serve`` with ``path``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: never ours
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (macOS): the pid check is all we have
    try:
        argv = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in argv and os.fsencode(str(path)) in argv


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 2):
            return True
    except OSError:
        return False


def find_running(path: Path) -> ServerState | None:
    """The live server recorded in ``path``; a stale file (dead pid) is removed.

    Raises:
        UsageError: the state file's directory is not private (:func:`check_private_directory`).
    """
    check_private_directory(path.parent)
    state = read_state(path)
    if state is None:
        return None
    if _is_our_server(state.pid, path) and _listening(state.url):
        return state
    if not _is_our_server(state.pid, path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return None


def start_background(arguments: Sequence[str], path: Path) -> ServerState:
    """Start ``azauth serve ARGUMENTS --state-file PATH`` detached; return its state once up.

    Raises:
        UsageError: the server exited or did not listen within a minute (the message holds the
            last lines of its log, ``<state file>.log``).
    """
    check_private_directory(path.parent)
    log_path = path.with_suffix(".log")
    # `serve` took the System.AccessToken out of os.environ at start (agent._hardening); the
    # detached server needs it, and only it gets it back.
    env = dict(os.environ)
    system_token = stashed_value(SYSTEM_TOKEN_VARIABLE)
    if system_token and SYSTEM_TOKEN_VARIABLE not in env:
        env[SYSTEM_TOKEN_VARIABLE] = system_token
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "agent", "serve", *arguments, "--state-file", str(path)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state(path)
        if state is not None and state.pid == process.pid:
            return state
        if process.poll() is not None:
            break
        time.sleep(_POLL)
    else:
        process.terminate()
    tail = _log_tail(log_path)
    raise UsageError(
        f"the background token server did not start (exit status {process.poll()}); "
        f"its log {log_path} ends with:\n{tail}"
    )


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL:]) or "(empty log)"


def stop_server(path: Path) -> ServerState | None:
    """Stop the server recorded in ``path`` (SIGTERM, then SIGKILL after 10 s).

    Returns its state, or ``None`` when no live server was recorded there. The state file is
    removed either way.
    """
    state = read_state(path)
    if state is None:
        return None
    if not _is_our_server(state.pid, path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while time.monotonic() < deadline and _is_our_server(state.pid, path):
        time.sleep(_POLL)
    if _is_our_server(state.pid, path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return state


def render_variables(variables: Mapping[str, str]) -> str:
    """``##vso[task.setvariable]`` lines; the server secrets with ``issecret=true``."""
    return render_pipeline_variables(variables, secret_names=SECRET_VARIABLES, is_output=False)

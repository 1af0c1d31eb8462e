"""What the tests share, defined once: ids, profile builders, running azauth, waiting.

Import it from any test file as ``from tests.support import ...`` (pytest's ``pythonpath``
puts the repository root on ``sys.path``). Fixtures live in ``tests/conftest.py``; this module
holds plain values and functions. Child programs the tests run are files under
``tests/programs/`` (:func:`program`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from agent.credential import AzurePipelinesCredential
    from agent.testing.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root directory."""

PROGRAMS = Path(__file__).resolve().parent / "programs"

# The ids the shared ``emulator`` fixtures register (tests/conftest.py).
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SC = "00000000-aaaa-bbbb-cccc-000000000001"
SC2 = "00000000-aaaa-bbbb-cccc-000000000002"
CLIENT2 = "11111111-2222-3333-4444-666666666666"
SUBSCRIPTION = "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d01"

ARM = "https://management.azure.com/.default"
KV = "https://vault.azure.net/.default"

AZAUTH = (sys.executable, "-m", "agent")
"""The command line of the CLI under test, run from this checkout's interpreter."""

T = TypeVar("T")


# ----------------------------------------------------------------------------- profile builders


def toml_connection(
    name: str = "prod",
    *,
    tenant: str = TENANT,
    client: str = CLIENT,
    service_connection: str = SC,
    subscription: str | None = None,
) -> str:
    """The TOML table ``[connections.NAME]`` with its tenant, client and service connection."""
    text = (
        f"\n[connections.{name}]\n"
        f'tenant_id = "{tenant}"\n'
        f'client_id = "{client}"\n'
        f'service_connection_id = "{service_connection}"\n'
    )
    if subscription is not None:
        text += f'subscription_id = "{subscription}"\n'
    return text


def toml_profile(name: str = "ci", *connections: str) -> str:
    """The TOML table ``[profiles.NAME]`` using ``connections`` (default: ``prod``)."""
    names = ", ".join(f'"{c}"' for c in connections or ("prod",))
    return f"\n[profiles.{name}]\nconnections = [{names}]\n"


def toml_value(value: object) -> str:
    """``value`` (str, bool, int, float, list or dict of those) as a TOML value on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of printable text is a TOML basic string
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def toml_table(header: str, **fields: object) -> str:
    """A TOML table (``[a.b]``) or array-of-tables entry (``[[a.b]]``) with ``fields``."""
    return f"\n{header}\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in fields.items())


def toml_output(kind: str, profile_name: str = "ci", **fields: object) -> str:
    """One output of profile ``profile_name``: ``[[profiles.ci.outputs]]`` with ``kind`` first."""
    return toml_table(f"[[profiles.{profile_name}.outputs]]", kind=kind, **fields)


PROD_CI = toml_connection() + toml_profile()
"""Connection ``prod`` (TENANT, CLIENT, SC) and profile ``ci`` using it, no outputs."""

PROD_OTHER_CI = (
    toml_connection()
    + toml_connection("other", client=CLIENT2, service_connection=SC2)
    + toml_profile("ci", "prod", "other")
)
"""Connections ``prod`` (CLIENT, SC) and ``other`` (CLIENT2, SC2); profile ``ci`` uses both."""


def feed_profile(feed_url: str, extra: str = "") -> str:
    """Profile ``ci`` (the default) of connection ``artifacts`` with feed ``shared`` at
    ``feed_url``, then ``extra`` TOML (outputs, feed keys)."""
    return (
        'version = 1\ndefault_profile = "ci"\n'
        + toml_connection("artifacts")
        + toml_profile("ci", "artifacts")
        + toml_table("[[profiles.ci.feeds]]", name="shared", url=feed_url)
        + extra
    )


PROD_CI_TOKEN_FILE = PROD_CI + toml_output("token_file", path="out/arm.token")
"""``PROD_CI`` plus the ARM token written to ``out/arm.token``."""


# ----------------------------------------------------------------------------- environments


def enter_pipeline(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    """Set the pipeline variables of ``emulator`` in ``os.environ`` (undone after the test)."""
    for name, value in emulator.pipeline_environment().items():
        monkeypatch.setenv(name, value)


def pipeline_credential(emulator: Emulator, **options: Any) -> AzurePipelinesCredential:
    """``AzurePipelinesCredential`` for TENANT/CLIENT/SC with ``emulator``'s system token and
    authority; ``options`` are further keyword arguments (or replace these)."""
    from agent.credential import AzurePipelinesCredential  # noqa: PLC0415 - import cost

    arguments: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "service_connection_id": SC,
        "system_access_token": emulator.system_access_token,
        "authority": emulator.authority,
    }
    return AzurePipelinesCredential(**(arguments | options))


def environ(**extra: str) -> dict[str, str]:
    """A copy of ``os.environ`` with ``extra`` added: a child's environment."""
    return {**os.environ, **extra}


def program(name: str) -> str:
    """The path of child program ``tests/programs/NAME`` (a file the tests run)."""
    path = PROGRAMS / name
    assert path.is_file(), f"no program {path}"
    return str(path)


def python_program(name: str, *args: str) -> list[str]:
    """The command line running ``tests/programs/NAME`` with this interpreter."""
    return [sys.executable, program(name), *args]


# ----------------------------------------------------------------------------- running azauth


def azauth(
    *args: str,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``azauth ARGS`` to completion (text mode, output captured, no check)."""
    return subprocess.run(
        [*AZAUTH, *args],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def spawn_azauth(
    *args: str,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[Any] | None = asyncio.subprocess.PIPE,
    stderr: int | IO[Any] | None = asyncio.subprocess.PIPE,
    **options: Any,
) -> asyncio.subprocess.Process:
    """Start ``azauth ARGS`` as an asyncio subprocess (stdout and stderr piped by default)."""
    return await asyncio.create_subprocess_exec(
        *AZAUTH,
        *args,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=stdout,
        stderr=stderr,
        **options,
    )


async def azauth_async(
    *args: str,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, str, str]:
    """Run ``azauth ARGS`` without blocking the loop (an emulator in this process keeps serving).

    Returns ``(exit status, stdout, stderr)``.
    """
    proc = await spawn_azauth(*args, cwd=cwd, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# ----------------------------------------------------------------------------- clocks


class ManualClock:
    """A clock that stands still at ``now`` until the test moves it; ``sleep`` just adds.

    Unlike :class:`agent.testing.FakeClock` (sleepers wait for fake time to reach them), a
    sleep returns at once: for code that only reads the time, or retries on a schedule.
    """

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


# ----------------------------------------------------------------------------- waiting


async def wait_for(
    condition: Callable[[], T],
    timeout: float = 15.0,
    *,
    interval: float = 0.05,
    what: str = "condition",
) -> float:
    """Poll ``condition()`` until it is true; return the seconds that took.

    Fails the test (AssertionError naming ``what``) after ``timeout`` seconds. The loop keeps
    running between polls, so servers in this process keep answering.
    """
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} not met within {timeout} s"
        await asyncio.sleep(interval)
    return time.monotonic() - started


def exists(*paths: Path) -> Callable[[], bool]:
    """A condition for :func:`wait_for`: every one of ``paths`` exists."""
    return lambda: all(path.exists() for path in paths)

"""Process memory: a child of `azauth exec` under a non-root uid cannot read azauth's environ."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.testing.emulator import Emulator
from tests.support import CLIENT, SC, TENANT

# Reads the parent's /proc/PID/environ: READ (and whether the token is in it) or DENIED.
READER = """
import os, sys
try:
    data = open(f"/proc/{os.getppid()}/environ", "rb").read()
except PermissionError:
    print("DENIED")
else:
    print("READ", sys.argv[1].encode() in data)
"""
UNPRIVILEGED = 65534  # nobody

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def _drop(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def _python_for(uid: int) -> list[str] | None:
    """A Python of this version that ``uid`` can start, importing azauth and its dependencies."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}", sys.executable]
    for candidate in candidates:
        probe = [*_drop(uid), candidate, "-c", "import aiohttp, pydantic, agent"]
        try:
            done = subprocess.run(  # noqa: S603
                probe, check=False, env=_env_for_python(), capture_output=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return [candidate]
    return None


def _env_for_python() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": f"{root}:{sysconfig.get_paths()['purelib']}",
    }


@pytest.fixture
def unprivileged() -> Iterator[tuple[int, list[str], Path]]:
    """(uid, python command, a private work directory owned by it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged uid (setpriv)")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    command = _python_for(UNPRIVILEGED)
    if command is None:
        pytest.skip(f"no Python {sys.version_info[:2]} that uid {UNPRIVILEGED} can run")
    work = Path(tempfile.mkdtemp(prefix="azauth-uid-"))
    os.chown(work, UNPRIVILEGED, UNPRIVILEGED)
    try:
        yield UNPRIVILEGED, command, work
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _run_as(uid: int, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *_drop(uid),
        *argv,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_child_of_azauth_exec_cannot_read_its_parents_environ(unprivileged, write_profile):
    uid, python, work = unprivileged
    write_profile(work)
    os.chown(work / "azauth.toml", uid, uid)
    async with Emulator() as emu:
        emu.add_connection(SC, TENANT, CLIENT)
        env = {
            **_env_for_python(),
            "HOME": str(work),
            "XDG_CACHE_HOME": str(work / "cache"),
            "AGENT_TEMPDIRECTORY": str(work),
            "SYSTEM_OIDCREQUESTURI": emu.oidc_request_uri,
            "SYSTEM_ACCESSTOKEN": emu.system_access_token,
            "AZURE_AUTHORITY_HOST": emu.authority,
        }
        token = emu.system_access_token
        # Control: without azauth, a same-uid child reads its parent's environ, token included.
        parent = f"import subprocess; subprocess.run([{python[0]!r}, '-c', {READER!r}, {token!r}])"
        code, control = await _run_as(uid, [*python, "-c", parent], env, work)
        assert code == 0, control
        assert control.strip() == "READ True"

        argv = [
            *python,
            "-m",
            "agent",
            "exec",
            "--profile",
            "ci",
            "--",
            python[0],
            "-c",
            READER,
            token,
        ]
        code, out = await _run_as(uid, argv, env, work)
    assert code == 0, out
    assert "DENIED" in out, out


def test_hardening_makes_proc_files_root_owned():
    """After harden_process, this process's /proc entries belong to root (not dumpable)."""
    script = (
        "import os; from agent._hardening import harden_process; "
        "assert harden_process(); import resource; "
        "print(os.stat(f'/proc/{os.getpid()}/environ').st_uid, "
        "resource.getrlimit(resource.RLIMIT_CORE))"
    )
    uid = os.geteuid()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )  # noqa: S603
    owner, limits = done.stdout.split(" ", 1)
    assert int(owner) == 0
    assert limits.strip() == "(0, 0)"
    assert uid == os.geteuid()

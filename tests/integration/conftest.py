"""What the real-client tests share: a TLS emulator reached through a CONNECT tunnel, the pipeline
environment pointing at it, and running a command without blocking the emulator's event loop.

Real clients (Terraform, az, azure-identity in a child) build their own URLs from the real host
names; with `HTTPS_PROXY` at the tunnel and the emulator's CA trusted they reach the emulator,
and nothing leaves the machine. The emulator runs in the test's event loop, so the commands run
as asyncio subprocesses (a blocking `subprocess.run` would stall it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.testing._tunnel import ConnectTunnel
from agent.testing.emulator import Emulator

# The pipeline's own variables and anything that would let the developer's shell leak in.
_DROPPED = ("ARM_", "AZURE_", "SYSTEM_", "AZAUTH_", "TF_", "IDENTITY_", "MSI_", "NODE_")


@dataclass
class World:
    """The emulator, its tunnel, and a working directory."""

    emu: Emulator
    tunnel: ConnectTunnel
    workdir: Path

    def env(self, *, pipeline: bool = True, **extra: str) -> dict[str, str]:
        """The environment of a step: trust and tunnel, plus the pipeline variables if asked.

        ``pipeline`` adds ``SYSTEM_OIDCREQUESTURI``, ``SYSTEM_ACCESSTOKEN`` and the emulator's
        authority, as a step that maps ``$(System.AccessToken)`` has.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED)}
        env.update(
            SSL_CERT_FILE=str(self.emu.ca_file),
            REQUESTS_CA_BUNDLE=str(self.emu.ca_file),
            HTTPS_PROXY=self.tunnel.url,
            NO_PROXY="127.0.0.1,localhost",
            HOME=str(self.workdir),
        )
        if pipeline:
            env.update(
                SYSTEM_OIDCREQUESTURI=self.emu.oidc_request_uri,
                SYSTEM_ACCESSTOKEN=self.emu.system_access_token,
                AZURE_AUTHORITY_HOST=self.emu.url,
            )
        env.update(extra)
        return env


@pytest.fixture
def lifetime() -> int:
    """Seconds OIDC and access tokens live in the emulator (tests override this fixture)."""
    return 300


@pytest.fixture
async def world(tmp_path: Path, lifetime: int) -> AsyncIterator[World]:
    """A started TLS emulator with token lifetimes of ``lifetime`` and a tunnel to it."""
    emu = Emulator(oidc_lifetime=lifetime, token_lifetime=lifetime)
    await emu.start(tls=True)
    tunnel = await ConnectTunnel(int(emu.url.rsplit(":", 1)[1])).start()
    try:
        yield World(emu, tunnel, tmp_path)
    finally:
        await tunnel.close()
        await emu.close()


async def _run(*argv: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


@pytest.fixture
def run() -> Callable[..., object]:
    """``await run(*argv, cwd=, env=)`` → ``(exit status, stdout and stderr merged)``."""
    return _run

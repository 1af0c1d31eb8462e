"""Fixtures of the package feed tests: an emulated feed, a profile naming it, a workspace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.testing._feeds import EmulatedFeed
from agent.testing.emulator import Emulator
from tests.support import CLIENT, SC, TENANT, feed_profile

BIN = str(Path(sys.executable).parent)


@dataclass
class FeedSetup:
    """The emulator, its feed, the profile file and the environment clients run in."""

    emulator: Emulator
    feed: EmulatedFeed
    feed_url: str
    config: Path
    work: Path
    env: dict[str, str]

    @property
    def index_url(self) -> str:
        return f"{self.feed_url}/pypi/simple/"

    def write_profile(self, extra: str) -> None:
        """Rewrite the profile file: the feed, plus ``extra`` TOML (outputs, feed keys)."""
        self.config.write_text(feed_profile(self.feed_url) + extra)

    def tokens_seen(self) -> list[str]:
        """Distinct access tokens the feed accepted, in order of first use."""
        seen: list[str] = []
        for record in self.emulator.feeds.accepted:
            if record not in seen:
                seen.append(record)
        return seen


@pytest.fixture
async def feed_setup(tmp_path: Path) -> FeedSetup:
    emu = Emulator()
    await emu.start()
    emu.add_connection(SC, TENANT, CLIENT)
    feed = emu.feeds.add_feed("contoso", "shared", project="azauth")
    feed_url = emu.feeds.url_of(feed)
    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir()
    home.mkdir()
    config = work / "azauth.toml"
    config.write_text(feed_profile(feed_url))
    # pip's subprocess provider skips a `keyring` in its own environment's scripts directory (it
    # wants one installed apart, as with `pipx install keyring; pipx inject keyring azauth`):
    # this directory holds such a separate command, running the keyring azauth is installed in.
    tools = tmp_path / "tools"
    tools.mkdir()
    wrapper = tools / "keyring"
    wrapper.write_text(f'#!/bin/sh\nexec "{BIN}/keyring" "$@"\n')
    wrapper.chmod(0o755)
    env = {
        "PATH": os.pathsep.join([str(tools), BIN, os.environ.get("PATH", "")]),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "AZAUTH_CONFIG": str(config),
        **emu.pipeline_environment(),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "UV_NO_CACHE": "1",
        "NO_COLOR": "1",
        "LANG": "C.UTF-8",
    }
    try:
        yield FeedSetup(emu, feed, feed_url, config, work, env)
    finally:
        await emu.close()


@pytest.fixture
def run_client():
    """``await run_client(*command, env=..., cwd=...)``: a real client, the loop kept serving."""
    return _run


async def _run(
    *command: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        list(command), process.returncode, out.decode(), err.decode()
    )

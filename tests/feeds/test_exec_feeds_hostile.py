"""`azauth exec --feeds` against hostile surroundings: signals, a FIFO as the user's npmrc."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.support import AZAUTH, spawn_azauth


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
async def test_a_signal_removes_the_private_directory(feed_setup, signum):
    setup = feed_setup
    (Path(setup.env["HOME"]) / ".npmrc").write_text("save-exact=true\n")
    marker = setup.work / "dir.txt"
    script = f'echo "$AZAUTH_FEEDS_DIR" > {marker}; exec sleep 60'
    process = await spawn_azauth("exec", "--feeds", "--no-preset", "--",
        "sh", "-c", script,
        stdin=asyncio.subprocess.DEVNULL,
        cwd=setup.work,
        env=setup.env,
    )  # fmt: skip
    for _ in range(600):
        if marker.exists() and marker.read_text().strip():
            break
        await asyncio.sleep(0.05)
    private = Path(marker.read_text().strip())
    assert private.is_dir()
    assert any(private.glob("*.feed-token"))
    process.send_signal(signum)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 128 + signum, err.decode()
    assert not private.exists()
    assert (Path(setup.env["HOME"]) / ".npmrc").read_text() == "save-exact=true\n"
    assert setup.emulator.system_access_token not in err.decode()


async def test_a_fifo_as_the_users_npmrc_is_an_error_not_a_hang(feed_setup, run_client):
    setup = feed_setup
    fifo = setup.work / "npmrc.fifo"
    os.mkfifo(fifo)
    env = {**setup.env, "NPM_CONFIG_USERCONFIG": str(fifo)}
    result = await run_client(
        *AZAUTH, "exec", "--feeds", "--no-preset", "--", "true",
        env=env, cwd=setup.work, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert str(fifo) in result.stderr
    assert "not a regular file" in result.stderr
    assert "Traceback" not in result.stderr

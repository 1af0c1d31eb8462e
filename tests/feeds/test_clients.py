"""Real feed clients against the emulated Azure Artifacts feed, credentials from azauth.

Each client runs twice with tokens that live 6 seconds (served from the cache for 3): the
second run must be answered with a new token, refreshed in between.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from tests.support import spawn_azauth

TOKEN_LIFETIME = 6


async def wait_for_stale(seconds: float = TOKEN_LIFETIME / 2 + 0.5) -> None:
    await asyncio.sleep(seconds)


class TestPip:
    @pytest.mark.parametrize("provider", ["import", "subprocess"])
    async def test_install_through_the_keyring_backend(self, feed_setup, run_client, provider):
        setup = feed_setup
        setup.emulator.token_lifetime = TOKEN_LIFETIME
        # The subprocess provider runs `keyring get URL USER`: the user name goes in the URL.
        index = setup.index_url
        if provider == "subprocess":
            index = index.replace("http://", "http://VssSessionToken@")
        tokens = []
        for attempt in range(2):
            target = setup.work / f"target{attempt}"
            result = await run_client(
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-input",
                "--keyring-provider",
                provider,
                "--index-url",
                index,
                "--target",
                str(target),
                "azauth-feed-probe",
                env=setup.env,
                cwd=setup.work,
            )
            assert result.returncode == 0, result.stderr + result.stdout
            assert (target / "azauth_feed_probe.py").read_text() == 'SOURCE = "emulated feed"\n'
            tokens = setup.tokens_seen()
            if attempt == 0:
                await wait_for_stale()
        assert len(tokens) == 2, "the second install must use a refreshed token"
        assert setup.emulator.counts["token"] == 2


class TestUv:
    async def test_uv_pip_install_with_the_subprocess_provider(self, feed_setup, run_client):
        setup = feed_setup
        setup.emulator.token_lifetime = TOKEN_LIFETIME
        index = setup.index_url.replace("http://", "http://VssSessionToken@")
        uv = str(Path(sys.executable).parent / "uv")
        for attempt in range(2):
            target = setup.work / f"target{attempt}"
            result = await run_client(
                uv,
                "pip",
                "install",
                "--keyring-provider",
                "subprocess",
                "--index-url",
                index,
                "--python",
                sys.executable,
                "--target",
                str(target),
                "azauth-feed-probe",
                env=setup.env,
                cwd=setup.work,
            )
            assert result.returncode == 0, result.stderr + result.stdout
            assert (target / "azauth_feed_probe.py").exists()
            if attempt == 0:
                await wait_for_stale()
        assert len(setup.tokens_seen()) == 2
        # uv asks the keyring before the first request (the URL names a user) and sends Basic.
        assert {scheme for *_, scheme in setup.emulator.feeds.requests} == {"Basic"}


class TestTwine:
    async def test_upload_through_the_keyring_backend(self, feed_setup, run_client):
        from agent.testing._feeds import build_wheel

        setup = feed_setup
        setup.emulator.token_lifetime = TOKEN_LIFETIME
        upload = f"{setup.feed_url}/pypi/upload/"
        for attempt, version in enumerate(["2.0.0", "2.0.1"]):
            dist = setup.work / f"dist{attempt}"
            dist.mkdir()
            filename, data = build_wheel("azauth-uploaded", version)
            (dist / filename).write_bytes(data)
            result = await run_client(
                sys.executable,
                "-m",
                "twine",
                "upload",
                "--non-interactive",
                "--repository-url",
                upload,
                str(dist / filename),
                env=setup.env,
                cwd=setup.work,
            )
            assert result.returncode == 0, result.stderr + result.stdout
            if attempt == 0:
                await wait_for_stale()
        uploads = setup.feed.uploads
        assert [u["version"] for u in uploads] == ["2.0.0", "2.0.1"]
        assert len(setup.tokens_seen()) == 2


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed on this machine")
class TestNpm:
    async def test_install_with_the_npmrc_output_kept_fresh_by_watch(self, feed_setup, run_client):
        setup = feed_setup
        setup.emulator.token_lifetime = TOKEN_LIFETIME
        npmrc = setup.work / "home.npmrc"
        npmrc.write_text("save-exact=true\n@other:registry=https://npm.example.invalid/\n")
        setup.write_profile(f'[[profiles.ci.outputs]]\nkind = "npmrc"\npath = "{npmrc}"\n')
        env = {
            **setup.env,
            "NPM_CONFIG_USERCONFIG": str(npmrc),
            "NPM_CONFIG_UPDATE_NOTIFIER": "false",
            "NPM_CONFIG_AUDIT": "false",
            "NPM_CONFIG_FUND": "false",
        }
        watch = await spawn_azauth(
            "run",
            "--watch",
            "-q",
            env=setup.env,
            cwd=setup.work,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            for _ in range(200):
                if "_authToken" in (npmrc.read_text() if npmrc.exists() else ""):
                    break
                await asyncio.sleep(0.05)
            for attempt in range(2):
                prefix = setup.work / f"project{attempt}"
                prefix.mkdir()
                result = await run_client(
                    "npm",
                    "install",
                    "--prefix",
                    str(prefix),
                    "--cache",
                    str(setup.work / f"npm-cache{attempt}"),
                    "azauth-feed-probe",
                    env=env,
                    cwd=prefix,
                )
                assert result.returncode == 0, result.stderr + result.stdout
                installed = prefix / "node_modules" / "azauth-feed-probe" / "index.js"
                assert installed.read_text() == 'module.exports = "emulated feed";\n'
                if attempt == 0:
                    await wait_for_stale(TOKEN_LIFETIME + 0.5)  # the first token has expired
        finally:
            watch.terminate()
            _, err = await watch.communicate()
        assert watch.returncode == 0, err.decode()
        tokens = setup.tokens_seen()
        assert len(tokens) >= 2
        # npm sent the token as a Bearer token, to the document and to the tarball.
        assert {scheme for *_, scheme in setup.emulator.feeds.requests} == {"Bearer"}
        # The user's own lines are still there, once, and the file stayed private.
        text = npmrc.read_text()
        assert text.startswith("save-exact=true\n@other:registry=https://npm.example.invalid/\n")
        assert text.count("save-exact=true") == 1
        assert npmrc.stat().st_mode & 0o777 == 0o600

"""`azauth exec --feeds -- CMD`: pip, uv, npm and twine configured privately, kept fresh, removed."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

TOKEN_LIFETIME = 6


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed on this machine")
async def test_pip_npm_and_twine_inside_exec_feeds(feed_setup, run_client):
    from agent.testing._feeds import build_wheel

    setup = feed_setup
    setup.emulator.token_lifetime = TOKEN_LIFETIME
    # Dotfiles are often links into a repository: the private copy follows the link.
    user_npmrc = Path(setup.env["HOME"]) / "dotfiles.npmrc"
    user_npmrc.write_text("save-exact=true\n")
    (Path(setup.env["HOME"]) / ".npmrc").symlink_to(user_npmrc)
    filename, data = build_wheel("azauth-uploaded", "3.0.0")
    (setup.work / filename).write_bytes(data)
    npm = "npm install --no-audit --no-fund --cache npm-cache{n} --prefix p{n} azauth-feed-probe"
    pip = (
        f"{sys.executable} -m pip install --no-input --keyring-provider import "
        f"--index-url {setup.index_url} --target t{{n}} azauth-feed-probe"
    )
    script = "\n".join(
        [
            "set -e",
            "env > child.env",
            'cp "$NPM_CONFIG_USERCONFIG" child.npmrc',
            pip.format(n=1),
            npm.format(n=1),
            (  # no --keyring-provider: exec sets UV_KEYRING_PROVIDER=subprocess
                f"{Path(sys.executable).parent / 'uv'} pip install --python {sys.executable} "
                f"--index-url {setup.index_url.replace('http://', 'http://VssSessionToken@')} "
                "--target u1 azauth-feed-probe"
            ),
            f"sleep {TOKEN_LIFETIME + 1}",  # the first token has expired meanwhile
            pip.format(n=2),
            npm.format(n=2),
            (
                f"{sys.executable} -m twine upload --non-interactive "
                f"--repository-url {setup.feed_url}/pypi/upload/ {filename}"
            ),
        ]
    )
    env = {**setup.env, "NPM_CONFIG_UPDATE_NOTIFIER": "false"}
    result = await run_client(
        sys.executable,
        "-m",
        "agent",
        "exec",
        "--feeds",
        "--no-preset",
        "--",
        "sh",
        "-c",
        script,
        env=env,
        cwd=setup.work,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    for n in (1, 2):
        assert (setup.work / f"t{n}" / "azauth_feed_probe.py").exists()
        assert (setup.work / f"p{n}" / "node_modules" / "azauth-feed-probe" / "index.js").exists()
    assert (setup.work / "u1" / "azauth_feed_probe.py").exists()
    assert [u["version"] for u in setup.feed.uploads] == ["3.0.0"]
    assert len(setup.tokens_seen()) >= 2, "the command's second half needs the refreshed token"

    child = dict(
        line.split("=", 1)
        for line in (setup.work / "child.env").read_text().splitlines()
        if "=" in line
    )
    assert "SYSTEM_ACCESSTOKEN" not in child
    private = Path(child["AZAUTH_FEEDS_DIR"])
    assert child["NPM_CONFIG_USERCONFIG"] == str(private / "npmrc")
    endpoints = json.loads(child["VSS_NUGET_EXTERNAL_FEED_ENDPOINTS"])["endpointCredentials"]
    assert [e["endpoint"] for e in endpoints] == [f"{setup.feed_url}/nuget/v3/index.json"]
    assert child["VSS_NUGET_URI_PREFIXES"] == f"{setup.feed_url}/"
    assert child["UV_INDEX_SHARED_USERNAME"] == "azauth"
    assert child["UV_INDEX_SHARED_PASSWORD"] == endpoints[0]["password"]
    assert not any(name.startswith("TWINE_") for name in child)
    assert "PIP_KEYRING_PROVIDER" not in child
    assert child["UV_KEYRING_PROVIDER"] == "subprocess"
    # The private npmrc started from the user's; the user's file is untouched; all is removed.
    assert (setup.work / "child.npmrc").read_text().startswith("save-exact=true\n")
    assert user_npmrc.read_text() == "save-exact=true\n"
    assert not private.exists()
    # No token reached azauth's output.
    for token in setup.tokens_seen():
        assert token not in result.stdout + result.stderr


async def test_exec_feeds_needs_feeds(feed_setup, run_client):
    setup = feed_setup
    setup.config.write_text(setup.config.read_text().split("[[profiles.ci.feeds]]")[0])
    result = await run_client(
        sys.executable,
        "-m",
        "agent",
        "exec",
        "--feeds",
        "--",
        "true",
        env=setup.env,
        cwd=setup.work,
    )
    assert result.returncode == 3
    assert "lists no feed" in result.stderr
    assert "Traceback" not in result.stderr

"""The feed output kinds delivered by `azauth run` and `azauth exec`, against the emulator."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from dotenv import dotenv_values

from tests.support import AZAUTH, python_program

OUTPUTS = """
[[profiles.ci.outputs]]
kind = "npmrc"
path = "{home}/.npmrc"

[[profiles.ci.outputs]]
kind = "maven_settings"
path = "m2/settings.xml"

[[profiles.ci.outputs]]
kind = "feed_env_file"
path = "feeds.env"
"""
USER_LINES = "save-exact=true\n//npm.example.invalid/:_authToken=users-own\n"


async def test_run_writes_every_feed_output(feed_setup, run_client):
    setup = feed_setup
    home = Path(setup.env["HOME"])
    (home / ".npmrc").write_text(USER_LINES)
    setup.write_profile(OUTPUTS.format(home=home))
    result = await run_client(*AZAUTH, "run", "-q", env=setup.env, cwd=setup.work)
    assert result.returncode == 0, result.stderr
    token = setup.emulator.issued[-1].token
    assert (
        setup.emulator.verify_access_token(token)["aud"] == "499b84ac-1321-427f-aa17-267ca6975798"
    )

    npmrc = (home / ".npmrc").read_text()
    assert npmrc.startswith(USER_LINES)
    assert f"registry={setup.feed_url}/npm/registry/\n" in npmrc
    nerf = setup.feed_url.removeprefix("http:")
    assert f"{nerf}/npm/registry/:_authToken={token}\n" in npmrc
    assert f"{nerf}/npm/:_authToken={token}\n" in npmrc

    settings = ET.fromstring((setup.work / "m2" / "settings.xml").read_bytes())
    ns = {"s": "http://maven.apache.org/SETTINGS/1.2.0"}
    assert settings.findtext("s:servers/s:server/s:id", namespaces=ns) == "shared"
    assert settings.findtext("s:servers/s:server/s:password", namespaces=ns) == token

    values = dotenv_values(setup.work / "feeds.env")
    assert values["VSS_NUGET_ACCESSTOKEN"] == token
    assert values["TWINE_REPOSITORY_URL"] == f"{setup.feed_url}/pypi/upload/"
    for path in (home / ".npmrc", setup.work / "m2" / "settings.xml", setup.work / "feeds.env"):
        assert path.stat().st_mode & 0o777 == 0o600
    assert token not in result.stdout + result.stderr
    # The URLs hold no secret.
    assert token not in setup.feed_url


async def test_remove_on_exit_takes_only_azauths_lines_out(feed_setup, run_client):
    setup = feed_setup
    home = Path(setup.env["HOME"])
    (home / ".npmrc").write_text(USER_LINES)
    setup.write_profile(OUTPUTS.format(home=home))
    result = await run_client(
        *AZAUTH,
        "exec",
        "--remove-on-exit",
        "--no-preset",
        "--",
        "sh",
        "-c",
        'grep -c _authToken "$HOME/.npmrc"',
        env=setup.env,
        cwd=setup.work,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"  # the user's line and azauth's two, while it ran
    assert (home / ".npmrc").read_text() == USER_LINES
    assert not (setup.work / "feeds.env").exists()
    assert not (setup.work / "m2" / "settings.xml").exists()


async def test_npmrc_created_by_azauth_is_removed_whole(feed_setup, run_client):
    setup = feed_setup
    setup.write_profile('[[profiles.ci.outputs]]\nkind = "npmrc"\npath = "project.npmrc"\n')
    result = await run_client(
        *AZAUTH,
        "exec",
        "--remove-on-exit",
        "--no-preset",
        "--",
        "true",
        env=setup.env,
        cwd=setup.work,
    )
    assert result.returncode == 0, result.stderr
    assert not (setup.work / "project.npmrc").exists()


async def test_npmrc_symlink_is_refused(feed_setup, run_client):
    setup = feed_setup
    target = setup.work / "elsewhere"
    target.write_text("keep\n")
    (setup.work / "link.npmrc").symlink_to(target)
    setup.write_profile('[[profiles.ci.outputs]]\nkind = "npmrc"\npath = "link.npmrc"\n')
    result = await run_client(*AZAUTH, "run", env=setup.env, cwd=setup.work)
    assert result.returncode == 6, result.stderr
    assert "link.npmrc" in result.stderr
    assert target.read_text() == "keep\n"


def test_two_processes_merging_one_npmrc_keep_both_blocks(tmp_path):
    import subprocess

    npmrc = tmp_path / "shared.npmrc"
    npmrc.write_text("save-exact=true\n")
    env = {**os.environ, "AZAUTH_CACHE_DIR": str(tmp_path / "cache")}
    workers = [
        subprocess.Popen(python_program("merge_npmrc.py", str(npmrc), owner, count), env=env)
        for owner, count in (("alpha", "200"), ("beta", "200"))
    ]
    import time

    time.sleep(0.5)  # both have started: let them race
    (tmp_path / "shared.npmrc.go").touch()
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    text = npmrc.read_text()
    assert text.startswith("save-exact=true\n")
    assert "_authToken=token.alpha.199" in text and "_authToken=token.beta.199" in text

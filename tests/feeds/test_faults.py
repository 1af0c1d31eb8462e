"""Feed outputs kept fresh through scripted Entra faults on a FakeClock, many random schedules.

Properties that must hold on every schedule, at every moment sampled:
- the user's npmrc keeps its own lines, in order, and holds exactly one azauth block whose two
  ``_authToken`` lines carry the same token, one the emulator issued for Azure DevOps;
- no feed file is ever empty or half-written (each parses in its format);
- after the last outage, every file carries a token that is valid.

Also a regression test of the watch loop's retry after a failed refresh.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import xml.etree.ElementTree as ET

import pytest
from dotenv import dotenv_values

from agent.config import load_config
from agent.runner import Runner
from agent.testing.fakes import FakeClock
from tests.support import CLIENT, SC, TENANT, feed_profile, toml_output

USER_LINES = ["; mine", "save-exact=true", "//npm.example.invalid/:_authToken=users-own"]
HOURS = 3
LIFETIME = 1800


OUTPUTS = (
    toml_output("npmrc", path="user.npmrc")
    + toml_output("maven_settings", path="settings.xml")
    + toml_output("feed_env_file", path="feeds.env")
)


@pytest.fixture
async def feed_emulator(start_emulator, tmp_path, monkeypatch):
    """A FakeClock emulator with feed ``shared``; the profile and user.npmrc in ``tmp_path``."""
    clock = FakeClock()
    emu = await start_emulator((SC, TENANT, CLIENT), clock=clock, token_lifetime=LIFETIME)
    feed = emu.feeds.add_feed("contoso", "shared", project="azauth")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "azauth.toml").write_text(feed_profile(emu.feeds.url_of(feed), OUTPUTS))
    (tmp_path / "user.npmrc").write_text("\n".join(USER_LINES) + "\n")
    return emu, clock


def npmrc_token(text: str) -> str:
    lines = text.splitlines()
    assert lines[: len(USER_LINES)] == USER_LINES
    assert sum(line.startswith("; >>> azauth feeds") for line in lines) == 1
    ours = [
        line.split("_authToken=", 1)[1]
        for line in lines[len(USER_LINES) :]
        if "_authToken=" in line
    ]
    assert len(ours) == 2 and ours[0] == ours[1]
    return ours[0]


def file_tokens(workdir) -> dict[str, str]:
    ns = {"s": "http://maven.apache.org/SETTINGS/1.2.0"}
    settings = ET.fromstring((workdir / "settings.xml").read_bytes())
    return {
        "npmrc": npmrc_token((workdir / "user.npmrc").read_text()),
        "maven": settings.findtext("s:servers/s:server/s:password", namespaces=ns),
        "env": dotenv_values(workdir / "feeds.env")["VSS_NUGET_ACCESSTOKEN"],
        "nuget": json.loads(
            dotenv_values(workdir / "feeds.env")["VSS_NUGET_EXTERNAL_FEED_ENDPOINTS"]
        )["endpointCredentials"][0]["password"],
    }


@pytest.mark.parametrize("seed", range(20))
async def test_feed_outputs_survive_random_outages(tmp_path, feed_emulator, seed):
    rng = random.Random(seed)
    emu, clock = feed_emulator
    resolved = load_config(settings_overrides={"retry_deadline": 30.0}).profile("ci")
    start = clock.time()
    end = start + HOURS * 3600
    calm_after = end - LIFETIME  # the last outage starts before this
    issued: set[str] = set()
    stop = asyncio.Event()
    async with Runner(resolved, env=dict(os.environ), clock=clock, stdout=io.StringIO()) as runner:
        task = asyncio.create_task(runner.watch(stop))
        await runner.delivered.wait()
        next_fault = start + rng.uniform(0, LIFETIME)
        while clock.time() < end:
            now = clock.time()
            if now >= next_fault and now < calm_after:
                endpoint = rng.choice(["token", "oidc"])
                body = rng.choice(["json", "html", "garbage", "empty", "drop"])
                status = rng.choice([500, 503, 429, 400, 401])
                emu.fail_next(
                    endpoint, status, count=rng.randint(1, 12), body=body, retry_after="1"
                )
                next_fault = now + rng.uniform(60, LIFETIME)
            issued.update(t.token for t in emu.issued if t.kind == "access")
            tokens = file_tokens(tmp_path)  # complete files, at every sample
            assert set(tokens.values()) <= issued, "a file holds a token the emulator never issued"
            await asyncio.sleep(0.005)
        stop.set()
        await task
    # Every file holds a valid token (a refresh may have been mid-way at the stop, so the
    # files need not hold the same one).
    for token in set(file_tokens(tmp_path).values()):
        claims = emu.verify_access_token(token, audience="499b84ac-1321-427f-aa17-267ca6975798")
        assert claims["exp"] > clock.time()
    assert (tmp_path / "user.npmrc").stat().st_mode & 0o777 == 0o600


async def test_a_failed_refresh_is_retried_after_its_backoff(tmp_path, feed_emulator):
    """Regression: the retry time was re-derived from "now" on every wake-up, so a connection
    whose refresh failed once was never attempted again."""
    emu, clock = feed_emulator
    resolved = load_config(settings_overrides={"retry_deadline": 5.0}).profile("ci")
    start = clock.time()
    stop = asyncio.Event()
    async with Runner(resolved, env=dict(os.environ), clock=clock, stdout=io.StringIO()) as runner:
        task = asyncio.create_task(runner.watch(stop))
        await runner.delivered.wait()
        first = file_tokens(tmp_path)["npmrc"]
        emu.reset_counts()
        emu.fail_next("token", 503, count=8, retry_after="1")
        while clock.time() < start + LIFETIME - 10:  # the refresh is due at -300 s
            await asyncio.sleep(0.005)
        stop.set()
        await task
    statuses = [r.status for r in emu.requests if r.endpoint == "token"]
    assert statuses[:8] == [503] * 8
    assert 200 in statuses[8:], "no attempt after the outage"
    assert file_tokens(tmp_path)["npmrc"] != first

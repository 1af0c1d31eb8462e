"""The keyring backend through the real keyring package: registration, routing, cost, failures."""

from __future__ import annotations

import sys

from tests.support import python_program

HEAVY = ("pydantic", "aiohttp", "structlog", "azure", "agent.config.models", "agent.cli")


def probe(url: str) -> list[str]:
    """The command asking keyring for ``url`` and listing the HEAVY modules it loaded."""
    return python_program("keyring_probe.py", url, *HEAVY)


def parse(stdout: str) -> tuple[str, list[str]]:
    lines = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    return lines["ANSWER"], [m for m in lines["HEAVY"].split(",") if m]


async def test_registered_through_the_entry_point(feed_setup, run_client):
    result = await run_client(
        sys.executable, "-m", "keyring", "--list-backends", env=feed_setup.env, cwd=feed_setup.work
    )
    assert "agent.feeds.keyring_backend.AzauthKeyring (priority: 9.5)" in result.stdout


async def test_cold_then_warm_from_the_cache(feed_setup, run_client):
    setup = feed_setup
    url = setup.index_url
    cold = await run_client(*probe(url), env=setup.env, cwd=setup.work)
    answer, heavy = parse(cold.stdout)
    assert cold.returncode == 0, cold.stderr
    assert (
        setup.emulator.verify_access_token(answer)["aud"] == "499b84ac-1321-427f-aa17-267ca6975798"
    )
    assert setup.emulator.counts == {"oidc": 1, "token": 1}
    warm = await run_client(*probe(f"{setup.feed_url}/pypi/upload/"), env=setup.env, cwd=setup.work)
    assert parse(warm.stdout) == (answer, [])  # same token, nothing heavy imported
    assert setup.emulator.counts == {"oidc": 1, "token": 1}
    # `azauth token` for the same connection and scope shares the entry.
    token = await run_client(
        sys.executable,
        "-m",
        "agent",
        "token",
        "--connection",
        "artifacts",
        "--scope",
        "499b84ac-1321-427f-aa17-267ca6975798/.default",
        env=setup.env,
        cwd=setup.work,
    )
    assert token.stdout.strip() == answer
    assert setup.emulator.counts["token"] == 1
    assert answer not in cold.stderr + warm.stderr


async def test_other_urls_are_left_to_other_backends(feed_setup, run_client):
    setup = feed_setup
    await run_client(*probe(setup.index_url), env=setup.env, cwd=setup.work)
    for service in (
        "https://pypi.org/simple/",
        "pypi.org",
        "https://pkgs.dev.azure.com/northwind/_packaging/f/pypi/simple/",
        "http://example.com/contoso/azauth/_packaging/shared/pypi/simple/",
    ):
        result = await run_client(*probe(service), env=setup.env, cwd=setup.work)
        assert parse(result.stdout) == ("None", []), service
    # The keyring command exits 1 ("not found"), as for any URL it has nothing for.
    cli = await run_client(
        sys.executable,
        "-m",
        "keyring",
        "get",
        "https://pypi.org/simple/",
        "u",
        env=setup.env,
        cwd=setup.work,
    )
    assert (cli.returncode, cli.stdout) == (1, "")


async def test_no_profile_costs_nothing(feed_setup, run_client):
    setup = feed_setup
    env = {k: v for k, v in setup.env.items() if k != "AZAUTH_CONFIG"}
    result = await run_client(*probe(setup.index_url), env=env, cwd=setup.work.parent)
    assert parse(result.stdout) == ("None", [])
    assert setup.emulator.counts["token"] == 0


async def test_failure_is_one_line_and_no_answer(feed_setup, run_client):
    setup = feed_setup
    env = {k: v for k, v in setup.env.items() if k != "SYSTEM_ACCESSTOKEN"}
    url = setup.index_url.replace("http://", "http://user:hunter2@")
    result = await run_client(
        sys.executable, "-m", "keyring", "get", url, "u", env=env, cwd=setup.work
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "azauth keyring:" in result.stderr and "SYSTEM_ACCESSTOKEN is not set" in result.stderr
    assert setup.index_url.rstrip("/") in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


async def test_stores_nothing(feed_setup, run_client):
    setup = feed_setup
    from keyring.errors import PasswordDeleteError, PasswordSetError

    from agent.feeds.keyring_backend import AzauthKeyring

    backend = AzauthKeyring()
    for call, error in (
        (lambda: backend.set_password(setup.index_url, "u", "p"), PasswordSetError),
        (lambda: backend.delete_password(setup.index_url, "u"), PasswordDeleteError),
    ):
        try:
            call()
        except error:
            pass
        else:
            raise AssertionError("expected a refusal")


async def test_organization_url_covers_its_feeds(feed_setup, run_client):
    setup = feed_setup
    organization = setup.feed_url.split("/azauth/")[0]  # http://127.0.0.1:PORT/contoso
    setup.config.write_text(setup.config.read_text().replace(setup.feed_url, organization))
    other = setup.emulator.feeds.add_feed("contoso", "other")
    result = await run_client(
        *probe(f"{setup.emulator.feeds.url_of(other)}/pypi/simple/"),
        env=setup.env,
        cwd=setup.work,
    )
    answer, _ = parse(result.stdout)
    assert answer != "None"
    setup.emulator.verify_access_token(answer)


async def test_an_edited_profile_is_read_again(feed_setup, run_client):
    setup = feed_setup
    first = await run_client(*probe(setup.index_url), env=setup.env, cwd=setup.work)
    assert parse(first.stdout)[0] != "None"
    other = setup.emulator.feeds.add_feed("northwind", "other")  # another organization
    other_url = setup.emulator.feeds.url_of(other)
    before = await run_client(*probe(f"{other_url}/pypi/simple/"), env=setup.env, cwd=setup.work)
    assert parse(before.stdout) == ("None", [])  # the routing record says: not a feed of ours
    setup.config.write_text(setup.config.read_text().replace(setup.feed_url, other_url))
    after = await run_client(*probe(f"{other_url}/pypi/simple/"), env=setup.env, cwd=setup.work)
    assert parse(after.stdout)[0] != "None"

"""The docker_config output: the merging renderer, the runner in both modes, faults over time."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import random
import stat

import pytest

from agent.config import load_config
from agent.exceptions import ExitCode
from agent.outputs.docker_config import render_docker_config
from agent.report import render_summary
from agent.runner import Runner
from agent.testing.emulator import Emulator
from agent.testing.fakes import FakeClock
from tests.support import ARM, CLIENT, SC, TENANT, toml_connection

NULL_GUID = "00000000-0000-0000-0000-000000000000"
ACR_SCOPE = "https://containerregistry.azure.net/.default"


# ------------------------------------------------------------------------------------------------
# The renderer


def test_cred_helpers_are_added_and_everything_else_is_kept() -> None:
    existing = {
        "auths": {"docker.io": {"auth": "dXNlcjpwYXNz"}, "contoso.azurecr.io": {"auth": "eA=="}},
        "credsStore": "desktop",
        "credHelpers": {"gcr.io": "gcloud"},
        "HttpHeaders": {"User-Agent": "ci"},
    }

    out = json.loads(
        render_docker_config(json.dumps(existing).encode(), cred_helpers=["contoso.azurecr.io"])
    )

    assert out == {
        "auths": {"docker.io": {"auth": "dXNlcjpwYXNz"}},
        "credsStore": "desktop",
        "credHelpers": {"gcr.io": "gcloud", "contoso.azurecr.io": "azauth"},
        "HttpHeaders": {"User-Agent": "ci"},
    }


def test_auths_hold_the_refresh_token_as_identity_token_with_the_null_guid() -> None:
    existing = {"credHelpers": {"contoso.azurecr.io": "acr-env"}, "auths": {"a.io": {}}}

    out = json.loads(
        render_docker_config(
            json.dumps(existing).encode(), identity_tokens={"contoso.azurecr.io": "eyJ.rt.sig"}
        )
    )

    entry = out["auths"]["contoso.azurecr.io"]
    assert entry["identitytoken"] == "eyJ.rt.sig"
    assert base64.b64decode(entry["auth"]).decode() == f"{NULL_GUID}:"
    assert "credHelpers" not in out  # its only entry would have shadowed the fresh token
    assert out["auths"]["a.io"] == {}


@pytest.mark.parametrize("existing", [None, b"", b"  \n"])
def test_a_missing_or_empty_file_starts_from_nothing(existing: bytes | None) -> None:
    out = render_docker_config(existing, cred_helpers=["r.azurecr.io"])

    assert json.loads(out) == {"credHelpers": {"r.azurecr.io": "azauth"}}
    assert out.endswith(b"}\n")


@pytest.mark.parametrize(
    "existing",
    [b"{not json", b"[1, 2]", b'{"auths": []}', b'{"credHelpers": "x"}', b"\xff\xfe"],
)
def test_a_file_that_is_not_a_docker_config_is_never_overwritten(existing: bytes) -> None:
    with pytest.raises(ValueError, match="refusing to overwrite it"):
        render_docker_config(existing, cred_helpers=["r.azurecr.io"])


def test_a_token_with_whitespace_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="r.azurecr.io") as caught:
        render_docker_config(None, identity_tokens={"r.azurecr.io": "abc def"})
    assert "abc" not in str(caught.value)


# ------------------------------------------------------------------------------------------------
# The runner


def write_profile(workdir, emu: Emulator, mode: str, *, extra: str = "") -> None:
    registry = emu.url.removeprefix("http://").removeprefix("https://")
    (workdir / "azauth.toml").write_text(
        f"""
{toml_connection("acr")}
[profiles.ci]
connections = ["acr"]

[profiles.ci.registries."{registry}"]
connection = "acr"

[[profiles.ci.outputs]]
kind = "docker_config"
path = "docker/config.json"
mode = "{mode}"
{extra}
""",
        encoding="utf-8",
    )


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
async def tls_emu(monkeypatch):
    emulator = Emulator()
    await emulator.start(tls=True)
    emulator.add_connection(SC, TENANT, CLIENT)
    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emulator.oidc_request_uri)
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", emulator.system_access_token)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", emulator.authority)
    assert emulator.ca_file is not None
    monkeypatch.setenv("SSL_CERT_FILE", emulator.ca_file)
    try:
        yield emulator
    finally:
        await emulator.close()


def registry_of(emu: Emulator) -> str:
    return emu.url.removeprefix("https://")


def config_file(workdir) -> dict:
    return json.loads((workdir / "docker" / "config.json").read_text())


async def test_cred_helpers_mode_needs_no_token_and_merges(workdir, tls_emu) -> None:
    write_profile(workdir, tls_emu, "credHelpers")
    (workdir / "docker").mkdir()
    (workdir / "docker" / "config.json").write_text('{"auths": {"docker.io": {"auth": "eA=="}}}')

    async with Runner(load_config().profile(), env=dict(os.environ)) as runner:
        report = await runner.run_once()

    assert report.exit_code == ExitCode.OK
    assert config_file(workdir) == {
        "auths": {"docker.io": {"auth": "eA=="}},
        "credHelpers": {registry_of(tls_emu): "azauth"},
    }
    assert stat.S_IMODE((workdir / "docker" / "config.json").stat().st_mode) == 0o600
    assert tls_emu.counts["token"] == 0
    assert tls_emu.registry.counts["exchange"] == 0
    summary = render_summary(report, 0).splitlines()
    assert summary[1].split() == ["acr", "-", "-", "docker/config.json"]


async def test_auths_mode_writes_a_refresh_token_the_registry_accepts(workdir, tls_emu) -> None:
    write_profile(workdir, tls_emu, "auths")

    async with Runner(load_config().profile(), env=dict(os.environ)) as runner:
        report = await runner.run_once()

    assert report.exit_code == ExitCode.OK
    entry = config_file(workdir)["auths"][registry_of(tls_emu)]
    claims = tls_emu.registry.key.verify(entry["identitytoken"])
    assert claims["aud"] == registry_of(tls_emu)
    assert claims["grant_type"] == "refresh_token"
    form = next(r.form for r in tls_emu.requests if r.endpoint == "token")
    assert form is not None
    assert form["scope"] == ACR_SCOPE


async def test_an_existing_file_that_is_not_json_is_left_alone(workdir, tls_emu) -> None:
    write_profile(workdir, tls_emu, "credHelpers")
    (workdir / "docker").mkdir()
    (workdir / "docker" / "config.json").write_text("# not json\n")

    async with Runner(load_config().profile(), env=dict(os.environ)) as runner:
        report = await runner.run_once()

    assert report.exit_code == ExitCode.OUTPUT
    assert (workdir / "docker" / "config.json").read_text() == "# not json\n"
    assert "refusing to overwrite it" in str(report.connections[0].error)


@pytest.mark.parametrize("kind", ["fifo", "symlink", "dangling symlink", "directory"])
async def test_an_existing_path_that_is_no_regular_file_is_refused_without_reading_it(
    workdir, tls_emu, kind: str
) -> None:
    """A FIFO must not hang the runner; a link is neither followed nor merged from."""
    write_profile(workdir, tls_emu, "credHelpers")
    # Loaded first: `load_config` refuses a directory or FIFO already there (validate does too);
    # the writer must still refuse one that appears between the load and the write.
    profile = load_config().profile()
    (workdir / "docker").mkdir()
    target = workdir / "docker" / "config.json"
    other = workdir / "someone-elses.json"
    other.write_text('{"auths": {"private.example": {"auth": "c2VjcmV0"}}}')
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        target.symlink_to(other)
    elif kind == "dangling symlink":
        target.symlink_to(workdir / "missing.json")
    else:
        target.mkdir()

    async with Runner(profile, env=dict(os.environ)) as runner:
        report = await asyncio.wait_for(runner.run_once(), timeout=30)

    assert report.exit_code == ExitCode.OUTPUT
    assert "refusing to merge" in str(report.connections[0].error)
    assert other.read_text() == '{"auths": {"private.example": {"auth": "c2VjcmV0"}}}'
    assert os.path.lexists(target)


async def test_a_refused_exchange_fails_the_output_and_names_the_registry(workdir, tls_emu) -> None:
    write_profile(workdir, tls_emu, "auths")
    tls_emu.registry.tenant_id = "someone-else"

    async with Runner(load_config().profile(), env=dict(os.environ)) as runner:
        report = await runner.run_once()

    assert report.exit_code == ExitCode.AUTH
    assert f"registry {registry_of(tls_emu)} refused the token exchange" in str(
        report.connections[0].error
    )
    assert not (workdir / "docker" / "config.json").exists()


@pytest.mark.parametrize("seed", range(6))
async def test_watch_keeps_a_valid_refresh_token_in_the_file_through_outages(
    workdir, tls_emu, seed
) -> None:
    """Property: whenever the file is read, its refresh token is accepted by the registry.

    Refresh tokens live 20 minutes here (Entra tokens an hour); registry outages (503, 429)
    are scripted at random.
    """
    rng = random.Random(seed)
    clock = FakeClock()
    tls_emu.clock = clock
    tls_emu.registry.refresh_token_lifetime = 1200
    write_profile(workdir, tls_emu, "auths")
    stop = asyncio.Event()
    checked = 0
    async with Runner(
        load_config().profile(), env=dict(os.environ), clock=clock, stdout=io.StringIO(), rng=rng
    ) as runner:
        task = asyncio.create_task(runner.watch(stop))
        start = clock.time()
        while clock.time() < start + 3 * 3600:
            if rng.random() < 0.01 and not tls_emu.registry.exchange_failures:
                tls_emu.registry.exchange_failures.extend(
                    rng.choice([503, 429]) for _ in range(rng.randint(1, 6))
                )
            path = workdir / "docker" / "config.json"
            if path.exists():
                token = json.loads(path.read_text())["auths"][registry_of(tls_emu)]
                claims = tls_emu.registry.key.verify(token["identitytoken"])
                assert claims["exp"] > clock.time(), (seed, clock.time() - start)
                checked += 1
            await asyncio.sleep(0.003)
        stop.set()
        await task

    assert checked > 50
    assert tls_emu.registry.counts["exchange"] >= 3 * 3600 // 1200


@pytest.mark.parametrize("lifetime", [0, -600])
async def test_watch_does_not_spin_on_refresh_tokens_that_are_born_expired(
    workdir, tls_emu, lifetime
) -> None:
    """A registry (or a skewed clock) answering expired refresh tokens gets backoff, not a loop."""
    clock = FakeClock()
    tls_emu.clock = clock
    tls_emu.registry.refresh_token_lifetime = lifetime
    write_profile(workdir, tls_emu, "auths")
    stop = asyncio.Event()
    async with Runner(
        load_config().profile(), env=dict(os.environ), clock=clock, stdout=io.StringIO()
    ) as runner:
        start = clock.time()
        task = asyncio.create_task(runner.watch(stop))
        await asyncio.sleep(1.0)  # real time: a spinning watch exchanges hundreds of times
        stop.set()
        await task
        error = runner.reports["acr"].error

    exchanges = tls_emu.registry.counts["exchange"]
    assert exchanges >= 2  # it kept trying
    assert clock.time() - start >= exchanges - 1  # ...at least a (fake) second apart
    assert not (workdir / "docker" / "config.json").exists()
    assert error is not None
    assert "expired" in str(error)


def test_a_docker_config_registry_the_profile_does_not_serve_is_a_config_error(tmp_path) -> None:
    from agent.exceptions import ConfigError

    (tmp_path / "azauth.toml").write_text(
        f"""
{toml_connection("acr")}[profiles.ci]
connections = ["acr"]
[profiles.ci.registries."contoso.azurecr.io"]
[[profiles.ci.outputs]]
kind = "docker_config"
path = "config.json"
registries = ["contoso.azurecr.io", "contoso.azurecr.i"]
""",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "azauth.toml", env={})

    message = str(caught.value)
    assert "profiles.ci.outputs[0].registries[1]" in message
    assert "registry 'contoso.azurecr.i' is not served by profile 'ci'" in message
    assert "did you mean 'contoso.azurecr.io'" in message


TWO_CONNECTIONS = f"""
{toml_connection("acr")}{toml_connection("other")}"""
ONE_CONNECTION = TWO_CONNECTIONS.split("[connections.other]", maxsplit=1)[0]


@pytest.mark.parametrize(
    ("profile", "where", "says"),
    [
        (  # one connection, no table: *.azurecr.io is served, but the output names none
            ONE_CONNECTION + '[profiles.ci]\nconnections = ["acr"]\n'
            '[[profiles.ci.outputs]]\nkind = "docker_config"\npath = "c.json"\n',
            "profiles.ci.outputs[0].registries",
            "writes no registry: profile 'ci' has no registries table",
        ),
        (  # auths mode: the table's registries all belong to the other connection
            TWO_CONNECTIONS + '[profiles.ci]\nconnections = ["acr", "other"]\n'
            '[profiles.ci.registries."a.azurecr.io"]\nconnection = "other"\n'
            '[[profiles.ci.outputs]]\nkind = "docker_config"\npath = "c.json"\n'
            'mode = "auths"\nconnection = "acr"\n',
            "profiles.ci.outputs[0].registries",
            "no registry of profile 'ci' uses connection 'acr'",
        ),
        (  # inherited: the base's output in a profile without registries
            ONE_CONNECTION + '[profiles.base]\nconnections = ["acr"]\n'
            '[profiles.base.registries."a.azurecr.io"]\n'
            '[[profiles.base.outputs]]\nkind = "docker_config"\npath = "c.json"\n'
            'mode = "auths"\nregistries = ["a.azurecr.io", "b.azurecr.io"]\n'
            '[profiles.ci]\nextends = "base"\n'
            '[profiles.ci.registries."b.azurecr.io"]\n'
            f'scope = "{ARM}"\n',
            "profiles.base.outputs[0].registries",
            "need different Entra scopes",
        ),
        (  # auths mode listing a registry the table gives to another connection
            TWO_CONNECTIONS + '[profiles.ci]\nconnections = ["acr", "other"]\n'
            '[profiles.ci.registries."a.azurecr.io"]\nconnection = "acr"\n'
            '[profiles.ci.registries."b.azurecr.io"]\nconnection = "other"\n'
            '[[profiles.ci.outputs]]\nkind = "docker_config"\npath = "c.json"\n'
            'mode = "auths"\nconnection = "acr"\nregistries = ["a.azurecr.io", "b.azurecr.io"]\n',
            "profiles.ci.outputs[0].registries[1]",
            "registry 'b.azurecr.io' uses connection 'other'",
        ),
        (  # auths mode: two registries of one connection with different scopes
            ONE_CONNECTION + '[profiles.ci]\nconnections = ["acr"]\n'
            '[profiles.ci.registries."a.azurecr.io"]\n'
            f'[profiles.ci.registries."b.azurecr.io"]\nscope = "{ARM}"\n'
            '[[profiles.ci.outputs]]\nkind = "docker_config"\npath = "c.json"\n'
            'mode = "auths"\n',
            "profiles.ci.outputs[0].registries",
            "need different Entra scopes (a.azurecr.io: https://containerregistry.azure.net",
        ),
    ],
)
def test_a_docker_config_output_that_cannot_work_is_a_config_error(
    tmp_path, profile: str, where: str, says: str
) -> None:
    from agent.exceptions import ConfigError

    (tmp_path / "azauth.toml").write_text(profile, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "azauth.toml", env={})

    message = str(caught.value)
    assert where in message
    assert says in message


async def test_an_auths_output_exchanges_the_token_of_its_registries_scope(
    workdir, tls_emu
) -> None:
    """A registry's ``scope`` in the table is what the output's Entra token asks for."""
    registry = registry_of(tls_emu)
    (workdir / "azauth.toml").write_text(
        ONE_CONNECTION
        + '[profiles.ci]\nconnections = ["acr"]\n'
        + f'[profiles.ci.registries."{registry}"]\nscope = "{ARM}"\n'
        + '[[profiles.ci.outputs]]\nkind = "docker_config"\npath = "docker/config.json"\n'
        + 'mode = "auths"\n',
        encoding="utf-8",
    )

    async with Runner(load_config().profile(), env=dict(os.environ)) as runner:
        report = await runner.run_once()

    assert report.exit_code == ExitCode.OK
    forms = [r.form for r in tls_emu.requests if r.endpoint == "token"]
    assert [form["scope"] for form in forms if form is not None] == [ARM]
    assert registry in config_file(workdir)["auths"]


@pytest.mark.parametrize("users_entry", [True, False])
async def test_remove_outputs_takes_back_only_our_registries(workdir, tls_emu, users_entry) -> None:
    write_profile(workdir, tls_emu, "credHelpers")
    target = workdir / "docker" / "config.json"
    target.parent.mkdir()
    if users_entry:
        target.write_text('{"auths": {"docker.io": {"auth": "eA=="}}, "credsStore": "pass"}')

    async with Runner(load_config().profile(), env=dict(os.environ)) as runner:
        await runner.run_once()
        assert registry_of(tls_emu) in target.read_text()
        removed = runner.remove_outputs()

    if users_entry:
        assert removed == []
        assert json.loads(target.read_text()) == {
            "auths": {"docker.io": {"auth": "eA=="}},
            "credsStore": "pass",
        }
    else:
        assert removed == ["docker/config.json"]
        assert not target.exists()


@pytest.mark.parametrize(
    ("mode", "before", "after"),
    [
        # The user pointed the registry at another helper: it is theirs again afterwards.
        ("credHelpers", {"credHelpers": {"R": "desktop"}}, {"credHelpers": {"R": "desktop"}}),
        # The user's only entry was a password for the registry: the file is not deleted.
        ("credHelpers", {"auths": {"R": {"auth": "dXNlcjpwdw=="}}}, None),
        ("auths", {"credHelpers": {"R": "ecr-login"}, "credsStore": "pass"}, None),
        # An entry an earlier azauth run left behind is not "the user's": the file goes.
        ("credHelpers", {"credHelpers": {"R": "azauth"}}, {}),
    ],
)
async def test_remove_outputs_gives_back_the_users_own_entry_for_our_registry(
    workdir, tls_emu, mode: str, before: dict, after: dict | None
) -> None:
    registry = registry_of(tls_emu)
    write_profile(workdir, tls_emu, mode)
    target = workdir / "docker" / "config.json"
    target.parent.mkdir()
    original = json.loads(json.dumps(before).replace('"R"', json.dumps(registry)))
    target.write_text(json.dumps(original))

    async with Runner(load_config().profile(), env=dict(os.environ)) as runner:
        report = await runner.run_once()
        assert report.exit_code == ExitCode.OK
        written = json.loads(target.read_text())
        assert (registry in written.get("credHelpers", {})) is (mode == "credHelpers")
        runner.remove_outputs()

    expected = (
        original
        if after is None
        else json.loads(json.dumps(after).replace('"R"', json.dumps(registry)))
    )
    if expected:
        assert json.loads(target.read_text()) == expected
    else:
        assert not target.exists()


def test_remove_registries_keeps_everything_else() -> None:
    from agent.outputs.docker_config import remove_registries

    existing = json.dumps(
        {"credHelpers": {"a.io": "azauth", "gcr.io": "gcloud"}, "auths": {"a.io": {}}}
    ).encode()

    assert json.loads(remove_registries(existing, ["a.io"])) == {
        "credHelpers": {"gcr.io": "gcloud"}
    }
    assert remove_registries(b'{"auths": {"a.io": {}}}', ["a.io"]) is None


def test_profiles_lists_the_registries_and_the_docker_config_mode(tmp_path, capsys) -> None:
    from agent.cli.main import main

    (tmp_path / "azauth.toml").write_text(
        f"""
{toml_connection("acr")}[profiles.ci]
connections = ["acr"]
[profiles.ci.registries."contoso.azurecr.io"]
[[profiles.ci.outputs]]
kind = "docker_config"
path = "config.json"
""",
        encoding="utf-8",
    )

    assert main(["profiles", "--config", str(tmp_path / "azauth.toml")]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert (
        "    docker_config -> config.json (connection acr; credHelpers mode; "
        "registries contoso.azurecr.io)"
    ) in lines
    assert "    registry contoso.azurecr.io: connection acr" in lines

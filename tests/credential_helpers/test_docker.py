"""docker-credential-azauth: the Docker credential-helper protocol, the ACR exchange, and skopeo.

The helper runs as the real console script (a subprocess), against the emulator's Entra and
ACR endpoints over TLS; skopeo (Debian's package) pulls through it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.credential_helpers import docker as dc
from agent.jwt import unverified_claims
from agent.testing.emulator import Emulator
from tests.support import AZAUTH, CLIENT, SC, TENANT, python_program, spawn_azauth

BIN = Path(sys.executable).parent
HELPER = BIN / "docker-credential-azauth"
SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(
    SKOPEO is None, reason="skopeo is not installed (Debian package skopeo; .ci/run installs it)"
)


@pytest.fixture
async def acr() -> AsyncIterator[Emulator]:
    """An emulator over TLS with one working service connection; its registry is its address."""
    emu = Emulator()
    await emu.start(tls=True)
    emu.add_connection(SC, TENANT, CLIENT)
    try:
        yield emu
    finally:
        await emu.close()


def registry_of(emu: Emulator) -> str:
    return emu.url.removeprefix("https://")


def write_profile(path: Path, emu: Emulator, registries: dict[str, str | None] | None) -> Path:
    lines = [
        "[connections.acr]",
        f'tenant_id = "{TENANT}"',
        f'client_id = "{CLIENT}"',
        f'service_connection_id = "{SC}"',
        f'authority = "{emu.url}"',
        "[profiles.ci]",
        'connections = ["acr"]',
    ]
    for host, connection in (registries or {}).items():
        lines.append(f'[profiles.ci.registries."{host}"]')
        if connection:
            lines.append(f'connection = "{connection}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def helper_env(acr: Emulator, tmp_path: Path) -> dict[str, str]:
    """The environment of a pipeline step using the helper (profile with the registry mapped)."""
    home = tmp_path / "home"
    home.mkdir()
    config = write_profile(tmp_path / "azauth.toml", acr, {registry_of(acr): "acr"})
    assert acr.ca_file is not None
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "AZAUTH_CONFIG": str(config),
        "AZAUTH_CACHE_DIR": str(tmp_path / "cache"),
        "SYSTEM_OIDCREQUESTURI": acr.oidc_request_uri,
        "SYSTEM_ACCESSTOKEN": acr.system_access_token,
        "SSL_CERT_FILE": acr.ca_file,
    }


async def helper(
    env: dict[str, str], *args: str, stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(HELPER), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


# ------------------------------------------------------------------------------------------------
# The protocol, command by command


async def test_get_answers_the_null_guid_and_a_refresh_token_for_the_registry(
    acr: Emulator, helper_env: dict[str, str]
) -> None:
    server = f"https://{registry_of(acr)}"

    result = await helper(helper_env, "get", stdin=server + "\n")

    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) == {"ServerURL", "Username", "Secret"}
    assert answer["ServerURL"] == server
    assert answer["Username"] == "00000000-0000-0000-0000-000000000000"
    claims = unverified_claims(answer["Secret"])
    assert claims["aud"] == registry_of(acr)
    assert claims["grant_type"] == "refresh_token"
    assert claims["tenant"] == TENANT
    assert acr.registry.counts["exchange"] == 1
    exchange = [r for r in acr.requests if r.endpoint == "token"]
    # The Entra token asked for ACR's own audience.
    assert exchange[-1].form is not None
    assert exchange[-1].form["scope"] == "https://containerregistry.azure.net/.default"
    assert answer["Secret"] not in result.stderr


async def test_a_second_get_is_served_from_the_cache_without_any_request(
    acr: Emulator, helper_env: dict[str, str]
) -> None:
    first = await helper(helper_env, "get", stdin=registry_of(acr))
    counts = (dict(acr.counts), dict(acr.registry.counts))

    second = await helper(helper_env, "get", stdin=f"https://{registry_of(acr)}/v2/")

    assert second.returncode == 0
    assert json.loads(second.stdout)["Secret"] == json.loads(first.stdout)["Secret"]
    assert (dict(acr.counts), dict(acr.registry.counts)) == counts


@pytest.mark.parametrize("server", ["docker.io", "https://index.docker.io/v1/", "ghcr.io"])
async def test_get_of_a_registry_the_profile_does_not_serve_is_credentials_not_found(
    acr: Emulator, helper_env: dict[str, str], server: str
) -> None:
    result = await helper(helper_env, "get", stdin=server)

    assert result.returncode == 1
    assert result.stdout == "credentials not found in native keychain\n"
    assert acr.counts["token"] == 0


async def test_get_without_a_profile_file_is_not_found_for_other_registries(
    helper_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in helper_env.items() if k != "AZAUTH_CONFIG"}
    empty = tmp_path / "empty"
    empty.mkdir()

    result = await helper(env, "get", stdin="docker.io", cwd=empty)

    assert result.returncode == 1
    assert result.stdout == "credentials not found in native keychain\n"


async def test_get_for_an_acr_host_without_a_profile_reports_the_problem(
    helper_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in helper_env.items() if k != "AZAUTH_CONFIG"}
    empty = tmp_path / "empty"
    empty.mkdir()

    result = await helper(env, "get", stdin="contoso.azurecr.io", cwd=empty)

    assert result.returncode == 1
    assert result.stdout.startswith("azauth could not get credentials for contoso.azurecr.io: ")
    assert result.stdout.count("\n") == 1


async def test_a_served_registry_without_the_system_token_reports_the_missing_variable(
    acr: Emulator, helper_env: dict[str, str]
) -> None:
    env = {k: v for k, v in helper_env.items() if k != "SYSTEM_ACCESSTOKEN"}

    result = await helper(env, "get", stdin=registry_of(acr))

    assert result.returncode == 1
    assert result.stdout.startswith(f"azauth could not get credentials for {registry_of(acr)}: ")
    assert "SYSTEM_ACCESSTOKEN is not set" in result.stdout
    assert acr.counts["oidc"] == 0


async def test_one_connection_without_a_registries_table_serves_azurecr_hosts_only(
    acr: Emulator, helper_env: dict[str, str], tmp_path: Path
) -> None:
    config = write_profile(tmp_path / "implicit.toml", acr, None)
    env = {**helper_env, "AZAUTH_CONFIG": str(config)}

    served = await helper(env, "get", stdin=registry_of(acr))
    list_result = await helper(env, "list")

    assert served.stdout == "credentials not found in native keychain\n"  # loopback: not ACR
    assert json.loads(list_result.stdout) == {}


@pytest.mark.parametrize("stdin", ["", "   \n"])
async def test_get_and_erase_without_a_server_url_say_so(
    helper_env: dict[str, str], stdin: str
) -> None:
    for action in ("get", "erase"):
        result = await helper(helper_env, action, stdin=stdin)
        assert (result.returncode, result.stdout) == (1, "no credentials server URL\n")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("get", "no credentials server URL"),
        ("erase", "no credentials server URL"),
        ("store", "the store request is not a JSON object"),
    ],
)
async def test_a_closed_stdin_is_an_empty_request_not_a_crash(
    helper_env: dict[str, str], action: str, message: str
) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        ["sh", "-c", 'exec "$0" "$1" <&-', str(HELPER), action],
        capture_output=True,
        text=True,
        env=helper_env,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout) == (1, message + "\n")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "server", ["evil.example\\.azurecr.io", "evil.example%2f.azurecr.io", "x;y.azurecr.io"]
)
async def test_a_host_name_with_odd_characters_is_not_found_and_no_token_is_requested(
    acr: Emulator, tmp_path: Path, helper_env: dict[str, str], server: str
) -> None:
    # One connection, no registries table: every *.azurecr.io host would be served.
    write_profile(tmp_path / "azauth.toml", acr, None)

    result = await helper(helper_env, "get", stdin=server)

    assert (result.returncode, result.stdout) == (1, "credentials not found in native keychain\n")
    assert acr.counts["token"] == 0


async def test_list_maps_every_registry_of_the_profile_to_the_null_guid(
    acr: Emulator, helper_env: dict[str, str]
) -> None:
    result = await helper(helper_env, "list")

    assert result.returncode == 0
    assert json.loads(result.stdout) == {registry_of(acr): dc.ACR_USERNAME}
    assert acr.counts["token"] == 0


async def test_store_accepts_a_valid_request_and_keeps_nothing(
    acr: Emulator, helper_env: dict[str, str], tmp_path: Path
) -> None:
    request = {"ServerURL": registry_of(acr), "Username": "someone", "Secret": "hunter2"}

    stored = await helper(helper_env, "store", stdin=json.dumps(request))
    fetched = await helper(helper_env, "get", stdin=registry_of(acr))

    assert (stored.returncode, stored.stdout) == (0, "")
    assert json.loads(fetched.stdout)["Secret"] != "hunter2"
    assert "hunter2" not in "".join(p.read_text() for p in (tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ('{"Username": "u", "Secret": "s"}', "no credentials server URL"),
        ('{"ServerURL": "contoso.azurecr.io", "Secret": "s"}', "no credentials username"),
        ("not json", "the store request is not a JSON object"),
    ],
)
async def test_store_refuses_bad_requests_with_the_protocol_messages(
    helper_env: dict[str, str], request_body: str, message: str
) -> None:
    result = await helper(helper_env, "store", stdin=request_body)

    assert (result.returncode, result.stdout) == (1, message + "\n")


async def test_a_store_request_nested_too_deeply_is_refused_without_a_traceback(
    helper_env: dict[str, str],
) -> None:
    result = await helper(helper_env, "store", stdin='{"ServerURL": ' + "[" * 200_000)

    assert (result.returncode, result.stdout) == (1, "the store request is not a JSON object\n")
    assert "Traceback" not in result.stderr


async def test_erase_drops_the_cached_refresh_token(
    acr: Emulator, helper_env: dict[str, str]
) -> None:
    first = await helper(helper_env, "get", stdin=registry_of(acr))

    erased = await helper(helper_env, "erase", stdin=registry_of(acr))
    second = await helper(helper_env, "get", stdin=registry_of(acr))

    assert (erased.returncode, erased.stdout) == (0, "")
    assert json.loads(second.stdout)["Secret"] != json.loads(first.stdout)["Secret"]
    assert acr.registry.counts["exchange"] == 2


async def test_usage_version_and_unknown_actions(helper_env: dict[str, str]) -> None:
    usage = await helper(helper_env)
    twice = await helper(helper_env, "get", "list")
    unknown = await helper(helper_env, "delete")
    version = await helper(helper_env, "version")

    expected = "Usage: docker-credential-azauth <store|get|erase|list|version>\n"
    assert (usage.returncode, usage.stdout) == (1, expected)
    assert (twice.returncode, twice.stdout) == (1, expected)
    assert (unknown.returncode, unknown.stdout) == (1, "Unknown credential action `delete`\n")
    assert version.returncode == 0
    assert version.stdout.startswith("docker-credential-azauth (azauth) ")


async def test_a_refused_exchange_is_one_line_on_stdout_and_exit_1(
    acr: Emulator, helper_env: dict[str, str]
) -> None:
    acr.registry.tenant_id = "another-tenant"

    result = await helper(helper_env, "get", stdin=registry_of(acr))

    assert result.returncode == 1
    assert result.stdout.count("\n") == 1
    assert "refused the token exchange (HTTP 401): UNAUTHORIZED" in result.stdout
    assert "eyJ" not in result.stdout + result.stderr


async def test_an_expired_refresh_token_from_the_registry_is_not_handed_out(
    acr: Emulator, helper_env: dict[str, str]
) -> None:
    acr.registry.refresh_token_lifetime = -60  # the registry's clock is a minute behind

    result = await helper(helper_env, "get", stdin=registry_of(acr))

    assert result.returncode == 1
    assert "answered a refresh token that expired" in result.stdout
    assert "eyJ" not in result.stdout + result.stderr


async def test_arm_audience_tokens_are_refused_when_the_registry_disables_them(
    acr: Emulator, helper_env: dict[str, str], tmp_path: Path
) -> None:
    config = Path(helper_env["AZAUTH_CONFIG"])
    config.write_text(
        config.read_text() + 'scope = "https://management.azure.com/.default"\n', encoding="utf-8"
    )
    acr.registry.authentication_as_arm = False

    refused = await helper(helper_env, "get", stdin=registry_of(acr))
    acr.registry.authentication_as_arm = True
    accepted = await helper(helper_env, "get", stdin=registry_of(acr))

    assert refused.returncode == 1
    assert "authentication-as-arm is disabled" in refused.stdout
    assert accepted.returncode == 0


async def test_concurrent_gets_exchange_once(acr: Emulator, helper_env: dict[str, str]) -> None:
    acr.latency = 0.3

    results = await asyncio.gather(
        *(helper(helper_env, "get", stdin=registry_of(acr)) for _ in range(4))
    )

    assert [r.returncode for r in results] == [0, 0, 0, 0]
    assert len({json.loads(r.stdout)["Secret"] for r in results}) == 1
    assert acr.registry.counts["exchange"] == 1


async def test_a_new_job_does_not_reuse_the_previous_jobs_refresh_token(
    acr: Emulator, helper_env: dict[str, str]
) -> None:
    first = await helper(helper_env, "get", stdin=registry_of(acr))
    acr.system_access_token = "a-new-jobs-system-access-token"
    env = {**helper_env, "SYSTEM_ACCESSTOKEN": acr.system_access_token}

    second = await helper(env, "get", stdin=registry_of(acr))

    assert second.returncode == 0
    assert json.loads(second.stdout)["Secret"] != json.loads(first.stdout)["Secret"]


# ------------------------------------------------------------------------------------------------
# skopeo, through credHelpers


def skopeo_env(helper_env: dict[str, str]) -> dict[str, str]:
    return {**helper_env, "TMPDIR": helper_env["HOME"]}


async def skopeo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    assert SKOPEO is not None
    return await asyncio.to_thread(
        subprocess.run,
        [SKOPEO, "--insecure-policy", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@needs_skopeo
async def test_skopeo_inspects_and_copies_through_the_helper_with_a_refresh_between_pulls(
    acr: Emulator, helper_env: dict[str, str], tmp_path: Path
) -> None:
    registry = registry_of(acr)
    acr.registry.refresh_token_lifetime = 8  # served for 4 s, then exchanged again
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"credHelpers": {registry: "azauth"}}), encoding="utf-8")
    env = {**skopeo_env(helper_env), "REGISTRY_AUTH_FILE": str(auth)}
    image = acr.registry.images["hello"]

    inspected = await skopeo(env, "inspect", "--raw", f"docker://{registry}/hello:v1")
    described = await skopeo(env, "inspect", f"docker://{registry}/hello:v1")  # lists the tags
    await asyncio.sleep(8.5)  # the first refresh token has expired
    copied = await skopeo(env, "copy", f"docker://{registry}/hello:v1", f"dir:{tmp_path / 'out'}")

    assert inspected.returncode == 0, inspected.stderr
    assert inspected.stdout.encode() == image.manifest
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["RepoTags"] == ["v1"]
    assert json.loads(described.stdout)["Digest"] == image.digest
    assert copied.returncode == 0, copied.stderr
    for digest, blob in image.blobs.items():
        assert (tmp_path / "out" / digest.removeprefix("sha256:")).read_bytes() == blob
    issued = acr.registry.issued_refresh_tokens
    assert len(issued) >= 2
    assert issued[-1]["iat"] >= issued[0]["exp"] - 4  # the copy got a new one


@needs_skopeo
async def test_skopeo_without_credentials_is_refused_by_the_registry(
    acr: Emulator, helper_env: dict[str, str], tmp_path: Path
) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text("{}", encoding="utf-8")
    env = {**skopeo_env(helper_env), "REGISTRY_AUTH_FILE": str(auth)}

    result = await skopeo(env, "inspect", "--raw", f"docker://{registry_of(acr)}/hello:v1")

    assert result.returncode != 0
    assert "authentication required" in result.stderr


# What the warm `get` must not import: the HTTP stack, the profile models, the exchange.
HEAVY = "aiohttp,pydantic,structlog,azure,agent.exceptions,agent.config.models,agent.registries.acr"


async def test_a_warm_get_loads_no_heavy_module(acr: Emulator, helper_env: dict[str, str]) -> None:
    await helper(helper_env, "get", stdin=registry_of(acr))

    def probe() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            python_program("entry_point_modules.py", "docker_credential_main", HEAVY, "get"),
            input=registry_of(acr),
            capture_output=True,
            text=True,
            env=helper_env,
            check=False,
        )

    warm = await asyncio.to_thread(probe)

    assert warm.returncode == 0
    assert json.loads(warm.stdout)["Username"] == dc.ACR_USERNAME
    assert "LOADED=\n" in warm.stderr


# ------------------------------------------------------------------------------------------------
# skopeo, through a docker_config output in auths mode kept fresh by `azauth run --watch`


@needs_skopeo
async def test_skopeo_pulls_with_an_auths_file_that_watch_mode_keeps_fresh(
    acr: Emulator, helper_env: dict[str, str], tmp_path: Path
) -> None:
    registry = registry_of(acr)
    acr.registry.refresh_token_lifetime = 10  # renewed by the runner every 5 s
    config = Path(helper_env["AZAUTH_CONFIG"])
    config.write_text(
        config.read_text()
        + '[[profiles.ci.outputs]]\nkind = "docker_config"\npath = "docker/auth.json"\n'
        'mode = "auths"\n',
        encoding="utf-8",
    )
    auth = tmp_path / "docker" / "auth.json"
    auth.parent.mkdir()
    auth.write_text('{"auths": {"docker.io": {"auth": "eA=="}}}', encoding="utf-8")
    env = {**skopeo_env(helper_env), "REGISTRY_AUTH_FILE": str(auth)}
    watch = await spawn_azauth(
        "run",
        "--watch",
        "-vv",  # debug logs: still no token in them
        cwd=tmp_path,
        env={**helper_env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while registry not in auth.read_text():
            assert time.monotonic() < deadline, "the auths entry was not written"
            await asyncio.sleep(0.05)
        first_token = json.loads(auth.read_text())["auths"][registry]["identitytoken"]

        inspected = await skopeo(env, "inspect", "--raw", f"docker://{registry}/hello:v1")
        await asyncio.sleep(10.5)  # the first refresh token has expired by now
        copied = await skopeo(
            env, "copy", f"docker://{registry}/hello:v1", f"dir:{tmp_path / 'out'}"
        )
        document = json.loads(auth.read_text())
    finally:
        watch.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(watch.communicate(), 30)

    assert watch.returncode == 0, err.decode()
    assert inspected.returncode == 0, inspected.stderr
    assert copied.returncode == 0, copied.stderr
    assert document["auths"]["docker.io"] == {"auth": "eA=="}  # the user's entry is kept
    assert document["auths"][registry]["identitytoken"] != first_token
    assert acr.registry.counts["exchange"] >= 3
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    last_token = document["auths"][registry]["identitytoken"]
    assert first_token not in err.decode()
    assert last_token not in err.decode()
    assert "registry_exchange_failed" not in err.decode()


# ------------------------------------------------------------------------------------------------
# azauth exec --registry


async def azauth_exec(
    env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [*AZAUTH, "exec", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


async def test_exec_registry_gives_the_command_a_private_docker_config_removed_afterwards(
    acr: Emulator, helper_env: dict[str, str], tmp_path: Path
) -> None:
    registry = registry_of(acr)
    script = 'echo "$DOCKER_CONFIG"; echo "$REGISTRY_AUTH_FILE"; cat "$REGISTRY_AUTH_FILE"'

    result = await azauth_exec(
        helper_env, tmp_path, "--no-preset", "--registry", registry, "--", "sh", "-c", script
    )

    assert result.returncode == 0, result.stderr
    docker_config, auth_file, *document = result.stdout.splitlines()
    assert auth_file == f"{docker_config}/config.json"
    entry = json.loads("\n".join(document))["auths"][registry]
    assert acr.registry.key.verify(entry["identitytoken"])["aud"] == registry
    assert not Path(docker_config).exists()


async def test_exec_registry_refuses_a_registry_the_profile_does_not_serve(
    helper_env: dict[str, str], tmp_path: Path
) -> None:
    result = await azauth_exec(helper_env, tmp_path, "--registry", "ghcr.io", "--", "true")

    assert result.returncode == 2
    assert "--registry 'ghcr.io': profile 'ci' does not serve this registry" in result.stderr


@needs_skopeo
async def test_skopeo_under_exec_registry_inspects_the_image(
    acr: Emulator, helper_env: dict[str, str], tmp_path: Path
) -> None:
    registry = registry_of(acr)
    assert SKOPEO is not None

    result = await azauth_exec(
        skopeo_env(helper_env),
        tmp_path,
        "--no-preset",
        "--registry",
        registry,
        "--",
        SKOPEO,
        "inspect",
        "--raw",
        f"docker://{registry}/hello:v1",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == acr.registry.images["hello"].manifest

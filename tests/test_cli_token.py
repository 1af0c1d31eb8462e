"""`azauth token` against the emulator: formats, errors, the shared cache, locking, the fast path.

Most tests run the command in-process (in a thread, because the emulator serves from the test's
event loop); the fast path and concurrency tests run real `python -m agent` subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path

import pytest
from azure.identity._credentials.azure_cli import parse_token

from agent.cli.main import main
from agent.credential_helpers.cache import CacheEntry, decode_entry, encode_entry
from agent.testing.emulator import Emulator
from agent.testing.fakes import skewed_clock_environment
from tests.support import (
    AZAUTH,
    CLIENT,
    CLIENT2,
    SC,
    SC2,
    SUBSCRIPTION,
    TENANT,
    python_program,
    toml_connection,
)

OTHER_TENANT = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
ARM = "https://management.azure.com"
VAULT = "https://vault.azure.net"

# Modules a warm `azauth token` must not import.
HEAVY = ("aiohttp", "pydantic", "pydantic_settings", "structlog", "azure", "yaml", "multidict")
# agent.config.discovery is import-light on purpose (the fast path finds the file with it);
# loading and the models are what must stay out.
SHALLOW = (
    "pathlib",  # the search for the profile file uses os paths (issue 15: <= 2 x python -c pass)
    "agent.exceptions",
    "agent.config.loading",
    "agent.config.models",
    "agent.cli",
    "agent.credential",
    "agent.clock",
)
# Runs the console-script entry point, then reports what it imported on stderr.
PROBE = python_program("entry_point_modules.py", "main", ",".join(HEAVY + SHALLOW))

TWO_CONNECTIONS = f"""
{toml_connection("a")}subscription_id = "{SUBSCRIPTION}"
additionally_allowed_tenants = ["{OTHER_TENANT}"]

{toml_connection("b", client=CLIENT2, service_connection=SC2)}scope = "{VAULT}/.default"

[profiles.two]
connections = ["a", "b"]

[profiles.one]
connections = ["b"]
"""


@pytest.fixture(autouse=True)
def workspace(empty_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and home, and a private cache directory."""
    for name in ("XDG_CACHE_HOME", "PYTHONPYCACHEPREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZAUTH_CACHE_DIR", str(tmp_path / "cache"))
    return empty_home


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def pipeline(connected_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, and the AZURESUBSCRIPTION_* variables of its connection (no file)."""
    monkeypatch.setenv("AZURESUBSCRIPTION_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURESUBSCRIPTION_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", SC)
    return connected_emulator


@pytest.fixture
def two_connections(two_connection_emulator: Emulator, workspace: Path) -> Emulator:
    """A profile file with connections a and b, both registered with the emulator."""
    (workspace / "azauth.toml").write_text(TWO_CONNECTIONS)
    return two_connection_emulator


async def azauth(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `azauth ARGS` in-process (in a thread: the emulator needs this loop free)."""
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def subprocess_azauth(*args: str, probe: bool = False) -> tuple[int, str, str]:
    """Run `python -m agent ARGS` (or the import probe) as a real process."""
    command = PROBE if probe else [*AZAUTH]
    process = await asyncio.create_subprocess_exec(
        *command,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def loaded_modules(stderr: str) -> list[str]:
    line = next(line for line in stderr.splitlines() if line.startswith("LOADED="))
    return [name for name in line.removeprefix("LOADED=").split(",") if name]


def cache_files(cache: Path, suffix: str) -> list[Path]:
    return sorted(cache.glob(f"*{suffix}")) if cache.exists() else []


def rewrite_entry(cache: Path, *, remaining: float, lifetime: float = 3599) -> CacheEntry:
    """Make the only cache entry expire in ``remaining`` seconds; return it as rewritten."""
    (path,) = cache_files(cache, ".token")
    key = path.name.removesuffix(".token")
    entry = decode_entry(path.read_bytes(), key)
    assert entry is not None
    expires_on = int(time.time() + remaining)
    entry.details.expires_on = expires_on
    changed = CacheEntry(entry.details, expires_on - lifetime)
    path.write_bytes(encode_entry(changed, key))
    return changed


class TestFormats:
    async def test_raw(self, pipeline: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
        """The default output is the token and a newline; nothing else on either stream."""
        code, out, err = await azauth(capsys, "token")

        assert (code, err) == (0, "")
        assert out.endswith("\n")
        assert out.count("\n") == 1
        claims = pipeline.verify_access_token(out.strip(), audience=ARM)
        assert claims["tid"] == TENANT
        assert claims["appid"] == CLIENT

    async def test_json(
        self,
        pipeline: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """json holds every field, consistent with the token itself."""
        monkeypatch.setenv("AZURESUBSCRIPTION_SUBSCRIPTION_ID", SUBSCRIPTION)

        code, out, _ = await azauth(
            capsys, "token", "--output", "json", "--scope", f"{VAULT}/.default"
        )

        document = json.loads(out)
        assert code == 0
        assert sorted(document) == sorted(
            [
                "token",
                "token_type",
                "expires_on",
                "expires_at",
                "tenant",
                "scope",
                "client_id",
                "subscription",
                "connection",
                "profile",
            ]
        )
        claims = pipeline.verify_access_token(document["token"], audience=VAULT)
        assert document["expires_on"] == claims["exp"]
        assert document["expires_at"] == time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"])
        )
        assert document["token_type"] == "Bearer"
        assert document["tenant"] == TENANT
        assert document["scope"] == f"{VAULT}/.default"
        assert document["client_id"] == CLIENT
        assert document["subscription"] == SUBSCRIPTION
        assert (document["connection"], document["profile"]) == ("default", "default")

    async def test_azure_cli_parses_in_azure_identity(
        self,
        pipeline: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """azure-identity's AzureCliCredential parser reads our JSON, with or without expires_on."""
        monkeypatch.setenv("AZURESUBSCRIPTION_SUBSCRIPTION_ID", SUBSCRIPTION)

        code, out, _ = await azauth(capsys, "token", "--output", "azure-cli")

        document = json.loads(out)
        parsed = parse_token(out)
        assert code == 0
        assert parsed is not None
        assert parsed.token == document["accessToken"]
        assert parsed.expires_on == document["expires_on"]
        pipeline.verify_access_token(parsed.token, audience=ARM)
        # Older consumers read the local-time expiresOn: it must name the same instant.
        legacy = parse_token(json.dumps({k: v for k, v in document.items() if k != "expires_on"}))
        assert legacy is not None
        assert legacy.expires_on == document["expires_on"]
        assert document["tokenType"] == "Bearer"
        assert document["tenant"] == TENANT
        assert document["subscription"] == SUBSCRIPTION

    async def test_azure_cli_without_subscription(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Like az, the subscription key is absent when none applies."""
        _, out, _ = await azauth(capsys, "token", "-o", "azure-cli")

        assert "subscription" not in json.loads(out)

    @pytest.mark.parametrize(
        ("exec_info", "version"),
        [
            (None, "client.authentication.k8s.io/v1"),
            (
                '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}',
                "client.authentication.k8s.io/v1",
            ),
            (
                '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{}}',
                "client.authentication.k8s.io/v1beta1",
            ),
        ],
        ids=["absent", "v1", "v1beta1"],
    )
    async def test_exec_credential(
        self,
        pipeline: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        exec_info: str | None,
        version: str,
    ) -> None:
        """An ExecCredential in the version KUBERNETES_EXEC_INFO asks for (v1 by default)."""
        if exec_info is not None:
            monkeypatch.setenv("KUBERNETES_EXEC_INFO", exec_info)

        code, out, _ = await azauth(capsys, "token", "--output", "exec-credential")

        document = json.loads(out)
        assert code == 0
        assert document["apiVersion"] == version
        assert document["kind"] == "ExecCredential"
        claims = pipeline.verify_access_token(document["status"]["token"], audience=ARM)
        assert document["status"]["expirationTimestamp"] == time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"])
        )

    async def test_unsupported_exec_credential_version(
        self,
        pipeline: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """An unsupported apiVersion is a usage error, found before any token request."""
        monkeypatch.setenv(
            "KUBERNETES_EXEC_INFO",
            '{"apiVersion":"client.authentication.k8s.io/v2","kind":"ExecCredential"}',
        )

        code, out, err = await azauth(capsys, "token", "--output", "exec-credential")

        assert (code, out) == (2, "")
        assert "client.authentication.k8s.io/v2" in err
        assert pipeline.counts == {"oidc": 0, "token": 0}


class TestSelection:
    async def test_several_connections_need_a_choice(
        self, two_connections: Emulator, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With several connections and no --connection, the error lists them (usage, 2)."""
        code, out, err = await azauth(capsys, "token", "--profile", "two")

        assert (code, out) == (2, "")
        assert err.count("\n") == 1
        assert "a, b" in err
        assert "--connection" in err

    async def test_unknown_connection(
        self, two_connections: Emulator, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unknown --connection is a usage error naming the profile's connections."""
        code, out, err = await azauth(capsys, "token", "--profile", "two", "--connection", "zz")

        assert (code, out) == (2, "")
        assert "'zz'" in err
        assert "a, b" in err

    async def test_connection_and_its_default_scope(
        self, two_connections: Emulator, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--connection picks the connection; its configured scope is the default scope."""
        code, out, _ = await azauth(
            capsys, "token", "--profile", "two", "--connection", "b", "-o", "json"
        )

        document = json.loads(out)
        claims = two_connections.verify_access_token(document["token"], audience=VAULT)
        assert code == 0
        assert claims["appid"] == CLIENT2
        assert (document["connection"], document["profile"]) == ("b", "two")

    async def test_only_connection_of_the_selected_profile(
        self,
        two_connections: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """AZAUTH_PROFILE selects the profile; its only connection needs no --connection."""
        monkeypatch.setenv("AZAUTH_PROFILE", "one")

        code, out, _ = await azauth(capsys, "token")

        assert code == 0
        assert two_connections.verify_access_token(out.strip())["appid"] == CLIENT2

    async def test_allowed_tenant(
        self, two_connections: Emulator, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--tenant asks for the token in another tenant the connection allows."""
        two_connections.add_connection(SC, OTHER_TENANT, CLIENT)

        code, out, _ = await azauth(
            capsys,
            "token",
            "--profile",
            "two",
            "--connection",
            "a",
            "--tenant",
            OTHER_TENANT,
            "-o",
            "json",
        )

        document = json.loads(out)
        assert code == 0
        assert two_connections.verify_access_token(document["token"])["tid"] == OTHER_TENANT
        assert document["tenant"] == OTHER_TENANT

    async def test_tenant_not_allowed(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A tenant the connection does not allow is refused before any request (exit 4)."""
        code, out, err = await azauth(capsys, "token", "--tenant", OTHER_TENANT)

        assert (code, out) == (4, "")
        assert OTHER_TENANT in err
        assert pipeline.counts == {"oidc": 0, "token": 0}


class TestFailures:
    async def test_no_configuration(self, capsys: pytest.CaptureFixture[str]) -> None:
        """No file and no AZURESUBSCRIPTION_* variables: configuration error, exit 3."""
        code, out, err = await azauth(capsys, "token")

        assert (code, out) == (3, "")
        assert err.startswith("azauth: error: ")
        assert "AZURESUBSCRIPTION_" in err

    async def test_system_access_token_not_mapped(
        self,
        pipeline: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A missing SYSTEM_ACCESSTOKEN is a configuration error naming the step mapping."""
        monkeypatch.delenv("SYSTEM_ACCESSTOKEN")

        code, out, err = await azauth(capsys, "token")

        assert (code, out) == (3, "")
        assert "SYSTEM_ACCESSTOKEN" in err

    async def test_refused_system_access_token(
        self,
        pipeline: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        cache: Path,
    ) -> None:
        """Azure DevOps refusing the token: exit 4, one line on stderr without the secret."""
        wrong = "wrong-system-access-token-0123456789abcdef"
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", wrong)

        code, out, err = await azauth(capsys, "token")

        assert (code, out) == (4, "")
        assert err.startswith("azauth: error: ")
        assert err.count("\n") == 1
        assert wrong not in err
        assert cache_files(cache, ".token") == []


class TestCache:
    async def test_second_call_is_served_from_the_cache(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str], cache: Path
    ) -> None:
        """One OIDC and one Entra request serve repeated calls, in every format."""
        _, first, _ = await azauth(capsys, "token")
        _, second, _ = await azauth(capsys, "token")
        _, as_json, _ = await azauth(capsys, "token", "-o", "json")

        assert first == second
        assert json.loads(as_json)["token"] == first.strip()
        assert pipeline.counts == {"oidc": 1, "token": 1}

    async def test_files_are_private_and_hold_no_pipeline_secret(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str], cache: Path
    ) -> None:
        """Directory 0700, files 0600; neither System.AccessToken nor the OIDC token is stored."""
        await azauth(capsys, "token")

        assert stat.S_IMODE(cache.stat().st_mode) == 0o700
        files = list(cache.iterdir())
        assert {path.suffix for path in files} == {".token", ".var", ".lock"}
        oidc_tokens = [issued.token for issued in pipeline.issued if issued.kind == "oidc"]
        assert oidc_tokens
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            content = path.read_bytes()
            assert pipeline.system_access_token.encode() not in content
            assert all(token.encode() not in content for token in oidc_tokens)

    async def test_no_cache(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str], cache: Path
    ) -> None:
        """--no-cache always asks Entra and neither reads nor writes the cache."""
        await azauth(capsys, "token", "--no-cache")
        assert not cache.exists()
        await azauth(capsys, "token")
        _, fresh, _ = await azauth(capsys, "token", "--no-cache")
        _, cached, _ = await azauth(capsys, "token")

        assert pipeline.counts == {"oidc": 3, "token": 3}
        assert fresh != cached

    async def test_new_system_access_token_is_a_new_key(
        self,
        pipeline: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        cache: Path,
    ) -> None:
        """A new job's System.AccessToken never gets the previous job's token."""
        _, first, _ = await azauth(capsys, "token")
        pipeline.system_access_token = "a-new-job-system-access-token-0123456789"
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", pipeline.system_access_token)

        _, second, _ = await azauth(capsys, "token")

        assert first != second
        assert pipeline.counts == {"oidc": 2, "token": 2}
        assert len(cache_files(cache, ".token")) == 2

    async def test_changed_profile_file_is_a_new_key(
        self, two_connections: Emulator, workspace: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Editing the profile file invalidates what was cached under it."""
        await azauth(capsys, "token", "--profile", "one")
        path = workspace / "azauth.toml"
        path.write_text(path.read_text() + "\n# edited\n")
        await azauth(capsys, "token", "--profile", "one")
        await azauth(capsys, "token", "--profile", "one")

        assert two_connections.counts == {"oidc": 2, "token": 2}

    async def test_scope_is_part_of_the_key(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Another scope is another token; the same scope again is a hit."""
        _, arm, _ = await azauth(capsys, "token")
        _, vault, _ = await azauth(capsys, "token", "--scope", f"{VAULT}/.default")
        _, vault_again, _ = await azauth(capsys, "token", "--scope", f"{VAULT}/.default")

        assert pipeline.verify_access_token(vault.strip())["aud"] == VAULT
        assert pipeline.verify_access_token(arm.strip())["aud"] == ARM
        assert vault == vault_again
        assert pipeline.counts["token"] == 2

    async def test_token_inside_the_margin_is_refreshed(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str], cache: Path
    ) -> None:
        """A cached token with less than 5 minutes left is replaced by a new one."""
        await azauth(capsys, "token")
        stale = rewrite_entry(cache, remaining=200)

        _, out, _ = await azauth(capsys, "token")
        _, again, _ = await azauth(capsys, "token")

        assert out.strip() != stale.details.access_token
        assert again == out
        assert pipeline.counts == {"oidc": 2, "token": 2}

    async def test_short_lived_tokens_are_served_for_half_their_life(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str], cache: Path
    ) -> None:
        """A 2-minute token is served while a minute is left, then refreshed."""
        await azauth(capsys, "token")
        rewrite_entry(cache, remaining=70, lifetime=120)
        await azauth(capsys, "token")
        assert pipeline.counts["token"] == 1

        rewrite_entry(cache, remaining=50, lifetime=120)
        await azauth(capsys, "token")
        assert pipeline.counts["token"] == 2

    async def test_failed_refresh_serves_the_still_valid_token(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str], cache: Path
    ) -> None:
        """When Entra is unavailable, a stale token with minutes left is served, with a warning."""
        await azauth(capsys, "token")
        stale = rewrite_entry(cache, remaining=200)
        pipeline.fail_next("token", 503, count=10, retry_after="0")

        code, out, err = await azauth(capsys, "token")

        assert code == 0
        assert out == f"{stale.details.access_token}\n"
        assert "token_refresh_failed_using_cached" in err

    async def test_failed_refresh_of_an_almost_expired_token_fails(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str], cache: Path
    ) -> None:
        """Under a minute left, a failed refresh is an error and nothing is printed."""
        await azauth(capsys, "token")
        rewrite_entry(cache, remaining=30)
        pipeline.fail_next("token", 503, count=10, retry_after="0")

        code, out, _ = await azauth(capsys, "token")

        assert (code, out) == (4, "")

    async def test_unwritable_cache_still_prints_the_token(
        self,
        pipeline: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
    ) -> None:
        """A cache directory that cannot exist costs caching, not the token."""
        (tmp_path / "file").write_text("")
        monkeypatch.setenv("AZAUTH_CACHE_DIR", str(tmp_path / "file" / "cache"))

        code, out, err = await azauth(capsys, "token")

        assert code == 0
        pipeline.verify_access_token(out.strip())
        assert "token_cache_unavailable" in err

    async def test_expired_entries_are_swept(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str], cache: Path
    ) -> None:
        """Writing an entry removes expired ones (they hold tokens)."""
        await azauth(capsys, "token")
        (old,) = cache_files(cache, ".token")
        rewrite_entry(cache, remaining=-10)

        await azauth(capsys, "token", "--scope", f"{VAULT}/.default")

        remaining = cache_files(cache, ".token")
        assert old not in remaining
        assert len(remaining) == 1


class TestProcesses:
    async def test_concurrent_cold_calls_share_one_refresh(
        self, pipeline: Emulator, cache: Path
    ) -> None:
        """Eight processes starting together cause exactly one OIDC and one Entra request."""
        results = await asyncio.gather(*(subprocess_azauth("token") for _ in range(8)))

        assert [code for code, _, _ in results] == [0] * 8
        tokens = {out for _, out, _ in results}
        assert len(tokens) == 1
        pipeline.verify_access_token(tokens.pop().strip())
        assert pipeline.counts == {"oidc": 1, "token": 1}
        assert len(cache_files(cache, ".token")) == 1

    @pytest.mark.parametrize(
        "args",
        [
            ("token",),
            ("token", "--output", "json"),
            ("token", "-o", "azure-cli", "--scope", f"{VAULT}/.default"),
            ("token", "--output=exec-credential", "--connection", "default"),
        ],
        ids=["raw", "json", "azure-cli", "exec-credential"],
    )
    async def test_warm_call_imports_nothing_heavy(
        self, pipeline: Emulator, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
    ) -> None:
        """A cache hit answers without aiohttp, pydantic, structlog, azure-core or config loading."""
        code, expected, _ = await azauth(capsys, *args)
        assert code == 0

        code, out, err = await subprocess_azauth(*args, probe=True)

        assert code == 0
        assert out == expected
        assert loaded_modules(err) == []
        assert pipeline.counts["token"] == 1

    async def test_cold_call_falls_back_to_the_full_command(self, pipeline: Emulator) -> None:
        """The probe sees the full command line load when there is nothing cached (sanity)."""
        code, out, err = await subprocess_azauth("token", probe=True)

        assert code == 0
        pipeline.verify_access_token(out.strip())
        assert "agent.config.loading" in loaded_modules(err)

    @pytest.mark.parametrize(
        "how",
        ["discovered", "--config", "AZAUTH_CONFIG", "user config dir"],
    )
    async def test_fast_path_finds_the_same_profile_file(
        self,
        two_connections: Emulator,
        workspace: Path,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        how: str,
    ) -> None:
        """However the file is found, the warm path computes the key the full command stored."""
        args = ["token", "--profile", "one"]
        if how == "--config":
            (workspace / "azauth.toml").rename(workspace / "custom.toml")
            args += ["--config", "custom.toml"]
        elif how == "AZAUTH_CONFIG":
            (workspace / "azauth.toml").rename(tmp_path / "elsewhere.toml")
            monkeypatch.setenv("AZAUTH_CONFIG", str(tmp_path / "elsewhere.toml"))
        elif how == "user config dir":
            user_dir = tmp_path / "home" / ".config" / "azauth"
            user_dir.mkdir(parents=True)
            (workspace / "azauth.toml").rename(user_dir / "azauth.toml")
        _, expected, _ = await azauth(capsys, *args)

        code, out, err = await subprocess_azauth(*args, probe=True)

        assert (code, out) == (0, expected)
        assert loaded_modules(err) == []

    async def test_stale_entry_falls_back(self, pipeline: Emulator, cache: Path) -> None:
        """A warm path that finds only a stale entry hands over to the full command."""
        code, first, _ = await subprocess_azauth("token")
        rewrite_entry(cache, remaining=100)

        code, out, err = await subprocess_azauth("token", probe=True)

        assert code == 0
        assert out != first
        assert "agent.config.loading" in loaded_modules(err)
        assert pipeline.counts["token"] == 2

    async def test_failure_prints_nothing_on_stdout(
        self, pipeline: Emulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing process exits 4 with one stderr line and an empty stdout."""
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "not-the-right-token-0123456789")

        code, out, err = await subprocess_azauth("token", "--output", "exec-credential")

        assert (code, out) == (4, "")
        assert err.startswith("azauth: error: ")
        assert len(err.strip().splitlines()) == 1
        assert "not-the-right-token" not in err


@pytest.mark.skipif(
    skewed_clock_environment("+0") is None,
    reason="libfaketime is not installed (apt-get install faketime)",
)
class TestSkewedAgentClock:
    """The cache judges a token on this machine's clock: issued lifetime from the request."""

    async def test_clock_behind_never_serves_an_expired_token(
        self, pipeline: Emulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two hours behind, Entra's expires_on looks hours away; the token still expires."""
        pipeline.token_lifetime = 3
        for name, value in (skewed_clock_environment("-2h") or {}).items():
            monkeypatch.setenv(name, value)
        code, first, err = await subprocess_azauth("token")
        assert code == 0, err
        code, again, err = await subprocess_azauth("token")
        assert (code, again) == (0, first), err
        assert pipeline.counts["token"] == 1
        await asyncio.sleep(3.5)  # past the token's real life

        code, later, err = await subprocess_azauth("token")

        assert code == 0, err
        assert later != first
        assert pipeline.counts["token"] == 2

    async def test_clock_ahead_still_uses_the_cache(
        self, pipeline: Emulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Ten minutes ahead of a ten-minute token: Entra's expires_on looks past, the token is not."""
        pipeline.token_lifetime = 600
        for name, value in (skewed_clock_environment("+10m") or {}).items():
            monkeypatch.setenv(name, value)

        results = [await subprocess_azauth("token") for _ in range(3)]

        assert [code for code, _, _ in results] == [0, 0, 0], results[0][2]
        assert len({out for _, out, _ in results}) == 1
        assert pipeline.counts == {"oidc": 1, "token": 1}


ONE_CONNECTION = f"""
[connections.a]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
service_connection_id = "{SC}"

[profiles.ci]
connections = ["a"]
"""


class TestProfileSettings:
    """`azauth token` borrows its credential from the profile's pool: the profile's settings hold."""

    async def test_retries_end_at_the_profile_retry_deadline(
        self, connected_emulator: Emulator, workspace: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A 1.5 s retry_deadline ends the retries of a failing Entra after two attempts.

        Entra asks for a retry after 1 s each time: the default deadline would allow all four
        attempts; the profile's allows the second only.
        """
        (workspace / "azauth.toml").write_text(
            f"[settings]\nretry_deadline = 1.5\n{ONE_CONNECTION}"
        )
        connected_emulator.fail_next("token", 503, count=10, retry_after="1")
        started = time.monotonic()

        code, out, err = await azauth(capsys, "token", "--no-cache")

        assert (code, out) == (4, ""), err
        assert connected_emulator.counts["token"] == 2
        assert time.monotonic() - started < 10
        assert "temporarily_unavailable" in err

    async def test_default_profile_deadline_is_120_seconds_not_60(
        self, connected_emulator: Emulator, workspace: Path
    ) -> None:
        """Without settings the profile's 120 s deadline applies (the cache lock assumes it).

        On simulated time, Entra asking for a retry after 50 s: attempts at 0, 50 and 100 s fit
        in 120 s; a 60 s deadline (the library's default) would stop after the second.
        """
        from agent.credential_helpers.cache import TokenRequest
        from agent.credential_helpers.service import obtain_token
        from agent.exceptions import AuthenticationError
        from agent.testing.fakes import FakeClock

        (workspace / "azauth.toml").write_text(ONE_CONNECTION)
        connected_emulator.fail_next("token", 503, count=10, retry_after="50")
        clock = FakeClock(start=time.time())
        request = TokenRequest(config=None, profile=None, connection=None, scopes=(), tenant=None)
        env = dict(os.environ)

        with pytest.raises(AuthenticationError):
            await asyncio.to_thread(obtain_token, request, env, use_cache=False, clock=clock)

        assert connected_emulator.counts["token"] == 3
        assert clock.monotonic() == pytest.approx(100, abs=1)

"""Profile switching: `azauth env` in real shells, `azauth status`, and the selection precedence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from agent.cli.env import render_exports, render_unset
from agent.cli.main import main
from agent.credential_helpers.cache import CacheEntry, TokenCache
from agent.credential_helpers.protocols import TokenDetails
from tests.support import (
    CLIENT,
    CLIENT2,
    SC,
    SC2,
    SUBSCRIPTION,
    TENANT,
    azauth_async,
    toml_connection,
)

PROFILES = f"""
default_profile = "dev"

{toml_connection("prod")}subscription_id = "{SUBSCRIPTION}"

{toml_connection("dev", client=CLIENT2, service_connection=SC2)}system_access_token_env = "DEV_TOKEN"

[profiles.prod]
connections = ["prod"]

[profiles.dev]
connections = ["dev"]
"""

ONE_PROFILE = f"""
{toml_connection("prod")}
[profiles.only]
connections = ["prod"]
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "conf" / "azauth.toml"
    path.parent.mkdir()
    path.write_text(PROFILES)
    return path


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory without a profile file, and no user config directory."""
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    monkeypatch.chdir(directory)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config-home"))
    monkeypatch.setenv("AZAUTH_CACHE_DIR", str(tmp_path / "cache"))
    return directory


def azauth_cmd() -> str:
    return f"{sys.executable} -m agent"


def status_json(capsys, *args: str) -> dict:
    assert main(["status", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


class TestEnv:
    def test_sh_statements_with_the_absolute_config(self, config, elsewhere, capsys):
        """`azauth env` prints an export of the profile and of the file's absolute path."""
        relative = os.path.relpath(config, elsewhere)
        assert main(["env", "--config", relative, "--profile", "prod"]) == 0

        assert capsys.readouterr().out == (
            f"export AZAUTH_PROFILE='prod'\nexport AZAUTH_CONFIG='{config}'\n"
        )

    def test_unknown_profile_prints_nothing(self, config, elsewhere, capsys):
        """The profile is validated before anything is printed (exit 3, stdout empty)."""
        assert main(["env", "--config", str(config), "--profile", "prdo"]) == 3

        captured = capsys.readouterr()
        assert captured.out == ""
        assert "unknown profile 'prdo'" in captured.err
        assert "did you mean 'prod'" in captured.err

    def test_pwsh_statements(self, config, elsewhere, capsys):
        assert main(["env", "--shell", "pwsh", "--config", str(config), "--profile", "dev"]) == 0

        assert capsys.readouterr().out == (
            f"$env:AZAUTH_PROFILE = 'dev'\n$env:AZAUTH_CONFIG = '{config}'\n"
        )

    def test_unset_statements(self, capsys):
        assert main(["env", "--unset"]) == 0
        assert capsys.readouterr().out == "unset AZAUTH_PROFILE AZAUTH_CONFIG\n"
        assert main(["env", "--unset", "--shell", "pwsh"]) == 0
        assert capsys.readouterr().out == (
            "Remove-Item -Path Env:AZAUTH_PROFILE -ErrorAction SilentlyContinue\n"
            "Remove-Item -Path Env:AZAUTH_CONFIG -ErrorAction SilentlyContinue\n"
        )

    def test_quoting_survives_a_real_shell(self):
        """Quotes, dollars, backticks and newlines come back verbatim through bash's eval."""
        value = 'it\'s $HOME `id` "q" \\ \n end'
        script = render_exports({"AZAUTH_PROFILE": value}, "sh") + 'printf %s "$AZAUTH_PROFILE"'
        shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)

        assert shown.stdout == value

    def test_pwsh_quoting(self):
        """PowerShell verbatim strings: every single-quote character (also typographic) doubled."""
        assert (
            render_exports({"A": "it's \u2019x\u2019"}, "pwsh")
            == "$env:A = 'it''s \u2019\u2019x\u2019\u2019'\n"
        )
        with pytest.raises(ValueError, match="NUL"):
            render_exports({"A": "a\x00b"}, "sh")
        with pytest.raises(ValueError, match="unknown shell"):
            render_unset(["A"], "fish")

    def test_eval_in_bash_switches_this_shell_only(self, config, elsewhere, tmp_path):
        """eval "$(azauth env --profile prod)" makes prod active for later commands of that shell."""
        script = (
            f'eval "$({azauth_cmd()} env --config {config} --profile prod)"\n'
            f"{azauth_cmd()} status --json\n"
            f'eval "$({azauth_cmd()} env --unset)"\n'
            'printf "after unset: [%s][%s]\\n" "$AZAUTH_PROFILE" "$AZAUTH_CONFIG"\n'
        )
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ),
        )
        document, _, rest = result.stdout.partition("\n}\n")
        status = json.loads(document + "\n}")

        assert (status["profile"], status["selected_by"]) == ("prod", "AZAUTH_PROFILE")
        assert status["config"] == str(config)  # found through AZAUTH_CONFIG, not the cwd
        assert status["connections"]["prod"]["client_id"] == CLIENT
        assert rest == "after unset: [][]\n"
        # Nothing global changed: a new shell still gets the file's default profile.
        other = subprocess.run(
            ["bash", "-c", f"{azauth_cmd()} status --json --config {config}"],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(other.stdout)["profile"] == "dev"


class TestSelectionPrecedence:
    def test_flag_beats_env_beats_default_profile(self, config, elsewhere, capsys, monkeypatch):
        """--profile > AZAUTH_PROFILE > default_profile, and status says which one decided."""
        doc = status_json(capsys, "--config", str(config))
        assert (doc["profile"], doc["selected_by"]) == ("dev", "default_profile")

        monkeypatch.setenv("AZAUTH_PROFILE", "prod")
        doc = status_json(capsys, "--config", str(config))
        assert (doc["profile"], doc["selected_by"]) == ("prod", "AZAUTH_PROFILE")

        doc = status_json(capsys, "--config", str(config), "--profile", "dev")
        assert (doc["profile"], doc["selected_by"]) == ("dev", "--profile")

    def test_the_only_profile(self, tmp_path, elsewhere, capsys):
        path = tmp_path / "one.toml"
        path.write_text(ONE_PROFILE)
        doc = status_json(capsys, "--config", str(path))

        assert (doc["profile"], doc["selected_by"]) == ("only", "only_profile")

    def test_unknown_env_profile_is_a_config_error(self, config, elsewhere, capsys, monkeypatch):
        monkeypatch.setenv("AZAUTH_PROFILE", "staging")
        assert main(["status", "--config", str(config)]) == 3
        assert "unknown profile 'staging' (named by AZAUTH_PROFILE)" in capsys.readouterr().err


class TestStatus:
    def test_identity_from_the_file_without_network(self, config, elsewhere, capsys, monkeypatch):
        """Without --check: config-derived identity, variable presence, no OIDC token, no secret."""
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "a-job-token-that-must-not-show")
        doc = status_json(capsys, "--config", str(config), "--profile", "prod")

        prod = doc["connections"]["prod"]
        assert prod == {
            "tenant_id": TENANT,
            "client_id": CLIENT,
            "service_connection_id": SC,
            "subscription_id": SUBSCRIPTION,
            "cloud": "public",
            "authority": "https://login.microsoftonline.com",
            "default_scope": "https://management.azure.com/.default",
            "additionally_allowed_tenants": [],
            "system_access_token_env": "SYSTEM_ACCESSTOKEN",
            "system_access_token_set": True,
            "federated_token": None,
            "cached_tokens": [],
            "problems": ["SYSTEM_OIDCREQUESTURI is not set: not inside an Azure Pipelines job"],
        }
        assert (doc["checked"], doc["oidc_request_uri_set"], doc["inside_exec"]) == (
            False,
            False,
            None,
        )

        assert main(["status", "--config", str(config), "--profile", "prod"]) == 0
        text = capsys.readouterr().out
        assert "a-job-token-that-must-not-show" not in text
        assert "profile    prod  (selected by --profile)" in text
        assert f"  client id           {CLIENT}" in text
        assert "not fetched (--check fetches one from Azure DevOps; no Entra call)" in text

    def test_missing_system_token_variable_is_a_problem(self, config, elsewhere, capsys):
        doc = status_json(capsys, "--config", str(config), "--profile", "dev")

        dev = doc["connections"]["dev"]
        assert dev["system_access_token_set"] is False
        assert (
            "DEV_TOKEN is not set: map it into the step (env: DEV_TOKEN: $(System.AccessToken))"
            in dev["problems"]
        )

    def test_cached_tokens_of_this_profile(self, config, elsewhere, capsys, tmp_path):
        """Entries `azauth token` cached for this profile's connection are listed, never their token."""
        cache = TokenCache(str(tmp_path / "cache"))
        now = int(time.time())

        def store(key: str, profile: str, connection: str, client: str, expires: int) -> None:
            details = TokenDetails(
                access_token="access-token-value-" + key[:4],
                token_type="Bearer",
                expires_on=expires,
                tenant=TENANT,
                scopes=("https://vault.azure.net/.default",),
                client_id=client,
                subscription=None,
                connection=connection,
                profile=profile,
            )
            cache.ensure_directory()
            cache.store(key, "f" * 64, "SYSTEM_ACCESSTOKEN", CacheEntry(details, now - 60))

        store("a" * 64, "prod", "prod", CLIENT, now + 3000)
        store("b" * 64, "prod", "prod", CLIENT, now + 30)  # inside the renewal margin
        store("c" * 64, "dev", "dev", CLIENT2, now + 3000)  # another profile
        store("d" * 64, "prod", "prod", CLIENT2, now + 3000)  # same names, another app

        doc = status_json(capsys, "--config", str(config), "--profile", "prod")
        cached = doc["connections"]["prod"]["cached_tokens"]
        assert [(c["expires_on"], c["fresh"]) for c in cached] == [
            (now + 30, False),
            (now + 3000, True),
        ]
        assert cached[0]["scopes"] == ["https://vault.azure.net/.default"]

        assert main(["status", "--config", str(config), "--profile", "prod"]) == 0
        text = capsys.readouterr().out
        assert "access-token-value" not in text
        assert "https://vault.azure.net/.default (tenant " in text
        assert "due for renewal" in text


azauth = azauth_async


@pytest.fixture
async def emu(start_emulator, monkeypatch):
    emulator = await start_emulator((SC, TENANT, CLIENT), (SC2, TENANT, CLIENT2))
    monkeypatch.setenv("DEV_TOKEN", emulator.system_access_token)
    return emulator


class TestStatusCheck:
    async def test_check_shows_what_the_federated_credential_must_match(
        self, config, elsewhere, emu
    ):
        """--check fetches one OIDC token per connection (no Entra call) and shows its claims."""
        code, out, err = await azauth(
            "status",
            "--json",
            "--check",
            "--config",
            str(config),
            "--profile",
            "prod",
            cwd=elsewhere,
        )

        assert code == 0, err
        token = emu.connections[SC]
        check = json.loads(out)["connections"]["prod"]["federated_token"]
        assert check["subject"] == f"sc://{emu.org_name}/{emu.project_name}/{token.name}"
        assert check["issuer"].startswith("https://vstoken.dev.azure.com/")
        assert check["audience"] == "api://AzureADTokenExchange"
        assert check["expires_on"] > time.time()
        assert emu.counts == {"oidc": 1, "token": 0}
        for issued in emu.issued:
            assert issued.token not in out
            assert issued.token not in err
        assert emu.system_access_token not in out

    async def test_check_failure_sets_the_exit_code(self, config, elsewhere, emu, monkeypatch):
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "wrong-token-value")
        code, out, _ = await azauth(
            "status", "--check", "--config", str(config), "--profile", "prod", cwd=elsewhere
        )

        assert code == 4
        assert "oidc token          FAILED: " in out

    async def test_status_inside_exec_reports_the_exec_profile(self, config, elsewhere, emu):
        """Inside `azauth exec`, azauth commands use the exec's profile, and status says so."""
        code, out, err = await azauth(
            "exec",
            "--config",
            str(config),
            "--profile",
            "prod",
            "--",
            sys.executable,
            "-m",
            "agent",
            "status",
            "--json",
            cwd=elsewhere,
        )

        assert code == 0, err
        doc = json.loads(out)
        assert (doc["profile"], doc["selected_by"], doc["inside_exec"]) == (
            "prod",
            "AZAUTH_PROFILE",
            "prod",
        )
        assert doc["config"] == str(config)

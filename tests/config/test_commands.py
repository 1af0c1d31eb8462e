"""`azauth validate`, `init` and `profiles` through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli.main import main
from agent.config import EnvFileOutput, load_config
from tests.support import ROOT

TENANT = "3f6c2a4e-8b1d-4c7a-9e25-6d0f1b8a7c43"
CLIENT = "9a1e7b52-4c3d-4f8e-b6a0-2d5c8e1f3b74"
SC = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"


@pytest.fixture
def pipeline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURESUBSCRIPTION_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURESUBSCRIPTION_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", SC)


class TestValidate:
    def test_valid_file_prints_a_summary(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A valid file exits 0 with one OK line on stderr and nothing on stdout."""
        path = ROOT / "azauth.toml.example"

        rc = main(["validate", "--config", str(path), "--profile", "base"])

        captured = capsys.readouterr()
        assert rc == 0
        assert captured.out == ""
        assert captured.err == (
            f"azauth: OK: {path}: 3 profiles, 2 connections, 11 outputs; "
            "profile 'base': 1 connection, 2 outputs\n"
        )

    def test_config_comes_from_azauth_config(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without --config, AZAUTH_CONFIG names the file."""
        monkeypatch.setenv("AZAUTH_CONFIG", str(ROOT / "azauth.yaml.example"))

        rc = main(["validate"])

        assert rc == 0
        assert "azauth.yaml.example: 3 profiles" in capsys.readouterr().err

    def test_implicit_configuration(
        self, pipeline_env: None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without a file, validate checks the AZURESUBSCRIPTION_* connection."""
        rc = main(["validate"])

        assert rc == 0
        assert capsys.readouterr().err == (
            "azauth: OK: AZURESUBSCRIPTION_* (no file): 1 profile, 1 connection, 0 outputs\n"
        )


class TestInit:
    @pytest.mark.parametrize("syntax", ["toml", "yaml"])
    def test_writes_a_loadable_starter(
        self, syntax: str, pipeline_env: None, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """init writes a file that loads, from the pipeline variables, naming the schema."""
        rc = main(["init", "--format", syntax])

        path = workdir / f"azauth.{syntax}"
        assert rc == 0
        assert f"azauth: wrote azauth.{syntax}" in capsys.readouterr().err
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
        assert first_line in {
            "#:schema ./schemas/azauth.schema.json",
            "# yaml-language-server: $schema=./schemas/azauth.schema.json",
        }
        profile = load_config(path, env={}).profile()
        connection = profile.connections["default"]
        assert (connection.tenant_id, connection.client_id, connection.service_connection_id) == (
            TENANT,
            CLIENT,
            SC,
        )
        (output,) = profile.outputs
        assert isinstance(output, EnvFileOutput)
        assert output.preset == "azure-identity"
        assert output.effective_federated_token_path == "out/default.jwt"
        assert path.stat().st_mode & 0o777 == 0o644

    def test_flags_beat_pipeline_variables(self, pipeline_env: None, workdir: Path) -> None:
        """Flags win over AZURESUBSCRIPTION_*; --name names the connection and the profile."""
        target = workdir / "conf" / "ci.yml"

        rc = main([
            "init", "--output", str(target), "--name", "prod", "--client-id", "flag-client",
            "--subscription-id", "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d01",
        ])  # fmt: skip

        assert rc == 0
        profile = load_config(target, env={}).profile()
        assert profile.name == "prod"
        assert profile.connections["prod"].client_id == "flag-client"
        assert profile.connections["prod"].subscription_id == "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d01"

    def test_refuses_to_overwrite_without_force(
        self, pipeline_env: None, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An existing file is kept (exit 2) unless --force is given."""
        path = workdir / "azauth.toml"
        path.write_text("# mine\n", encoding="utf-8")

        rc = main(["init"])

        assert rc == 2
        assert "azauth.toml already exists; pass --force to replace it" in capsys.readouterr().err
        assert path.read_text(encoding="utf-8") == "# mine\n"
        assert main(["init", "--force"]) == 0
        assert load_config(path, env={}).profile_names == ["default"]

    def test_missing_values_are_a_usage_error(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without flags or pipeline variables, init says which values are missing."""
        rc = main(["init", "--tenant-id", TENANT])

        err = capsys.readouterr().err
        assert rc == 2
        assert "--client-id (or $AZURESUBSCRIPTION_CLIENT_ID)" in err
        assert "--service-connection-id" in err
        assert not (workdir / "azauth.toml").exists()

    def test_invalid_value_writes_nothing(
        self, pipeline_env: None, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A value the loader refuses is reported and no file (not even a temporary) is left."""
        rc = main(["init", "--tenant-id", "not a tenant"])

        err = capsys.readouterr().err
        assert rc == 2
        assert "connections.default.tenant_id: invalid value 'not a tenant'" in err
        assert list(workdir.iterdir()) == []


class TestProfiles:
    def test_lists_profiles_marking_the_active_one(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each profile with its connections and outputs; the active one starred; no secret."""
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "super-secret-system-token")

        rc = main(["profiles", "--config", str(ROOT / "azauth.toml.example")])

        captured = capsys.readouterr()
        assert rc == 0
        lines = captured.out.splitlines()
        assert (
            lines[0]
            == "  base: Azure Resource Manager and Key Vault tokens for the prod connection"
        )
        assert (
            "* deploy (active): Terraform, Azure SDK and pipeline variables for both connections"
            in lines
        )
        assert "    extends base" in lines
        assert (
            "    connection shared: tenant 8e4a2c6d-0b9f-4e1a-a3c5-7d9b1f3e5a20, client id "
            "4f2b8d6a-1e3c-4a5b-9c7d-0e2f4a6b8c19, service connection e7a9c1b3-5d2f-4e8a-b0c4-6f1d3a5e7b92"
        ) in lines
        assert "    federated_token_file -> out/prod.jwt (connection prod)" in lines
        assert sum(line.startswith("    ") and "->" in line for line in lines) == 2 + 8 + 3
        assert (
            "    feed shared: https://pkgs.dev.azure.com/fabrikam/platform/_packaging/shared "
            "(connection shared)"
        ) in lines
        assert "super-secret-system-token" not in captured.out + captured.err

    def test_environment_selects_the_active_profile(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """AZAUTH_PROFILE moves the marker."""
        monkeypatch.setenv("AZAUTH_PROFILE", "base")

        main(["profiles", "--config", str(ROOT / "azauth.yaml.example")])

        out = capsys.readouterr().out
        assert "* base (active)" in out
        assert "  deploy: " in out

    def test_no_active_profile_is_a_note(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """When nothing selects a profile, all are listed and a note explains why none is active."""
        text = (ROOT / "azauth.toml.example").read_text(encoding="utf-8")
        path = workdir / "azauth.toml"
        path.write_text(text.replace('default_profile = "deploy"', ""), encoding="utf-8")

        rc = main(["profiles"])

        captured = capsys.readouterr()
        assert rc == 0
        assert "(active)" not in captured.out
        assert "azauth: note: no active profile" in captured.err

"""Loading: discovery, precedence, the implicit configuration, extends, and the loading API."""

from __future__ import annotations

import hashlib
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from agent.config import (
    SECRET_FIELDS,
    EnvFileOutput,
    FederatedTokenFileOutput,
    PipelineVariablesOutput,
    TokenFileOutput,
    load_config,
)
from agent.exceptions import ConfigError

TENANT = "3f6c2a4e-8b1d-4c7a-9e25-6d0f1b8a7c43"
CLIENT = "9a1e7b52-4c3d-4f8e-b6a0-2d5c8e1f3b74"
SC = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"

BASIC = f"""
[settings]
concurrency = 3

[connections.prod]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
service_connection_id = "{SC}"

[profiles.only]
connections = ["prod"]
"""

TWO_PROFILES = f"""
default_profile = "second"

[connections.prod]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
service_connection_id = "{SC}"

[profiles.first]
connections = ["prod"]

[profiles.second]
connections = ["prod"]

[profiles.third]
connections = ["prod"]
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text), encoding="utf-8")
    return path


class TestPrecedence:
    def test_flag_beats_environment_beats_file(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A setting comes from the command line, else AZAUTH_SETTINGS__*, else the file."""
        path = write(workdir / "azauth.toml", BASIC)

        assert load_config(path).config.settings.concurrency == 3
        monkeypatch.setenv("AZAUTH_SETTINGS__CONCURRENCY", "5")
        assert load_config(path).config.settings.concurrency == 5
        flagged = load_config(path, settings_overrides={"concurrency": 7, "log_level": None})
        assert flagged.config.settings.concurrency == 7
        assert flagged.config.settings.log_level == "warning"

    def test_environment_overrides_are_typed(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Environment strings become booleans and numbers; the rest of the file is kept."""
        path = write(workdir / "azauth.toml", BASIC)
        monkeypatch.setenv("AZAUTH_SETTINGS__FAIL_FAST", "true")
        monkeypatch.setenv("AZAUTH_SETTINGS__REFRESH_MARGIN", "90.5")

        settings = load_config(path).config.settings

        assert settings.fail_fast is True
        assert settings.refresh_margin == 90.5
        assert settings.concurrency == 3

    def test_env_mapping_replaces_os_environ(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With ``env=``, azauth reads that mapping and not the process environment."""
        path = write(workdir / "azauth.toml", BASIC)
        monkeypatch.setenv("AZAUTH_SETTINGS__CONCURRENCY", "5")

        loaded = load_config(path, env={"AZAUTH_SETTINGS__CONCURRENCY": "9"})

        assert loaded.config.settings.concurrency == 9

    def test_bad_environment_value_names_the_variable(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An invalid override is blamed on its variable, not on the file."""
        path = write(workdir / "azauth.toml", BASIC)
        monkeypatch.setenv("AZAUTH_SETTINGS__CONCURRENCY", "lots")

        with pytest.raises(ConfigError) as caught:
            load_config(path)

        assert caught.value.key_path == "settings.concurrency"
        assert caught.value.file is None
        assert "set by environment variable AZAUTH_SETTINGS__CONCURRENCY" in str(caught.value)

    def test_bad_flag_value_names_the_command_line(self, workdir: Path) -> None:
        """An invalid command-line value is blamed on the command line."""
        path = write(workdir / "azauth.toml", BASIC)

        with pytest.raises(ConfigError) as caught:
            load_config(path, settings_overrides={"log_format": "xml"})

        assert "set by a command-line option" in str(caught.value)
        assert caught.value.key_path == "settings.log_format"

    def test_unknown_environment_setting_is_refused(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AZAUTH_SETTINGS__ variables are as strict as the file: a typo is an error."""
        path = write(workdir / "azauth.toml", BASIC)
        monkeypatch.setenv("AZAUTH_SETTINGS__CONCURENCY", "4")

        with pytest.raises(ConfigError, match="did you mean 'concurrency'") as caught:
            load_config(path)

        assert "AZAUTH_SETTINGS__CONCURENCY" in str(caught.value)

    def test_profile_selection_order(self, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """--profile > AZAUTH_PROFILE > AZAUTH_DEFAULT_PROFILE > default_profile in the file."""
        path = write(workdir / "azauth.toml", TWO_PROFILES)

        assert load_config(path).profile().name == "second"
        monkeypatch.setenv("AZAUTH_DEFAULT_PROFILE", "third")
        assert load_config(path).profile().name == "third"
        monkeypatch.setenv("AZAUTH_PROFILE", "first")
        loaded = load_config(path)
        assert loaded.profile().name == "first"
        assert loaded.profile("second").name == "second"
        assert loaded.profile(env={}).name == "third"

    def test_single_profile_needs_no_selection(self, workdir: Path) -> None:
        """A file with one profile selects it."""
        path = write(workdir / "azauth.toml", BASIC)

        assert load_config(path).profile().name == "only"

    def test_ambiguous_selection_lists_profiles(self, workdir: Path) -> None:
        """Several profiles and no selection: the error lists them and the ways to choose."""
        path = write(
            workdir / "azauth.toml", TWO_PROFILES.replace('default_profile = "second"', "")
        )

        with pytest.raises(ConfigError) as caught:
            load_config(path).profile()

        message = str(caught.value)
        assert "3 profiles are defined and none is selected" in message
        assert "first, second, third" in message
        assert "--profile NAME, AZAUTH_PROFILE=NAME" in message

    def test_unknown_profile_from_environment(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AZAUTH_PROFILE naming no profile is an error that says where the name came from."""
        path = write(workdir / "azauth.toml", TWO_PROFILES)
        monkeypatch.setenv("AZAUTH_PROFILE", "secnod")

        with pytest.raises(ConfigError) as caught:
            load_config(path).profile()

        assert "named by AZAUTH_PROFILE" in str(caught.value)
        assert "did you mean 'second'" in str(caught.value)


class TestDiscovery:
    @pytest.mark.parametrize(
        "present",
        [
            ["env", "toml", "yaml", "yml", "xdg"],
            ["toml", "yaml", "yml", "xdg"],
            ["yaml", "yml", "xdg"],
            ["yml", "xdg"],
            ["xdg"],
            ["home"],
        ],
        ids=["AZAUTH_CONFIG", "azauth.toml", "azauth.yaml", "azauth.yml", "xdg", "home-config"],
    )
    def test_first_existing_candidate_wins(
        self, present: list[str], workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AZAUTH_CONFIG > ./azauth.toml > ./azauth.yaml > ./azauth.yml > user config dir."""
        yaml_text = (
            f"connections:\n  prod: {{tenant_id: {TENANT}, client_id: {CLIENT}, "
            f"service_connection_id: {SC}}}\nprofiles:\n  only: {{connections: [prod]}}\n"
        )
        places = {
            "env": tmp_path / "elsewhere" / "chosen.toml",
            "toml": workdir / "azauth.toml",
            "yaml": workdir / "azauth.yaml",
            "yml": workdir / "azauth.yml",
            "xdg": tmp_path / "xdg" / "azauth" / "azauth.toml",
            "home": tmp_path / "home" / ".config" / "azauth" / "azauth.yaml",
        }
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        if "home" in present:
            monkeypatch.delenv("XDG_CONFIG_HOME")
        for name in present:
            write(places[name], yaml_text if places[name].suffix != ".toml" else BASIC)
        if "env" in present:
            monkeypatch.setenv("AZAUTH_CONFIG", str(places["env"]))

        loaded = load_config()

        assert loaded.source == places[present[0]]

    def test_missing_azauth_config_file_is_an_error(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AZAUTH_CONFIG naming a missing file does not fall back to other files."""
        write(workdir / "azauth.toml", BASIC)
        monkeypatch.setenv("AZAUTH_CONFIG", str(workdir / "missing.toml"))

        with pytest.raises(ConfigError, match="named by environment variable AZAUTH_CONFIG"):
            load_config()

    def test_explicit_path_beats_azauth_config(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--config wins over AZAUTH_CONFIG."""
        chosen = write(workdir / "chosen.toml", BASIC)
        monkeypatch.setenv("AZAUTH_CONFIG", str(workdir / "missing.toml"))

        assert load_config(chosen).source == chosen


class TestImplicitConfig:
    def test_pipeline_variables_make_a_default_profile(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No file: AZURESUBSCRIPTION_* form connection and profile ``default``, no outputs."""
        monkeypatch.setenv("AZURESUBSCRIPTION_TENANT_ID", TENANT)
        monkeypatch.setenv("AZURESUBSCRIPTION_CLIENT_ID", CLIENT)
        monkeypatch.setenv("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", SC)
        monkeypatch.setenv(
            "AZURESUBSCRIPTION_SUBSCRIPTION_ID", "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d01"
        )

        loaded = load_config()
        profile = loaded.profile()

        assert loaded.source is None
        assert profile.name == "default"
        assert profile.outputs == []
        connection = profile.connections["default"]
        assert (connection.tenant_id, connection.client_id, connection.service_connection_id) == (
            TENANT,
            CLIENT,
            SC,
        )
        assert connection.subscription_id == "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d01"

    def test_digest_follows_the_values(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The implicit digest is stable for the same values and changes with them."""
        env = {
            "AZURESUBSCRIPTION_TENANT_ID": TENANT,
            "AZURESUBSCRIPTION_CLIENT_ID": CLIENT,
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": SC,
        }

        first = load_config(env=env).digest
        again = load_config(env=dict(env)).digest
        other = load_config(env={**env, "AZURESUBSCRIPTION_CLIENT_ID": "another-client"}).digest

        assert first == again != other
        assert len(first) == 64

    def test_bad_pipeline_value_names_its_variable(self) -> None:
        """An invalid AZURESUBSCRIPTION_* value is blamed on that variable."""
        env = {
            "AZURESUBSCRIPTION_TENANT_ID": "not a tenant",
            "AZURESUBSCRIPTION_CLIENT_ID": CLIENT,
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": SC,
        }

        with pytest.raises(ConfigError) as caught:
            load_config(env=env)

        assert caught.value.key_path == "connections.default.tenant_id"
        assert "environment variable AZURESUBSCRIPTION_TENANT_ID" in str(caught.value)

    def test_nothing_at_all_explains_both_options(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No file and no pipeline variables: the error names the files and the variables."""
        monkeypatch.setenv("AZURESUBSCRIPTION_TENANT_ID", TENANT)

        with pytest.raises(ConfigError) as caught:
            load_config()

        message = str(caught.value)
        assert "no profile file found" in message
        assert "azauth.toml" in message
        assert (
            "AZURESUBSCRIPTION_CLIENT_ID, AZURESUBSCRIPTION_SERVICE_CONNECTION_ID are not set"
            in message
        )
        assert "azauth init" in message


EXTENDS = f"""
[connections.a]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
service_connection_id = "{SC}"

[connections.b]
tenant_id = "{TENANT}"
client_id = "second-client"
service_connection_id = "second-sc"
cloud = "china"

[profiles.root]
description = "root"
connections = ["a"]
[[profiles.root.outputs]]
kind = "token_file"
path = "out/a.token"

[profiles.middle]
extends = "root"
[[profiles.middle.outputs]]
kind = "federated_token_file"
path = "out/a.jwt"

[profiles.leaf]
extends = "middle"
connections = ["b", "a"]
[[profiles.leaf.outputs]]
kind = "env_file"
connection = "b"
path = "out/b.env"
preset = "azure-identity"
"""


class TestExtends:
    def test_chain_appends_connections_and_outputs(self, workdir: Path) -> None:
        """A chain inherits connections and outputs root first, own entries appended."""
        loaded = load_config(write(workdir / "azauth.toml", EXTENDS))

        leaf = loaded.profile("leaf")

        assert list(leaf.connections) == ["a", "b"]
        assert [(o.kind, o.connection) for o in leaf.outputs] == [
            ("token_file", "a"),
            ("federated_token_file", "a"),
            ("env_file", "b"),
        ]
        assert leaf.description is None
        assert loaded.profile("middle").outputs[0].connection == "a"

    def test_connection_is_filled_in_for_single_connection_profiles(self, workdir: Path) -> None:
        """An output without ``connection`` gets the profile's only connection."""
        loaded = load_config(write(workdir / "azauth.toml", EXTENDS))

        (output,) = loaded.profile("root").outputs

        assert isinstance(output, TokenFileOutput)
        assert output.connection == "a"
        assert loaded.config.profiles["root"].outputs[0].connection is None

    def test_cycle_through_three_profiles(self, workdir: Path) -> None:
        """A cycle is reported once, as the path that closes it."""
        text = EXTENDS.replace("[profiles.root]\n", '[profiles.root]\nextends = "leaf"\n')

        with pytest.raises(ConfigError) as caught:
            load_config(write(workdir / "azauth.toml", text))

        assert caught.value.key_path == "profiles.root.extends"
        assert "root -> leaf -> middle -> root" in str(caught.value)


class TestConnection:
    def _connection(self, workdir: Path, extra: str = ""):
        text = BASIC.replace(
            f'service_connection_id = "{SC}"', f'service_connection_id = "{SC}"\n{extra}'
        )
        return load_config(write(workdir / "azauth.toml", text)).profile().connections["prod"]

    def test_authority_precedence(self, workdir: Path) -> None:
        """AZURE_AUTHORITY_HOST > authority > the cloud's host, normalised without a slash."""
        plain = self._connection(workdir)
        custom = self._connection(workdir, 'authority = "login.microsoftonline.us/"')

        assert plain.authority_url({}) == "https://login.microsoftonline.com"
        assert custom.authority_url({}) == "https://login.microsoftonline.us"
        assert custom.cloud == "usgovernment"
        emulator = {"AZURE_AUTHORITY_HOST": "http://127.0.0.1:8443/"}
        assert custom.authority_url(emulator) == "http://127.0.0.1:8443"
        assert (
            plain.authority_url({"AZURE_AUTHORITY_HOST": "http://[::1]:9000"})
            == "http://[::1]:9000"
        )

    def test_insecure_authority_host_is_refused(self, workdir: Path) -> None:
        """AZURE_AUTHORITY_HOST over plain http to a remote host is a configuration error."""
        connection = self._connection(workdir)

        with pytest.raises(ConfigError, match="only allowed for loopback"):
            connection.authority_url({"AZURE_AUTHORITY_HOST": "http://login.example.com"})

    def test_default_scope_per_cloud(self, workdir: Path) -> None:
        """The default scope is the cloud's Azure Resource Manager .default scope."""
        assert self._connection(workdir).default_scope == "https://management.azure.com/.default"
        china = self._connection(workdir, 'cloud = "china"')
        assert china.default_scope == "https://management.chinacloudapi.cn/.default"
        custom = self._connection(workdir, 'scope = "api://my-api/.default"')
        assert custom.default_scope == "api://my-api/.default"

    def test_system_access_token_comes_from_the_environment(self, workdir: Path) -> None:
        """The token is read at use time from the named variable; missing tells how to map it."""
        connection = self._connection(workdir, 'system_access_token_env = "MY_TOKEN"')

        assert connection.system_access_token({"MY_TOKEN": "value-from-env"}) == "value-from-env"
        with pytest.raises(ConfigError) as caught:
            connection.system_access_token({"SYSTEM_ACCESSTOKEN": "wrong-variable"})
        assert "MY_TOKEN is not set" in str(caught.value)
        assert "`env: MY_TOKEN: $(System.AccessToken)`" in str(caught.value)
        with pytest.raises(ConfigError, match="MY_TOKEN is empty"):
            connection.system_access_token({"MY_TOKEN": ""})


class TestOutputs:
    def test_preset_federated_token_path_defaults_next_to_the_file(self, workdir: Path) -> None:
        """A preset's federated token file defaults to <path stem>.federated-token."""
        loaded = load_config(write(workdir / "azauth.toml", EXTENDS))

        env_file = loaded.profile("leaf").outputs[-1]

        assert isinstance(env_file, EnvFileOutput)
        assert env_file.effective_federated_token_path == "out/b.federated-token"
        assert loaded.profile("leaf").federated_token_file_for("b") == "out/b.federated-token"
        assert loaded.profile("leaf").federated_token_file_for("a") == "out/a.jwt"

    def test_federated_token_file_may_be_shared_by_one_connection(self, workdir: Path) -> None:
        """An env file may keep its federated token in a federated_token_file output's file."""
        text = EXTENDS.replace(
            'preset = "azure-identity"',
            'preset = "azure-identity"\nfederated_token_path = "out/a.jwt"',
        )

        with pytest.raises(
            ConfigError, match=r"profiles\.leaf\.outputs\[0\]\.federated_token_path"
        ):
            load_config(write(workdir / "azauth.toml", text))
        same_connection = text.replace(
            'connection = "b"\npath = "out/b.env"', 'connection = "a"\npath = "out/b.env"'
        )
        assert load_config(write(workdir / "azauth.toml", same_connection)).profile("leaf")

    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            ({}, {"TOKEN", "JWT"}),
            ({"secret": False}, set()),
            ({"secret": True}, {"TOKEN", "JWT", "OPAQUE"}),
            ({"secret_variables": ["TENANT", "ARM_USE_OIDC"]}, {"TOKEN", "JWT", "TENANT", "ARM_USE_OIDC"}),
            ({"secret": True, "secret_variables": ["EXPIRES"]}, {"TOKEN", "JWT", "OPAQUE", "EXPIRES"}),
        ],
    )  # fmt: skip
    def test_secret_marks_secret_fields_and_never_public_values_unless_named(
        self, options: dict[str, Any], expected: set[str]
    ) -> None:
        """``secret = true`` never masks ``true``, numbers, GUIDs, paths or URLs by itself."""
        output = PipelineVariablesOutput(
            kind="pipeline_variables",
            preset="terraform",
            variables={
                "TOKEN": "access_token",
                "JWT": "oidc_token",
                "TENANT": "tenant_id",
                "EXPIRES": "expires_on",
                "OPAQUE": "scope",
            },
            **options,
        )
        values = {
            "TOKEN": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.sig",
            "JWT": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.sig2",
            "TENANT": "3f6c2a4e-8b1d-4c7a-9e25-6d0f1b8a7c43",
            "EXPIRES": "1795834640",
            "OPAQUE": "an opaque value that is long enough",
            "ARM_USE_OIDC": "true",
            "ARM_CLIENT_ID": "9a1e7b52-4c3d-4f8e-b6a0-2d5c8e1f3b74",
            "ARM_OIDC_TOKEN_FILE_PATH": "/home/vsts/work/_temp/prod.federated-token",
        }
        assert output.secret_names(values) == expected
        assert {"access_token", "oidc_token"} == SECRET_FIELDS

    def test_models_are_frozen(self) -> None:
        """Loaded models cannot be changed by accident."""
        output = FederatedTokenFileOutput(kind="federated_token_file", path="out/x.jwt")

        with pytest.raises(ValueError, match="frozen"):
            output.path = "elsewhere"  # type: ignore[misc]


class TestDocument:
    def test_digest_is_the_sha256_of_the_bytes(self, workdir: Path) -> None:
        """``digest`` hashes exactly the file's bytes."""
        path = write(workdir / "azauth.toml", BASIC)

        assert load_config(path).digest == hashlib.sha256(path.read_bytes()).hexdigest()

    def test_toml_and_yaml_give_the_same_model(self, workdir: Path) -> None:
        """One model for both syntaxes."""
        toml = write(workdir / "azauth.toml", BASIC)
        yaml = write(
            workdir / "azauth.yaml",
            f"""
            settings: {{concurrency: 3}}
            connections:
              prod: {{tenant_id: {TENANT}, client_id: {CLIENT}, service_connection_id: {SC}}}
            profiles:
              only:
                connections: [prod]
            """,
        )

        assert load_config(toml).config == load_config(yaml).config

    def test_example_suffix_is_looked_through(self, workdir: Path) -> None:
        """``azauth.toml.example`` is read as TOML."""
        path = write(workdir / "azauth.toml.example", BASIC)

        assert load_config(path).profile_names == ["only"]

    def test_non_utf8_file(self, workdir: Path) -> None:
        """Bytes that are not UTF-8 are reported with their offset."""
        path = workdir / "azauth.toml"
        path.write_bytes(b"version = 1\n# \xff\n")

        with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 14\)"):
            load_config(path)

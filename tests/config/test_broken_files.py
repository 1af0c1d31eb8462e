"""Broken profile files: each is refused with exit 3 and a message naming file, key path and fix.

Every case goes through the real command line, ``azauth validate --config FILE``: in-process via
``agent.cli.main.main`` for most, as a ``python -m agent`` subprocess for a few.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest

from agent.cli.main import main
from tests.support import azauth

PROD = """
[connections.prod]
tenant_id = "3f6c2a4e-8b1d-4c7a-9e25-6d0f1b8a7c43"
client_id = "9a1e7b52-4c3d-4f8e-b6a0-2d5c8e1f3b74"
service_connection_id = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"
"""
SHARED = """
[connections.shared]
tenant_id = "8e4a2c6d-0b9f-4e1a-a3c5-7d9b1f3e5a20"
client_id = "4f2b8d6a-1e3c-4a5b-9c7d-0e2f4a6b8c19"
service_connection_id = "e7a9c1b3-5d2f-4e8a-b0c4-6f1d3a5e7b92"
"""
CI = """
[profiles.ci]
connections = ["prod"]
"""
YAML_HEAD = """
connections:
  prod:
    tenant_id: 3f6c2a4e-8b1d-4c7a-9e25-6d0f1b8a7c43
    client_id: 9a1e7b52-4c3d-4f8e-b6a0-2d5c8e1f3b74
    service_connection_id: c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f
"""
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYyJ9.c2lnbmF0dXJlc2lnbmF0dXJl"


@dataclass(frozen=True)
class Case:
    """A broken file, the key path the error must name and a phrase of its expectation."""

    id: str
    text: str
    key_path: str
    expected: str
    name: str = "azauth.toml"


def _output(body: str, connections: str = '["prod"]') -> str:
    return PROD + SHARED + f"\n[profiles.ci]\nconnections = {connections}\n" + dedent(body)


CASES = [
    Case("unknown-top-level-key", PROD + '\n[profile.ci]\nconnections = ["prod"]\n', "profile",
         "did you mean 'profiles'"),
    Case("unknown-connection-key", PROD.replace("tenant_id", "tenantid") + CI,
         "connections.prod.tenantid", "did you mean 'tenant_id'"),
    Case("missing-tenant-id", PROD.replace('tenant_id = "3f6c2a4e-8b1d-4c7a-9e25-6d0f1b8a7c43"\n', "") + CI,
         "connections.prod.tenant_id", "missing required key"),
    Case("tenant-id-bad-characters", PROD.replace("3f6c2a4e-8b1d", "3f6c 2a4e/8b1d") + CI,
         "connections.prod.tenant_id", "a GUID or a domain name"),
    Case("client-id-not-a-string", PROD.replace('"9a1e7b52-4c3d-4f8e-b6a0-2d5c8e1f3b74"', "42") + CI,
         "connections.prod.client_id", "a string"),
    Case("unknown-cloud", PROD + 'cloud = "azure"\n' + CI, "connections.prod.cloud",
         "'public', 'usgovernment' or 'china'"),
    Case("cloud-and-authority", PROD + 'cloud = "public"\nauthority = "https://login.microsoftonline.com"\n' + CI,
         "connections.prod.authority", "either cloud"),
    Case("authority-plain-http", PROD + 'authority = "http://login.example.com"\n' + CI,
         "connections.prod.authority", "https URL"),
    Case("authority-with-query", PROD + 'authority = "https://login.example.com/?x=1"\n' + CI,
         "connections.prod.authority", "https URL"),
    Case("bad-access-token-env-name", PROD + 'system_access_token_env = "SYSTEM-ACCESSTOKEN"\n' + CI,
         "connections.prod.system_access_token_env", "a variable name"),
    Case("bad-allowed-tenant", PROD + 'additionally_allowed_tenants = ["a tenant"]\n' + CI,
         "connections.prod.additionally_allowed_tenants[0]", '"*"'),
    Case("connection-scope-without-default", PROD + 'scope = "https://management.azure.com"\n' + CI,
         "connections.prod.scope", "/.default"),
    Case("bad-connection-name", PROD.replace("[connections.prod]", '[connections."prod conn"]') + CI,
         'connections."prod conn"', "letters, digits"),
    Case("literal-system-access-token", PROD + 'system_access_token = "not-a-real-token-value"\n' + CI,
         "connections.prod.system_access_token", "system_access_token_env"),
    Case("literal-jwt-anywhere", PROD + f'\n[profiles.ci]\ndescription = "{JWT}"\nconnections = ["prod"]\n',
         "profiles.ci.description", "$(System.AccessToken)"),
    Case("version-two", "version = 2\n" + PROD + CI, "version", "1"),
    Case("version-boolean", "version = true\n" + PROD + CI, "version", "1"),
    Case("unknown-default-profile", 'default_profile = "cd"\n' + PROD + CI, "default_profile",
         "one of: ci"),
    Case("concurrency-zero", "[settings]\nconcurrency = 0\n" + PROD + CI, "settings.concurrency",
         "greater than or equal to 1"),
    Case("concurrency-as-string", '[settings]\nconcurrency = "8"\n' + PROD + CI,
         "settings.concurrency", "an integer"),
    Case("log-level-unknown", '[settings]\nlog_level = "verbose"\n' + PROD + CI,
         "settings.log_level", "'debug', 'info', 'warning' or 'error'"),
    Case("fail-fast-as-string", '[settings]\nfail_fast = "yes"\n' + PROD + CI,
         "settings.fail_fast", "true or false"),
    Case("no-profiles", PROD, "profiles", "at least one [profiles.NAME] table"),
    Case("profile-unknown-connection", PROD + '\n[profiles.ci]\nconnections = ["prd"]\n',
         "profiles.ci.connections[0]", "did you mean 'prod'"),
    Case("profile-without-connections", PROD + '\n[profiles.ci]\ndescription = "empty"\n',
         "profiles.ci.connections", "at least one connection"),
    Case("connection-listed-twice", PROD + '\n[profiles.ci]\nconnections = ["prod", "prod"]\n',
         "profiles.ci.connections[1]", "each once"),
    Case("extends-unknown", PROD + CI + '\n[profiles.cd]\nextends = "cii"\n',
         "profiles.cd.extends", "did you mean 'ci'"),
    Case("extends-cycle", PROD + '\n[profiles.a]\nextends = "b"\nconnections = ["prod"]\n'
         '\n[profiles.b]\nextends = "a"\n', "profiles.a.extends", "a -> b -> a"),
    Case("extends-itself", PROD + '\n[profiles.ci]\nextends = "ci"\nconnections = ["prod"]\n',
         "profiles.ci.extends", "ci -> ci"),
    Case("output-unknown-kind", _output('[[profiles.ci.outputs]]\nkind = "token_fil"\npath = "out/a"\n'),
         "profiles.ci.outputs[0].kind", "did you mean 'token_file'"),
    Case("output-missing-kind", _output('[[profiles.ci.outputs]]\npath = "out/a"\n'),
         "profiles.ci.outputs[0].kind", "token_file, federated_token_file, env_file, pipeline_variables"),
    Case("token-file-missing-path", _output('[[profiles.ci.outputs]]\nkind = "token_file"\n'),
         "profiles.ci.outputs[0].path", "missing required key"),
    Case("token-file-path-is-a-directory", _output('[[profiles.ci.outputs]]\nkind = "token_file"\npath = "out/"\n'),
         "profiles.ci.outputs[0].path", "not ending in a slash"),
    Case("token-file-unknown-format", _output('[[profiles.ci.outputs]]\nkind = "token_file"\npath = "out/a"\nformat = "yaml"\n'),
         "profiles.ci.outputs[0].format", "'raw' or 'json'"),
    Case("literal-access-token-in-output", _output('[[profiles.ci.outputs]]\nkind = "token_file"\npath = "out/a"\naccess_token = "abc"\n'),
         "profiles.ci.outputs[0].access_token", "never reads secrets"),
    Case("output-connection-not-in-profile", _output('[[profiles.ci.outputs]]\nkind = "token_file"\nconnection = "shared"\npath = "out/a"\n'),
         "profiles.ci.outputs[0].connection", "or add it to profiles.ci.connections"),
    Case("output-connection-ambiguous", _output('[[profiles.ci.outputs]]\nkind = "token_file"\npath = "out/a"\n', '["prod", "shared"]'),
         "profiles.ci.outputs[0].connection", "one of: prod, shared"),
    Case("env-file-without-preset-or-variables", _output('[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/a.env"\n'),
         "profiles.ci.outputs[0].variables", "at least one NAME = field entry"),
    Case("env-file-bad-variable-name", _output('[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/a.env"\nvariables = { 1BAD = "tenant_id" }\n'),
         "profiles.ci.outputs[0].variables.1BAD", "not starting with a digit"),
    Case("env-file-unknown-field", _output('[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/a.env"\nvariables = { MY_TOKEN = "acess_token" }\n'),
         "profiles.ci.outputs[0].variables.MY_TOKEN", "did you mean 'access_token'"),
    Case("env-file-unknown-dialect", _output('[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/a.env"\npreset = "terraform"\ndialect = "bash"\n'),
         "profiles.ci.outputs[0].dialect", "'dotenv', 'docker', 'systemd', 'sh' or 'pwsh'"),
    Case("env-file-unknown-preset", _output('[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/a.env"\npreset = "terraform-cloud"\n'),
         "profiles.ci.outputs[0].preset", "'terraform', 'pulumi' or 'azure-identity'"),
    Case("subscription-variable-without-subscription", _output('[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/a.env"\nvariables = { SUB = "subscription_id" }\n'),
         "profiles.ci.outputs[0].variables.SUB", "subscription_id set in [connections.prod]"),
    Case("output-scope-without-default", _output('[[profiles.ci.outputs]]\nkind = "token_file"\npath = "out/a"\nscope = "https://vault.azure.net"\n'),
         "profiles.ci.outputs[0].scope", "/.default"),
    Case("pipeline-variables-secret-as-string", _output('[[profiles.ci.outputs]]\nkind = "pipeline_variables"\npreset = "terraform"\nsecret = "true"\n'),
         "profiles.ci.outputs[0].secret", "true or false"),
    Case("two-outputs-one-path", _output('[[profiles.ci.outputs]]\nkind = "token_file"\npath = "out/a.token"\n'
                                         '[[profiles.ci.outputs]]\nkind = "token_file"\npath = "./out/../out/a.token"\n'),
         "profiles.ci.outputs[1].path", "a different path for each output"),
    Case("preset-federated-file-collides", _output('[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/tf.env"\npreset = "terraform"\n'
                                                   '[[profiles.ci.outputs]]\nkind = "token_file"\npath = "out/tf.federated-token"\n'),
         "profiles.ci.outputs[1].path", "also written by profiles.ci.outputs[0].federated_token_path"),
    Case("inherited-output-collides", PROD + CI + '[[profiles.ci.outputs]]\nkind = "token_file"\npath = "out/a"\n'
         '\n[profiles.cd]\nextends = "ci"\n[[profiles.cd.outputs]]\nkind = "federated_token_file"\npath = "out/a"\n',
         "profiles.cd.outputs[0].path", "also written by profiles.ci.outputs[0].path"),
    Case("yaml-settings-not-a-table", YAML_HEAD + "settings: 5\nprofiles:\n  ci:\n    connections: [prod]\n",
         "settings", "a table", "azauth.yaml"),
    Case("yaml-outputs-not-a-list", YAML_HEAD + "profiles:\n  ci:\n    connections: [prod]\n    outputs:\n      kind: token_file\n",
         "profiles.ci.outputs", "a list", "azauth.yml"),
    Case("yaml-typo-in-output", YAML_HEAD + "profiles:\n  ci:\n    connections: [prod]\n    outputs:\n"
         "      - kind: federated_token_file\n        pth: out/prod.jwt\n",
         "profiles.ci.outputs[0].pth", "did you mean 'path'", "azauth.yaml"),
    Case("yaml-literal-token", YAML_HEAD + "    token: abcdefgh\nprofiles:\n  ci:\n    connections: [prod]\n",
         "connections.prod.token", "system_access_token_env", "azauth.yaml"),
]  # fmt: skip

SUBPROCESS_CASES = {
    "unknown-connection-key",
    "extends-cycle",
    "output-connection-ambiguous",
    "literal-system-access-token",
    "yaml-typo-in-output",
}


def _check(err: str, path: Path, case: Case) -> None:
    assert "Traceback" not in err
    assert f"{path}: {case.key_path}: " in err
    assert case.expected in err
    assert err.startswith("azauth: error: ")
    assert err.count("\n") == 1, "one problem, one line"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_broken_file_is_refused(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``azauth validate`` exits 3 and names the file, the exact key path and the expectation."""
    path = tmp_path / case.name
    path.write_text(case.text, encoding="utf-8")

    if case.id in SUBPROCESS_CASES:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZAUTH_")}
        proc = azauth("validate", "--config", str(path), env=env, timeout=60)
        assert proc.returncode == 3, proc.stderr
        assert proc.stdout == ""
        _check(proc.stderr, path, case)
        return
    rc = main(["validate", "--config", str(path)])

    captured = capsys.readouterr()
    assert rc == 3
    assert captured.out == ""
    _check(captured.err, path, case)


def test_there_are_at_least_thirty_distinct_cases() -> None:
    """The suite covers at least 30 distinct mistakes, each at its own key path or message."""
    assert len({case.id for case in CASES}) == len(CASES) >= 30
    assert len({case.text for case in CASES}) == len(CASES)


def test_secret_value_is_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A literal token is named by its key path; its value never reaches the terminal."""
    path = tmp_path / "azauth.toml"
    path.write_text(PROD + f'system_access_token = "{JWT}"\n' + CI, encoding="utf-8")

    rc = main(["validate", "--config", str(path)])

    err = capsys.readouterr().err
    assert rc == 3
    assert JWT not in err
    assert "connections.prod.system_access_token" in err


@pytest.mark.parametrize(
    ("name", "text", "position", "parser"),
    [
        ("azauth.toml", PROD + CI + "\n[profiles.ci.outputs\n", "line 10, column 21", "invalid TOML"),
        ("azauth.toml", PROD + 'client_id = "again"\n' + CI, "line 6, column", "invalid TOML"),
        ("azauth.yaml", YAML_HEAD + "profiles:\n  ci:\n    connections: [prod\n", "line 10, column 1", "invalid YAML"),
        ("azauth.yaml", YAML_HEAD + "connections: {}\n", "line 7, column 1", "duplicate key 'connections' (first on line 2)"),
        ("azauth.yml", "- just\n- a list\n", "top level", "not a table"),
    ],
    ids=["toml-unclosed-table", "toml-duplicate-key", "yaml-unclosed-flow", "yaml-duplicate-key", "yaml-list"],
)  # fmt: skip
def test_syntax_error_names_line_and_column(
    name: str,
    text: str,
    position: str,
    parser: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A syntax error names the file, the line and column, and what the parser said."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")

    rc = main(["validate", "--config", str(path)])

    err = capsys.readouterr().err
    assert rc == 3
    assert "Traceback" not in err
    assert f"azauth: error: {path}: " in err
    assert position in err
    assert parser in err


def test_several_problems_are_listed_one_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Independent mistakes are reported together, each on its own line with its key path."""
    path = tmp_path / "azauth.toml"
    path.write_text(
        '[settings]\nconcurrency = 0\nlog_format = "xml"\n'
        + PROD.replace("client_id", "clientid")
        + CI,
        encoding="utf-8",
    )

    rc = main(["validate", "--config", str(path)])

    err = capsys.readouterr().err
    assert rc == 3
    lines = err.splitlines()
    assert lines[0] == f"azauth: error: {path}: 3 problems:"
    assert {line.split(":")[0].strip() for line in lines[1:]} == {
        "settings.concurrency",
        "settings.log_format",
        "connections.prod.clientid",
    }
    assert "did you mean 'client_id'? it is required" in err


def test_missing_explicit_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--config`` naming a missing file is a configuration error, not a silent fallback."""
    path = tmp_path / "nope.toml"

    rc = main(["validate", "--config", str(path)])

    err = capsys.readouterr().err
    assert rc == 3
    assert f"{path}: no such file (named by --config)" in err


def test_unsupported_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only .toml, .yaml and .yml files are read; the error says so."""
    path = tmp_path / "azauth.json"
    path.write_text("{}", encoding="utf-8")

    rc = main(["validate", "--config", str(path)])

    err = capsys.readouterr().err
    assert rc == 3
    assert "unsupported file type '.json'" in err
    assert "a .toml, .yaml or .yml file" in err

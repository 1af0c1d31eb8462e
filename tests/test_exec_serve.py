"""`azauth exec --serve`: the command gets tokens from the managed-identity server, via azure-identity."""

from __future__ import annotations

import json

from tests.support import CLIENT, PROD_CI, SC, azauth, environ, python_program

PROFILE = PROD_CI


def exec_emulated(tmp_path, *options, program, env=None):
    """``azauth exec --emulate OPTIONS -- python tests/programs/PROGRAM ...`` in ``tmp_path``."""
    return azauth("exec", "--emulate", *options, "--", *program, cwd=tmp_path, env=env, timeout=90)


def test_command_gets_tokens_from_the_server(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    result = exec_emulated(
        tmp_path, "--serve", "--no-preset", program=python_program("managed_identity_token.py")
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"https://vault.azure.net {CLIENT} True", "False"]


def test_imds_endpoint_is_offered_only_on_request(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    show = python_program("show_environment.py", "ARM_", "MSI_")
    plain = exec_emulated(tmp_path, "--serve", program=show)
    imds = exec_emulated(tmp_path, "--serve", "--imds", program=show)

    seen = [json.loads(plain.stdout), json.loads(imds.stdout)]
    shown = [(v.get("ARM_USE_MSI"), "ARM_MSI_ENDPOINT" in v, "MSI_SECRET" in v) for v in seen]
    assert shown[0] == (None, False, True), plain.stderr
    assert shown[1] == ("true", True, True), imds.stderr


def _exec_env(tmp_path, *options, extra_env=None):
    show = python_program("show_environment.py", "ARM_", "SYSTEM_", "ACTIONS_")
    result = exec_emulated(tmp_path, *options, program=show, env=environ(**(extra_env or {})))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_terraform_preset_takes_the_request_flow_when_served(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    ambient = {
        "ARM_CLIENT_SECRET": "ambient-secret",
        "ARM_OIDC_TOKEN": "ambient-jwt",
        "ARM_USE_MSI": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": "https://example.invalid/",
    }
    served = _exec_env(tmp_path, "--serve", "--preset", "terraform", extra_env=ambient)

    assert served["ARM_OIDC_REQUEST_URL"].startswith("http://127.0.0.1:")
    assert served["ARM_OIDC_REQUEST_URL"].endswith("/oidc/token")
    assert served["ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID"] == SC
    assert served["ARM_USE_OIDC"] == "true"
    assert len(served["ARM_OIDC_REQUEST_TOKEN"]) >= 40
    # No file, no System.AccessToken, nothing ambient that go-azure-sdk would pick first.
    assert "ARM_OIDC_TOKEN_FILE_PATH" not in served
    assert "SYSTEM_ACCESSTOKEN" not in served
    for name in ambient:
        assert name not in served

    plain = _exec_env(tmp_path, "--preset", "terraform", extra_env=ambient)
    assert plain["ARM_OIDC_TOKEN_FILE_PATH"].endswith("prod.federated-token")
    assert "ARM_OIDC_REQUEST_URL" not in plain
    assert "ARM_CLIENT_SECRET" not in plain  # the preset owns its consumer's choice either way


def test_default_preset_with_a_server_sends_default_azure_credential_to_it(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    result = exec_emulated(
        tmp_path,
        "--serve",
        program=python_program("default_azure_credential_token.py"),
        env=environ(AZURE_CLIENT_SECRET="ambient"),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [CLIENT, "[]"]

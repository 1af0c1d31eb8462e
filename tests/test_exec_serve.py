"""`azauth exec --serve`: the command gets tokens from the managed-identity server, via azure-identity."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support import CLIENT, PROD_CI, SC

PROFILE = PROD_CI

CHILD = textwrap.dedent(
    """
    import os
    from azure.identity import ManagedIdentityCredential
    from agent.jwt import unverified_claims
    token = ManagedIdentityCredential().get_token("https://vault.azure.net/.default")
    claims = unverified_claims(token.token)
    print(claims["aud"], claims["appid"], os.environ["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:"))
    print("SYSTEM_ACCESSTOKEN" in os.environ)
    """
)


def test_command_gets_tokens_from_the_server(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "exec",
            "--emulate",
            "--serve",
            "--no-preset",
            "--",
            sys.executable,
            "-c",
            CHILD,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"https://vault.azure.net {CLIENT} True", "False"]


def test_imds_endpoint_is_offered_only_on_request(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    show = "import os; print(os.environ.get('ARM_USE_MSI'), 'ARM_MSI_ENDPOINT' in os.environ, 'MSI_SECRET' in os.environ)"
    plain = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "exec",
            "--emulate",
            "--serve",
            "--",
            sys.executable,
            "-c",
            show,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    imds = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "exec",
            "--emulate",
            "--serve",
            "--imds",
            "--",
            sys.executable,
            "-c",
            show,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert plain.stdout.strip() == "None False True", plain.stderr
    assert imds.stdout.strip() == "true True True", imds.stderr


SHOW_ARM = (
    "import os, json; print(json.dumps({k: v for k, v in os.environ.items() "
    "if k.startswith(('ARM_', 'SYSTEM_', 'ACTIONS_'))}))"
)


def _exec_env(tmp_path, *options, extra_env=None):
    import json
    import os

    env = {**os.environ, **(extra_env or {})}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "exec",
            "--emulate",
            *options,
            "--",
            sys.executable,
            "-c",
            SHOW_ARM,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=env,
    )
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


DAC_CHILD = textwrap.dedent(
    """
    import os
    from azure.identity import DefaultAzureCredential
    from agent.jwt import unverified_claims
    token = DefaultAzureCredential().get_token("https://vault.azure.net/.default")
    print(unverified_claims(token.token)["appid"])
    print(sorted(k for k in ("AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_SECRET", "SYSTEM_ACCESSTOKEN") if k in os.environ))
    """
)


def test_default_preset_with_a_server_sends_default_azure_credential_to_it(tmp_path):
    import os

    (tmp_path / "azauth.toml").write_text(PROFILE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "exec",
            "--emulate",
            "--serve",
            "--",
            sys.executable,
            "-c",
            DAC_CHILD,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, "AZURE_CLIENT_SECRET": "ambient"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [CLIENT, "[]"]

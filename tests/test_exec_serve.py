"""`azauth exec --serve`: the command gets tokens from the managed-identity server, via azure-identity."""

from __future__ import annotations

import subprocess
import sys
import textwrap

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SC = "00000000-aaaa-bbbb-cccc-000000000001"

PROFILE = f"""
[connections.prod]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
service_connection_id = "{SC}"

[profiles.ci]
connections = ["prod"]
"""

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

"""Real Terraform (azurerm state backend) outlives its OIDC token under `azauth exec --serve`.

The backend is built into Terraform, so no provider is downloaded; `terraform_data` and the
`local-exec` provisioner are built in too. Terraform talks to
`https://azauthstate.blob.core.windows.net` and `https://login.microsoftonline.com` through a
loopback CONNECT tunnel that leads to the emulator (whose certificate names those hosts), and to
azauth's OIDC request endpoint directly: nothing leaves the machine.

The emulator's OIDC tokens live 8 s and its access tokens 8 s; the apply sleeps 11 s between
locking the state and writing it. With the request flow Terraform asks azauth for a fresh OIDC
token before each exchange and finishes; with the token-file flow (no server) it re-posts the
assertion it read at start and Entra refuses it (AADSTS700024), which shows the test bites.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support import AZAUTH, CLIENT, SC, SUBSCRIPTION, TENANT, toml_connection

LIFETIME = 8
SLEEP = 11

TERRAFORM = shutil.which("terraform")
pytestmark = [
    pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH (1.11.4 expected)"),
    pytest.mark.slow,
    pytest.mark.timeout(240),
]

PROFILE = f"""
{toml_connection("prod")}subscription_id = "{SUBSCRIPTION}"

[profiles.ci]
connections = ["prod"]
"""

MAIN_TF = f"""
terraform {{
  backend "azurerm" {{
    storage_account_name = "azauthstate"
    container_name       = "tfstate"
    key                  = "ci.tfstate"
    use_azuread_auth     = true
  }}
}}

resource "terraform_data" "wait" {{
  provisioner "local-exec" {{
    command = "sleep {SLEEP}"
  }}
}}
"""

SCRIPT = (
    "env > child.env && terraform init -no-color -input=false "
    "&& terraform apply -no-color -input=false -auto-approve"
)


@pytest.fixture
def lifetime():
    return LIFETIME


@pytest.fixture
def tf(world):
    world.emu.add_connection(SC, TENANT, CLIENT)
    world.emu.blob.create_container("azauthstate", "tfstate")
    (world.workdir / "azauth.toml").write_text(PROFILE)
    (world.workdir / "main.tf").write_text(MAIN_TF)
    return world


def terraform_env(world, **extra):
    """A step's environment for Terraform: no version check, no CLI config, no prompts."""
    return world.env(
        CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_CLI_CONFIG_FILE=os.devnull, **extra
    )


async def run_exec(run, world, *options, preset="terraform", script=SCRIPT):
    return await run(
        *AZAUTH, "exec", *options, "--preset", preset, "--", "sh", "-c",
        script, cwd=world.workdir, env=terraform_env(world),
    )  # fmt: skip


async def test_apply_longer_than_the_oidc_token_through_the_request_flow(tf, run):
    emu, tunnel, workdir = tf.emu, tf.tunnel, tf.workdir

    code, output = await run_exec(run, tf, "--serve")

    assert code == 0, output
    assert "Apply complete! Resources: 1 added" in output
    # The state is in the emulated blob, written under a lease that was released.
    [(name, blob)] = emu.blob.containers[("azauthstate", "tfstate")].items()
    assert name == "ci.tfstate"
    assert b'"terraform_data"' in blob.data
    assert blob.lease_id is None
    assert emu.blob.counts["lease"] >= 4
    assert emu.blob.rejected_tokens == 0
    # Terraform asked azauth for OIDC tokens well after the first one had expired...
    oidc = [r for r in emu.requests if r.endpoint == "oidc"]
    assert oidc[-1].time - oidc[0].time > LIFETIME
    # ...and every request that reached Azure DevOps came from azauth, not from Terraform.
    assert all(r.headers["User-Agent"].startswith("azauth/") for r in oidc)
    assert set(tunnel.hosts) == {
        "azauthstate.blob.core.windows.net:443",
        "login.microsoftonline.com:443",
    }
    child = dict(
        line.split("=", 1)
        for line in (workdir / "child.env").read_text().splitlines()
        if "=" in line
    )
    assert "SYSTEM_ACCESSTOKEN" not in child
    assert emu.system_access_token not in (workdir / "child.env").read_text()
    assert "ARM_OIDC_TOKEN_FILE_PATH" not in child
    assert child["ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID"] == SC
    assert child["ARM_OIDC_REQUEST_URL"].endswith("/oidc/token")


async def test_the_token_file_flow_goes_stale_in_the_same_apply(tf, run):
    code, output = await run_exec(run, tf)

    assert code != 0
    assert "AADSTS700024" in output


async def test_a_later_step_uses_the_background_server(tf, run):
    """Pipeline shape: step 1 starts the server, step 2 runs Terraform with the ##vso variables."""
    state = tf.workdir / "agent-temp" / "serve.json"
    azauth = (*AZAUTH, "serve")
    code, out = await run(
        *azauth, "--background", "--preset", "terraform", "--state-file", str(state),
        cwd=tf.workdir, env=tf.env(),
    )  # fmt: skip
    assert code == 0, out
    variables = {}
    for line in out.splitlines():
        if line.startswith("##vso[task.setvariable variable="):
            head, value = line.split("]", 1)
            variables[head.split("variable=", 1)[1].split(";", 1)[0]] = value
    try:
        # Step 2 has no System.AccessToken and no SYSTEM_OIDCREQUESTURI: only the variables.
        code, output = await run(
            "sh", "-c", SCRIPT, cwd=tf.workdir, env=terraform_env(tf, pipeline=False, **variables)
        )
        assert code == 0, output
        assert "Apply complete! Resources: 1 added" in output
        assert tf.emu.blob.rejected_tokens == 0
    finally:
        await run(*azauth, "--stop", "--state-file", str(state), cwd=tf.workdir, env=tf.env())
    assert not state.exists()


async def test_the_github_shape_with_the_pulumi_preset_url(tf, run):
    """go-azure-sdk's GitHub-style authorizer (no service connection id) on the pulumi preset's URL.

    pulumi-azure-native is not available here; Terraform's backend speaks the same GitHub shape
    when `ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID` is absent, so `terraform init` with the
    `pulumi` preset's variables exercises that URL (which already holds a query) and the GET
    answer `{"value"}` with a real client.
    """
    code, output = await run_exec(
        run,
        tf,
        "--serve",
        preset="pulumi",
        script="env > child.env && terraform init -no-color -input=false",
    )

    assert code == 0, output
    assert "Successfully configured the backend" in output
    child = (tf.workdir / "child.env").read_text()
    assert "ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID" not in child
    assert "/oidc/token?api-version=2.0&serviceConnectionId=" in child
    assert tf.emu.blob.counts.get("put", 0) >= 1

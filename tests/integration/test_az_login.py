"""Real azure-cli stays signed in under `azauth exec --az-login`, past every token's lifetime.

az is the one `.ci/run` installs in `.venv/azure-cli` (kept apart from our own dependencies), or
an `az` on PATH. It reaches `https://management.azure.com` through a loopback CONNECT tunnel to
the emulator, and azauth's managed-identity endpoint directly. OIDC and access tokens live 8 s;
the command sleeps 10 s between `az account show` and `az account get-access-token`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support import AZAUTH, CLIENT, CLIENT2, ROOT, SC, SC2, TENANT, toml_connection

SUB = "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d01"
SUB2 = "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d02"
LIFETIME = 8


def _find_az() -> str | None:
    bundled = ROOT / ".venv" / "azure-cli" / "bin" / "az"
    return str(bundled) if bundled.exists() else shutil.which("az")


AZ = _find_az()
pytestmark = [
    pytest.mark.skipif(
        AZ is None, reason="azure-cli is not installed (.ci/run puts it in .venv/azure-cli)"
    ),
    pytest.mark.slow,
    pytest.mark.timeout(240),
]

PROFILE = f"""
{toml_connection("prod")}subscription_id = "{SUB}"

{toml_connection("other", client=CLIENT2, service_connection=SC2)}subscription_id = "{SUB2}"

[profiles.ci]
connections = ["prod", "other"]
"""

SCRIPT = f"""
set -e
echo "$AZURE_CONFIG_DIR" > config-dir.txt
stat -c %a "$AZURE_CONFIG_DIR" > config-mode.txt
az account show -o json > show.json
sleep {LIFETIME + 2}
az account get-access-token -o json > token.json
az account get-access-token --subscription {SUB2} -o json > token2.json
"""


@pytest.fixture
def lifetime():
    return LIFETIME


@pytest.fixture
def az(world):
    world.emu.add_connection(SC, TENANT, CLIENT)
    world.emu.add_connection(SC2, TENANT, CLIENT2)
    world.emu.arm.add_subscription(SUB, TENANT, [CLIENT])
    world.emu.arm.add_subscription(SUB2, TENANT, [CLIENT2])
    (world.workdir / "azauth.toml").write_text(PROFILE)
    return world


def az_exec(run, world, *options, path=None):
    """``azauth exec --az-login OPTIONS`` with az (or only ``path``) on PATH."""
    path = path or f"{Path(AZ).parent}{os.pathsep}{os.environ['PATH']}"
    return run(
        *AZAUTH, "exec", "--az-login", *options,
        cwd=world.workdir, env=world.env(PATH=path),
    )  # fmt: skip


async def test_az_stays_signed_in_with_two_connections(az, run):
    emu, tunnel, workdir = az.emu, az.tunnel, az.workdir

    code, output = await az_exec(
        run, az, "--connection", "prod", "--no-preset", "--", "sh", "-c", SCRIPT
    )

    assert code == 0, output
    show = json.loads((workdir / "show.json").read_text())
    assert (show["id"], show["tenantId"], show["isDefault"]) == (SUB, TENANT, True)
    assert show["user"]["assignedIdentityInfo"] == f"MSIClient-{CLIENT}"
    token = json.loads((workdir / "token.json").read_text())
    claims = emu.verify_access_token(token["accessToken"])  # unexpired, after the sleep
    assert claims["appid"] == CLIENT
    token2 = json.loads((workdir / "token2.json").read_text())
    assert emu.verify_access_token(token2["accessToken"])["appid"] == CLIENT2
    # Both tokens were minted after the first OIDC token had expired: az never went stale.
    oidc = [r for r in emu.requests if r.endpoint == "oidc"]
    assert oidc[-1].time - oidc[0].time > LIFETIME
    # One private config dir, gone afterwards; az contacted only ARM (no version check,
    # no telemetry), and both identities listed their subscriptions.
    config_dir = Path((workdir / "config-dir.txt").read_text().strip())
    assert (workdir / "config-mode.txt").read_text().strip() == "700"
    assert not config_dir.exists()
    assert not config_dir.parent.exists()
    assert set(tunnel.hosts) == {"management.azure.com:443"}
    assert {appid for _, _, appid in emu.arm.requests} == {CLIENT, CLIENT2}
    assert emu.system_access_token not in output


async def test_missing_az_is_a_clear_error(az, run, tmp_path):
    code, output = await az_exec(
        run, az, "--connection", "prod", "--", "true", path=str(tmp_path / "empty-bin")
    )

    assert code == 2, output
    assert "--az-login: the Azure CLI (az) is not on PATH" in output
    assert "Traceback" not in output


async def test_sovereign_cloud_is_selected(az, run):
    tunnel = az.tunnel
    (az.workdir / "azauth.toml").write_text(
        f"""
{toml_connection("gov")}subscription_id = "{SUB}"
cloud = "usgovernment"

[profiles.ci]
connections = ["gov"]
"""
    )
    script = "az cloud show --query name -o tsv && az account show --query environmentName -o tsv"

    code, output = await az_exec(run, az, "--no-preset", "--", "sh", "-c", script)

    assert code == 0, output
    assert output.splitlines()[-2:] == ["AzureUSGovernment", "AzureUSGovernment"]
    assert set(tunnel.hosts) == {"management.usgovcloudapi.net:443"}

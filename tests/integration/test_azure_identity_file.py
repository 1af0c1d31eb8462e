"""azure-identity (Python) with a federated token file vs. the token server, past the OIDC lifetime.

`WorkloadIdentityCredential` caches what it read from `AZURE_FEDERATED_TOKEN_FILE` for 600 s
(azure-identity 1.27, `TokenFileMixin`): a new exchange within ten minutes of the last read re-posts
the old assertion even though `azauth exec` has put a fresh one in the file. With Azure DevOps
tokens living about ten minutes that is AADSTS700024. `ManagedIdentityCredential` under
`azauth exec --serve` asks the server each time and does not go stale. OIDC and access tokens live
6 s here; the child asks for one scope, sleeps past both lifetimes, then asks for another.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from tests.support import CLIENT, SC, TENANT

LIFETIME = 6

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHILD = textwrap.dedent(
    f"""
    import base64, json, os, sys, time
    from azure.identity import ManagedIdentityCredential, WorkloadIdentityCredential
    credential = ManagedIdentityCredential() if sys.argv[1] == "mi" else WorkloadIdentityCredential()
    credential.get_token("https://vault.azure.net/.default")
    time.sleep({LIFETIME + 2})
    if sys.argv[1] == "file":
        payload = open(os.environ["AZURE_FEDERATED_TOKEN_FILE"]).read().split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        print("file-fresh", claims["exp"] > time.time())
    try:
        credential.get_token("https://storage.azure.com/.default")
        print("second-token ok")
    except Exception as exc:
        print("second-token", "AADSTS700024" if "AADSTS700024" in str(exc) else type(exc).__name__)
    """
)


@pytest.fixture
def lifetime():
    return LIFETIME


async def run_child(world, run, *options, mode):
    world.emu.add_connection(SC, TENANT, CLIENT)
    (world.workdir / "azauth.toml").write_text(
        f'[connections.prod]\ntenant_id = "{TENANT}"\nclient_id = "{CLIENT}"\n'
        f'service_connection_id = "{SC}"\n[profiles.ci]\nconnections = ["prod"]\n'
    )
    code, output = await run(
        sys.executable, "-m", "agent", "exec", *options, "--", sys.executable, "-c", CHILD, mode,
        cwd=world.workdir, env=world.env(),
    )  # fmt: skip
    assert code == 0, output
    return [line for line in output.splitlines() if line.startswith(("file-fresh", "second-token"))]


async def test_the_file_is_fresh_but_workload_identity_credential_reuses_its_read(world, run):
    lines = await run_child(world, run, mode="file")
    assert lines == ["file-fresh True", "second-token AADSTS700024"]


async def test_managed_identity_through_the_server_does_not_go_stale(world, run):
    lines = await run_child(world, run, "--serve", "--no-preset", mode="mi")
    assert lines == ["second-token ok"]

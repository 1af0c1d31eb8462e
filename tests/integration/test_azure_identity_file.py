"""azure-identity (Python) with a federated token file vs. the token server, past the OIDC lifetime.

`WorkloadIdentityCredential` caches what it read from `AZURE_FEDERATED_TOKEN_FILE` for 600 s
(azure-identity 1.27, `TokenFileMixin`): a new exchange within ten minutes of the last read re-posts
the old assertion even though `azauth exec` has put a fresh one in the file. With Azure DevOps
tokens living about ten minutes that is AADSTS700024. `ManagedIdentityCredential` under
`azauth exec --serve` asks the server each time and does not go stale. OIDC and access tokens live
6 s here; the child asks for one scope, sleeps past both lifetimes, then asks for another.
"""

from __future__ import annotations

import pytest

from tests.support import AZAUTH, CLIENT, PROD_CI, SC, TENANT, python_program

LIFETIME = 6

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def lifetime():
    return LIFETIME


async def run_child(world, run, *options, mode):
    world.emu.add_connection(SC, TENANT, CLIENT)
    (world.workdir / "azauth.toml").write_text(PROD_CI)
    child = python_program("second_token_after_sleep.py", mode, str(LIFETIME + 2))
    code, output = await run(
        *AZAUTH, "exec", *options, "--", *child, cwd=world.workdir, env=world.env()
    )
    assert code == 0, output
    return [line for line in output.splitlines() if line.startswith(("file-fresh", "second-token"))]


async def test_the_file_is_fresh_but_workload_identity_credential_reuses_its_read(world, run):
    lines = await run_child(world, run, mode="file")
    assert lines == ["file-fresh True", "second-token AADSTS700024"]


async def test_managed_identity_through_the_server_does_not_go_stale(world, run):
    lines = await run_child(world, run, "--serve", "--no-preset", mode="mi")
    assert lines == ["second-token ok"]

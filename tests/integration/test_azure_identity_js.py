"""azure-identity for JavaScript (@azure/identity 4, from npm) against azauth's token server.

`.ci/run` installs it into `.venv/node` when npm is on the machine; otherwise this skips. The
script (`js/identity_clients.js`) runs under `azauth exec --emulate --serve`: a
ManagedIdentityCredential token, a ClientAssertionCredential whose callback asks the OIDC
request endpoint in the GitHub shape, and AzurePipelinesCredential, which refuses the endpoint's
`http://` URL (its request has `allowInsecureConnection` false and no option to change it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support import CLIENT, CLIENT2, PROD_OTHER_CI, ROOT, SC2, TENANT, azauth

MODULES = ROOT / ".venv" / "node" / "node_modules"
SCRIPT = Path(__file__).with_name("js") / "identity_clients.js"

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (MODULES / "@azure" / "identity").is_dir(),
        reason="@azure/identity is not installed (.ci/run puts it in .venv/node)",
    ),
    pytest.mark.timeout(120),
]

PROFILE = PROD_OTHER_CI


def test_javascript_clients_against_the_server(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "NODE_"))},
        "NODE_PATH": str(MODULES),
        "TEST_TENANT": TENANT,
        "TEST_CLIENT": CLIENT,
        "TEST_CLIENT2": CLIENT2,
        "TEST_SC2": SC2,
    }
    result = azauth(
        "exec", "--emulate", "--serve", "--no-preset", "--connection", "prod", "--",
        "sh", "-c", f'NODE_EXTRA_CA_CERTS="$SSL_CERT_FILE" exec node "{SCRIPT}"',
        cwd=tmp_path, env=env, timeout=90,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [CLIENT, CLIENT2, "pipelines refuses http"]

"""The real kubectl with azauth as its exec credential plugin, against a loopback HTTPS server."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.testing._tls import create_tls_material
from agent.testing.emulator import Emulator
from tests.support import CLIENT, toml_connection

# The AKS AAD server application: the audience of tokens for AKS clusters with Entra auth.
AKS = "6dae42f8-4368-4678-94ff-3960e28e3630"
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-azauth-test",
    "platform": "linux/amd64",
}
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

PROFILE = f"""
{toml_connection("aks")}scope = "{AKS}/.default"

[profiles.deploy]
connections = ["aks"]
"""


class _ApiServer(BaseHTTPRequestHandler):
    """Answers /version to a request bearing an access token the emulator issued for AKS."""

    emulator: Emulator
    seen: list[tuple[str, str]]

    def do_GET(self) -> None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise ValueError("no bearer token")
            claims = self.emulator.verify_access_token(token, audience=AKS)
        except ValueError:
            self.seen.append(("401", self.path))
            self._send(
                401, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401}
            )
            return
        self.seen.append((f"ok:{claims['appid']}", self.path))
        if self.path.split("?")[0] == "/version":
            self._send(200, VERSION)
        else:
            self._send(
                404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
            )

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_server(
    connected_emulator: Emulator, tmp_path: Path
) -> Iterator[tuple[str, Path, list[tuple[str, str]]]]:
    """A loopback HTTPS "API server"; yields its URL, its CA file and the requests it saw."""
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir(mode=0o700)
    material = create_tls_material(tls_dir)
    seen: list[tuple[str, str]] = []
    handler = type("Handler", (_ApiServer,), {"emulator": connected_emulator, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = material.server_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", material.ca_file, seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def kubeconfig(
    api_server: tuple[str, Path, list[tuple[str, str]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A kubeconfig whose user runs `azauth token --output exec-credential`."""
    url, ca_file, _ = api_server
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # kubectl's ~/.kube cache stays in the test
    profile = tmp_path / "azauth.toml"
    profile.write_text(PROFILE)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": url, "certificate-authority": str(ca_file)}}
        ],
        "users": [
            {
                "name": "azauth",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": sys.executable,
                        "args": ["-m", "agent", "token", "--output", "exec-credential"],
                        "env": [
                            {"name": "AZAUTH_CONFIG", "value": str(profile)},
                            {"name": "AZAUTH_CACHE_DIR", "value": str(tmp_path / "cache")},
                        ],
                        "interactiveMode": "Never",
                        "provideClusterInfo": False,
                    }
                },
            }
        ],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "azauth"}}],
        "current-context": "test",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config, indent=2))
    return path


async def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    """Run kubectl without blocking the emulator's event loop."""
    assert KUBECTL is not None
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        [KUBECTL, *args], process.returncode, out.decode(), err.decode()
    )


class TestKubectl:
    async def test_get_raw_version(
        self,
        connected_emulator: Emulator,
        api_server: tuple[str, Path, list[tuple[str, str]]],
        kubeconfig: Path,
    ) -> None:
        """kubectl runs azauth, sends its token, and the server accepts it; the next call is cached."""
        _, _, seen = api_server

        first = await kubectl("--kubeconfig", str(kubeconfig), "get", "--raw", "/version")
        second = await kubectl("--kubeconfig", str(kubeconfig), "get", "--raw", "/version")

        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout) == VERSION
        assert second.returncode == 0, second.stderr
        # (kubectl from the Google Cloud SDK first asks /version?timeout=5s to pick its binary.)
        assert [path for _, path in seen].count("/version") == 2
        assert {outcome for outcome, _ in seen} == {f"ok:{CLIENT}"}
        assert connected_emulator.counts == {"oidc": 1, "token": 1}

    async def test_refused_system_access_token(
        self,
        connected_emulator: Emulator,
        api_server: tuple[str, Path, list[tuple[str, str]]],
        kubeconfig: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """When azauth cannot get a token, kubectl fails and shows azauth's error line."""
        _, _, seen = api_server
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "this-is-not-the-job-token-0123456789")

        result = await kubectl("--kubeconfig", str(kubeconfig), "get", "--raw", "/version")

        assert result.returncode != 0
        assert result.stdout == ""
        assert "azauth: error:" in result.stderr
        assert "this-is-not-the-job-token" not in result.stderr
        assert all(outcome == "401" for outcome, _ in seen)

"""Proxies and secrets inside URLs, through a real loopback CONNECT proxy demanding Basic auth."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from structlog.testing import capture_logs

from agent import AzurePipelinesCredential
from agent._http import ProxySettings, proxy_for
from agent._secrets import forget_secrets, redact_text, register_secret
from agent.config import Connection
from agent.exceptions import ProxyAuthenticationError
from agent.retry import RetryPolicy
from agent.testing.emulator import Emulator
from agent.testing.proxy import ConnectProxy
from agent.tokenserver.server import TokenServer
from tests.support import ARM, CLIENT, SC, TENANT, pipeline_credential, spawn_azauth

PASSWORD = "pr0xy-Pa55word-42"  # noqa: S105 - the test proxy's password
FAST_RETRY = RetryPolicy(backoff_initial=0.001, backoff_max=0.01, deadline=10)


@pytest.fixture
async def tls_emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Emulator]:
    """An https emulator on 'localhost' (so a proxy is used), trusted through SSL_CERT_FILE."""
    emu = Emulator()
    await emu.start(tls=True)
    emu.add_connection(SC, TENANT, CLIENT)
    assert emu.ca_file is not None
    monkeypatch.setenv("SSL_CERT_FILE", emu.ca_file)
    monkeypatch.setenv(
        "SYSTEM_OIDCREQUESTURI", emu.oidc_request_uri.replace("127.0.0.1", "localhost")
    )
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", emu.system_access_token)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", emu.authority.replace("127.0.0.1", "localhost"))
    try:
        yield emu
    finally:
        await emu.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    async with ConnectProxy(username="build", password=PASSWORD) as running:
        yield running


def credential(emu: Emulator) -> AzurePipelinesCredential:
    return AzurePipelinesCredential(
        tenant_id=TENANT,
        client_id=CLIENT,
        service_connection_id=SC,
        system_access_token=emu.system_access_token,
        authority=os.environ["AZURE_AUTHORITY_HOST"],
        retry=FAST_RETRY,
    )


class TestProxyCredentials:
    async def test_user_info_of_https_proxy_is_sent_as_basic_credentials(
        self, tls_emu, proxy, monkeypatch
    ):
        """Both exchanges tunnel through the proxy, authenticated by the URL's user-info."""
        monkeypatch.setenv("HTTPS_PROXY", proxy.url_with_credentials)
        async with credential(tls_emu) as cred:
            assert (await cred.get_token(ARM)).token
        assert proxy.tunnels >= 1
        assert proxy.refused == 0
        port = urlsplit(tls_emu.url).port
        assert set(proxy.targets) == {f"localhost:{port}"}

    async def test_407_is_one_error_naming_the_proxy_and_never_retried(
        self, tls_emu, proxy, monkeypatch
    ):
        """Wrong credentials: one CONNECT, a non-retryable error naming the proxy, no password."""
        wrong = proxy.url_with_credentials.replace(PASSWORD, "wrong-password-123")
        monkeypatch.setenv("HTTPS_PROXY", wrong)
        async with credential(tls_emu) as cred:
            with pytest.raises(ProxyAuthenticationError) as caught:
                await cred.get_token(ARM)
        message = str(caught.value)
        assert "proxy refused authentication" in message
        assert urlsplit(proxy.url).netloc in message
        assert "wrong-password-123" not in message and "build:" not in message
        assert caught.value.retryable is False
        assert proxy.refused == 1  # not retried as a network fault
        assert tls_emu.counts == {"oidc": 0, "token": 0}

    async def test_proxy_passwords_are_registered_secrets(self):
        """The password of a proxy URL is masked wherever it appears later, in any text."""
        forget_secrets()
        proxy_for("https://x.example/", {"HTTPS_PROXY": f"http://u:{PASSWORD}@p.example:3128"})
        assert PASSWORD not in redact_text(f"the value {PASSWORD} leaked")


class TestAgentProxyVariables:
    async def test_agent_proxy_variables_are_honoured_without_a_proxy_variable(
        self, tls_emu, proxy, monkeypatch
    ):
        """AGENT_PROXYURL + AGENT_PROXYUSERNAME/PASSWORD route both exchanges via the proxy."""
        monkeypatch.setenv("AGENT_PROXYURL", proxy.url)
        monkeypatch.setenv("AGENT_PROXYUSERNAME", "build")
        monkeypatch.setenv("AGENT_PROXYPASSWORD", PASSWORD)
        async with credential(tls_emu) as cred:
            assert (await cred.get_token(ARM)).token
        assert proxy.tunnels >= 1
        assert tls_emu.counts == {"oidc": 1, "token": 1}

    async def test_bypass_list_regexes_send_matching_urls_directly(
        self, tls_emu, proxy, monkeypatch
    ):
        """AGENT_PROXYBYPASSLIST is a JSON array of regexes matched against the request URL."""
        monkeypatch.setenv("AGENT_PROXYURL", proxy.url)
        monkeypatch.setenv("AGENT_PROXYBYPASSLIST", json.dumps([r"LOCALHOST:\d+/"]))
        async with credential(tls_emu) as cred:
            assert (await cred.get_token(ARM)).token
        assert proxy.targets == []

    def test_a_proxy_variable_wins_over_the_agent_variables(self):
        env = {"HTTPS_PROXY": "http://p1.example:1", "AGENT_PROXYURL": "http://p2.example:2"}
        chosen = proxy_for("https://login.example/", env)
        assert chosen is not None and chosen.url == "http://p1.example:1"

    def test_agent_password_is_a_secret_and_absent_from_the_repr(self):
        forget_secrets()
        env = {
            "AGENT_PROXYURL": "http://p.example:8080",
            "AGENT_PROXYUSERNAME": "u",
            "AGENT_PROXYPASSWORD": "agent-proxy-password",
        }
        chosen = proxy_for("https://login.example/", env)
        assert chosen is not None and chosen.password == "agent-proxy-password"
        assert "agent-proxy-password" not in repr(chosen)
        assert redact_text("x agent-proxy-password y") == "x *** y"


class TestMessagesWithoutUserInfo:
    async def test_serve_answers_a_generic_message_and_logs_the_cause(
        self, tls_emu, proxy, monkeypatch
    ):
        """The managed-identity answer holds no upstream text; our log has it, same id."""
        monkeypatch.setenv("HTTPS_PROXY", proxy.url_with_credentials.replace(PASSWORD, "bad-pw-1"))
        connection = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC)
        with capture_logs() as logs:
            async with TokenServer({"prod": connection}) as server:
                env = server.env
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(
                        env["IDENTITY_ENDPOINT"],
                        params={
                            "resource": "https://management.azure.com/",
                            "api-version": "2019-08-01",
                        },
                        headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
                    ) as resp,
                ):
                    status = resp.status
                    body = await resp.json()
        assert status >= 500
        text = json.dumps(body)
        assert "proxy" not in text and "bad-pw-1" not in text and "407" not in text
        correlation = body["correlationId"]
        assert correlation in body["message"]
        upstream = [e for e in logs if e.get("event") == "upstream_failed"]
        assert upstream and upstream[0]["correlation_id"] == correlation
        assert "proxy refused authentication" in upstream[0]["error"]
        assert "bad-pw-1" not in repr(logs)


@pytest.mark.parametrize(
    "args",
    [
        ("token", "--profile", "ci", "--no-cache"),
        ("run", "--profile", "ci", "-v"),
        ("status", "--profile", "ci", "--check"),
    ],
    ids=["token", "run", "status"],
)
async def test_cli_errors_logs_and_summary_name_the_proxy_host_never_its_password(
    tls_emu, proxy, tmp_path, args, write_profile
):
    """Through a refusing proxy: one 407, the proxy's host named, its user-info nowhere."""
    write_profile(tmp_path, outputs=True)
    env = {**os.environ, "HTTPS_PROXY": proxy.url_with_credentials.replace(PASSWORD, "run-pw-77")}
    proc = await spawn_azauth(*args, env=env, cwd=tmp_path)
    out, err = await proc.communicate()
    text = out.decode() + err.decode()
    assert proc.returncode != 0, text
    if args[0] in ("token", "run"):
        assert proc.returncode == 4, text
    assert "proxy refused authentication" in text
    assert urlsplit(proxy.url).netloc in text
    assert "run-pw-77" not in text and "build:" not in text
    assert proxy.refused == 1


async def test_407_to_a_plain_http_request_is_the_same_error(proxy, monkeypatch):
    """Through a forward proxy (no CONNECT: an http loopback URL), 407 is not retried either."""
    async with Emulator() as emu:
        emu.add_connection(SC, TENANT, CLIENT)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)  # no credentials
        monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emu.oidc_request_uri)
        cred = pipeline_credential(emu, retry=FAST_RETRY)
        async with cred:
            with pytest.raises(ProxyAuthenticationError, match="no credentials were configured"):
                await cred.get_token(ARM)
        assert proxy.refused == 1
        assert emu.counts["oidc"] == 0


class TestProxySnapshot:
    """The proxy variables are read once per HTTP session, not scanned on every request."""

    async def test_a_session_keeps_its_snapshot_and_a_new_one_sees_the_change(
        self, tls_emu, proxy, monkeypatch
    ):
        """HTTPS_PROXY set mid-session: that session stays direct; the next session tunnels."""
        vault = "https://vault.azure.net/.default"
        async with credential(tls_emu) as cred:
            assert (await cred.get_token(ARM)).token
            monkeypatch.setenv("HTTPS_PROXY", proxy.url_with_credentials)
            assert (await cred.get_token(vault)).token  # a new Entra request, same session
        assert proxy.tunnels == 0
        assert tls_emu.counts == {"oidc": 1, "token": 2}

        async with credential(tls_emu) as cred:
            assert (await cred.get_token(ARM)).token
        assert proxy.tunnels >= 1
        assert proxy.refused == 0

    def test_settings_read_the_environment_once(self):
        """A ProxySettings answers from its snapshot; later changes need a new snapshot."""
        env = {"HTTPS_PROXY": "http://p1.example:1", "NO_PROXY": "direct.example"}
        settings = ProxySettings.from_env(env)
        env["HTTPS_PROXY"] = "http://p2.example:2"

        chosen = settings.proxy_for("https://login.example/token")
        assert chosen is not None and chosen.url == "http://p1.example:1"
        assert settings.proxy_for("https://direct.example/") is None
        assert settings.proxy_for("http://login.example/") is None  # no http_proxy
        fresh = ProxySettings.from_env(env).proxy_for("https://login.example/token")
        assert fresh is not None and fresh.url == "http://p2.example:2"

    def test_agent_bypass_list_is_matched_per_url(self):
        """Cached choices are per URL: the agent's bypass regexes still see each URL."""
        settings = ProxySettings.from_env(
            {
                "AGENT_PROXYURL": "http://p.example:8080",
                "AGENT_PROXYBYPASSLIST": json.dumps([r"direct\.example/"]),
            }
        )
        for _ in range(2):
            assert settings.proxy_for("https://direct.example/x") is None
            chosen = settings.proxy_for("https://login.example/x")
            assert chosen is not None and chosen.url == "http://p.example:8080"

    def test_the_password_stays_masked_in_a_long_run(self):
        """Thousands of tokens later, each use of the proxy registers its password again."""
        forget_secrets()
        settings = ProxySettings.from_env({"HTTPS_PROXY": f"http://u:{PASSWORD}@p.example:3128"})
        for number in range(3):
            assert settings.proxy_for("https://login.example/") is not None
            for other in range(5000):  # more than the registry keeps
                register_secret(f"token-{number}-{other:05d}-padding")
            assert PASSWORD in redact_text(PASSWORD)  # aged out ...
            settings.proxy_for("https://login.example/")
            assert PASSWORD not in redact_text(f"the value {PASSWORD} leaked")  # ... until used

"""`azauth serve`: the loopback managed-identity token server, driven by real clients.

azure-identity (sync and aio, ManagedIdentityCredential and DefaultAzureCredential) finds the
server through the environment alone; raw aiohttp requests pin the wire details; the emulator
counts what reached Azure DevOps and Entra. One subprocess test runs `azauth serve --emulate`.
"""

# azure.identity is imported inside the tests that use it, so that collecting this file does not
# load it for the whole session (agent.exceptions adapts to whether azure.identity is loaded).
# ruff: noqa: PLC0415

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import time

import aiohttp
import pytest
from azure.core.exceptions import ClientAuthenticationError
from multidict import CIMultiDict
from structlog.testing import capture_logs

from agent.cli.main import main
from agent.config import Connection, load_config
from agent.exceptions import ConfigError, UsageError
from agent.tokenserver.managed_identity import (
    IdentitySelector,
    Refusal,
    authorize,
    is_allowed_host,
    loopback_no_proxy,
    parse_app_service_request,
    parse_imds_request,
    render_export_line,
    resource_to_scope,
    select_connection,
)
from agent.tokenserver.server import TokenServer, check_loopback_host, serve_profile
from tests.support import (
    CLIENT,
    CLIENT2,
    PROD_OTHER_CI,
    SC,
    SC2,
    TENANT,
    spawn_azauth,
    toml_profile,
)

ARM = "https://management.azure.com"
ARM_SCOPE = f"{ARM}/.default"

PROD = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC)
OTHER = Connection(tenant_id=TENANT, client_id=CLIENT2, service_connection_id=SC2)

PROFILE_TOML = PROD_OTHER_CI + toml_profile("single")


@pytest.fixture
def emu(two_connection_emulator):
    """The emulator with both connections registered."""
    return two_connection_emulator


@pytest.fixture
async def server(emu):
    """A server for the single connection `prod`, IMDS on, with a snapshot of the pipeline env.

    The snapshot lets a test change the client side's environment without touching the server.
    """
    async with TokenServer({"prod": PROD}, env=dict(os.environ), imds=True) as srv:
        yield srv


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def use_server(monkeypatch, srv, *names):
    """Export the server's variables (all, or only ``names``) into this process."""
    for name, value in srv.env.items():
        if not names or name in names:
            monkeypatch.setenv(name, value)


async def app_service_get(http, srv, *, headers=None, **params):
    query = {"api-version": "2019-08-01", "resource": ARM, **params}
    sent = {"X-IDENTITY-HEADER": srv.env["IDENTITY_HEADER"]} if headers is None else headers
    async with http.get(srv.identity_endpoint, params=query, headers=sent) as response:
        return response.status, await response.json(), response.headers


async def imds_get(http, srv, *, headers=None, **params):
    query = {"api-version": "2018-02-01", "resource": f"{ARM}/", **params}
    sent = {"Metadata": "true"} if headers is None else headers
    async with http.get(
        srv.url + "/metadata/identity/oauth2/token", params=query, headers=sent
    ) as response:
        return response.status, await response.json(), response.headers


def no_exchange(emu):
    return emu.counts == {"oidc": 0, "token": 0}


class TestPureProtocol:
    def test_resource_becomes_its_default_scope_with_a_trailing_slash_kept(self):
        """A v1 resource gets /.default; a trailing slash stays (aud is what the client named)."""
        assert resource_to_scope(ARM) == ARM_SCOPE
        assert resource_to_scope(f"{ARM}/") == f"{ARM}//.default"
        assert resource_to_scope(ARM_SCOPE) == ARM_SCOPE
        assert resource_to_scope("api://my-app") == "api://my-app/.default"

    @pytest.mark.parametrize(
        ("host", "allowed"),
        [
            ("127.0.0.1:8000", True),
            ("127.0.0.1", True),
            ("localhost:8000", True),
            ("LOCALHOST:8000", True),
            ("[::1]:8000", True),
            ("[::1]", True),
            ("127.0.0.1:8001", False),
            ("evil.example", False),
            ("evil.example:8000", False),
            ("localhost.evil.example:8000", False),
            ("127.0.0.2:8000", False),
            ("::1", False),
            ("[::1]:", False),
            ("localhost:", False),
            ("[::1]x", False),
            ("", False),
            (None, False),
        ],
    )
    def test_host_header_must_name_the_loopback_server(self, host, allowed):
        """Only loopback names, bare or with the server's own port, pass the rebinding guard."""
        assert is_allowed_host(host, 8000) is allowed

    def test_secret_is_accepted_in_any_of_the_three_headers(self):
        """X-IDENTITY-HEADER (2019), secret (2017) and x-ms-identity (go-azure-sdk) all carry it."""
        for name in ("X-IDENTITY-HEADER", "x-identity-header", "secret", "X-MS-IDENTITY"):
            authorize(CIMultiDict({name: "s3cr3t-value"}), "s3cr3t-value")

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"X-IDENTITY-HEADER": "wrong"},
            {"secret": "s3cr3t-valuE"},
            {"X-IDENTITY-HEADER": "é"},
        ],
    )
    def test_missing_or_wrong_secret_is_refused_without_echoing_it(self, headers):
        """401, and the message names the header, never the value offered or expected."""
        with pytest.raises(Refusal) as caught:
            authorize(CIMultiDict(headers), "s3cr3t-value")

        assert caught.value.status == 401
        assert "s3cr3t" not in caught.value.message
        assert "wrong" not in caught.value.message

    def test_app_service_query_is_validated(self):
        """api-version, resource and a single identity parameter are checked; clientid is 2017's."""
        request = parse_app_service_request(
            [("api-version", "2017-09-01"), ("resource", ARM), ("clientid", CLIENT)]
        )
        assert (request.resource, request.selector) == (
            ARM,
            IdentitySelector("client_id", CLIENT, "clientid"),
        )
        for query, fragment in [
            ([("resource", ARM)], "api-version missing"),
            ([("api-version", "2018-02-01"), ("resource", ARM)], "not supported"),
            ([("api-version", "2019-08-01")], "'resource' is missing"),
            ([("api-version", "2019-08-01"), ("resource", "a b")], "without spaces"),
            ([("api-version", "2019-08-01"), ("resource", ARM), ("resource", ARM)], "given twice"),
            (
                [
                    ("api-version", "2019-08-01"),
                    ("resource", ARM),
                    ("client_id", CLIENT),
                    ("mi_res_id", "prod"),
                ],
                "one parameter only",
            ),
        ]:
            with pytest.raises(Refusal) as caught:
                parse_app_service_request(query)
            assert caught.value.status == 400
            assert fragment in caught.value.message

    def test_imds_needs_the_metadata_header_and_a_recent_api_version(self):
        """Metadata: true (any case) is required first; api-version must be 2018-02-01 or later."""
        query = [("api-version", "2019-08-01"), ("resource", ARM), ("msi_res_id", "prod")]
        request = parse_imds_request(query, CIMultiDict({"Metadata": "True"}))
        assert request.selector == IdentitySelector("resource_id", "prod", "msi_res_id")
        with pytest.raises(Refusal) as caught:
            parse_imds_request(query, CIMultiDict({}))
        assert (caught.value.status, caught.value.error) == (400, "bad_request_102")
        for version in ("2017-12-01", "latest", ""):
            with pytest.raises(Refusal):
                parse_imds_request(
                    [("api-version", version), ("resource", ARM)], CIMultiDict({"Metadata": "true"})
                )

    def test_connection_selection(self):
        """client_id matches the app id, mi_res_id a name or service connection id."""
        both = {"prod": PROD, "other": OTHER}
        assert select_connection({"prod": PROD}, None) == "prod"
        assert select_connection(both, None, "other") == "other"
        assert (
            select_connection(both, IdentitySelector("client_id", CLIENT2.upper(), "client_id"))
            == "other"
        )
        assert (
            select_connection(both, IdentitySelector("resource_id", "other", "mi_res_id"))
            == "other"
        )
        assert select_connection(both, IdentitySelector("resource_id", SC2, "mi_res_id")) == "other"
        twins = {"a": PROD, "b": PROD.model_copy(update={"service_connection_id": SC2})}
        for connections, selector, fragment in [
            (both, None, "name one with client_id"),
            (both, IdentitySelector("client_id", "nope", "client_id"), "no connection matches"),
            (both, IdentitySelector("object_id", "x", "principal_id"), "not supported"),
            (twins, IdentitySelector("client_id", CLIENT, "client_id"), "matches 2 connections"),
        ]:
            with pytest.raises(Refusal) as caught:
                select_connection(connections, selector)
            assert caught.value.status == 400
            assert fragment in caught.value.message

    def test_export_line_is_evaluated_by_a_real_shell(self):
        """One `export` line that bash evaluates back to the exact values."""
        values = {
            "IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi/token",
            "IDENTITY_HEADER": 'a\'b $c "d"',
        }
        line = render_export_line(values)

        assert line.startswith("export ")
        assert line.endswith("\n")
        assert line.count("\n") == 1
        shown = subprocess.run(
            [
                "bash",
                "-c",
                'eval "$1"; printf "%s|%s" "$IDENTITY_ENDPOINT" "$IDENTITY_HEADER"',
                "_",
                line,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert shown == 'http://127.0.0.1:1/msi/token|a\'b $c "d"'

    def test_no_proxy_is_extended_only_when_a_proxy_is_configured(self):
        """Loopback is added to NO_PROXY so a proxy never sees the secret header."""
        assert loopback_no_proxy({}) == {}
        assert loopback_no_proxy({"NO_PROXY": "corp"}) == {}
        values = loopback_no_proxy(
            {"https_proxy": "http://proxy:3128", "NO_PROXY": "corp,localhost"}
        )
        assert values == {
            "NO_PROXY": "corp,localhost,127.0.0.1,::1",
            "no_proxy": "corp,localhost,127.0.0.1,::1",
        }


class TestAzureIdentityClients:
    async def test_async_managed_identity_credential(self, server, emu, monkeypatch):
        """azure.identity.aio.ManagedIdentityCredential gets a real token via IDENTITY_ENDPOINT."""
        from azure.identity.aio import ManagedIdentityCredential

        use_server(monkeypatch, server, "IDENTITY_ENDPOINT", "IDENTITY_HEADER")
        async with ManagedIdentityCredential() as credential:
            token = await credential.get_token(ARM_SCOPE)

        claims = emu.verify_access_token(token.token, audience=ARM)
        assert claims["appid"] == CLIENT
        assert token.expires_on == claims["exp"]
        assert emu.counts == {"oidc": 1, "token": 1}

    async def test_sync_managed_identity_credential(self, server, emu, monkeypatch):
        """azure.identity.ManagedIdentityCredential (MSAL's App Service path) gets a token too."""
        from azure.identity import ManagedIdentityCredential

        use_server(monkeypatch, server, "IDENTITY_ENDPOINT", "IDENTITY_HEADER")
        credential = ManagedIdentityCredential()
        token = await asyncio.to_thread(credential.get_token, "https://vault.azure.net/.default")

        assert (
            emu.verify_access_token(token.token, audience="https://vault.azure.net")["appid"]
            == CLIENT
        )
        assert token.expires_on > time.time() + 3000

    async def test_default_azure_credential_sync_and_async(self, server, emu, monkeypatch):
        """DefaultAzureCredential finds the server with nothing but the exported variables."""
        from azure.identity import DefaultAzureCredential
        from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

        use_server(monkeypatch, server)
        monkeypatch.delenv("AZURE_AUTHORITY_HOST")  # the emulator's http authority: DAC wants https
        async with AsyncDefaultAzureCredential() as credential:
            first = await credential.get_token(ARM_SCOPE)
        second = await asyncio.to_thread(DefaultAzureCredential().get_token, ARM_SCOPE)

        assert first.token == second.token  # one exchange, served twice
        assert emu.verify_access_token(first.token, audience=ARM)["appid"] == CLIENT
        assert emu.counts["token"] == 1

    async def test_user_assigned_identity_picks_the_connection(self, emu, monkeypatch):
        """client_id and identity_config resource_id pick a connection of a two-connection server."""
        from azure.identity import ManagedIdentityCredential
        from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

        async with TokenServer({"prod": PROD, "other": OTHER}) as srv:
            use_server(monkeypatch, srv)
            async with AsyncManagedIdentityCredential(client_id=CLIENT2) as credential:
                by_client_id = await credential.get_token(ARM_SCOPE)
            async with AsyncManagedIdentityCredential(
                identity_config={"resource_id": "prod"}
            ) as credential:
                by_name_async = await credential.get_token(ARM_SCOPE)
            sync = ManagedIdentityCredential(identity_config={"resource_id": SC2})
            by_service_connection = await asyncio.to_thread(sync.get_token, ARM_SCOPE)
            async with AsyncManagedIdentityCredential() as credential:
                with pytest.raises(ClientAuthenticationError, match="2 connections"):
                    await credential.get_token(ARM_SCOPE)

        assert emu.verify_access_token(by_client_id.token)["appid"] == CLIENT2
        assert emu.verify_access_token(by_name_async.token)["appid"] == CLIENT
        assert emu.verify_access_token(by_service_connection.token)["appid"] == CLIENT2

    async def test_wrong_secret_is_refused_before_any_credential_is_touched(
        self, server, emu, monkeypatch
    ):
        """A client with another IDENTITY_HEADER gets 401; nothing reaches Azure DevOps or Entra."""
        from azure.identity.aio import ManagedIdentityCredential

        use_server(monkeypatch, server, "IDENTITY_ENDPOINT")
        monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
        async with ManagedIdentityCredential() as credential:
            with pytest.raises(ClientAuthenticationError):
                await credential.get_token(ARM_SCOPE)

        assert no_exchange(emu)
        assert server.counts == {"served": 0, "refused": 1}

    async def test_clients_get_a_new_token_after_the_old_one_expires(
        self, server, emu, monkeypatch
    ):
        """With 2 s tokens both clients ask again after expiry; the server mints once more."""
        from azure.identity import ManagedIdentityCredential
        from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

        emu.token_lifetime = 2
        use_server(monkeypatch, server, "IDENTITY_ENDPOINT", "IDENTITY_HEADER")
        sync = ManagedIdentityCredential()
        async with AsyncManagedIdentityCredential() as credential:
            first = await credential.get_token(ARM_SCOPE)
            first_sync = await asyncio.to_thread(sync.get_token, ARM_SCOPE)
            assert first_sync.token == first.token
            assert emu.counts["token"] == 1
            # Wait until the first token has expired (by the second), then ask again.
            await asyncio.sleep(max(0.0, first.expires_on - time.time()) + 1.1)
            second = await credential.get_token(ARM_SCOPE)
            second_sync = await asyncio.to_thread(sync.get_token, ARM_SCOPE)

        assert second.token != first.token
        assert second_sync.token == second.token
        assert emu.verify_access_token(second.token)["appid"] == CLIENT
        assert emu.counts["token"] == 2


class TestConcurrency:
    async def test_fifty_concurrent_requests_cost_one_exchange(self, server, emu, http):
        """50 clients asking at once (Entra answering slowly) share one OIDC call and one exchange."""
        emu.latency = 0.2

        answers = await asyncio.gather(*(app_service_get(http, server) for _ in range(50)))

        assert {status for status, _, _ in answers} == {200}
        assert len({body["access_token"] for _, body, _ in answers}) == 1
        assert emu.counts == {"oidc": 1, "token": 1}
        assert server.counts == {"served": 50, "refused": 0}

    async def test_a_saturated_server_answers_429_with_retry_after(self, emu, http):
        """Past max_concurrency requests in flight, the next one is told to retry shortly."""
        emu.latency = 1.0  # the slot stays taken >= 2 s after the emulator sees the first call
        async with TokenServer({"prod": PROD}, max_concurrency=1) as srv:
            slow = asyncio.create_task(app_service_get(http, srv))
            for _ in range(500):  # until the first request is being served by the emulator
                if emu.requests:
                    break
                await asyncio.sleep(0.01)
            status, body, headers = await app_service_get(http, srv)
            first = await slow

        assert (status, headers["Retry-After"]) == (429, "1")
        assert body["statusCode"] == 429
        assert first[0] == 200


class TestImds:
    async def test_azure_identity_imds_path_sync_and_async(self, server, emu, monkeypatch):
        """ManagedIdentityCredential's IMDS path, pointed here by AZURE_POD_IDENTITY_AUTHORITY_HOST."""
        from azure.identity import ManagedIdentityCredential
        from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url)
        async with AsyncManagedIdentityCredential() as credential:
            token = await credential.get_token(ARM_SCOPE)
        sync_token = await asyncio.to_thread(ManagedIdentityCredential().get_token, ARM_SCOPE)

        assert emu.verify_access_token(token.token, audience=ARM)["appid"] == CLIENT
        assert sync_token.token == token.token

    async def test_imds_answer_has_every_value_as_a_string(self, server, emu, http):
        """The answer mirrors IMDS: strings, the resource echoed (trailing slash kept, as aud)."""
        status, body, headers = await imds_get(http, server)

        assert status == 200
        assert all(isinstance(value, str) for value in body.values())
        assert body["resource"] == f"{ARM}/"
        assert body["client_id"] == CLIENT
        assert body["token_type"] == "Bearer"
        assert 3500 < int(body["expires_in"]) <= 3599
        assert int(body["expires_on"]) - int(body["expires_in"]) == pytest.approx(
            time.time(), abs=5
        )
        assert emu.verify_access_token(body["access_token"], audience=f"{ARM}/")
        assert headers["Cache-Control"] == "no-store"

    async def test_metadata_header_is_required(self, server, emu, http):
        """Without Metadata: true the answer is IMDS's 400 bad_request_102, and nothing is minted."""
        status, body, _ = await imds_get(http, server, headers={})

        assert status == 400
        assert body == {
            "error": "bad_request_102",
            "error_description": "Required metadata header not specified",
        }
        assert no_exchange(emu)

    async def test_forwarded_requests_are_refused(self, server, emu, http):
        """A request relayed by a proxy (X-Forwarded-For) is refused, on both endpoints."""
        imds = await imds_get(
            http, server, headers={"Metadata": "true", "X-Forwarded-For": "10.0.0.1"}
        )
        app = await app_service_get(
            http,
            server,
            headers={
                "X-IDENTITY-HEADER": server.env["IDENTITY_HEADER"],
                "X-Forwarded-For": "10.0.0.1",
            },
        )

        assert imds[0] == 400
        assert "X-Forwarded-For" in imds[1]["error_description"]
        assert app[0] == 400
        assert "X-Forwarded-For" in app[1]["message"]
        assert no_exchange(emu)

    async def test_imds_is_off_unless_asked_for(self, emu, http):
        """Without imds=True the IMDS path is a 404 and no ARM_* variable is exported."""
        async with TokenServer({"prod": PROD}) as srv:
            status, body, _ = await imds_get(http, srv)
            env = srv.env

        assert status == 404
        assert body["error"] == "not_found"
        assert "ARM_MSI_ENDPOINT" not in env
        assert "ARM_USE_MSI" not in env
        assert no_exchange(emu)

    async def test_terraform_style_request_through_msi_endpoint(self, server, emu, http):
        """go-azure-sdk with MSI_ENDPOINT/MSI_SECRET: 2019-08-01, x-ms-identity, expires_in read."""
        env = server.env
        params = {"api-version": "2019-08-01", "resource": f"{ARM}/", "client_id": CLIENT}
        headers = {"Metadata": "true", "x-ms-identity": env["IDENTITY_HEADER"]}
        async with http.get(env["MSI_ENDPOINT"], params=params, headers=headers) as response:
            body = await response.json()

        assert response.status == 200
        assert int(body["expires_in"]) > 3500  # the only expiry go-azure-sdk reads
        assert emu.verify_access_token(body["access_token"], audience=f"{ARM}/")["appid"] == CLIENT

    async def test_legacy_2017_protocol_with_secret_header(self, server, emu, http):
        """MSI_ENDPOINT + MSI_SECRET with api-version 2017-09-01 and the `secret` header."""
        env = server.env
        status, body, _ = await app_service_get(
            http,
            server,
            headers={"secret": env["MSI_SECRET"]},
            **{"api-version": "2017-09-01", "clientid": CLIENT},
        )

        assert status == 200
        assert int(body["expires_on"]) > time.time() + 3000
        assert emu.verify_access_token(body["access_token"])["appid"] == CLIENT


class TestHardening:
    @pytest.mark.parametrize(
        "host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "attacker.localhost:{port}"]
    )
    async def test_foreign_host_header_is_refused(self, server, emu, http, host):
        """DNS rebinding: a request whose Host is not this loopback server is refused (403)."""
        headers = {
            "Host": host.format(port=server.port),
            "X-IDENTITY-HEADER": server.env["IDENTITY_HEADER"],
        }
        status, body, _ = await app_service_get(http, server, headers=headers)

        assert status == 403
        assert "Host header" in body["message"]
        assert no_exchange(emu)

    async def test_localhost_host_header_is_accepted(self, server, emu, http):
        """Host: localhost:PORT is this server too."""
        headers = {
            "Host": f"localhost:{server.port}",
            "X-IDENTITY-HEADER": server.env["IDENTITY_HEADER"],
        }
        status, _, _ = await app_service_get(http, server, headers=headers)

        assert status == 200

    async def test_requests_from_web_pages_are_refused(self, server, emu, http):
        """A browser's cross-origin request (Origin header) is refused even with the secret."""
        headers = {
            "Origin": "https://evil.example",
            "X-IDENTITY-HEADER": server.env["IDENTITY_HEADER"],
        }
        status, _, _ = await app_service_get(http, server, headers=headers)

        assert status == 403
        assert no_exchange(emu)

    async def test_wrong_method_path_and_body_get_json_errors(self, server, emu, http):
        """405 with Allow: GET, 404 for other paths, 413 for a body; all JSON, nothing minted."""
        secret = {"X-IDENTITY-HEADER": server.env["IDENTITY_HEADER"]}
        query = {"api-version": "2019-08-01", "resource": ARM}
        async with http.post(server.identity_endpoint, params=query, headers=secret) as response:
            post = (response.status, response.headers.get("Allow"), await response.json())
        async with http.get(server.url + "/other", headers=secret) as response:
            other = (response.status, await response.json())
        async with http.get(
            server.identity_endpoint, params=query, headers=secret, data=b"x" * 10
        ) as response:
            body = (response.status, await response.json())
        async with http.get(
            server.identity_endpoint, params=query, headers=secret, data=b"x" * 100_000
        ) as response:
            big = response.status

        assert post[:2] == (405, "GET")
        assert post[2]["statusCode"] == 405
        assert other[0] == 404
        assert "/msi/token" in other[1]["error_description"]
        assert body[0] == 413
        assert big == 413
        assert no_exchange(emu)

    async def test_request_errors_in_the_app_service_shape(self, server, emu, http):
        """Missing resource, bad api-version, unknown client_id: 400 with statusCode/message/correlationId."""
        answers = [
            await app_service_get(http, server, resource=""),
            await app_service_get(http, server, **{"api-version": "2099-01-01"}),
            await app_service_get(http, server, client_id="99999999-0000-0000-0000-000000000000"),
            await app_service_get(http, server, principal_id="abc"),
        ]

        for status, body, _ in answers:
            assert status == 400
            assert set(body) == {"statusCode", "message", "correlationId"}
            assert body["statusCode"] == 400
        assert "no connection matches client_id" in answers[2][1]["message"]
        assert no_exchange(emu)

    async def test_default_connection_answers_requests_that_name_none(self, emu, http):
        """With several connections, a chosen default serves requests without client_id."""
        async with TokenServer({"prod": PROD, "other": OTHER}, default_connection="other") as srv:
            status, body, _ = await app_service_get(http, srv)

        assert status == 200
        assert body["client_id"] == CLIENT2

    async def test_failed_exchange_is_reported_without_secrets(self, emu, http):
        """A connection Azure DevOps does not know yields a 500 JSON error that holds no secret."""
        unknown = Connection(
            tenant_id=TENANT,
            client_id=CLIENT,
            service_connection_id="00000000-0000-0000-0000-00000000dead",
        )
        async with TokenServer({"ghost": unknown}, imds=True) as srv:
            app = await app_service_get(http, srv)
            imds = await imds_get(http, srv)

        assert app[0] == 500
        assert app[1]["message"].startswith("the token request failed")
        assert imds[0] == app[0]
        assert imds[1]["error_description"].startswith("the token request failed")
        text = json.dumps([app[1], imds[1]])
        assert emu.system_access_token not in text
        assert all(issued.token not in text for issued in emu.issued)

    async def test_entra_refusing_the_resource_is_the_clients_400(self, server, emu, http):
        """Entra's invalid_scope (here for the bare resource "/.default") comes back as 400."""
        status, body, _ = await imds_get(http, server, resource="/.default")

        assert status == 400
        assert body["error"] == "invalid_resource"
        assert "AADSTS" not in body["error_description"]  # upstream text stays in our log

    async def test_transient_upstream_failure_is_503_with_retry_after(self, server, emu, http):
        """Entra answering 503 past every retry yields 503 + Retry-After, which clients retry."""
        emu.fail_next("token", 503, count=10, retry_after="0")
        status, body, headers = await app_service_get(http, server)

        assert status == 503
        assert headers["Retry-After"] == "1"
        assert body["message"].startswith("the token request failed")

    async def test_logs_name_the_resource_and_status_never_a_token_or_the_secret(
        self, server, emu, http
    ):
        """Served and refused requests are logged without the access token or the secret."""
        with capture_logs() as logs:
            status, body, _ = await app_service_get(http, server)
            refused, _, _ = await app_service_get(
                http, server, headers={"X-IDENTITY-HEADER": "bad-guess-value"}
            )

        assert (status, refused) == (200, 401)
        text = repr(logs)
        assert body["access_token"] not in text
        assert server.env["IDENTITY_HEADER"] not in text
        assert "bad-guess-value" not in text
        served = [event for event in logs if event["event"] == "token_served"]
        assert served
        assert served[0]["resource"] == ARM
        assert served[0]["status"] == 200
        assert any(event["event"] == "request_refused" and event["status"] == 401 for event in logs)

    async def test_only_loopback_addresses_are_served(self, emu):
        """127.0.0.1, ::1 and localhost are accepted; other addresses are refused before binding."""
        assert check_loopback_host("localhost") == "127.0.0.1"
        assert check_loopback_host("[::1]") == "::1"
        for host in ("0.0.0.0", "192.168.1.10", "example.com", "127.0.0.2", "::"):
            with pytest.raises(UsageError, match="loopback only"):
                check_loopback_host(host)
        with pytest.raises(UsageError):
            await TokenServer({"prod": PROD}).start(host="0.0.0.0")

    async def test_missing_oidc_uri_fails_at_start(self, monkeypatch):
        """Outside a pipeline (no SYSTEM_OIDCREQUESTURI) the server refuses to start."""
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "x" * 20)
        with pytest.raises(ConfigError, match="SYSTEM_OIDCREQUESTURI is not set"):
            await TokenServer({"prod": PROD}).start()

    async def test_two_servers_have_different_secrets(self, emu, http):
        """The secret is random per run: one server's header opens no other server."""
        async with TokenServer({"prod": PROD}) as first, TokenServer({"prod": PROD}) as second:
            assert first.env["IDENTITY_HEADER"] != second.env["IDENTITY_HEADER"]
            status, _, _ = await app_service_get(
                http, second, headers={"X-IDENTITY-HEADER": first.env["IDENTITY_HEADER"]}
            )

        assert status == 401


class TestServeProfile:
    async def test_context_manager_exports_env_and_stops_on_exit(self, emu, tmp_path, http):
        """serve_profile yields env/url for a child; the port is closed once the block exits."""
        path = tmp_path / "azauth.toml"
        path.write_text(PROFILE_TOML)
        profile = load_config(path).profile("single")

        async with serve_profile(profile, imds=True) as handle:
            env = handle.env
            url = handle.url
            async with http.get(
                env["IDENTITY_ENDPOINT"],
                params={"api-version": "2019-08-01", "resource": ARM},
                headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
            ) as response:
                body = await response.json()

        assert set(env) == {
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            "MSI_ENDPOINT",
            "MSI_SECRET",
            "ARM_USE_MSI",
            "ARM_MSI_ENDPOINT",
            "AZAUTH_OIDC_REQUEST_URL",
            "AZAUTH_OIDC_REQUEST_TOKEN",
        }
        assert env["IDENTITY_ENDPOINT"] == env["MSI_ENDPOINT"] == f"{url}/msi/token"
        assert env["IDENTITY_HEADER"] == env["MSI_SECRET"]
        assert env["ARM_USE_MSI"] == "true"
        assert env["ARM_MSI_ENDPOINT"] == f"{url}/metadata/identity/oauth2/token"
        assert url.startswith("http://127.0.0.1:")
        assert emu.verify_access_token(body["access_token"])["appid"] == CLIENT
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(env["IDENTITY_ENDPOINT"]):
                pass

    async def test_env_keeps_loopback_away_from_a_configured_proxy(self, emu, tmp_path):
        """With HTTPS_PROXY in the serving environment, NO_PROXY gains the loopback addresses."""
        path = tmp_path / "azauth.toml"
        path.write_text(PROFILE_TOML)
        profile = load_config(path).profile("ci")
        env = {**os.environ, "HTTPS_PROXY": "http://proxy.invalid:3128"}

        async with serve_profile(profile, env=env, default_connection="prod") as handle:
            exported = handle.env

        assert exported["NO_PROXY"] == exported["no_proxy"] == "127.0.0.1,localhost,::1"


class TestNeutralErrors:
    """The library names no command-line flag; `azauth serve` names its own."""

    def test_library_errors_name_the_arguments_not_flags(self):
        with pytest.raises(UsageError) as unknown:
            TokenServer({"prod": PROD}, default_connection="nope")
        with pytest.raises(UsageError) as zero:
            TokenServer({"prod": PROD}, max_concurrency=0)
        with pytest.raises(UsageError) as host:
            check_loopback_host("0.0.0.0")

        assert "default_connection 'nope'" in str(unknown.value)
        assert "max_concurrency must be at least 1" in str(zero.value)
        for error in (unknown.value, zero.value, host.value):
            assert "--" not in str(error)

    def test_the_cli_names_its_flags(self, tmp_path, capsys):
        (tmp_path / "azauth.toml").write_text(PROFILE_TOML)
        config = str(tmp_path / "azauth.toml")

        assert main(["serve", "--config", config, "--profile", "ci", "--connection", "no"]) == 2
        unknown = capsys.readouterr().err
        assert main(["serve", "--host", "0.0.0.0"]) == 2
        host = capsys.readouterr().err

        assert "--connection 'no': profile 'ci' has no such connection" in unknown
        assert "--host '0.0.0.0' is not a loopback address" in host


class TestCli:
    def test_non_loopback_host_is_a_usage_error(self, capsys):
        """`azauth serve --host 0.0.0.0` exits 2 before reading any profile."""
        assert main(["serve", "--host", "0.0.0.0"]) == 2
        assert "loopback only" in capsys.readouterr().err

    async def test_serve_emulate_prints_exports_serves_and_stops_on_sigterm(self, tmp_path, http):
        """The subprocess prints one export line, serves tokens from it, and exits 0 on SIGTERM."""
        (tmp_path / "azauth.toml").write_text(PROFILE_TOML)
        proc = await spawn_azauth(
            "serve",
            "--profile",
            "ci",
            "--connection",
            "prod",
            "--emulate",
            "-v",
            "--imds",
            "--log-format",
            "json",
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            words = shlex.split(line)
            assert words[0] == "export"
            exported = dict(word.split("=", 1) for word in words[1:])
            async with http.get(
                exported["IDENTITY_ENDPOINT"],
                params={"api-version": "2019-08-01", "resource": ARM, "client_id": CLIENT2},
                headers={"X-IDENTITY-HEADER": exported["IDENTITY_HEADER"]},
            ) as response:
                app = (response.status, await response.json())
            async with http.get(
                exported["ARM_MSI_ENDPOINT"],
                params={"api-version": "2018-02-01", "resource": f"{ARM}/"},
                headers={"Metadata": "true"},
            ) as response:
                imds = (response.status, await response.json())
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

        assert proc.returncode == 0, err.decode()
        assert out == b""  # the export line was the only output
        assert app[0] == 200
        assert app[1]["client_id"] == CLIENT2
        assert imds[0] == 200
        assert imds[1]["client_id"] == CLIENT
        assert exported["ARM_USE_MSI"] == "true"
        logs = err.decode()
        assert exported["IDENTITY_HEADER"] not in logs
        assert app[1]["access_token"] not in logs
        assert imds[1]["access_token"] not in logs
        assert '"event": "stopped"' in logs

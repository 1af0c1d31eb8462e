"""AzurePipelinesCredential end to end against the emulator: parity, wire format, and what we do better."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import traceback
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

from agent import AzureAuthorityHosts, AzurePipelinesCredential, CredentialUnavailableError
from agent.exceptions import ConfigError, EntraError, OidcRequestError, TransportError
from agent.retry import RetryPolicy
from agent.testing.emulator import Emulator
from agent.testing.fakes import FakeClock
from tests.support import ARM, CLIENT, SC, TENANT

VAULT = "https://vault.azure.net/.default"
FAST_RETRY = RetryPolicy(backoff_initial=0.001, backoff_max=0.01, deadline=10)


def make(emu: Emulator, **kwargs) -> AzurePipelinesCredential:
    options = {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "service_connection_id": SC,
        "system_access_token": emu.system_access_token,
        "authority": emu.authority,
        "retry": FAST_RETRY,
    }
    options.update(kwargs)
    return AzurePipelinesCredential(**options)


@pytest.fixture
async def emu(monkeypatch):
    async with Emulator() as emulator:
        emulator.add_connection(SC, TENANT, CLIENT)
        monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emulator.oidc_request_uri)
        yield emulator


def secrets_of(emu: Emulator) -> list[str]:
    """Every secret the emulator handed out or accepted during a test."""
    found = [emu.system_access_token]
    for req in emu.requests:
        if req.form and req.form.get("client_assertion"):
            found.append(req.form["client_assertion"])
    return found


def assert_no_secret(exc: BaseException, secrets: list[str]) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)
    for secret in secrets:
        assert secret not in text


class TestConstructorParity:
    def test_arguments_are_keyword_only(self):
        with pytest.raises(TypeError):
            AzurePipelinesCredential(TENANT, CLIENT, SC, "tok")  # type: ignore[misc]

    def test_missing_argument_is_a_type_error(self):
        with pytest.raises(TypeError, match="client_id"):
            AzurePipelinesCredential(
                tenant_id=TENANT, service_connection_id=SC, system_access_token="t"
            )  # type: ignore[call-arg]

    @pytest.mark.parametrize(
        "field", ["tenant_id", "client_id", "service_connection_id", "system_access_token"]
    )
    def test_empty_argument_is_a_value_error(self, field):
        args = {
            "tenant_id": TENANT,
            "client_id": CLIENT,
            "service_connection_id": SC,
            "system_access_token": "t",
        }
        args[field] = ""

        with pytest.raises(ValueError, match="must be passed in as keyword arguments"):
            AzurePipelinesCredential(**args)

    def test_invalid_tenant(self):
        with pytest.raises(ValueError, match="Invalid tenant ID"):
            AzurePipelinesCredential(
                tenant_id="a/b", client_id=CLIENT, service_connection_id=SC, system_access_token="t"
            )

    def test_authority_defaults(self, monkeypatch):
        args = {
            "tenant_id": TENANT,
            "client_id": CLIENT,
            "service_connection_id": SC,
            "system_access_token": "t",
        }
        assert AzurePipelinesCredential(**args).authority == "https://login.microsoftonline.com"
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", AzureAuthorityHosts.AZURE_CHINA)
        assert AzurePipelinesCredential(**args).authority == "https://login.chinacloudapi.cn"
        assert AzurePipelinesCredential(
            **args, authority=AzureAuthorityHosts.AZURE_GOVERNMENT
        ).authority == ("https://login.microsoftonline.us")
        with pytest.raises(ValueError, match="TLS protected"):
            AzurePipelinesCredential(**args, authority="http://login.microsoftonline.com")

    def test_repr_holds_no_secret(self):
        cred = AzurePipelinesCredential(
            tenant_id=TENANT,
            client_id=CLIENT,
            service_connection_id=SC,
            system_access_token="very-secret-token",
        )

        assert "very-secret-token" not in repr(cred)
        assert SC in repr(cred)


class TestUnavailable:
    async def test_missing_oidc_uri_raises_unavailable_before_scope_check(self):
        cred = AzurePipelinesCredential(
            tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC, system_access_token="t"
        )

        for call in (cred.get_token(), cred.get_token_info()):
            with pytest.raises(CredentialUnavailableError) as info:
                await call
            assert str(info.value).startswith(
                "Missing value for the SYSTEM_OIDCREQUESTURI environment variable."
            )
            assert isinstance(info.value, ClientAuthenticationError)

    async def test_at_least_one_scope(self, emu):
        cred = make(emu)

        with pytest.raises(ValueError, match='"get_token" requires at least one scope'):
            await cred.get_token()
        with pytest.raises(ValueError, match='"get_token_info" requires at least one scope'):
            await cred.get_token_info()


class TestWireFormat:
    async def test_both_requests_match_the_reference(self, emu):
        async with make(emu) as cred:
            token = await cred.get_token(ARM)

        assert isinstance(token, AccessToken)
        assert emu.verify_access_token(token.token)["aud"] == "https://management.azure.com"
        oidc, entra = emu.requests
        assert oidc.endpoint == "oidc"
        assert oidc.method == "POST"
        assert oidc.query == {"api-version": "7.1", "serviceConnectionId": SC}
        headers = {k.lower(): v for k, v in oidc.headers.items()}
        assert headers["authorization"] == f"Bearer {emu.system_access_token}"
        assert headers["content-type"] == "application/json"
        assert headers["x-tfs-fedauthredirect"] == "Suppress"
        assert entra.endpoint == "token"
        assert urlsplit(entra.path).path == f"/{TENANT}/oauth2/v2.0/token"
        assert list(entra.form) == [
            "client_assertion",
            "client_assertion_type",
            "client_id",
            "grant_type",
            "scope",
        ]
        assert entra.form["client_id"] == CLIENT
        assert entra.form["scope"] == ARM

    async def test_get_token_info_carries_type_and_refresh_time(self, emu):
        emu.token_lifetime = 7200
        async with make(emu) as cred:
            info = await cred.get_token_info(ARM)

        assert isinstance(info, AccessTokenInfo)
        assert info.token_type == "Bearer"
        assert info.refresh_on is not None
        assert info.expires_on - info.refresh_on == pytest.approx(3600, abs=2)
        assert info.token not in repr(info)

    async def test_cae_claims_reach_entra(self, emu):
        async with make(emu) as cred:
            token = await cred.get_token(ARM, enable_cae=True)

        form = emu.requests[-1].form
        assert json.loads(form["claims"]) == {"access_token": {"xms_cc": {"values": ["CP1"]}}}
        assert emu.verify_access_token(token.token).get("xms_cc") == ["CP1"]


class TestSingleFlight:
    async def test_fifty_concurrent_cold_calls_cost_one_exchange(self, emu):
        emu.latency = 0.05
        async with make(emu) as cred:
            tokens = await asyncio.gather(*(cred.get_token(ARM) for _ in range(50)))

        assert len({t.token for t in tokens}) == 1
        assert emu.counts == {"oidc": 1, "token": 1}

    async def test_scopes_share_one_oidc_request(self, emu):
        emu.latency = 0.05
        scopes = [
            ARM,
            VAULT,
            "https://graph.microsoft.com/.default",
            "https://storage.azure.com/.default",
        ]
        async with make(emu) as cred:
            await asyncio.gather(*(cred.get_token(s) for s in scopes for _ in range(5)))

        assert emu.counts == {"oidc": 1, "token": len(scopes)}

    async def test_oidc_token_is_reused_across_scopes_while_fresh(self, emu):
        async with make(emu) as cred:
            await cred.get_token(ARM)
            await cred.get_token(VAULT)

        assert emu.counts == {"oidc": 1, "token": 2}

    async def test_short_lived_oidc_tokens_are_not_reused(self, emu):
        emu.oidc_lifetime = 30  # less than the 60 s safety margin
        async with make(emu) as cred:
            await cred.get_token(ARM)
            await cred.get_token(VAULT)

        assert emu.counts == {"oidc": 2, "token": 2}

    async def test_a_cancelled_caller_does_not_cancel_the_others(self, emu):
        emu.latency = 0.1
        async with make(emu) as cred:
            first = asyncio.create_task(cred.get_token(ARM))
            second = asyncio.create_task(cred.get_token(ARM))
            await asyncio.sleep(0.02)
            first.cancel()
            token = await second

        assert token.token
        assert emu.counts == {"oidc": 1, "token": 1}

    async def test_the_event_loop_is_never_blocked(self, emu):
        """The reference makes its OIDC call synchronously, freezing every other task."""
        emu.latency = 0.3
        async with make(emu) as cred:
            task = asyncio.create_task(cred.get_token(ARM))
            await asyncio.sleep(0.05)
            still_running = not task.done()
            await task

        assert still_running


class TestCacheKeys:
    async def test_cached_token_is_served_without_requests(self, emu):
        async with make(emu) as cred:
            first = await cred.get_token(ARM)
            second = await cred.get_token(ARM)

        assert first == second
        assert emu.counts["token"] == 1

    async def test_scope_sets_match_exactly(self, emu):
        async with make(emu) as cred:
            await cred.get_token(ARM, "offline_access")
            await cred.get_token("offline_access", ARM)  # same set
            await cred.get_token(ARM)  # a subset is a different token

        assert emu.counts["token"] == 2

    async def test_claims_bypass_the_cache_and_are_never_served_to_others(self, emu):
        async with make(emu) as cred:
            plain = await cred.get_token(ARM)
            challenged = await cred.get_token(
                ARM, claims='{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
            )
            after = await cred.get_token(ARM)

        assert challenged.token != plain.token
        assert after.token == plain.token
        assert emu.counts["token"] == 2
        assert "claims" in emu.requests[-1].form

    async def test_cae_and_non_cae_tokens_are_separate(self, emu):
        async with make(emu) as cred:
            plain = await cred.get_token(ARM)
            cae = await cred.get_token(ARM, enable_cae=True)
            again = await cred.get_token(ARM, enable_cae=True)

        assert cae.token != plain.token
        assert again.token == cae.token
        assert emu.counts["token"] == 2

    async def test_tokens_for_other_tenants_are_cached_apart(self, emu):
        other = "contoso.onmicrosoft.com"
        emu.add_connection(SC, other, CLIENT)
        async with make(emu, additionally_allowed_tenants=[other]) as cred:
            home = await cred.get_token(ARM)
            away = await cred.get_token(ARM, tenant_id=other)
            home_again = await cred.get_token(ARM)

        assert away.token != home.token
        assert home_again == home
        assert urlsplit(emu.requests[-1].path).path == f"/{other}/oauth2/v2.0/token"

    async def test_per_call_tenant_is_validated(self, emu):
        async with make(emu, additionally_allowed_tenants=["*"]) as cred:
            with pytest.raises(ValueError, match="Invalid tenant ID"):
                await cred.get_token(ARM, tenant_id="t/evil?x")

        assert emu.counts == {"oidc": 0, "token": 0}

    async def test_disallowed_tenant_fails_before_any_request(self, emu):
        async with make(emu) as cred:
            with pytest.raises(
                ClientAuthenticationError, match="not configured to acquire tokens for tenant"
            ):
                await cred.get_token(ARM, tenant_id="other-tenant")

        assert emu.counts == {"oidc": 0, "token": 0}

    async def test_closed_credential_serves_cache_and_refuses_network(self, emu):
        cred = make(emu)
        token = await cred.get_token(ARM)
        await cred.close()
        await cred.close()  # twice is harmless

        assert await cred.get_token(ARM) == token
        with pytest.raises(ValueError, match="closed"):
            await cred.get_token(VAULT)


class TestRefresh:
    @pytest.fixture
    async def timed(self, monkeypatch):
        clock = FakeClock()
        async with Emulator(clock=clock) as emulator:
            emulator.add_connection(SC, TENANT, CLIENT)
            monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emulator.oidc_request_uri)
            yield emulator, clock

    async def test_no_refresh_outside_the_window(self, timed):
        emu, clock = timed
        async with make(emu, clock=clock) as cred:
            first = await cred.get_token(ARM)
            clock.advance(3599 - 310)
            assert await cred.get_token(ARM) == first

        assert emu.counts["token"] == 1

    async def test_refresh_300_seconds_before_expiry(self, timed):
        emu, clock = timed
        async with make(emu, clock=clock) as cred:
            first = await cred.get_token(ARM)
            clock.advance(3599 - 299)
            second = await cred.get_token(ARM)

        assert second != first
        assert emu.counts["token"] == 2

    async def test_refresh_at_refresh_on(self, timed):
        emu, clock = timed
        emu.token_lifetime = 7200
        async with make(emu, clock=clock) as cred:
            first = await cred.get_token_info(ARM)
            clock.advance(3601)
            second = await cred.get_token_info(ARM)

        assert second.token != first.token

    async def test_failed_proactive_refresh_keeps_the_token_and_waits_30_seconds(self, timed):
        emu, clock = timed
        async with make(emu, clock=clock) as cred:
            first = await cred.get_token(ARM)
            clock.advance(3599 - 200)
            emu.fail_next("token", 400, count=100)
            assert await cred.get_token(ARM) == first
            attempts = emu.counts["token"]
            clock.advance(10)
            assert await cred.get_token(ARM) == first
            assert emu.counts["token"] == attempts  # within 30 s: no new attempt
            clock.advance(25)
            assert await cred.get_token(ARM) == first
            assert emu.counts["token"] == attempts + 1

    async def test_expired_token_always_triggers_a_request(self, timed):
        emu, clock = timed
        async with make(emu, clock=clock) as cred:
            await cred.get_token(ARM)
            clock.advance(3599 - 200)
            emu.fail_next("token", 400, count=100)
            await cred.get_token(ARM)  # failed proactive refresh
            clock.advance(201)
            with pytest.raises(EntraError):
                await cred.get_token(ARM)

    async def test_refresh_backoff_is_per_token(self, timed):
        """The reference shares one 30 s timer across every scope; a request for one token
        does not suppress the refresh of another here."""
        emu, clock = timed
        async with make(emu, clock=clock) as cred:
            arm = await cred.get_token(ARM)
            clock.advance(3599 - 200)
            await cred.get_token(VAULT)
            assert await cred.get_token(ARM) != arm

    async def test_expired_assertion_is_replaced_once(self, monkeypatch):
        """If Entra calls a reused OIDC token expired (AADSTS700024), one fresh one is fetched."""
        server_clock, client_clock = FakeClock(), FakeClock()
        async with Emulator(clock=server_clock) as emu:
            emu.add_connection(SC, TENANT, CLIENT)
            monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emu.oidc_request_uri)
            async with make(emu, clock=client_clock) as cred:
                await cred.get_token(ARM)
                server_clock.advance(400)  # Entra's clock runs ahead of ours: skew
                await cred.get_token(VAULT)

        assert emu.counts == {"oidc": 2, "token": 3}


class TestRetries:
    async def test_transient_entra_failures_are_retried_with_the_same_assertion(self, emu):
        emu.fail_next("token", 503, count=2)
        async with make(emu) as cred:
            await cred.get_token(ARM)

        assert emu.counts == {"oidc": 1, "token": 3}
        assertions = {r.form["client_assertion"] for r in emu.requests if r.endpoint == "token"}
        assert len(assertions) == 1

    @pytest.mark.parametrize("status", [408, 429, 500, 502, 504, 507])
    async def test_retryable_statuses(self, emu, status):
        emu.fail_next("oidc", status, count=1)
        async with make(emu) as cred:
            await cred.get_token(ARM)

        assert emu.counts["oidc"] == 2

    async def test_retry_after_is_honoured(self, emu):
        clock = FakeClock()
        emu.fail_next("oidc", 429, count=1, retry_after="7")
        async with make(emu, clock=clock) as cred:
            await cred.get_token(ARM)

        assert 7.0 in clock.slept

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 501])
    async def test_client_errors_are_not_retried(self, emu, status):
        emu.fail_next("oidc", status, count=5)
        async with make(emu) as cred:
            with pytest.raises(OidcRequestError) as info:
                await cred.get_token(ARM)

        assert info.value.status_code == status
        assert emu.counts["oidc"] == 1

    async def test_attempts_are_bounded_and_the_last_answer_is_explained(self, emu):
        emu.fail_next("token", 503, count=100)
        async with make(emu) as cred:
            with pytest.raises(EntraError) as info:
                await cred.get_token(ARM)

        assert info.value.status_code == 503
        assert emu.counts["token"] == 4

    async def test_dropped_connections_are_retried_then_reported(self, emu):
        emu.fail_next("oidc", 0, count=100, body="drop")
        async with make(emu) as cred:
            with pytest.raises(TransportError) as info:
                await cred.get_token(ARM)

        assert "Could not reach 127.0.0.1" in str(info.value)
        assert "after 4 attempts" in str(info.value)
        assert emu.counts["oidc"] == 4
        assert isinstance(info.value, ClientAuthenticationError)

    async def test_a_dropped_connection_then_success(self, emu):
        emu.fail_next("token", 0, count=1, body="drop")
        async with make(emu) as cred:
            assert (await cred.get_token(ARM)).token

    async def test_timeouts_are_retried_within_the_deadline(self, emu):
        emu.latency = 2.0
        policy = RetryPolicy(max_attempts=3, backoff_initial=0.001, deadline=1.0)
        async with make(emu, timeout=0.2, retry=policy) as cred:
            with pytest.raises(TransportError, match="timed out"):
                await cred.get_token(ARM)

        assert 1 <= emu.counts["oidc"] <= 3


class TestErrors:
    async def test_wrong_system_access_token(self, emu):
        async with make(emu, system_access_token="not-the-right-token") as cred:
            with pytest.raises(OidcRequestError) as info:
                await cred.get_token(ARM)

        assert info.value.status_code == 401
        assert "SYSTEM_ACCESSTOKEN" in str(info.value)
        assert "x-vss-e2eid: " in str(info.value)
        assert info.value.e2eid
        assert_no_secret(info.value, ["not-the-right-token", *secrets_of(emu)])

    async def test_unknown_service_connection(self, emu):
        async with make(emu, service_connection_id="99999999-0000-0000-0000-000000000000") as cred:
            with pytest.raises(OidcRequestError) as info:
                await cred.get_token(ARM)

        text = str(info.value)
        assert "99999999-0000-0000-0000-000000000000" in text
        assert "No service connection found" in text
        assert "x-msedge-ref" in text

    async def test_sign_in_page_is_explained(self, emu):
        emu.fail_next("oidc", 200, body="html")
        async with make(emu) as cred:
            with pytest.raises(OidcRequestError, match="not mapped into this step") as info:
                await cred.get_token(ARM)

        assert info.value.__context__ is None or info.value.__suppress_context__

    async def test_subject_mismatch_names_the_aadsts_code(self, emu):
        emu.register_app(
            TENANT,
            CLIENT,
            [("https://wrong-issuer.example", "sc://x/y/z", "api://AzureADTokenExchange")],
        )
        async with make(emu) as cred:
            with pytest.raises(EntraError) as info:
                await cred.get_token(ARM)

        err = info.value
        assert err.error_codes and err.error_codes[0] in (700211, 700213)
        assert "Hint:" in str(err)
        assert err.correlation_id
        assert_no_secret(err, secrets_of(emu))

    async def test_unknown_client_id(self, emu):
        async with make(emu, client_id="99999999-9999-9999-9999-999999999999") as cred:
            with pytest.raises(EntraError) as info:
                await cred.get_token(ARM)

        assert 700016 in info.value.error_codes

    async def test_bad_scope(self, emu):
        async with make(emu) as cred:
            with pytest.raises(EntraError) as info:
                await cred.get_token("https://management.azure.com/user_impersonation")

        assert 1002012 in info.value.error_codes

    async def test_http_oidc_uri_off_loopback_is_refused_without_sending(self, emu, monkeypatch):
        monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", "http://dev.azure.com/org/x/oidctoken")
        async with make(emu) as cred:
            # A variable that is not what azauth needs: the documented ConfigError, naming it.
            with pytest.raises(ConfigError, match="SYSTEM_OIDCREQUESTURI=.*plain http"):
                await cred.get_token(ARM)


class TestTransportSafety:
    async def test_redirects_are_never_followed(self, emu, monkeypatch):
        """A 302 must not carry the system access token to the Location host."""
        hits: list[str] = []

        async def elsewhere(request: web.Request) -> web.Response:
            hits.append(request.headers.get("Authorization", ""))
            return web.json_response({"oidcToken": "stolen"})

        other = web.Application()
        other.router.add_route("*", "/{tail:.*}", elsewhere)
        other_runner = web.AppRunner(other)
        await other_runner.setup()
        other_site = web.TCPSite(other_runner, "127.0.0.1", 0)
        await other_site.start()
        other_port = other_site._server.sockets[0].getsockname()[1]

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"http://127.0.0.1:{other_port}/capture")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", redirect)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", f"http://127.0.0.1:{port}/org/oidctoken")
        try:
            async with make(emu) as cred:
                with pytest.raises(OidcRequestError) as info:
                    await cred.get_token(ARM)
        finally:
            await runner.cleanup()
            await other_runner.cleanup()

        assert info.value.status_code == 302
        assert hits == []

    async def test_ca_bundle_from_ssl_cert_file(self, monkeypatch):
        emu = Emulator()
        await emu.start(tls=True)
        try:
            emu.add_connection(SC, TENANT, CLIENT)
            monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emu.oidc_request_uri)
            async with make(emu) as cred:
                with pytest.raises(TransportError, match="(?i)certificate"):
                    await cred.get_token(ARM)
            monkeypatch.setenv("SSL_CERT_FILE", emu.ca_file)
            async with make(emu) as cred:
                assert (await cred.get_token(ARM)).token
            monkeypatch.delenv("SSL_CERT_FILE")
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
            async with make(emu) as cred:
                assert (await cred.get_token(VAULT)).token
        finally:
            await emu.close()

    async def test_https_proxy_and_no_proxy(self, monkeypatch):
        """Requests tunnel through HTTPS_PROXY with CONNECT unless NO_PROXY names the host."""
        connects: list[str] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ")[1].decode()
            connects.append(target)
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                except (ConnectionError, asyncio.CancelledError):
                    pass
                finally:
                    dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
        proxy_port = proxy.sockets[0].getsockname()[1]
        emu = Emulator()
        await emu.start(host="127.0.0.1", tls=True)
        try:
            emu.add_connection(SC, TENANT, CLIENT)
            port = urlsplit(emu.url).port
            monkeypatch.setenv("SSL_CERT_FILE", emu.ca_file)
            monkeypatch.setenv(
                "SYSTEM_OIDCREQUESTURI", emu.oidc_request_uri.replace("127.0.0.1", "localhost")
            )
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy_port}")
            async with make(emu, authority=f"https://localhost:{port}") as cred:
                assert (await cred.get_token(ARM)).token
            assert connects and all(c == f"localhost:{port}" for c in connects)

            connects.clear()
            monkeypatch.setenv("NO_PROXY", "localhost")
            async with make(emu, authority=f"https://localhost:{port}") as cred:
                assert (await cred.get_token(VAULT)).token
            assert connects == []
        finally:
            await emu.close()
            proxy.close()


class TestInterop:
    async def test_azure_core_bearer_policy_sends_our_token(self, emu):
        from azure.core.pipeline import AsyncPipeline
        from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy
        from azure.core.pipeline.transport import AioHttpTransport
        from azure.core.rest import HttpRequest

        seen: list[str] = []

        async def resource(request: web.Request) -> web.Response:
            seen.append(request.headers["Authorization"])
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/resource", resource)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with make(emu) as cred:
                policy = AsyncBearerTokenCredentialPolicy(cred, ARM)
                async with AsyncPipeline(AioHttpTransport(), policies=[policy]) as pipeline:
                    for _ in range(3):
                        result = await pipeline.run(
                            HttpRequest("GET", f"http://127.0.0.1:{port}/resource"),
                            enforce_https=False,
                        )
                        assert result.http_response.status_code == 200
        finally:
            await runner.cleanup()

        assert len(seen) == 3
        token = seen[0].removeprefix("Bearer ")
        assert emu.verify_access_token(token)["aud"] == "https://management.azure.com"
        assert emu.counts["token"] == 1

    async def test_chained_credential_moves_on_when_unavailable(self, monkeypatch):
        from azure.identity.aio import ChainedTokenCredential

        monkeypatch.delenv("SYSTEM_OIDCREQUESTURI", raising=False)

        class Fallback:
            calls = 0

            async def get_token(self, *scopes, **kwargs):
                Fallback.calls += 1
                return AccessToken("fallback-token", 2_000_000_000)

            async def close(self):
                pass

        ours = AzurePipelinesCredential(
            tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC, system_access_token="t"
        )
        chain = ChainedTokenCredential(ours, Fallback())

        token = await chain.get_token(ARM)

        assert token.token == "fallback-token"
        assert Fallback.calls == 1

    async def test_chained_credential_stops_on_a_real_failure(self, emu):
        from azure.identity.aio import ChainedTokenCredential

        class Fallback:
            async def get_token(self, *scopes, **kwargs):
                raise AssertionError("must not be reached")

            async def close(self):
                pass

        chain = ChainedTokenCredential(make(emu, system_access_token="wrong-token-123"), Fallback())

        async with chain:
            with pytest.raises(ClientAuthenticationError):
                await chain.get_token(ARM)


async def test_get_oidc_token_is_shared_and_reports_subject(emu):
    async with make(emu) as cred:
        first, second = await asyncio.gather(cred.get_oidc_token(), cred.get_oidc_token())

    assert first is second
    assert first.subject and first.subject.startswith("sc://")
    assert first.audience == "api://AzureADTokenExchange"
    assert first.token not in repr(first)
    assert emu.counts["oidc"] == 1


async def test_session_owned_by_the_caller_is_used_and_left_open(emu):
    async with aiohttp.ClientSession() as session:
        async with make(emu, session=session) as cred:
            await cred.get_token(ARM)
        assert not session.closed


async def test_disable_multitenant_auth_pins_the_default_tenant(emu, monkeypatch):
    """AZURE_IDENTITY_DISABLE_MULTITENANTAUTH (any value) makes per-call tenants use the default."""
    monkeypatch.setenv("AZURE_IDENTITY_DISABLE_MULTITENANTAUTH", "false")
    async with make(emu) as cred:
        await cred.get_token(ARM, tenant_id="another-tenant")

    assert urlsplit(emu.requests[-1].path).path == f"/{TENANT}/oauth2/v2.0/token"


def test_tls_context_is_shared_until_the_bundle_changes(tmp_path):
    """One trust store load per bundle; rewriting the bundle in place loads it again."""
    import os
    import shutil

    from agent._http import ssl_context_from_env

    system = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    bundle = tmp_path / "bundle.pem"
    shutil.copy(system, bundle)
    env = {"SSL_CERT_FILE": str(bundle)}

    first = ssl_context_from_env(env)
    assert ssl_context_from_env(env) is first
    with bundle.open("a") as fh:
        fh.write("\n")
    os.utime(bundle, ns=(1, 1))
    assert ssl_context_from_env(env) is not first


class _SkewedClock:
    """The real clock, with the wall clock ``offset`` seconds off (monotonic untouched)."""

    def __init__(self, offset: float) -> None:
        from agent.clock import SystemClock

        self._real = SystemClock()
        self.offset = offset

    def time(self) -> float:
        return self._real.time() + self.offset

    def monotonic(self) -> float:
        return self._real.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


@pytest.mark.parametrize("offset", [7200.0, -7200.0])
async def test_a_skewed_wall_clock_neither_expires_cached_tokens_nor_storms(emu, offset, caplog):
    """Lifetimes come from expires_in and exp - iat on the monotonic clock, not the wall clock."""
    import agent.credential

    agent.credential._CLOCK_WARNED.clear()  # reported once per process: start afresh
    async with make(emu, clock=_SkewedClock(offset)) as cred:
        first = await cred.get_token(ARM)
        second = await cred.get_token(ARM)
        oidc = await cred.get_oidc_token()
    assert first.token == second.token
    assert emu.counts == {"oidc": 1, "token": 1}
    assert oidc.lifetime == 300
    # The absolute time handed to callers is Entra's, not the skewed clock's.
    assert abs(first.expires_on - (time.time() + 3599)) < 5
    warnings = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(warnings) == 1
    assert ("ahead of" if offset > 0 else "behind") in warnings[0]
    assert "1h59m" in warnings[0] or "2h00m" in warnings[0]  # iat has whole seconds


async def test_a_refused_connection_names_the_host_and_reason_without_a_memory_address() -> None:
    """Before: "... ssl:<ssl.SSLContext object at 0x7f...> [Connect call failed ...]"."""
    import socket  # noqa: PLC0415

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once the socket is closed
    url = f"https://127.0.0.1:{port}"
    async with AzurePipelinesCredential(
        tenant_id=TENANT,
        client_id=CLIENT,
        service_connection_id=SC,
        system_access_token="system-token",
        authority=url,
        oidc_request_uri=f"{url}/oidctoken",
        retry=RetryPolicy(max_attempts=1),
        env={},
    ) as cred:
        with pytest.raises(TransportError) as info:
            await cred.get_token(ARM)

    message = str(info.value)
    assert message.startswith(f"Could not reach 127.0.0.1:{port}: ClientConnectorError: ")
    assert "Connect call failed" in message
    assert "ssl:" not in message and "0x" not in message

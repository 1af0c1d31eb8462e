"""The OIDC request endpoint of `azauth serve`: both shapes, its secret, reuse and refusals.

Raw aiohttp requests pin the wire details; azure-identity's AzurePipelinesCredential and
ClientAssertionCredential (in a child process under `azauth exec --serve`, so that their https
authority is the emulator's TLS one) prove real clients accept it.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest

from agent.config import Connection
from agent.jwt import unverified_claims
from agent.testing.fakes import FakeClock
from agent.tokenserver.managed_identity import Refusal
from agent.tokenserver.oidc_request import (
    DEFAULT_AUDIENCE,
    authorize_bearer,
    error_body,
    parse_oidc_request,
    select_oidc_connection,
)
from agent.tokenserver.server import TokenServer
from tests.support import CLIENT, CLIENT2, PROD_OTHER_CI, SC, SC2, TENANT, azauth, python_program

PROD = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC)
OTHER = Connection(tenant_id=TENANT, client_id=CLIENT2, service_connection_id=SC2)


@pytest.fixture
def emu(two_connection_emulator):
    """The emulator with both connections registered."""
    return two_connection_emulator


@pytest.fixture
async def server(emu):
    async with TokenServer(
        {"prod": PROD, "other": OTHER}, env=dict(os.environ), default_connection="prod"
    ) as srv:
        yield srv


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def bearer(srv):
    return {"Authorization": f"Bearer {srv.oidc_request_token}"}


async def ado_post(http, srv, *, headers=None, **params):
    query = {"api-version": "7.1", "serviceConnectionId": SC, **params}
    sent = bearer(srv) if headers is None else headers
    async with http.post(srv.oidc_request_url, params=query, headers=sent) as response:
        return response.status, await response.json(), response.headers


async def github_get(http, srv, *, headers=None, **params):
    sent = bearer(srv) if headers is None else headers
    async with http.get(srv.oidc_request_url, params=params, headers=sent) as response:
        return response.status, await response.json(), response.headers


class TestPureProtocol:
    def test_bearer_must_be_the_secret(self):
        authorize_bearer("Bearer s3cret", "s3cret")
        authorize_bearer("bearer s3cret", "s3cret")
        for header in (None, "", "Basic s3cret", "Bearer ", "Bearer other"):
            with pytest.raises(Refusal) as caught:
                authorize_bearer(header, "s3cret")
            assert caught.value.status == 401
            assert "s3cret" not in caught.value.message

    def test_azure_devops_shape_needs_api_version_and_connection(self):
        ok = parse_oidc_request(
            "azure_devops",
            [("api-version", "7.1"), ("serviceConnectionId", SC)],
            [DEFAULT_AUDIENCE],
        )
        assert (ok.service_connection_id, ok.audience) == (SC, DEFAULT_AUDIENCE)
        for query in (
            [("serviceConnectionId", SC)],
            [("api-version", "6.0"), ("serviceConnectionId", SC)],
            [("api-version", "7.1")],
            [("api-version", "7.1"), ("serviceConnectionId", SC), ("serviceConnectionId", SC)],
        ):
            with pytest.raises(Refusal) as caught:
                parse_oidc_request("azure_devops", query, [DEFAULT_AUDIENCE])
            assert caught.value.status == 400

    def test_github_shape_defaults_the_audience_and_refuses_others(self):
        assert parse_oidc_request("github", [], [DEFAULT_AUDIENCE]).audience == DEFAULT_AUDIENCE
        with pytest.raises(Refusal, match="is not served"):
            parse_oidc_request("github", [("audience", "https://github.com/x")], [DEFAULT_AUDIENCE])
        alias = "api://AzureADTokenExchangeUSGov"
        assert parse_oidc_request("github", [("audience", alias)], [DEFAULT_AUDIENCE, alias])

    def test_connection_by_id_or_name_else_default(self):
        connections = {"prod": PROD, "other": OTHER}
        assert select_oidc_connection(connections, SC2.upper(), None) == "other"
        assert select_oidc_connection(connections, "other", None) == "other"
        assert select_oidc_connection(connections, None, "prod") == "prod"
        with pytest.raises(Refusal) as caught:
            select_oidc_connection(connections, None, None)
        assert caught.value.status == 400
        with pytest.raises(Refusal) as caught:
            select_oidc_connection(connections, "nope", "prod")
        assert caught.value.status == 404

    def test_error_bodies_follow_each_shape(self):
        refusal = Refusal(401, "unauthorized", "no")
        assert error_body("github", refusal) == {"message": "no"}
        vss = error_body("azure_devops", refusal)
        assert vss["message"] == "no"
        assert vss["typeKey"] == "UnauthorizedRequestException"
        assert set(vss) == {
            "$id",
            "innerException",
            "message",
            "typeName",
            "typeKey",
            "errorCode",
            "eventId",
        }


class TestEndpoint:
    async def test_azure_devops_shape_serves_the_connection_token(self, server, http, emu):
        status, body, headers = await ado_post(http, server, serviceConnectionId=SC2)

        assert status == 200
        assert set(body) == {"oidcToken"}
        assert headers["Cache-Control"] == "no-store"
        claims = unverified_claims(body["oidcToken"])
        assert claims["aud"] == DEFAULT_AUDIENCE
        assert claims["sub"].endswith(emu.connections[SC2.lower()].name)
        # What reached Azure DevOps carried the System.AccessToken; the client never sent it.
        [upstream] = [r for r in emu.requests if r.endpoint == "oidc"]
        assert upstream.query["serviceConnectionId"] == SC2
        assert upstream.headers["Authorization"] == f"Bearer {emu.system_access_token}"

    async def test_github_shape_serves_the_default_connection(self, server, http, emu):
        status, body, _ = await github_get(http, server, audience=DEFAULT_AUDIENCE)

        assert status == 200
        assert body["count"] == 1
        sub = unverified_claims(body["value"])["sub"]
        assert sub.endswith(emu.connections[SC.lower()].name)

    async def test_token_reused_while_a_minute_is_left_single_flight(self, emu, http):
        clock = FakeClock(emu.clock.time())
        emu.clock = clock
        emu.oidc_lifetime = 300
        emu.latency = 0.05
        async with TokenServer({"prod": PROD}, env=dict(os.environ), clock=clock) as srv:
            answers = await asyncio.gather(*(ado_post(http, srv) for _ in range(20)))
            assert {status for status, _, _ in answers} == {200}
            assert len({body["oidcToken"] for _, body, _ in answers}) == 1
            assert emu.counts["oidc"] == 1

            clock.advance(300 - 61)  # 61 s left: still served from the cache
            await ado_post(http, srv)
            assert emu.counts["oidc"] == 1
            clock.advance(2)  # 59 s left: fetched anew
            _, body, _ = await ado_post(http, srv)
            assert emu.counts["oidc"] == 2
            assert body["oidcToken"] != answers[0][1]["oidcToken"]

    @pytest.mark.parametrize(
        ("send", "status"),
        [
            ({}, 401),
            ({"Authorization": "Bearer wrong"}, 401),
            ("system", 401),
        ],
    )
    async def test_wrong_secret_refused_in_both_shapes(self, server, http, emu, send, status):
        headers = (
            {"Authorization": f"Bearer {emu.system_access_token}"} if send == "system" else send
        )
        code, vss, _ = await ado_post(http, server, headers=headers)
        code2, gh, _ = await github_get(http, server, headers=headers)

        assert (code, code2) == (status, status)
        assert vss["typeKey"] == "UnauthorizedRequestException"
        assert set(gh) == {"message"}
        assert emu.counts["oidc"] == 0

    async def test_unknown_connection_and_audience_refused(self, server, http, emu):
        status, body, _ = await ado_post(http, server, serviceConnectionId="nope")
        assert status == 404
        assert "No service connection found" in body["message"]
        status, body, _ = await github_get(http, server, audience="sts.amazonaws.com")
        assert status == 400
        assert "is not served" in body["message"]
        assert emu.counts["oidc"] == 0

    async def test_host_origin_and_method_guards(self, server, http, emu):
        base = bearer(server)
        status, _, _ = await github_get(http, server, headers={**base, "Host": "evil.example"})
        assert status == 403
        status, _, _ = await github_get(
            http, server, headers={**base, "Origin": "http://evil.example"}
        )
        assert status == 403
        status, _, _ = await github_get(
            http, server, headers={**base, "X-Forwarded-For": "1.2.3.4"}
        )
        assert status == 400
        async with http.put(server.oidc_request_url, headers=base) as response:
            assert response.status == 405
            assert response.headers["Allow"] == "GET, POST"
        assert emu.counts["oidc"] == 0

    async def test_upstream_failure_is_an_error_in_the_shape(self, server, http, emu):
        emu.fail_next("oidc", 401)
        status, body, _ = await ado_post(http, server)
        assert status == 500
        assert emu.system_access_token not in body["message"]

    async def test_the_managed_identity_secret_does_not_open_it(self, server, http):
        status, _, _ = await github_get(
            http, server, headers={"Authorization": f"Bearer {server.env['IDENTITY_HEADER']}"}
        )
        assert status == 401

    async def test_env_names_the_endpoint_and_its_own_secret(self, server):
        env = server.env
        assert env["AZAUTH_OIDC_REQUEST_URL"] == server.url + "/oidc/token"
        assert env["AZAUTH_OIDC_REQUEST_TOKEN"] == server.oidc_request_token
        assert env["AZAUTH_OIDC_REQUEST_TOKEN"] != env["IDENTITY_HEADER"]


PROFILE = PROD_OTHER_CI


def test_azure_identity_clients_use_the_endpoint(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    child = python_program("azure_identity_oidc_clients.py", TENANT, CLIENT, CLIENT2, SC2)
    result = azauth(
        "exec", "--emulate", "--serve", "--no-preset", "--connection", "prod", "--", *child,
        cwd=tmp_path, timeout=90,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [CLIENT2, CLIENT]


async def test_configured_audience_alias_is_accepted(emu, http):
    alias = "api://AzureADTokenExchangeUSGov"
    async with TokenServer({"prod": PROD}, env=dict(os.environ), oidc_audiences=[alias]) as srv:
        status, body, _ = await github_get(http, srv, audience=alias)
        assert status == 200
        assert unverified_claims(body["value"])["aud"] == DEFAULT_AUDIENCE
        status, _, _ = await github_get(http, srv, audience="api://other")
        assert status == 400


def test_serve_cli_takes_the_audience_alias(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    state = tmp_path / "st" / "s.json"
    started = azauth(
        "serve", "--background", "--emulate", "--profile", "ci", "--connection", "prod",
        "--oidc-audience", "api://AzureADTokenExchangeUSGov", "--state-file", str(state),
        cwd=tmp_path,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        import json
        import urllib.request

        variables = json.loads(state.read_text())["variables"]
        request = urllib.request.Request(
            variables["AZAUTH_OIDC_REQUEST_URL"] + "?audience=api://AzureADTokenExchangeUSGov",
            headers={"Authorization": "Bearer " + variables["AZAUTH_OIDC_REQUEST_TOKEN"]},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["count"] == 1
    finally:
        azauth("serve", "--stop", "--state-file", str(state), cwd=tmp_path)


@pytest.mark.parametrize("seed", range(25))
async def test_random_fault_schedules_never_serve_a_stale_token(emu, http, seed):
    """Time jumps, Azure DevOps outages and bursts of clients, on FakeClock, many seeds.

    Properties on every schedule: a 200 answer carries a token that is unexpired and either has
    more than a minute left or was minted during that request; every refusal is in the Azure
    DevOps error shape and never holds the System.AccessToken; once faults stop, the next
    request succeeds.
    """
    import random

    rng = random.Random(seed)
    clock = FakeClock(emu.clock.time())
    emu.clock = clock
    emu.oidc_lifetime = rng.choice([45, 90, 300, 600])
    served = 0
    async with TokenServer({"prod": PROD}, env=dict(os.environ), clock=clock) as srv:
        for _ in range(30):
            action = rng.random()
            if action < 0.35:
                clock.advance(rng.uniform(0, 400))
            elif action < 0.5:
                emu.fail_next(
                    "oidc",
                    rng.choice([401, 404, 500, 503]),
                    count=rng.randint(1, 3),
                    body=rng.choice(["json", "html", "empty", "garbage"]),
                    retry_after="0",
                )
            else:
                started = clock.time()
                answers = await asyncio.gather(
                    *(ado_post(http, srv) for _ in range(rng.randint(1, 5)))
                )
                for status, body, _ in answers:
                    if status == 200:
                        served += 1
                        claims = unverified_claims(body["oidcToken"])
                        now = clock.time()
                        assert claims["exp"] > now
                        assert claims["exp"] - started > 60 or claims["iat"] >= int(started)
                    else:
                        assert status in (500, 503), body
                        assert set(body) >= {"message", "typeKey"}
                        assert emu.system_access_token not in body["message"]
        assert served > 0
        emu._failures["oidc"].clear()
        clock.advance(1000)
        status, body, _ = await ado_post(http, srv)
        assert status == 200
        assert (
            unverified_claims(body["oidcToken"])["exp"] > clock.time() + 60
            or emu.oidc_lifetime <= 60
        )

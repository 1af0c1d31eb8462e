"""`azauth serve` answers from what it keeps between requests: parsed queries, encoded bodies.

A repeated query is not parsed again and an answer is encoded once per token, resource and
second; these tests pin that nothing observable changes: every guard still runs on every
request, ``expires_in`` follows the clock, a renewed token is answered at once, and distinct
resources or protocols get their own answers.
"""

from __future__ import annotations

import os
import time

import aiohttp
import pytest

from agent.config import Connection
from agent.testing import FakeClock
from agent.tokenserver.server import TokenServer

from .conftest import CLIENT, SC, TENANT

ARM = "https://management.azure.com"
PROD = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http, server, *, secret=None, headers=None, **params):
    query = {"api-version": "2019-08-01", "resource": ARM, **params}
    sent = {"X-IDENTITY-HEADER": server.env["IDENTITY_HEADER"] if secret is None else secret}
    sent.update(headers or {})
    async with http.get(server.identity_endpoint, params=query, headers=sent) as response:
        return response.status, await response.json(), response.headers


class TestRepeatedRequests:
    async def test_every_guard_runs_on_a_query_answered_before(self, connected_emulator, http):
        """The same query, answered once: a wrong secret, an Origin or a foreign Host is still
        refused, and a repeated parameter still is."""
        async with TokenServer({"prod": PROD}, env=dict(os.environ)) as server:
            assert (await get(http, server))[0] == 200

            assert (await get(http, server, secret="not-the-secret"))[0] == 401
            assert (await get(http, server, headers={"Origin": "https://evil.example"}))[0] == 403
            assert (await get(http, server, headers={"Host": "evil.example"}))[0] == 403
            status, body, _ = await get(http, server, resource=[ARM, ARM])
            assert status == 400 and "twice" in body["message"]
            assert (await get(http, server))[0] == 200
            assert server.counts == {"served": 2, "refused": 4}

    async def test_answers_follow_the_clock_and_the_token(self, connected_emulator, http):
        """``expires_in`` counts down with the clock; a renewed token is answered at once."""
        clock = FakeClock(start=time.time())  # the emulator's tokens carry real times
        async with TokenServer({"prod": PROD}, env=dict(os.environ), clock=clock) as server:
            status, first, headers = await get(http, server)
            assert status == 200
            assert headers["Content-Type"] == "application/json; charset=utf-8"
            assert headers["Cache-Control"] == "no-store"
            again = (await get(http, server))[1]
            assert again == first

            clock.advance(100)
            later = (await get(http, server))[1]
            assert later["access_token"] == first["access_token"]
            assert int(later["expires_in"]) == int(first["expires_in"]) - 100
            assert later["expires_on"] == first["expires_on"]

            clock.advance(int(first["expires_in"]))  # past expiry: a new token is minted
            renewed = (await get(http, server))[1]
            assert renewed["access_token"] != first["access_token"]
            assert connected_emulator.counts["token"] == 2

    async def test_each_resource_and_protocol_has_its_own_answer(self, connected_emulator, http):
        """Two resources, and the IMDS shape of the first: three distinct answers."""
        async with TokenServer({"prod": PROD}, env=dict(os.environ), imds=True) as server:
            arm = (await get(http, server))[1]
            vault = (await get(http, server, resource="https://vault.azure.net"))[1]
            async with http.get(
                server.url + "/metadata/identity/oauth2/token",
                params={"api-version": "2018-02-01", "resource": ARM},
                headers={"Metadata": "true"},
            ) as response:
                imds = await response.json()

        assert arm["resource"] == ARM and vault["resource"] == "https://vault.azure.net"
        assert arm["access_token"] != vault["access_token"]
        assert imds["access_token"] == arm["access_token"]
        assert "refresh_token" in imds and "refresh_token" not in arm

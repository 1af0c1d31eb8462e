"""Emulated Blob Storage and ARM, reached as real clients reach them: by host name, through the tunnel."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from agent.testing._tunnel import ConnectTunnel
from agent.testing.emulator import Emulator
from tests.support import CLIENT, SC, TENANT, pipeline_credential

SUB = "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d01"
BLOB = "https://acct.blob.core.windows.net/state/ci.tfstate"


@pytest.fixture
async def world():
    emu = Emulator()
    await emu.start(tls=True)
    emu.add_connection(SC, TENANT, CLIENT)
    emu.blob.create_container("acct", "state")
    emu.arm.add_subscription(SUB, TENANT, [CLIENT])
    tunnel = await ConnectTunnel(int(emu.url.rsplit(":", 1)[1])).start()
    context = ssl.create_default_context(cafile=emu.ca_file)
    async with aiohttp.ClientSession() as http:
        yield emu, tunnel, http, context
    await tunnel.close()
    await emu.close()


async def token_for(emu, http, context, scope):

    async with pipeline_credential(
        emu, oidc_request_uri=emu.oidc_request_uri, env={"SSL_CERT_FILE": emu.ca_file}
    ) as credential:
        return (await credential.get_token(scope)).token


async def test_blob_lease_protocol_through_the_tunnel(world):
    emu, tunnel, http, context = world
    token = await token_for(emu, http, context, "https://storage.azure.com/.default")
    auth = {"Authorization": f"Bearer {token}", "x-ms-version": "2023-11-03"}

    async def call(method, url, **headers):
        async with http.request(
            method, url, headers={**auth, **headers}, proxy=tunnel.url, ssl=context, data=b"{}"
        ) as response:
            return response.status, response.headers

    status, headers = await call("GET", BLOB)
    assert (status, headers["x-ms-error-code"]) == (404, "BlobNotFound")
    assert (await call("PUT", BLOB, **{"x-ms-blob-type": "BlockBlob"}))[0] == 201
    status, headers = await call(
        "PUT", BLOB + "?comp=lease", **{"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1"}
    )
    assert status == 201
    lease = headers["x-ms-lease-id"]
    assert (await call("PUT", BLOB + "?comp=lease", **{"x-ms-lease-action": "acquire"}))[0] == 409
    status, headers = await call("PUT", BLOB, **{"x-ms-blob-type": "BlockBlob"})
    assert (status, headers["x-ms-error-code"]) == (412, "LeaseIdMissing")
    assert (await call("PUT", BLOB, **{"x-ms-blob-type": "BlockBlob", "x-ms-lease-id": lease}))[
        0
    ] == 201
    assert (
        await call(
            "PUT", BLOB + "?comp=lease", **{"x-ms-lease-action": "release", "x-ms-lease-id": lease}
        )
    )[0] == 200
    assert tunnel.hosts == ["acct.blob.core.windows.net:443"] * len(tunnel.hosts)


async def test_blob_refuses_missing_or_foreign_tokens(world):
    emu, tunnel, http, context = world
    arm_token = await token_for(emu, http, context, "https://management.azure.com/.default")
    for headers in ({}, {"Authorization": f"Bearer {arm_token}"}):
        async with http.get(BLOB, headers=headers, proxy=tunnel.url, ssl=context) as response:
            assert response.status == 401
            assert "resource_id=https://storage.azure.com" in response.headers["WWW-Authenticate"]


async def test_arm_lists_the_subscriptions_the_app_can_see(world):
    emu, tunnel, http, context = world
    token = await token_for(emu, http, context, "https://management.core.windows.net//.default")
    url = "https://management.azure.com/subscriptions?api-version=2022-12-01"
    async with http.get(
        url, headers={"Authorization": f"Bearer {token}"}, proxy=tunnel.url, ssl=context
    ) as response:
        body = await response.json()
    assert [s["subscriptionId"] for s in body["value"]] == [SUB]
    async with http.get(url, proxy=tunnel.url, ssl=context) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "InvalidAuthenticationToken"


async def test_tunnel_refuses_plain_requests(world):
    _, tunnel, http, _ = world
    async with http.get(tunnel.url + "/") as response:
        assert response.status == 405

"""The emulated Azure Artifacts feed: answers, authentication, refusals as the service gives them."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile

import aiohttp
import pytest

from agent.testing._feeds import build_npm_tarball, build_wheel
from agent.testing.emulator import Emulator
from tests.support import CLIENT, SC, TENANT, pipeline_credential

DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798/.default"


@pytest.fixture
async def emu():

    emulator = Emulator()
    await emulator.start()
    emulator.add_connection(SC, TENANT, CLIENT)
    credential = pipeline_credential(emulator, oidc_request_uri=emulator.oidc_request_uri)
    emulator.tokens = {}  # type: ignore[attr-defined]
    async with credential:
        emulator.tokens["devops"] = (await credential.get_token(DEVOPS)).token  # type: ignore[attr-defined]
        emulator.tokens["arm"] = (  # type: ignore[attr-defined]
            await credential.get_token("https://management.azure.com/.default")
        ).token
    try:
        yield emulator
    finally:
        await emulator.close()


def basic(token: str, user: str = "anything") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


async def test_anonymous_gets_the_azure_devops_challenge(emu):
    feed = emu.feeds.add_feed("contoso", "shared", project="azauth")
    url = f"{emu.feeds.url_of(feed)}/pypi/simple/"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 401
        challenges = response.headers.getall("WWW-Authenticate")
        body = await response.json()
    assert challenges[0].startswith("Bearer authorization_uri=")
    assert challenges[1].startswith('Basic realm="')
    assert challenges[2] == "TFS-Federated"
    assert body["typeKey"] == "UnauthorizedRequestException"


async def test_pypi_and_npm_with_basic_and_bearer(emu):
    feed = emu.feeds.add_feed("contoso", "shared")
    url = emu.feeds.url_of(feed)
    token = emu.tokens["devops"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/pypi/simple/", headers=basic(token)) as response:
            assert response.status == 200
            assert 'href="azauth-feed-probe/"' in await response.text()
        async with http.get(
            f"{url}/pypi/simple/Azauth_Feed.Probe/", headers=basic(token, "x")
        ) as r:
            page = await r.text()
        link = page.split('href="')[1].split('"')[0]
        file_url, digest = link.split("#sha256=")
        async with http.get(file_url, headers={"Authorization": f"Bearer {token}"}) as response:
            wheel = await response.read()
        async with http.get(f"{url}/npm/registry/azauth-feed-probe", headers=basic(token)) as r:
            document = await r.json()
        dist = document["versions"]["1.0.0"]["dist"]
        async with http.get(dist["tarball"], headers={"Authorization": f"Bearer {token}"}) as r:
            tarball = await r.read()
    assert hashlib.sha256(wheel).hexdigest() == digest
    assert "azauth_feed_probe.py" in zipfile.ZipFile(io.BytesIO(wheel)).namelist()
    assert (
        dist["integrity"] == "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    )
    assert document["dist-tags"] == {"latest": "1.0.0"}


@pytest.mark.parametrize("which", ["arm", "garbage"])
async def test_tokens_for_other_resources_are_refused(emu, which):
    feed = emu.feeds.add_feed("contoso", "shared")
    token = emu.tokens.get(which, "not-a-token")
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{emu.feeds.url_of(feed)}/pypi/simple/", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 401


async def test_permissions(emu):
    feed = emu.feeds.add_feed("contoso", "locked", readers={"someone-else"}, publishers=set())
    token = emu.tokens["devops"]
    filename, data = build_wheel("up", "1.0")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emu.feeds.url_of(feed)}/pypi/simple/", headers=basic(token)) as r:
            assert r.status == 403
            body = await r.json()
        form = aiohttp.FormData({":action": "file_upload", "name": "up", "version": "1.0"})
        form.add_field("content", data, filename=filename)
        async with http.post(
            f"{emu.feeds.url_of(feed)}/pypi/upload/", data=form, headers=basic(token)
        ) as r:
            assert r.status == 403
            upload = await r.json()
        async with http.get(
            f"{emu.url}/contoso/_packaging/missing/pypi/simple/", headers=basic(token)
        ) as r:
            assert r.status == 404
    assert body["typeKey"] == "FeedNeedsPermissionsException"
    assert "You need to have 'ReadPackages'" in body["message"]
    assert "You need to have 'AddPackage'" in upload["message"]


async def test_upload_then_conflict(emu):
    feed = emu.feeds.add_feed("contoso", "shared")
    token = emu.tokens["devops"]
    filename, data = build_wheel("up", "1.0")

    def form() -> aiohttp.FormData:
        fields = aiohttp.FormData(
            {
                ":action": "file_upload",
                "name": "up",
                "version": "1.0",
                "sha256_digest": hashlib.sha256(data).hexdigest(),
            }
        )
        fields.add_field("content", data, filename=filename)
        return fields

    upload = f"{emu.feeds.url_of(feed)}/pypi/upload/"
    async with aiohttp.ClientSession() as http:
        async with http.post(upload, data=form(), headers=basic(token)) as r:
            assert r.status == 200
        async with http.post(upload, data=form(), headers=basic(token)) as r:
            assert r.status == 409
        async with http.get(f"{emu.feeds.url_of(feed)}/pypi/simple/up/", headers=basic(token)) as r:
            assert filename in await r.text()


def test_artifacts_are_deterministic():
    assert build_wheel() == build_wheel()
    assert build_npm_tarball() == build_npm_tarball()

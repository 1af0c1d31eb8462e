"""The ACR exchange protocol (pure), the helper protocol's pure parts, and the emulated registry."""

from __future__ import annotations

import base64
import json
import urllib.parse

import aiohttp
import pytest

from agent.credential_helpers import docker as dc
from agent.exchange import HttpResponse
from agent.registries import acr
from agent.testing._jwt_signing import SigningKey
from agent.testing.emulator import Emulator
from tests.support import CLIENT, SC, TENANT, ManualClock, pipeline_credential


def response(status: int, body: object) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, "", {"content-type": "application/json"}, raw)


# ------------------------------------------------------------------------------------------------
# Pure protocol


def test_the_exchange_request_is_the_documented_form_post() -> None:
    request = acr.exchange_request("contoso.azurecr.io", TENANT, "eyJ.aad.token")

    assert request.method == "POST"
    assert request.url == "https://contoso.azurecr.io/oauth2/exchange"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(urllib.parse.parse_qsl(request.body.decode())) == {
        "grant_type": "access_token",
        "service": "contoso.azurecr.io",
        "tenant": TENANT,
        "access_token": "eyJ.aad.token",
    }
    assert "eyJ" not in repr(request)


def test_the_refresh_token_expiry_is_its_exp_claim() -> None:
    token = SigningKey().sign({"exp": 1_800_010_800, "aud": "contoso.azurecr.io"})

    parsed = acr.parse_exchange_response(
        response(200, {"refresh_token": token}), "contoso.azurecr.io", fallback_expires_on=5
    )

    assert (parsed.token, parsed.expires_on) == (token, 1_800_010_800)
    assert token not in repr(parsed)


def test_a_refresh_token_without_exp_expires_with_the_entra_token() -> None:
    parsed = acr.parse_exchange_response(
        response(200, {"refresh_token": "opaque"}), "r.azurecr.io", fallback_expires_on=42
    )

    assert parsed.expires_on == 42


@pytest.mark.parametrize(
    ("claims", "now"),
    [
        ({"exp": 1000}, 1000.0),  # expires this very second
        ({"exp": 1000}, 5000.0),  # long expired (a registry clock far behind ours)
        ({}, 43.0),  # no exp: the Entra token's expiry (42) has passed too
    ],
)
def test_a_refresh_token_already_expired_is_a_retryable_error_not_a_token(
    claims: dict[str, int], now: float
) -> None:
    token = SigningKey().sign({"aud": "r.azurecr.io", **claims}) if claims else "opaque"

    with pytest.raises(acr.RegistryError, match="expired") as caught:
        acr.parse_exchange_response(
            response(200, {"refresh_token": token}),
            "r.azurecr.io",
            fallback_expires_on=42,
            now=now,
        )

    assert caught.value.retryable
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body", "retryable", "shown"),
    [
        (
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": "invalid AAD access token"}]},
            False,
            "(HTTP 401): UNAUTHORIZED: invalid AAD access token",
        ),
        (429, {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}, True, "429"),
        (503, b"<html>bad gateway</html>", True, "(HTTP 503)"),
        (400, {"errors": []}, False, "(HTTP 400)"),
    ],
)
def test_refusals_quote_the_registry_error_and_say_whether_to_retry(
    status: int, body: object, retryable: bool, shown: str
) -> None:
    with pytest.raises(acr.RegistryError) as caught:
        acr.parse_exchange_response(response(status, body), "r.azurecr.io", fallback_expires_on=0)

    error = caught.value
    assert shown in str(error)
    assert str(error).startswith("registry r.azurecr.io refused the token exchange")
    assert (error.status_code, error.retryable, error.registry) == (
        status,
        retryable,
        "r.azurecr.io",
    )


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": "a b"}, b"{", b"[]"])
def test_a_success_without_a_usable_refresh_token_is_a_retryable_error(body: object) -> None:
    with pytest.raises(acr.RegistryError, match="without a refresh_token") as caught:
        acr.parse_exchange_response(response(200, body), "r.azurecr.io", fallback_expires_on=0)
    assert caught.value.retryable


def test_the_challenge_parameters_are_read_with_quoted_commas() -> None:
    header = (
        'Bearer realm="https://r.azurecr.io/oauth2/token",service="r.azurecr.io",'
        'scope="repository:a:pull,push"'
    )

    assert acr.parse_challenge(header) == {
        "realm": "https://r.azurecr.io/oauth2/token",
        "service": "r.azurecr.io",
        "scope": "repository:a:pull,push",
    }
    assert acr.parse_challenge('Basic realm="x"') == {}


@pytest.mark.parametrize(
    ("server", "host"),
    [
        ("contoso.azurecr.io", "contoso.azurecr.io"),
        ("https://Contoso.AzureCR.io", "contoso.azurecr.io"),
        ("https://contoso.azurecr.io/v2/", "contoso.azurecr.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("  https://[::1]:443  ", "[::1]:443"),
    ],
)
def test_registry_host_normalises_what_clients_send(server: str, host: str) -> None:
    assert dc.registry_host(server) == host


@pytest.mark.parametrize(
    "server", ["", "https://", "user:pw@r.azurecr.io", "ftp://r.azurecr.io", "r.io:99999", "a b"]
)
def test_registry_host_refuses_what_is_not_a_registry(server: str) -> None:
    with pytest.raises(ValueError, match="not a registry host"):
        dc.registry_host(server)


@pytest.mark.parametrize(
    "server",
    [
        "evil.example\\.azurecr.io",
        "evil.example%2f.azurecr.io",
        "https://evil.example%2F.azurecr.io/v2/",
        "evil.example;.azurecr.io",
        'evil.example".azurecr.io',
        "evil.example&x=.azurecr.io",
        "x..azurecr.io",
        "-x.azurecr.io",
        "x_y.azurecr.io",
        "[fe80::1%25eth0]:443",
    ],
)
def test_a_host_with_characters_no_host_name_has_is_not_a_registry(server: str) -> None:
    """Such a name ends in .azurecr.io but must never become the host of a URL a token goes to."""
    with pytest.raises(ValueError, match="not a registry host"):
        dc.registry_host(server)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("contoso.azurecr.io", True),
        ("contoso.azurecr.cn:443", True),
        ("contoso.azurecr.us", True),
        ("azurecr.io.evil.com", False),
        ("ghcr.io", False),
    ],
)
def test_acr_hosts_are_known_by_their_suffix(host: str, expected: bool) -> None:
    assert acr.is_acr_host(host) is expected


def test_helper_answers_are_compact_json_lines() -> None:
    assert dc.render_get("r.azurecr.io", dc.ACR_USERNAME, "s") == (
        '{"ServerURL":"r.azurecr.io","Username":"00000000-0000-0000-0000-000000000000",'
        '"Secret":"s"}\n'
    )
    assert dc.render_list({"b.io": "u", "a.io": "u"}) == '{"a.io":"u","b.io":"u"}\n'


# ------------------------------------------------------------------------------------------------
# The emulated registry, as a client sees it


@pytest.fixture
async def emu() -> Emulator:
    emulator = Emulator()
    await emulator.start()
    emulator.add_connection(SC, TENANT, CLIENT)
    yield emulator
    await emulator.close()


async def entra_token(emu: Emulator, scope: str = acr.ACR_SCOPE) -> str:

    async with pipeline_credential(emu, oidc_request_uri=emu.oidc_request_uri) as credential:
        return (await credential.get_token(scope)).token


async def post(emu: Emulator, path: str, form: dict[str, str]) -> tuple[int, dict]:
    host = emu.url.removeprefix("http://")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emu.url}{path}", data={"service": host, **form}) as resp,
    ):
        return resp.status, await resp.json()


async def exchange(emu: Emulator, token: str, tenant: str = TENANT) -> tuple[int, dict]:
    return await post(
        emu,
        "/oauth2/exchange",
        {"grant_type": "access_token", "tenant": tenant, "access_token": token},
    )


async def test_v2_challenges_with_realm_and_service(emu: Emulator) -> None:
    host = emu.url.removeprefix("http://")
    async with aiohttp.ClientSession() as session, session.get(f"{emu.url}/v2/") as resp:
        body = await resp.json()
        challenge = resp.headers["WWW-Authenticate"]
        version = resp.headers["Docker-Distribution-Api-Version"]

    assert resp.status == 401
    assert acr.parse_challenge(challenge) == {
        "realm": f"https://{host}/oauth2/token",
        "service": host,
    }
    assert version == "registry/2.0"
    assert body["errors"][0]["code"] == "UNAUTHORIZED"


async def test_exchange_then_token_then_manifest(emu: Emulator) -> None:
    host = emu.url.removeprefix("http://")
    status, body = await exchange(emu, await entra_token(emu))
    assert status == 200
    refresh = body["refresh_token"]

    status, body = await post(
        emu,
        "/oauth2/token",
        {"grant_type": "refresh_token", "scope": "repository:hello:pull", "refresh_token": refresh},
    )
    assert status == 200
    access = body["access_token"]
    basic = base64.b64encode(f"{acr.ACR_USERNAME}:{refresh}".encode()).decode()
    image = emu.registry.images["hello"]
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{emu.url}/oauth2/token",
            params={"service": host, "scope": "repository:hello:pull"},
            headers={"Authorization": f"Basic {basic}"},
        ) as resp:
            assert resp.status == 200
        async with session.get(
            f"{emu.url}/v2/hello/manifests/v1", headers={"Authorization": f"Bearer {access}"}
        ) as resp:
            manifest = await resp.read()
            digest = resp.headers["Docker-Content-Digest"]
        async with session.get(
            f"{emu.url}/v2/hello/manifests/v2", headers={"Authorization": f"Bearer {access}"}
        ) as resp:
            missing = (resp.status, await resp.json())
        async with session.get(
            f"{emu.url}/v2/other/manifests/v1", headers={"Authorization": f"Bearer {access}"}
        ) as resp:
            other = (resp.status, resp.headers["WWW-Authenticate"])
        async with session.get(
            f"{emu.url}/v2/hello/tags/list", headers={"Authorization": f"Bearer {access}"}
        ) as resp:
            tags = (resp.status, await resp.json())
        async with session.get(f"{emu.url}/v2/hello/tags/list") as resp:
            tags_challenge = resp.headers["WWW-Authenticate"]

    assert (manifest, digest) == (image.manifest, image.digest)
    assert missing[0] == 404
    assert missing[1]["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert other[0] == 401  # the access token covers repository hello only
    assert 'scope="repository:other:pull"' in other[1]
    assert tags == (200, {"name": "hello", "tags": ["v1"]})
    assert 'scope="repository:hello:pull"' in tags_challenge


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("expired", "invalid AAD access token: the access token has expired"),
        ("tenant", "invalid AAD access token: tenant mismatch"),
        ("graph", "audience https://graph.microsoft.com is not accepted"),
        ("garbage", "invalid AAD access token: not an access token issued by this emulator"),
    ],
)
async def test_exchange_refusals_use_the_registry_error_body(
    emu: Emulator, change: str, message: str
) -> None:
    tenant = TENANT
    if change == "graph":
        token = await entra_token(emu, "https://graph.microsoft.com/.default")
    elif change == "garbage":
        token = "eyJhbGciOiJub25lIn0.e30."
    else:
        token = await entra_token(emu)
    if change == "expired":
        emu.clock = ManualClock(emu.clock.time() + 7200)
    if change == "tenant":
        tenant = "00000000-0000-0000-0000-00000000dead"

    status, body = await exchange(emu, token, tenant)

    assert status == 401
    assert body["errors"][0]["code"] == "UNAUTHORIZED"
    assert message in body["errors"][0]["message"]


async def test_arm_tokens_are_accepted_only_while_authentication_as_arm_is_on(
    emu: Emulator,
) -> None:
    token = await entra_token(emu, "https://management.azure.com/.default")

    accepted, _ = await exchange(emu, token)
    emu.registry.authentication_as_arm = False
    refused, body = await exchange(emu, token)

    assert (accepted, refused) == (200, 401)
    assert "authentication-as-arm is disabled" in body["errors"][0]["message"]


@pytest.mark.parametrize("grant_type", ["refresh_token", "access_token_refresh_token", "password"])
async def test_other_exchange_grants_are_refused(emu: Emulator, grant_type: str) -> None:
    status, body = await post(emu, "/oauth2/exchange", {"grant_type": grant_type})

    assert status == 400
    assert body["errors"][0]["code"] == "UNSUPPORTED"


async def test_expired_or_revoked_refresh_tokens_get_no_access_token(emu: Emulator) -> None:
    _, body = await exchange(emu, await entra_token(emu))
    refresh = body["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "scope": "repository:hello:pull",
        "refresh_token": refresh,
    }

    emu.registry.revoked_before = emu.clock.time() + 1
    revoked, revoked_body = await post(emu, "/oauth2/token", form)
    emu.registry.revoked_before = 0
    emu.clock = ManualClock(emu.clock.time() + emu.registry.refresh_token_lifetime + 1)
    expired, _ = await post(emu, "/oauth2/token", form)

    assert (revoked, expired) == (401, 401)
    assert revoked_body["errors"][0]["message"].startswith("authentication required")


def test_a_registry_echoing_the_sent_token_does_not_put_it_in_the_error() -> None:
    from agent._secrets import register_secret

    token = "eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA"
    register_secret(token)
    body = {"errors": [{"code": "UNAUTHORIZED", "message": f"bad token {token}"}]}

    with pytest.raises(acr.RegistryError) as caught:
        acr.parse_exchange_response(response(401, body), "r.azurecr.io", fallback_expires_on=0)

    assert token not in str(caught.value)
    assert "UNAUTHORIZED" in str(caught.value)


@pytest.mark.parametrize(
    ("lifetime", "served_for"),
    [(3 * 3600, 3 * 3600 - 1800), (3600, 1800), (600, 300), (4, 2), (0, 0)],
)
def test_refresh_tokens_are_served_until_30_minutes_or_half_their_life_remain(
    lifetime: int, served_for: int
) -> None:
    from agent.registries.tokens import refresh_on

    obtained = 1_800_000_000.0

    assert refresh_on(obtained, int(obtained) + lifetime) == int(obtained) + served_for


@pytest.mark.parametrize(
    ("registry", "cloud", "scope"),
    [
        ("contoso.azurecr.io", "public", "https://containerregistry.azure.net/.default"),
        ("contoso.azurecr.us", "public", "https://containerregistry.azure.us/.default"),
        ("contoso.azurecr.cn:443", "public", "https://containerregistry.azure.cn/.default"),
        ("registry.contoso.com", "china", "https://containerregistry.azure.cn/.default"),
        ("127.0.0.1:5000", "usgovernment", "https://containerregistry.azure.us/.default"),
        ("127.0.0.1:5000", "public", "https://containerregistry.azure.net/.default"),
    ],
)
def test_the_default_scope_is_acrs_audience_in_the_registrys_cloud(
    registry: str, cloud: str, scope: str
) -> None:
    assert acr.acr_scope(registry, cloud) == scope


# ------------------------------------------------------------------------------------------------
# JSON nested too deeply for Python's parser (RecursionError, not ValueError) from a registry,
# a client, a file or the cache: every parser treats it as unreadable, none raises it.

DEEP = b"[" * 100_000


def _deep_jwt() -> str:
    payload = base64.urlsafe_b64encode(DEEP).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{payload}.sig"


@pytest.mark.parametrize("status", [200, 401, 503])
def test_a_registry_answer_nested_too_deeply_is_a_registry_error(status: int) -> None:
    with pytest.raises(acr.RegistryError):
        acr.parse_exchange_response(response(status, DEEP), "r.azurecr.io", fallback_expires_on=1)


def test_a_refresh_token_with_a_payload_nested_too_deeply_has_no_claims() -> None:
    from agent.jwt import unverified_claims

    assert unverified_claims(_deep_jwt()) == {}
    token = acr.parse_exchange_response(
        response(200, {"refresh_token": _deep_jwt()}), "r.azurecr.io", fallback_expires_on=42
    )
    assert token.expires_on == 42


def test_entra_and_devops_answers_nested_too_deeply_are_protocol_errors() -> None:
    from agent import exchange as protocol
    from agent.exceptions import AuthenticationError

    deep = HttpResponse(200, "OK", {}, DEEP)
    with pytest.raises(AuthenticationError):
        protocol.parse_token_response(deep, request_time=0)
    with pytest.raises(AuthenticationError):
        protocol.parse_oidc_response(deep, "00000000-aaaa-bbbb-cccc-000000000001")


def test_a_cache_entry_nested_too_deeply_is_a_miss() -> None:
    from agent.credential_helpers.cache import decode_entry

    assert decode_entry(DEEP) is None


@pytest.mark.parametrize("existing", [DEEP, b'{"auths": ' + DEEP])
def test_a_docker_config_nested_too_deeply_is_never_overwritten(existing: bytes) -> None:
    from agent.outputs.docker_config import remove_registries, render_docker_config

    with pytest.raises(ValueError, match="refusing to overwrite"):
        render_docker_config(existing, cred_helpers=["r.azurecr.io"])
    with pytest.raises(ValueError, match="refusing to overwrite"):
        remove_registries(existing, ["r.azurecr.io"])


def test_a_store_request_nested_too_deeply_is_the_protocol_error() -> None:
    with pytest.raises(ValueError, match="the store request is not a JSON object"):
        dc.parse_store_request(b'{"ServerURL": ' + DEEP)

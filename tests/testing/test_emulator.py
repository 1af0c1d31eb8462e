"""The emulator, driven through real HTTP: both endpoints, their errors, the knobs, TLS and the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shlex
import signal
import ssl
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from agent.cli.emulator import render_exports
from agent.cli.main import main as cli_main
from agent.testing._jwt_signing import SigningKey
from agent.testing.emulator import Emulator
from tests.support import ARM, CLIENT, SC, TENANT, ManualClock, spawn_azauth

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
REPO = Path(__file__).resolve().parents[2]


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(b64d(header)), json.loads(b64d(payload))


def verify_with_jwks(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Verify an RS256 token against a JWKS document, independently of the emulator's code."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64d(header_b64))
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    public = rsa.RSAPublicNumbers(
        int.from_bytes(b64d(jwk["e"]), "big"), int.from_bytes(b64d(jwk["n"]), "big")
    ).public_key()
    public.verify(
        b64d(signature_b64),
        f"{header_b64}.{payload_b64}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    assert header["x5t"] == jwk["x5t"]
    return json.loads(b64d(payload_b64))


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


async def post_oidc(
    session: aiohttp.ClientSession,
    emu: Emulator,
    *,
    connection: str | None = SC,
    bearer: str | None = "valid",
    suppress: bool = True,
    api_version: str | None = "7.1",
    method: str = "POST",
    uri: str | None = None,
) -> tuple[int, Any, str]:
    """One OIDC request shaped like azure-identity's; returns (status, headers, body text)."""
    query = {}
    if api_version is not None:
        query["api-version"] = api_version
    if connection is not None:
        query["serviceConnectionId"] = connection
    headers = {"Content-Type": "application/json"}
    if bearer is not None:
        token = emu.system_access_token if bearer == "valid" else bearer
        headers["Authorization"] = f"Bearer {token}"
    if suppress:
        headers["X-TFS-FedAuthRedirect"] = "Suppress"
    async with session.request(
        method, uri or emu.oidc_request_uri, params=query, headers=headers, allow_redirects=False
    ) as response:
        return response.status, response.headers, await response.text()


async def oidc_token(session: aiohttp.ClientSession, emu: Emulator, connection: str = SC) -> str:
    status, _, body = await post_oidc(session, emu, connection=connection)
    assert status == 200, body
    return json.loads(body)["oidcToken"]


async def post_token(
    session: aiohttp.ClientSession,
    emu: Emulator,
    *,
    tenant: str = TENANT,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    **fields: str | None,
) -> tuple[int, Any, dict[str, Any]]:
    """One Entra token request; ``fields`` override (or, with None, remove) form fields."""
    form: dict[str, str | None] = {
        "client_assertion": None,
        "client_assertion_type": ASSERTION_TYPE,
        "client_id": CLIENT,
        "grant_type": "client_credentials",
        "scope": ARM,
    }
    form.update(fields)
    data = {key: value for key, value in form.items() if value is not None}
    async with session.request(
        method, f"{emu.authority}/{tenant}/oauth2/v2.0/token", data=data, headers=headers or {}
    ) as response:
        return response.status, response.headers, await response.json(content_type=None)


async def exchange(session, emu, assertion: str, **fields):
    return await post_token(session, emu, client_assertion=assertion, **fields)


def assert_aadsts(status: int, body: dict[str, Any], expected_status: int, error: str, code: int):
    assert (status, body["error"], body["error_codes"]) == (expected_status, error, [code])
    assert body["error_description"].startswith(f"AADSTS{code}: ")


class TestOidcEndpoint:
    async def test_a_registered_connection_gets_a_signed_service_connection_token(
        self, connected_emulator, session
    ):
        """The answer is {"oidcToken": JWT} with the claims and header of a real Azure DevOps token."""
        emu = connected_emulator
        status, headers, body = await post_oidc(session, emu)

        assert status == 200
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert list(json.loads(body)) == ["oidcToken"]
        header, claims = jwt_parts(json.loads(body)["oidcToken"])
        assert header == {
            "typ": "JWT",
            "alg": "RS256",
            "x5t": emu.devops_key.x5t,
            "kid": emu.devops_key.kid,
        }
        assert claims["sub"] == f"sc://contoso/azauth/{emu.connections[SC].name}"
        assert claims["aud"] == "api://AzureADTokenExchange"
        assert claims["iss"] == f"https://vstoken.dev.azure.com/{emu.org_id}"
        assert claims["nbf"] == claims["iat"] - 600
        assert claims["exp"] == claims["iat"] + 300
        assert GUID.match(claims["jti"])

    async def test_every_answer_carries_the_diagnostic_headers(self, connected_emulator, session):
        """x-vss-e2eid and x-msedge-ref come with successes and refusals alike."""
        for kwargs in ({}, {"bearer": None}, {"connection": "nope"}):
            _, headers, _ = await post_oidc(session, connected_emulator, **kwargs)

            assert GUID.match(headers["x-vss-e2eid"])
            assert GUID.match(headers["activityid"])
            assert re.fullmatch(
                r"Ref A: [0-9A-F]{32} Ref B: \S+ Ref C: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                headers["x-msedge-ref"],
            )

    async def test_the_token_verifies_against_the_published_jwks(self, connected_emulator, session):
        """The discovery document of the issuer leads to a JWKS that verifies the signature."""
        emu = connected_emulator
        token = await oidc_token(session, emu)
        async with session.get(f"{emu.url}/{emu.org_id}/.well-known/openid-configuration") as r:
            discovery = await r.json()
        async with session.get(discovery["jwks_uri"]) as r:
            jwks = await r.json()

        claims = verify_with_jwks(token, jwks)

        assert discovery["issuer"] == claims["iss"]

    @pytest.mark.parametrize("bearer", [None, "not-the-system-access-token", ""])
    async def test_a_bad_access_token_with_suppress_is_a_401_envelope(
        self, connected_emulator, session, bearer
    ):
        """With X-TFS-FedAuthRedirect: Suppress, an invalid System.AccessToken gets 401 JSON."""
        status, headers, body = await post_oidc(session, connected_emulator, bearer=bearer)

        assert status == 401
        assert json.loads(body) == {
            "$id": "1",
            "innerException": None,
            "message": "TF400813: The user '' is not authorized to access this resource.",
            "typeName": "Microsoft.TeamFoundation.Framework.Server.UnauthorizedRequestException, "
            "Microsoft.TeamFoundation.Framework.Server",
            "typeKey": "UnauthorizedRequestException",
            "errorCode": 0,
            "eventId": 3000,
        }
        assert "Bearer" in headers.getall("WWW-Authenticate")

    async def test_a_bad_access_token_without_suppress_is_redirected_to_sign_in(
        self, connected_emulator, session
    ):
        """Without the Suppress header the service answers 302 to its sign-in page, which exists."""
        emu = connected_emulator
        status, headers, _ = await post_oidc(session, emu, bearer="bad", suppress=False)

        assert status == 302
        assert headers["Location"].startswith(f"{emu.url}/_signin?")
        async with session.get(headers["Location"]) as page:
            assert page.status == 200
            assert "Sign In" in await page.text()

    async def test_the_sign_in_page_variant_is_a_203_html_page(self, connected_emulator, session):
        """unauthorized_style="signin_page" answers 203 with HTML instead of redirecting."""
        connected_emulator.unauthorized_style = "signin_page"

        status, headers, body = await post_oidc(
            session, connected_emulator, bearer="bad", suppress=False
        )

        assert status == 203
        assert headers["Content-Type"].startswith("text/html")
        assert "<title>Azure DevOps Services | Sign In</title>" in body

    async def test_suppress_does_not_change_a_valid_request(self, connected_emulator, session):
        """A valid System.AccessToken gets a token with or without the Suppress header."""
        status, _, _ = await post_oidc(session, connected_emulator, suppress=False)

        assert status == 200

    @pytest.mark.parametrize("api_version", ["7.1-preview.1", "6.0", None])
    async def test_only_api_version_7_1_is_served(self, connected_emulator, session, api_version):
        """Any other (or no) api-version is a 400 with the VSS envelope."""
        status, _, body = await post_oidc(session, connected_emulator, api_version=api_version)

        envelope = json.loads(body)
        assert status == 400
        assert envelope["typeKey"].startswith("VssVersion")
        assert envelope["$id"] == "1"

    async def test_an_unknown_connection_is_refused_with_the_service_message(
        self, connected_emulator, session
    ):
        """The message is the one the troubleshooting guides quote, in a 400 envelope."""
        unknown = str(uuid.uuid4())

        status, _, body = await post_oidc(session, connected_emulator, connection=unknown)

        assert status == 400
        assert (
            json.loads(body)["message"] == f"No service connection found with identifier {unknown}."
        )

    async def test_connection_ids_match_case_insensitively(self, connected_emulator, session):
        """Service connection ids are GUIDs: letter case does not matter."""
        status, _, _ = await post_oidc(session, connected_emulator, connection=SC.upper())

        assert status == 200

    async def test_trust_any_app_accepts_and_registers_any_connection(self, session):
        """With trust_any_app, an unknown connection id gets a token and becomes registered."""
        connection = str(uuid.uuid4())
        async with Emulator(trust_any_app=True) as emu:
            token = await oidc_token(session, emu, connection)

            assert (
                jwt_parts(token)[1]["sub"]
                == f"sc://contoso/azauth/{emu.connections[connection].name}"
            )

    async def test_an_unreferenced_connection_is_refused_as_a_collection(self, emulator, session):
        """The 2026 stage-reference refusal is {"count":1,"value":"There is no explicit reference…"}."""
        emulator.add_service_connection(SC, referenced=False)
        emulator.stage_name = "Deploy.Job.__default"

        status, _, body = await post_oidc(session, emulator)

        assert status == 400
        assert json.loads(body) == {
            "count": 1,
            "value": f"There is no explicit reference to service connection {SC} "
            "from current stage Deploy.Job.__default.",
        }

    async def test_without_a_connection_id_the_token_is_a_pipeline_token(
        self, connected_emulator, session
    ):
        """No serviceConnectionId yields sub p://org/project/pipeline and the pipeline claims."""
        emu = connected_emulator
        status, _, body = await post_oidc(session, emu, connection=None)

        claims = jwt_parts(json.loads(body)["oidcToken"])[1]
        assert status == 200
        assert claims["sub"] == "p://contoso/azauth/azauth-ci"
        assert claims["org_id"] == emu.org_id
        assert claims["prj_id"] == emu.project_id
        assert {"def_id", "rpo_id", "rpo_uri", "rpo_ver", "rpo_ref", "run_id"} <= claims.keys()

    async def test_a_pipeline_token_is_refused_by_entra_for_its_subject(
        self, connected_emulator, session
    ):
        """Exchanging a p:// token fails with AADSTS700213, as terraform-provider-fabric#23 shows."""
        status, _, body = await post_oidc(session, connected_emulator, connection=None)

        answer = await exchange(session, connected_emulator, json.loads(body)["oidcToken"])

        assert_aadsts(answer[0], answer[2], 401, "invalid_client", 700213)
        assert "'p://contoso/azauth/azauth-ci'" in answer[2]["error_description"]

    async def test_a_uri_for_another_job_is_not_found(self, connected_emulator, session):
        """A stale SYSTEM_OIDCREQUESTURI (another plan) gets a 404 envelope."""
        emu = connected_emulator
        stale = emu.oidc_request_uri.replace(emu.plan_id, str(uuid.uuid4()))

        status, _, body = await post_oidc(session, emu, uri=stale)

        assert status == 404
        assert json.loads(body)["typeKey"] == "TaskOrchestrationPlanNotFoundException"

    async def test_only_post_is_allowed(self, connected_emulator, session):
        """GET on the oidctoken endpoint is a 405."""
        status, _, _ = await post_oidc(session, connected_emulator, method="GET")

        assert status == 405

    async def test_every_attempt_is_counted_and_recorded(self, connected_emulator, session):
        """Failed attempts count too; the recorded request keeps query, headers and answer."""
        emu = connected_emulator
        await post_oidc(session, emu, bearer=None)
        await post_oidc(session, emu)

        assert emu.counts == {"oidc": 2, "token": 0}
        first, second = emu.requests
        assert (first.status, second.status) == (401, 200)
        assert second.method == "POST"
        assert second.query == {"api-version": "7.1", "serviceConnectionId": SC}
        assert second.headers["authorization"] == f"Bearer {emu.system_access_token}"
        assert second.form is None
        assert emu.system_access_token not in repr(second)
        emu.reset_counts()
        assert (emu.counts, emu.requests) == ({"oidc": 0, "token": 0}, [])


class TestEntraIssuer:
    async def test_entra_issuer_tokens_have_the_eid1_subject_and_are_accepted(self, session):
        """issuer="entra": iss is the tenant's v2.0 issuer and sub the /eid1/ form; Entra trusts it."""
        async with Emulator(issuer="entra") as emu:
            emu.add_connection(SC, TENANT, CLIENT)
            token = await oidc_token(session, emu)
            async with session.get(
                f"{emu.url}/{TENANT}/v2.0/.well-known/openid-configuration"
            ) as r:
                discovery = await r.json()
            async with session.get(discovery["jwks_uri"]) as r:
                claims = verify_with_jwks(token, await r.json())

            status, _, body = await exchange(session, emu, token)

        assert (
            claims["iss"]
            == f"https://login.microsoftonline.com/{TENANT}/v2.0"
            == discovery["issuer"]
        )
        # The tenant and the Azure DevOps application, base64url in .NET GUID byte order.
        assert claims["sub"] == (
            f"/eid1/c/pub/t/v4j5cvGGr0GRqy180BHbRw/a/rISbSSETf0KqFyZ8ppdXmA/sc/{emu.org_id}/{SC}"
        )
        assert status == 200, body

    async def test_a_connection_can_choose_its_issuer(self, emulator, session):
        """add_connection(issuer="entra") on a devops-issuer emulator affects that connection only."""
        other = str(uuid.uuid4())
        emulator.add_connection(SC, TENANT, CLIENT, issuer="entra")
        emulator.add_connection(other, TENANT, CLIENT)

        entra_claims = jwt_parts(await oidc_token(session, emulator))[1]
        devops_claims = jwt_parts(await oidc_token(session, emulator, other))[1]

        assert entra_claims["iss"].startswith("https://login.microsoftonline.com/")
        assert devops_claims["iss"].startswith("https://vstoken.dev.azure.com/")


class TestTokenEndpoint:
    async def test_a_federated_assertion_is_exchanged_for_an_access_token(
        self, connected_emulator, session
    ):
        """Success: Entra's body shape and an access token for the scope's resource."""
        emu = connected_emulator
        status, headers, body = await exchange(session, emu, await oidc_token(session, emu))

        assert status == 200
        assert list(body) == ["token_type", "expires_in", "ext_expires_in", "access_token"]
        assert (body["token_type"], body["expires_in"], body["ext_expires_in"]) == (
            "Bearer",
            3599,
            3599,
        )
        claims = emu.verify_access_token(
            body["access_token"], audience="https://management.azure.com"
        )
        assert (claims["tid"], claims["appid"], claims["azp"]) == (TENANT, CLIENT, CLIENT)
        assert claims["exp"] - claims["iat"] == 3599
        assert "xms_cc" not in claims
        assert GUID.match(headers["x-ms-request-id"])
        assert headers["Cache-Control"] == "no-store, no-cache"

    @pytest.mark.parametrize("header", ["client-request-id", "x-ms-client-request-id"])
    async def test_the_client_request_id_is_echoed(self, connected_emulator, session, header):
        """Entra echoes the caller's request id as client-request-id."""
        emu = connected_emulator
        request_id = str(uuid.uuid4())

        _, headers, _ = await exchange(
            session, emu, await oidc_token(session, emu), headers={header: request_id}
        )

        assert headers["client-request-id"] == request_id

    async def test_lifetimes_and_refresh_in_are_knobs(self, connected_emulator, session):
        """token_lifetime sets expires_in; refresh_in appears only when set."""
        emu = connected_emulator
        emu.token_lifetime = 7200
        emu.refresh_in = 1000

        _, _, body = await exchange(session, emu, await oidc_token(session, emu))

        assert (body["expires_in"], body["refresh_in"]) == (7200, 1000)

    async def test_a_cae_claims_request_gets_an_xms_cc_claim(self, connected_emulator, session):
        """claims asking access_token.xms_cc for CP1 yield xms_cc=["CP1"] in the access token."""
        emu = connected_emulator
        claims = json.dumps({"access_token": {"xms_cc": {"values": ["CP1"]}}})

        _, _, body = await exchange(session, emu, await oidc_token(session, emu), claims=claims)

        assert emu.verify_access_token(body["access_token"])["xms_cc"] == ["CP1"]

    async def test_verify_access_token_refuses_what_it_should(self, connected_emulator, session):
        """Wrong audience, an OIDC token, a foreign signature and an expired token are ValueErrors."""
        emu = connected_emulator
        oidc = await oidc_token(session, emu)
        _, _, body = await exchange(session, emu, oidc)
        token = body["access_token"]
        header, payload, _ = token.split(".")
        forged = SigningKey().sign(jwt_parts(token)[1])

        for candidate, audience in (
            (token, "https://vault.azure.net"),
            (oidc, None),
            (forged, None),
        ):
            with pytest.raises(ValueError, match="access token") as info:
                emu.verify_access_token(candidate, audience=audience)
            assert candidate not in str(info.value)
        emu.clock = ManualClock(jwt_parts(token)[1]["exp"])
        with pytest.raises(ValueError, match="expired"):
            emu.verify_access_token(token)

    async def test_an_error_has_entras_json_shape(self, connected_emulator, session):
        """error, error_description with trace/correlation ids, error_codes, error_uri."""
        emu = connected_emulator
        request_id = str(uuid.uuid4())

        status, headers, body = await post_token(
            session, emu, client_id=str(uuid.uuid4()), headers={"client-request-id": request_id}
        )

        assert list(body) == [
            "error",
            "error_description",
            "error_codes",
            "timestamp",
            "trace_id",
            "correlation_id",
            "error_uri",
        ]
        assert re.fullmatch(
            r"AADSTS700016: .+ Trace ID: (\S+) Correlation ID: (\S+) "
            r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ",
            body["error_description"],
        ).groups() == (body["trace_id"], request_id)
        assert body["trace_id"] == headers["x-ms-request-id"]
        assert body["correlation_id"] == request_id
        assert body["error_uri"] == f"{emu.authority}/error?code=700016"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"])
        assert status == 400

    async def test_an_expired_assertion_is_700024(self, session):
        """An OIDC token used after its exp fails the time-window check."""
        clock = ManualClock()
        async with Emulator(clock=clock, oidc_lifetime=60) as emu:
            emu.add_connection(SC, TENANT, CLIENT)
            token = await oidc_token(session, emu)
            clock.now += 61

            status, _, body = await exchange(session, emu, token)

        assert_aadsts(status, body, 401, "invalid_client", 700024)
        assert (
            "Client assertion is not within its valid time range. Current time: "
            in body["error_description"]
        )

    async def test_an_assertion_not_yet_valid_is_700024(self, connected_emulator, session):
        """nbf in the future is outside the window too."""
        emu = connected_emulator
        claims = jwt_parts(await oidc_token(session, emu))[1]
        claims["nbf"] = claims["iat"] + 3600
        claims["exp"] = claims["iat"] + 7200

        status, _, body = await exchange(session, emu, emu.devops_key.sign(claims))

        assert_aadsts(status, body, 401, "invalid_client", 700024)

    @pytest.mark.parametrize(
        ("change", "code", "shown"),
        [
            ("issuer", 700211, "issuer"),
            ("issuer-case", 700211, "issuer"),
            ("subject", 700213, "subject"),
            ("subject-case", 7002138, "subject"),
            ("audience", 700212, "audience"),
        ],
    )
    async def test_federated_credential_mismatches(self, emulator, session, change, code, shown):
        """Issuer, subject and audience must match exactly; a case-only subject difference is 7002138."""
        emulator.add_service_connection(SC)
        issuer, subject, audience = emulator.federated_credential_for(SC)
        fic = {
            "issuer": ("https://token.actions.githubusercontent.com", subject, audience),
            "issuer-case": (issuer.upper(), subject, audience),
            "subject": (issuer, "sc://contoso/azauth/another", audience),
            "subject-case": (issuer, subject.upper(), audience),
            "audience": (issuer, subject, "api://AzureADTokenExchangeChina"),
        }[change]
        emulator.register_app(TENANT, CLIENT, [fic])

        status, _, body = await exchange(session, emulator, await oidc_token(session, emulator))

        assert_aadsts(status, body, 401, "invalid_client", code)
        presented = {"issuer": issuer, "subject": subject, "audience": audience}[shown]
        assert f"presented assertion {shown} '{presented}'" in body["error_description"]

    async def test_add_connection_subject_overrides_the_credential(self, emulator, session):
        """add_connection(subject=…) registers a credential that does not match the token."""
        emulator.add_connection(SC, TENANT, CLIENT, subject="sc://Contoso/azauth/x")

        status, _, body = await exchange(session, emulator, await oidc_token(session, emulator))

        assert_aadsts(status, body, 401, "invalid_client", 700213)

    async def test_one_app_can_trust_several_connections(self, emulator, session):
        """Two connections on one application each get tokens."""
        other = str(uuid.uuid4())
        emulator.add_connection(SC, TENANT, CLIENT)
        emulator.add_connection(other, TENANT, CLIENT, name="second")

        for connection in (SC, other):
            status, _, _ = await exchange(
                session, emulator, await oidc_token(session, emulator, connection)
            )

            assert status == 200

    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({"client_id": str(uuid.uuid4())}, (400, "unauthorized_client", 700016)),
            ({"tenant": str(uuid.uuid4())}, (400, "invalid_request", 90002)),
            ({"tenant": "not_a_tenant!"}, (400, "invalid_request", 900023)),
            ({"tenant": "t/evil"}, (400, "invalid_request", 900023)),
            (
                {"scope": "https://management.azure.com/user_impersonation"},
                (400, "invalid_scope", 1002012),
            ),
            ({"scope": f"{ARM} https://vault.azure.net/.default"}, (400, "invalid_scope", 28000)),
            ({"scope": None}, (400, "invalid_request", 900144)),
            ({"grant_type": None}, (400, "invalid_request", 900144)),
            ({"grant_type": "password"}, (400, "unsupported_grant_type", 70003)),
            ({"client_id": None}, (400, "invalid_request", 900144)),
            ({"client_assertion": None}, (400, "invalid_request", 7000216)),
            ({"client_assertion": ""}, (400, "invalid_request", 7000216)),
            ({"client_assertion_type": "urn:other"}, (400, "invalid_request", 90011)),
            ({"client_assertion": "not.a-jwt"}, (401, "invalid_client", 50027)),
        ],
    )
    async def test_request_errors(self, connected_emulator, session, overrides, expected):
        """Each malformed or unknown part of the request gets Entra's code for it."""
        emu = connected_emulator
        fields = {"client_assertion": await oidc_token(session, emu)} | overrides

        status, _, body = await post_token(session, emu, **fields)

        assert_aadsts(status, body, *expected)

    async def test_a_scope_may_repeat_its_resource_and_add_oidc_scopes(
        self, connected_emulator, session
    ):
        """openid/offline_access name no resource; the same resource twice is still one."""
        emu = connected_emulator

        status, _, body = await exchange(
            session, emu, await oidc_token(session, emu), scope=f"{ARM} openid {ARM} offline_access"
        )

        assert status == 200, body

    async def test_get_is_refused(self, connected_emulator, session):
        """The token endpoint only accepts POST (AADSTS900561)."""
        status, _, body = await post_token(session, connected_emulator, method="GET")

        assert_aadsts(status, body, 400, "invalid_request", 900561)

    async def test_an_assertion_signed_by_another_key_is_50013(self, connected_emulator, session):
        """Signature verification uses the issuer's published key."""
        emu = connected_emulator
        claims = jwt_parts(await oidc_token(session, emu))[1]

        status, _, body = await exchange(session, emu, SigningKey().sign(claims))

        assert_aadsts(status, body, 401, "invalid_client", 50013)

    async def test_a_tampered_assertion_is_50013(self, connected_emulator, session):
        """Changing the payload of a genuine token breaks its signature."""
        emu = connected_emulator
        header, _, signature = (await oidc_token(session, emu)).split(".")
        claims = jwt_parts(await oidc_token(session, emu))[1] | {"exp": 4_000_000_000}
        payload = b64e(json.dumps(claims).encode())

        status, _, body = await exchange(session, emu, f"{header}.{payload}.{signature}")

        assert_aadsts(status, body, 401, "invalid_client", 50013)

    async def test_trust_any_app_still_verifies_signature_and_time(self, session):
        """Any tenant/client is accepted with a genuine assertion, never with a forged or old one."""
        clock = ManualClock()
        async with Emulator(trust_any_app=True, clock=clock) as emu:
            tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
            token = await oidc_token(session, emu, str(uuid.uuid4()))
            ok = await exchange(session, emu, token, tenant=tenant, client_id=client)
            forged = await exchange(
                session,
                emu,
                SigningKey().sign(jwt_parts(token)[1]),
                tenant=tenant,
                client_id=client,
            )
            clock.now += 301
            old = await exchange(session, emu, token, tenant=tenant, client_id=client)
            malformed = await exchange(session, emu, token, tenant="bad_tenant")

        assert emu.verify_access_token(ok[2]["access_token"])["tid"] == tenant
        assert_aadsts(forged[0], forged[2], 401, "invalid_client", 50013)
        assert_aadsts(old[0], old[2], 401, "invalid_client", 700024)
        assert_aadsts(malformed[0], malformed[2], 400, "invalid_request", 900023)

    async def test_the_access_token_verifies_against_entras_jwks(self, connected_emulator, session):
        """A resource server can verify access tokens with the tenant's published keys."""
        emu = connected_emulator
        _, _, body = await exchange(session, emu, await oidc_token(session, emu))
        async with session.get(f"{emu.url}/{TENANT}/v2.0/.well-known/openid-configuration") as r:
            discovery = await r.json()
        async with session.get(discovery["jwks_uri"]) as r:
            claims = verify_with_jwks(body["access_token"], await r.json())

        assert discovery["token_endpoint"] == f"{emu.authority}/{TENANT}/oauth2/v2.0/token"
        assert claims["aud"] == "https://management.azure.com"

    async def test_the_form_is_recorded_in_order(self, connected_emulator, session):
        """Recorded token requests keep the form fields as sent."""
        emu = connected_emulator
        token = await oidc_token(session, emu)

        await exchange(session, emu, token)

        record = emu.requests[-1]
        assert (record.endpoint, record.status) == ("token", 200)
        assert list(record.form) == [
            "client_assertion",
            "client_assertion_type",
            "client_id",
            "grant_type",
            "scope",
        ]
        assert record.form["client_assertion"] == token
        assert token not in repr(record)


class TestFailNext:
    async def test_json_failures_have_each_services_shape_and_retry_after(
        self, connected_emulator, session
    ):
        """A 503 from Azure DevOps is a VSS envelope, from Entra temporarily_unavailable; both send Retry-After."""
        emu = connected_emulator
        emu.fail_next("oidc", 503, retry_after="2")
        emu.fail_next("token", 429, retry_after="3")

        oidc_status, oidc_headers, oidc_body = await post_oidc(session, emu)
        token_status, token_headers, token_body = await post_token(session, emu)

        assert (oidc_status, oidc_headers["Retry-After"]) == (503, "2")
        assert json.loads(oidc_body)["message"].startswith("TF400898")
        assert GUID.match(oidc_headers["x-vss-e2eid"])
        assert (token_status, token_headers["Retry-After"]) == (429, "3")
        assert_aadsts(token_status, token_body, 429, "temporarily_unavailable", 90033)

    async def test_count_failures_then_the_real_answer(self, connected_emulator, session):
        """count=2 fails two requests, the third is answered normally; all are counted."""
        emu = connected_emulator
        emu.fail_next("oidc", 500, count=2)

        statuses = [(await post_oidc(session, emu))[0] for _ in range(3)]

        assert statuses == [500, 500, 200]
        assert emu.counts["oidc"] == 3

    async def test_failures_come_before_authentication(self, connected_emulator, session):
        """An injected failure answers even a request that would have been refused."""
        connected_emulator.fail_next("oidc", 502)

        status, _, _ = await post_oidc(session, connected_emulator, bearer=None)

        assert status == 502

    @pytest.mark.parametrize("endpoint", ["oidc", "token"])
    async def test_body_kinds(self, connected_emulator, session, endpoint):
        """html is a sign-in page, empty is empty, garbage is broken JSON, json at 200 lacks the token."""
        emu = connected_emulator
        token_key = "oidcToken" if endpoint == "oidc" else "access_token"
        seen = {}
        for kind in ("html", "empty", "garbage", "json"):
            emu.fail_next(endpoint, 200, body=kind)
            async with session.post(
                emu.oidc_request_uri
                if endpoint == "oidc"
                else f"{emu.authority}/{TENANT}/oauth2/v2.0/token"
            ) as response:
                seen[kind] = (response.status, response.content_type, await response.text())

        assert seen["html"][:2] == (200, "text/html")
        assert "Sign in" in seen["html"][2] or "Sign In" in seen["html"][2]
        assert seen["empty"][0] == 200
        assert seen["empty"][2] == ""
        assert seen["garbage"][1] == "application/json"
        with pytest.raises(json.JSONDecodeError):
            json.loads(seen["garbage"][2])
        assert token_key not in json.loads(seen["json"][2])

    async def test_drop_closes_the_connection_without_an_answer(self, connected_emulator, session):
        """drop: the client sees a disconnect; the attempt is recorded with no status."""
        emu = connected_emulator
        emu.fail_next("token", 0, body="drop")

        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post_token(session, emu)
        status, _, _ = await post_oidc(session, emu)

        assert emu.counts == {"oidc": 1, "token": 1}
        assert emu.requests[0].status is None
        assert status == 200

    def test_bad_arguments_are_refused(self):
        """Unknown endpoints or bodies, a count below one and a non-HTTP status are ValueErrors."""
        emu = Emulator()
        for args, kwargs in (
            (("entra", 500), {}),
            (("oidc", 500), {"body": "xml"}),
            (("oidc", 500), {"count": 0}),
            (("oidc", 42), {}),
        ):
            with pytest.raises(ValueError):
                emu.fail_next(*args, **kwargs)


class TestLatency:
    async def test_latency_is_read_per_request(self, connected_emulator, session):
        """A request received while latency is high waits; one received after it is lowered does not."""
        emu = connected_emulator
        emu.latency = 1.0
        slow = asyncio.create_task(post_oidc(session, emu))
        while emu.counts["oidc"] == 0:
            await asyncio.sleep(0.005)
        emu.latency = 0.0

        fast_status, _, _ = await post_oidc(session, emu)

        assert fast_status == 200
        assert not slow.done()
        assert (await slow)[0] == 200
        assert [r.status for r in emu.requests] == [200, 200]


class TestTls:
    async def test_a_client_trusting_the_ca_file_connects_and_others_fail(self):
        """tls=True serves https for 127.0.0.1 with a CA in ca_file; default trust refuses it."""
        emu = Emulator()
        await emu.start(tls=True)
        try:
            emu.add_connection(SC, TENANT, CLIENT)
            ca_file = Path(emu.ca_file)
            trusting = ssl.create_default_context(cafile=emu.ca_file)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as good:
                status, _, _ = await post_oidc(good, emu)
            async with aiohttp.ClientSession() as default:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await post_oidc(default, emu)
        finally:
            await emu.close()

        assert emu.url.startswith("https://127.0.0.1:")
        assert status == 200
        assert not ca_file.exists()
        assert emu.ca_file is None

    async def test_azure_identity_gets_a_token_from_the_emulator(self, monkeypatch):
        """The reference client, azure-identity's AzurePipelinesCredential, works end to end."""
        # Imported here: loading azure.identity changes which exception classes azauth builds.
        from azure.identity import AzurePipelinesCredential  # noqa: PLC0415

        emu = Emulator()
        await emu.start(tls=True)
        try:
            emu.add_connection(SC, TENANT, CLIENT)
            monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emu.oidc_request_uri)
            credential = AzurePipelinesCredential(
                tenant_id=TENANT,
                client_id=CLIENT,
                service_connection_id=SC,
                system_access_token=emu.system_access_token,
                authority=emu.authority,
                connection_verify=emu.ca_file,
            )
            token = await asyncio.to_thread(credential.get_token, ARM)
            oidc_headers = emu.requests[0].headers
        finally:
            await emu.close()

        assert emu.verify_access_token(token.token)["appid"] == CLIENT
        assert oidc_headers["X-TFS-FedAuthRedirect"] == "Suppress"
        assert emu.counts == {"oidc": 1, "token": 1}


def parse_exports(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        command, assignment = shlex.split(line)
        assert command == "export"
        name, _, value = assignment.partition("=")
        values[name] = value
    return values


async def read_exports(process: asyncio.subprocess.Process, count: int) -> dict[str, str]:
    lines = []
    for _ in range(count):
        lines.append((await asyncio.wait_for(process.stdout.readline(), 30)).decode())
    return parse_exports("".join(lines))


class TestCli:
    async def _start(self, *args: str) -> asyncio.subprocess.Process:
        return await spawn_azauth("emulator", *args, cwd=REPO)

    async def test_the_command_prints_exports_serves_and_stops_on_sigterm(self, session):
        """azauth emulator --register: export lines on stdout, a working server, exit 0 on SIGTERM."""
        process = await self._start(
            "--register", f"{TENANT}:{CLIENT}:{SC}", "--token-lifetime", "600"
        )
        try:
            env = await read_exports(process, 6)
            headers = {
                "Authorization": f"Bearer {env['SYSTEM_ACCESSTOKEN']}",
                "X-TFS-FedAuthRedirect": "Suppress",
            }
            url = f"{env['SYSTEM_OIDCREQUESTURI']}?api-version=7.1&serviceConnectionId={env['AZURESUBSCRIPTION_SERVICE_CONNECTION_ID']}"
            async with session.post(url, headers=headers) as response:
                assertion = (await response.json())["oidcToken"]
            form = {
                "client_assertion": assertion,
                "client_assertion_type": ASSERTION_TYPE,
                "client_id": env["AZURESUBSCRIPTION_CLIENT_ID"],
                "grant_type": "client_credentials",
                "scope": ARM,
            }
            token_url = f"{env['AZURE_AUTHORITY_HOST']}/{env['AZURESUBSCRIPTION_TENANT_ID']}/oauth2/v2.0/token"
            async with session.post(token_url, data=form) as response:
                token_status, body = response.status, await response.json()
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 30)

        assert list(env) == [
            "SYSTEM_OIDCREQUESTURI",
            "SYSTEM_ACCESSTOKEN",
            "AZURE_AUTHORITY_HOST",
            "AZURESUBSCRIPTION_TENANT_ID",
            "AZURESUBSCRIPTION_CLIENT_ID",
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
        ]
        assert (token_status, body["expires_in"]) == (200, 600)
        assert process.returncode == 0
        assert b"oidc POST -> 200" in stderr
        assert env["SYSTEM_ACCESSTOKEN"].encode() not in stderr

    async def test_tls_exports_a_ca_file_that_works_and_sigint_stops(self):
        """--tls adds SSL_CERT_FILE; a client trusting it connects; SIGINT also exits 0."""
        process = await self._start("--tls", "--trust-any-app")
        try:
            env = await read_exports(process, 4)
            context = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as client,
                client.post(
                    f"{env['SYSTEM_OIDCREQUESTURI']}?api-version=7.1&serviceConnectionId={SC}",
                    headers={"Authorization": f"Bearer {env['SYSTEM_ACCESSTOKEN']}"},
                ) as response,
            ):
                status = response.status
        finally:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.communicate(), 30)

        assert env["AZURE_AUTHORITY_HOST"].startswith("https://127.0.0.1:")
        assert status == 200
        assert process.returncode == 0
        assert not Path(env["SSL_CERT_FILE"]).exists()

    @pytest.mark.parametrize(
        "argv",
        [
            ["emulator", "--host", "0.0.0.0"],
            ["emulator", "--host", "example.com"],
            ["emulator", "--register", f"{TENANT}:{CLIENT}"],
        ],
    )
    def test_usage_errors(self, argv, capsys):
        """Non-loopback hosts and malformed --register values exit 2 with one line on stderr."""
        assert cli_main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("azauth: error: --")

    def test_missing_cryptography_names_the_extra(self):
        """Without cryptography the command says which extra to install, and exits 2."""
        code = (
            "import sys; sys.modules['cryptography'] = None\n"
            "from agent.cli.main import main\n"
            "sys.exit(main(['emulator']))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert result.returncode == 2
        assert "pip install '.[emulator]' in a checkout" in result.stderr
        assert result.stdout == ""

    def test_export_lines_survive_a_real_shell(self):
        """Values with quotes and spaces come back unchanged from bash's eval."""
        value = "it's a $HOME `x`"
        script = render_exports([("AZAUTH_TEST_VALUE", value)]) + 'printf %s "$AZAUTH_TEST_VALUE"'

        result = subprocess.run(
            ["bash", "-c", script], check=False, capture_output=True, text=True, timeout=30
        )

        assert result.stdout == value

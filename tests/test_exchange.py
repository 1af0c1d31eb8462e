"""The pure wire protocol: requests built and answers parsed exactly as the reference does."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

from agent import exchange as protocol
from agent.exceptions import EntraError, OidcRequestError
from agent.exchange import HttpResponse

UA = "azauth/test"
SECRET = "system-access-token-value-123"


def response(status: int, body: object, headers: dict[str, str] | None = None) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, "Reason", {k.lower(): v for k, v in (headers or {}).items()}, raw)


class TestBuildOidcRequest:
    def test_url_headers_and_empty_body_match_the_reference(self):
        """The POST goes to the URI (trailing slashes stripped) with api-version 7.1."""
        req = protocol.build_oidc_request(
            "https://dev.azure.com/org/p/_apis/x/oidctoken//", "sc-1", SECRET, user_agent=UA
        )

        assert req.method == "POST"
        assert (
            req.url
            == "https://dev.azure.com/org/p/_apis/x/oidctoken?api-version=7.1&serviceConnectionId=sc-1"
        )
        assert req.headers["Authorization"] == f"Bearer {SECRET}"
        assert req.headers["Content-Type"] == "application/json"
        assert req.headers["X-TFS-FedAuthRedirect"] == "Suppress"
        assert req.body == b""

    def test_connection_id_is_percent_encoded(self):
        """A connection id with & = / cannot add query parameters (the reference leaks them)."""
        req = protocol.build_oidc_request("https://h/x", "sc id&x=1/é", SECRET, user_agent=UA)

        query = dict(parse_qsl(urlsplit(req.url).query))
        assert query == {"api-version": "7.1", "serviceConnectionId": "sc id&x=1/é"}

    def test_existing_query_gets_an_ampersand(self):
        req = protocol.build_oidc_request("https://h/x?a=b", "sc", SECRET, user_agent=UA)

        assert req.url == "https://h/x?a=b&api-version=7.1&serviceConnectionId=sc"

    @pytest.mark.parametrize(
        "uri", ["http://dev.azure.com/x", "ftp://h/x", "", "h/x", "http://10.0.0.1/x"]
    )
    def test_plain_http_to_another_host_is_refused(self, uri):
        """The system access token never travels in clear text off the machine."""
        with pytest.raises(ValueError, match="https"):
            protocol.build_oidc_request(uri, "sc", SECRET, user_agent=UA)

    @pytest.mark.parametrize(
        "uri", ["http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:1/x"]
    )
    def test_plain_http_to_loopback_is_allowed(self, uri):
        assert protocol.build_oidc_request(uri, "sc", SECRET, user_agent=UA).url.startswith(
            "http://"
        )

    def test_repr_hides_the_token(self):
        req = protocol.build_oidc_request("https://h/x", "sc", SECRET, user_agent=UA)

        assert SECRET not in repr(req)


class TestParseOidcResponse:
    def test_token_is_returned(self):
        assert protocol.parse_oidc_response(response(200, {"oidcToken": "jwt"}), "sc") == "jwt"

    def test_devops_error_envelope_is_quoted_with_diagnostics(self):
        body = {
            "$id": "1",
            "innerException": None,
            "message": "No service connection found with identifier sc-9.",
            "typeName": "X",
            "typeKey": "X",
            "errorCode": 0,
            "eventId": 3000,
        }
        resp = response(404, body, {"x-vss-e2eid": "e2e-1", "x-msedge-ref": "Ref A: 1"})

        with pytest.raises(OidcRequestError) as info:
            protocol.parse_oidc_response(resp, "sc-9")

        text = str(info.value)
        assert "404" in text
        assert "sc-9" in text
        assert "No service connection found with identifier sc-9." in text
        assert "x-vss-e2eid: e2e-1" in text
        assert "x-msedge-ref: Ref A: 1" in text
        assert "resourceId" in text
        assert info.value.status_code == 404
        assert info.value.e2eid == "e2e-1"
        assert isinstance(info.value, ClientAuthenticationError)

    def test_unreferenced_connection_gets_its_hint(self):
        body = {
            "count": 1,
            "value": "There is no explicit reference to service connection sc from current stage",
        }

        with pytest.raises(OidcRequestError, match="reference the connection"):
            protocol.parse_oidc_response(response(400, body), "sc")

    @pytest.mark.parametrize("status", [401, 302, 203])
    def test_refused_system_token_says_how_to_map_it(self, status):
        with pytest.raises(OidcRequestError, match=r"SYSTEM_ACCESSTOKEN: \$\(System.AccessToken\)"):
            protocol.parse_oidc_response(response(status, b"<html>sign in</html>"), "sc")

    @pytest.mark.parametrize("body", [b"<html>sign in</html>", b"", b"{broken", b"[1]"])
    def test_200_that_is_not_a_json_object_is_explained(self, body):
        """The reference leaks a raw JSONDecodeError here."""
        with pytest.raises(OidcRequestError, match="probably invalid or not mapped") as info:
            protocol.parse_oidc_response(response(200, body), "sc")

        assert info.value.__cause__ is None
        assert info.value.__suppress_context__ or info.value.__context__ is None

    @pytest.mark.parametrize("body", [{}, {"oidcToken": None}, {"oidcToken": ""}, {"oidcToken": 5}])
    def test_missing_token_is_an_error(self, body):
        with pytest.raises(OidcRequestError, match="OIDC token not found"):
            protocol.parse_oidc_response(response(200, body), "sc")

    @pytest.mark.parametrize(
        ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (404, False)]
    )
    def test_retryable_flag_follows_status(self, status, retryable):
        with pytest.raises(OidcRequestError) as info:
            protocol.parse_oidc_response(response(status, {}), "sc")

        assert info.value.retryable is retryable


class TestBuildTokenRequest:
    def test_form_fields_in_reference_order(self):
        req = protocol.build_token_request(
            authority="https://login.microsoftonline.com",
            tenant_id="t1",
            client_id="c1",
            assertion="jwt",
            scopes=["A/.default", "B"],
            claims=None,
            user_agent=UA,
        )

        assert req.url == "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert parse_qsl(req.body.decode()) == [
            ("client_assertion", "jwt"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_id", "c1"),
            ("grant_type", "client_credentials"),
            ("scope", "A/.default B"),
        ]
        assert "jwt" not in repr(req)

    def test_claims_are_appended_when_present(self):
        req = protocol.build_token_request(
            authority="https://a",
            tenant_id="t",
            client_id="c",
            assertion="j",
            scopes=["s"],
            claims='{"x":1}',
            user_agent=UA,
        )

        assert parse_qsl(req.body.decode())[-1] == ("claims", '{"x":1}')


class TestMergeClaims:
    def test_no_cae_forwards_claims_verbatim(self):
        assert protocol.merge_claims("not json", enable_cae=False) == "not json"
        assert protocol.merge_claims(None, enable_cae=False) is None
        assert protocol.merge_claims("", enable_cae=False) is None

    def test_cae_without_claims(self):
        assert (
            protocol.merge_claims(None, enable_cae=True)
            == '{"access_token": {"xms_cc": {"values": ["CP1"]}}}'
        )

    def test_cae_merges_and_keeps_order(self):
        merged = protocol.merge_claims(
            '{"access_token":{"nbf":{"essential":true,"value":"1"}}}', enable_cae=True
        )

        assert (
            merged
            == '{"access_token": {"nbf": {"essential": true, "value": "1"}, "xms_cc": {"values": ["CP1"]}}}'
        )

    def test_cae_overwrites_existing_xms_cc_and_keeps_id_token(self):
        merged = protocol.merge_claims(
            '{"id_token":{"a":1},"access_token":{"xms_cc":{"values":["X"]}}}', enable_cae=True
        )

        assert json.loads(merged) == {
            "id_token": {"a": 1},
            "access_token": {"xms_cc": {"values": ["CP1"]}},
        }

    @pytest.mark.parametrize("claims", ["{broken", "[1]", '{"access_token": 5}'])
    def test_invalid_claims_with_cae_raise_before_any_request(self, claims):
        with pytest.raises(ValueError, match="claims"):
            protocol.merge_claims(claims, enable_cae=True)


class TestParseTokenResponse:
    def test_expires_in_is_relative_to_request_time(self):
        info = protocol.parse_token_response(
            response(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": "at"}),
            request_time=1000,
        )

        assert (info.token, info.expires_on, info.token_type, info.refresh_on) == (
            "at",
            4599,
            "Bearer",
            None,
        )
        assert isinstance(info, AccessTokenInfo)
        assert "at" not in repr(info).replace("AccessTokenInfo", "")

    def test_expires_on_wins_and_strings_are_accepted(self):
        info = protocol.parse_token_response(
            response(200, {"expires_on": "5000", "expires_in": "10", "access_token": "at"}),
            request_time=1000,
        )

        assert info.expires_on == 5000

    def test_long_tokens_refresh_at_half_life(self):
        info = protocol.parse_token_response(
            response(200, {"expires_in": 7200, "access_token": "at"}), request_time=1000
        )

        assert info.refresh_on == 1000 + 3600

    def test_server_refresh_in_is_honoured(self):
        info = protocol.parse_token_response(
            response(200, {"expires_in": 7200, "refresh_in": 1000, "access_token": "at"}),
            request_time=1000,
        )

        assert info.refresh_on == 2000

    def test_token_type_is_kept(self):
        info = protocol.parse_token_response(
            response(200, {"expires_in": 60, "access_token": "at", "token_type": "pop"}),
            request_time=0,
        )

        assert info.token_type == "pop"

    def test_entra_error_is_parsed_into_fields_with_a_hint(self):
        body = {
            "error": "invalid_client",
            "error_description": "AADSTS700213: No matching federated identity record found for presented assertion subject 'sc://o/p/c'.",
            "error_codes": [700213],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": "trace-1",
            "correlation_id": "corr-1",
            "error_uri": "https://login.microsoftonline.com/error?code=700213",
        }

        with pytest.raises(EntraError) as info:
            protocol.parse_token_response(response(401, body), request_time=0)

        err = info.value
        assert err.status_code == 401
        assert err.error == "invalid_client"
        assert err.error_codes == (700213,)
        assert err.correlation_id == "corr-1"
        assert err.trace_id == "trace-1"
        text = str(err)
        assert text.startswith("Microsoft Entra ID error '(invalid_client) AADSTS700213")
        assert "Hint: the token's subject" in text
        assert "correlation_id: corr-1" in text
        assert "trace_id: trace-1" in text

    @pytest.mark.parametrize(
        "code", [700016, 700024, 700211, 700212, 700213, 90002, 900023, 1002012]
    )
    def test_every_common_code_has_a_hint(self, code):
        body = {
            "error": "invalid_request",
            "error_description": f"AADSTS{code}: x",
            "error_codes": [code],
        }

        with pytest.raises(EntraError, match="Hint: "):
            protocol.parse_token_response(response(400, body), request_time=0)

    @pytest.mark.parametrize(
        ("status", "body", "match"),
        [
            (200, b"<html>oops</html>", "not JSON"),
            (502, b"<html>bad gateway</html>", "502"),
            (200, b"", "empty body"),
            (200, {}, "No response content"),
            (200, {"token_type": "Bearer"}, "no access_token"),
            (200, {"access_token": "at"}, "no access_token or expiry"),
            (500, {"unexpected": 1}, "500"),
        ],
    )
    def test_malformed_answers_are_explained(self, status, body, match):
        with pytest.raises(EntraError, match=match) as info:
            protocol.parse_token_response(response(status, body), request_time=0)

        assert info.value.__context__ is None or info.value.__suppress_context__

    def test_error_text_never_contains_an_access_token(self):
        body = {
            "error": "x",
            "error_description": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig leaked",
            "access_token": "secret-at",
        }

        with pytest.raises(EntraError) as info:
            protocol.parse_token_response(response(400, body), request_time=0)

        assert "secret-at" not in str(info.value)
        assert "eyJhbGciOiJIUzI1NiJ9" not in str(info.value)


class TestTenantAndAuthority:
    @pytest.mark.parametrize(
        "tenant",
        [
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "contoso.onmicrosoft.com",
            "organizations",
            "adfs",
        ],
    )
    def test_valid_tenants(self, tenant):
        protocol.validate_tenant_id(tenant)

    @pytest.mark.parametrize(
        "tenant", ["", "tenant_with_underscore", "a b", "t/evil", "t/evil?x", "é"]
    )
    def test_invalid_tenants(self, tenant):
        with pytest.raises(ValueError, match="Invalid tenant ID"):
            protocol.validate_tenant_id(tenant)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("login.microsoftonline.com", "https://login.microsoftonline.com"),
            ("https://login.microsoftonline.us/", "https://login.microsoftonline.us"),
            ("https://host/prefix/", "https://host/prefix"),
            ("localhost:8443", "https://localhost:8443"),
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("http://localhost:5000/", "http://localhost:5000"),
        ],
    )
    def test_authority_normalisation(self, value, expected):
        assert protocol.normalize_authority(value) == expected

    @pytest.mark.parametrize(
        "value", ["http://login.microsoftonline.com", "ftp://x", "http://192.168.1.1"]
    )
    def test_authority_must_be_tls_off_loopback(self, value):
        with pytest.raises(ValueError, match="TLS protected"):
            protocol.normalize_authority(value)

    def test_requested_tenant_rules(self):
        resolve = protocol.resolve_tenant
        assert resolve("t1", None, [], multitenant_disabled=False) == "t1"
        assert resolve("t1", "t1", [], multitenant_disabled=False) == "t1"
        assert resolve("t1", "t2", ["t2"], multitenant_disabled=False) == "t2"
        assert resolve("t1", "t2", ["*"], multitenant_disabled=False) == "t2"
        assert resolve("organizations", "t2", [], multitenant_disabled=False) == "t2"
        assert resolve("t1", "t2", [], multitenant_disabled=True) == "t1"
        assert resolve("adfs", "t2", [], multitenant_disabled=False) == "adfs"
        with pytest.raises(
            ClientAuthenticationError, match="not configured to acquire tokens for tenant t2"
        ):
            resolve("t1", "t2", ["t3"], multitenant_disabled=False)

    def test_requested_tenant_cannot_inject_a_path(self):
        """The reference puts `t/evil?x` into the token URL; we refuse it even with '*'."""
        with pytest.raises(ValueError, match="Invalid tenant ID"):
            protocol.resolve_tenant("t1", "t/evil?x", ["*"], multitenant_disabled=False)


def test_token_is_an_azure_core_access_token_with_a_safe_repr():
    token = protocol.Token("secret-value", 123)

    assert isinstance(token, AccessToken)
    assert token == AccessToken("secret-value", 123)
    assert "secret-value" not in repr(token)
    assert "secret-value" not in str(token)

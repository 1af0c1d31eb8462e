"""TokenFields: the documented field list, derived values and a repr without secrets."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from agent.config import models
from agent.outputs.fields import FIELD_NAMES, SECRET_FIELDS, TokenFields, format_rfc3339

ACCESS = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcGkifQ.access-signature"
OIDC = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYyJ9.oidc-signature"


def build(**overrides):
    arguments = {
        "access_token": ACCESS,
        "expires_on": 1767225600,  # 2026-01-01T00:00:00Z
        "scope": "https://management.azure.com/.default",
        "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "client_id": "11111111-2222-3333-4444-555555555555",
        "subscription_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "service_connection_id": "99999999-8888-7777-6666-555555555555",
        "authority": "https://login.microsoftonline.com/",
        "oidc_token": OIDC,
        "federated_token_file": "/agent/_temp/azauth/federated-token",
    }
    arguments.update(overrides)
    return TokenFields.build(**arguments)


class TestFieldList:
    def test_documented_order(self):
        """FIELD_NAMES is the documented list, in the documented order."""
        assert FIELD_NAMES == (
            "access_token",
            "token_type",
            "expires_on",
            "expires_at",
            "scope",
            "tenant_id",
            "client_id",
            "subscription_id",
            "service_connection_id",
            "authority",
            "authority_host",
            "cloud",
            "oidc_token",
            "federated_token_file",
        )
        assert frozenset({"access_token", "oidc_token"}) == SECRET_FIELDS

    def test_dataclass_holds_exactly_the_documented_fields(self):
        """Every documented field is an attribute, and there are no others."""
        assert tuple(f.name for f in dataclasses.fields(TokenFields)) == FIELD_NAMES

    def test_config_schema_uses_the_same_field_list(self):
        """The profile schema validates mappings against exactly these field names."""
        assert models.FIELD_NAMES == FIELD_NAMES
        assert frozenset(models.SECRET_FIELDS) == SECRET_FIELDS

    def test_module_imports_no_third_party_package(self):
        """agent.outputs.fields is import-light: no structlog, aiohttp, pydantic or azure."""
        code = (
            "import sys, agent.outputs.fields\n"
            "heavy = [m for m in ('structlog', 'aiohttp', 'pydantic', 'azure', 'yaml')"
            " if m in sys.modules]\n"
            "print(','.join(heavy))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )

        assert result.stdout.strip() == ""


class TestBuild:
    def test_values_as_text(self):
        """value() returns every field as text, expires_on as decimal epoch seconds."""
        fields = build()

        assert fields.value("access_token") == ACCESS
        assert fields.value("token_type") == "Bearer"
        assert fields.value("expires_on") == "1767225600"
        assert fields.value("expires_at") == "2026-01-01T00:00:00Z"
        assert fields.value("authority") == "https://login.microsoftonline.com"
        assert fields.value("authority_host") == "login.microsoftonline.com"
        assert fields.value("cloud") == "public"
        assert fields.value("oidc_token") == OIDC
        assert fields.value("federated_token_file") == "/agent/_temp/azauth/federated-token"

    def test_unknown_values_are_none(self):
        """Fields not given are None (no token, no subscription, no expiry)."""
        fields = build(access_token=None, expires_on=None, subscription_id=None, oidc_token=None)

        assert fields.value("access_token") is None
        assert fields.value("expires_on") is None
        assert fields.value("expires_at") is None
        assert fields.value("subscription_id") is None

    def test_unknown_field_is_refused(self):
        """Asking for a field outside FIELD_NAMES is a ValueError listing the valid names."""
        with pytest.raises(ValueError, match="access_token"):
            build().value("password")

    @pytest.mark.parametrize(
        ("authority", "url", "host", "cloud"),
        [
            (
                "login.microsoftonline.us",
                "https://login.microsoftonline.us",
                "login.microsoftonline.us",
                "usgovernment",
            ),
            (
                "https://login.chinacloudapi.cn/",
                "https://login.chinacloudapi.cn",
                "login.chinacloudapi.cn",
                "china",
            ),
            ("http://127.0.0.1:8443/entra", "http://127.0.0.1:8443/entra", "127.0.0.1:8443", None),
        ],
    )
    def test_authority_derivations(self, authority, url, host, cloud):
        """The authority is normalised to a URL; host and cloud are derived from it."""
        fields = build(authority=authority)

        assert (fields.authority, fields.authority_host, fields.cloud) == (url, host, cloud)

    def test_explicit_cloud_wins(self):
        """A cloud given explicitly is kept even when the authority is unknown."""
        assert build(authority="https://127.0.0.1:1", cloud="china").cloud == "china"

    def test_rfc3339(self):
        """expires_at is RFC 3339, UTC, with Z and whole seconds."""
        assert format_rfc3339(0) == "1970-01-01T00:00:00Z"
        assert format_rfc3339(1700000000) == "2023-11-14T22:13:20Z"


class TestRepr:
    def test_repr_hides_secrets(self):
        """repr and str never contain the access token or the OIDC token."""
        fields = build()

        text = repr(fields) + str(fields) + f"{fields!r}"

        assert ACCESS not in text
        assert OIDC not in text
        assert "access_token=***" in text
        assert "oidc_token=***" in text
        assert "tenant_id='72f988bf-86f1-41af-91ab-2d7cd011db47'" in text

    def test_repr_shows_missing_secrets_as_none(self):
        """A missing secret is shown as None, so a reader can tell 'absent' from 'hidden'."""
        assert "access_token=None" in repr(build(access_token=None))

    def test_frozen(self):
        """TokenFields is immutable."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            build().access_token = "x"  # type: ignore[misc]

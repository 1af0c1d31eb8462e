"""Token file renderers: raw, JSON and the federated token file, written with atomic_write."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from agent.outputs._atomic import atomic_write
from agent.outputs.fields import TokenFields
from agent.outputs.token_file import render_federated_token_file, render_token_file

ACCESS = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcGkifQ.access-signature"
OIDC = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYyJ9.oidc-signature"


def fields(**overrides):
    arguments = {
        "access_token": ACCESS,
        "expires_on": 1767225600,
        "scope": "499b84ac-1321-427f-aa17-267ca6975798/.default",
        "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "client_id": "11111111-2222-3333-4444-555555555555",
        "service_connection_id": "99999999-8888-7777-6666-555555555555",
        "authority": "https://login.microsoftonline.com",
    }
    arguments.update(overrides)
    return TokenFields.build(**arguments)


class TestRaw:
    def test_raw_is_the_token_without_newline(self):
        """Raw format is exactly the token bytes, no trailing newline."""
        assert render_token_file(fields(), "raw") == ACCESS.encode()

    def test_shell_reads_it_back(self, tmp_path):
        """A shell's $(cat file) and a verbatim read both give exactly the token."""
        path = tmp_path / "token"
        atomic_write(path, render_token_file(fields(), "raw"))

        via_shell = subprocess.run(
            ["sh", "-c", 'printf %s "$(cat "$1")"', "_", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

        assert via_shell == ACCESS
        assert path.read_text() == ACCESS
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


class TestJson:
    def test_json_document(self):
        """JSON format has the documented keys, in order, and ends with a newline."""
        rendered = render_token_file(fields(), "json")

        assert rendered.endswith(b"\n")
        document = json.loads(rendered)
        assert list(document) == [
            "token",
            "expires_on",
            "expires_at",
            "token_type",
            "tenant",
            "scope",
        ]
        assert document == {
            "token": ACCESS,
            "expires_on": 1767225600,
            "expires_at": "2026-01-01T00:00:00Z",
            "token_type": "Bearer",
            "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "scope": "499b84ac-1321-427f-aa17-267ca6975798/.default",
        }

    def test_expires_on_is_an_integer(self):
        """expires_on is a JSON number, not a string."""
        assert isinstance(json.loads(render_token_file(fields(), "json"))["expires_on"], int)

    def test_unknown_scope_is_null(self):
        """A token without a recorded scope renders scope as null."""
        assert json.loads(render_token_file(fields(scope=None), "json"))["scope"] is None


class TestRefusals:
    def test_no_access_token(self):
        """Without an access token there is nothing to render."""
        with pytest.raises(ValueError, match="no access token"):
            render_token_file(fields(access_token=None), "raw")

    def test_unknown_format(self):
        """An unknown format is a ValueError naming the valid ones."""
        with pytest.raises(ValueError, match="raw, json"):
            render_token_file(fields(), "yaml")

    def test_whitespace_in_token_is_refused_without_echoing_it(self):
        """A token with a newline is refused and the message does not contain it."""
        with pytest.raises(ValueError) as caught:
            render_token_file(fields(access_token="abc-SECRET\nxyz"), "raw")

        assert "SECRET" not in str(caught.value)


class TestFederatedTokenFile:
    def test_is_the_jwt_without_newline(self, tmp_path):
        """The federated token file holds the JWT alone, as azure-identity reads it."""
        path = tmp_path / "federated"

        atomic_write(path, render_federated_token_file(OIDC))

        with open(path, encoding="utf-8") as handle:  # what WorkloadIdentityCredential does
            assert handle.read() == OIDC

    @pytest.mark.parametrize("bad", ["", "eyJ.eyJ.sig\n", "two parts"])
    def test_refuses_empty_or_whitespace(self, bad):
        """An empty token or one with whitespace is refused."""
        with pytest.raises(ValueError, match="OIDC token"):
            render_federated_token_file(bad)

"""URL and host policy (agent.urls): one table per rule, and the three authority paths agree."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent import AzurePipelinesCredential, urls
from agent.config.loading import load_config
from agent.envvalues import oidc_request_uri
from agent.exceptions import ConfigError
from agent.testing.emulator import Emulator
from tests.support import azauth, environ

TENANT = "3f6c2a4e-8b1d-4c7a-9e25-6d0f1b8a7c43"
CLIENT = "9a1e7b52-4c3d-4f8e-b6a0-2d5c8e1f3b74"
SC = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"

# value -> normalised authority, or None when every path must refuse it
AUTHORITIES: list[tuple[str, str | None]] = [
    # bare hosts, scheme case, trailing slashes, paths
    ("login.microsoftonline.com", "https://login.microsoftonline.com"),
    ("https://login.microsoftonline.com", "https://login.microsoftonline.com"),
    ("https://login.microsoftonline.com/", "https://login.microsoftonline.com"),
    ("https://login.microsoftonline.com//", "https://login.microsoftonline.com"),
    ("HTTPS://Login.MicrosoftOnline.COM/", "https://login.microsoftonline.com"),
    ("  https://login.microsoftonline.us  ", "https://login.microsoftonline.us"),
    ("https://host/prefix/", "https://host/prefix"),
    ("https://host/Prefix/Path", "https://host/Prefix/Path"),
    # ports
    ("https://host:8443", "https://host:8443"),
    ("localhost:8443", "https://localhost:8443"),
    ("https://host:0", "https://host:0"),
    ("https://host:65536", None),
    ("https://host:port", None),
    # loopback over plain http: localhost variants, 127.0.0.0/8, IPv6
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
    ("http://127.1.2.3", "http://127.1.2.3"),
    ("http://localhost:5000/", "http://localhost:5000"),
    ("http://LOCALHOST", "http://localhost"),
    ("HTTP://localhost", "http://localhost"),
    ("http://[::1]:9000", "http://[::1]:9000"),
    ("https://[::1]", "https://[::1]"),
    ("http://localhost.", None),
    ("http://a.localhost", None),
    ("http://[::1", None),
    # plain http elsewhere, other schemes
    ("http://login.microsoftonline.com", None),
    ("http://192.168.1.1", None),
    ("http://0.0.0.0", None),
    ("ftp://x", None),
    ("file:///etc/passwd", None),
    ("https://", None),
    ("https:///path", None),
    # query, fragment, user information
    ("https://login.microsoftonline.com/?x=1", None),
    ("https://login.microsoftonline.com?", None),
    ("https://login.microsoftonline.com/#frag", None),
    ("https://user@login.microsoftonline.com", None),
    ("https://user:pw@login.microsoftonline.com", None),
    ("https://@login.microsoftonline.com", None),
    # IDN, empty, whitespace and control characters
    ("https://lögin.microsoftonline.com", None),
    ("https://xn--lgin-5qa.microsoftonline.com", "https://xn--lgin-5qa.microsoftonline.com"),
    ("", None),
    ("   ", None),
    ("https://login.micro\tsoftonline.com", None),
    ("https://login.microsoftonline.com/\r\nX-Injected: 1", None),
    ("https://login microsoftonline.com", None),
    ("https://login.microsoftonline.com/\x00", None),
    ("https://login.microsoftonline.com/\x7f", None),
]


@pytest.mark.parametrize(("value", "expected"), AUTHORITIES)
def test_normalize_authority_table(value: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match=".") as caught:
            urls.normalize_authority(value)
        assert "\n" not in str(caught.value)
    else:
        assert urls.normalize_authority(value) == expected
        assert urls.normalize_authority(expected) == expected  # idempotent


def _library(authority: str | None, env: dict[str, str]) -> str:
    credential = AzurePipelinesCredential(
        tenant_id=TENANT,
        client_id=CLIENT,
        service_connection_id=SC,
        system_access_token="t",
        authority=authority,
        env=env,
    )
    return credential.authority


def _profile_connection(workdir: Path, authority: str):
    text = (
        "[connections.prod]\n"
        f'tenant_id = "{TENANT}"\nclient_id = "{CLIENT}"\nservice_connection_id = "{SC}"\n'
        f"authority = {json.dumps(authority)}\n"
        '[profiles.ci]\nconnections = ["prod"]\n'
    )
    path = workdir / "azauth.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={}).profile().connections["prod"]


def _outcome(call) -> str | None:
    try:
        return call()
    except ValueError:  # ConfigError is a ValueError too
        return None


@pytest.mark.parametrize(("value", "expected"), AUTHORITIES)
def test_library_environment_and_profile_agree(
    value: str, expected: str | None, tmp_path: Path
) -> None:
    """Bug: a query in the authority was accepted by the library and refused in a profile."""
    if not value.strip():
        expected = None
    library = _outcome(lambda: _library(value, {}))
    library_env = _outcome(lambda: _library(None, {"AZURE_AUTHORITY_HOST": value}))
    profile = _outcome(lambda: _profile_connection(tmp_path, value).authority_url({}))
    default = _profile_connection(tmp_path, "https://login.microsoftonline.com")
    profile_env = _outcome(lambda: default.authority_url({"AZURE_AUTHORITY_HOST": value}))

    if not value.strip():  # an empty variable means "not set": the default authority
        assert library_env == profile_env == "https://login.microsoftonline.com"
        assert library is None or library == "https://login.microsoftonline.com"
        return
    assert library == library_env == profile == profile_env == expected


def test_query_in_authority_is_refused_everywhere(tmp_path: Path) -> None:
    """The reported case, by name: library, AZURE_AUTHORITY_HOST and a profile all refuse it."""
    value = "https://login.microsoftonline.com/?x=1"
    with pytest.raises(ValueError, match="invalid authority.*query"):
        _library(value, {})
    with pytest.raises(ValueError, match="invalid authority.*query"):
        _library(None, {"AZURE_AUTHORITY_HOST": value})
    with pytest.raises(ConfigError, match="query") as caught:
        _profile_connection(tmp_path, value)
    assert caught.value.key_path == "connections.prod.authority"
    default = _profile_connection(tmp_path, "login.microsoftonline.com")
    with pytest.raises(ConfigError, match="AZURE_AUTHORITY_HOST.*query"):
        default.authority_url({"AZURE_AUTHORITY_HOST": value})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LocalHost", True),
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("0:0:0:0:0:0:0:1", True),
        ("localhost.", False),
        ("foo.localhost", False),
        ("128.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("login.microsoftonline.com", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host: str | None, loopback: bool) -> None:
    assert urls.is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("scheme", "host", "allowed"),
    [
        ("https", "login.microsoftonline.com", True),
        ("HTTPS", "example.com", True),
        ("https", "", False),
        ("https", None, False),
        ("http", "127.0.0.1", True),
        ("http", "localhost", True),
        ("http", "::1", True),
        ("http", "example.com", False),
        ("ftp", "127.0.0.1", False),
        ("", "127.0.0.1", False),
        (None, "localhost", False),
    ],
)
def test_is_tls_or_loopback(scheme: str | None, host: str | None, allowed: bool) -> None:
    assert urls.is_tls_or_loopback(scheme, host) is allowed


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("https://Login.Example.com/path", "login.example.com"),
        ("login.example.com:443", "login.example.com"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]:9000", "::1"),
        ("https://user:pw@host:1/x?y#z", "host"),
        ("[::1", None),
        ("", None),
        ("https://", None),
    ],
)
def test_host_of(value: str, host: str | None) -> None:
    assert urls.host_of(value) == host


@pytest.mark.parametrize(
    ("host", "bind"),
    [
        ("localhost", "127.0.0.1"),
        ("LOCALHOST", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.2", "127.0.0.2"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("0.0.0.0", None),
        ("192.168.1.1", None),
        ("example.com", None),
    ],
)
def test_loopback_bind_address(host: str, bind: str | None) -> None:
    assert urls.loopback_bind_address(host) == bind


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("abc", None),
        ("a b", (1, "U+0020")),
        ("ab\t", (2, "U+0009")),
        ("\x00", (0, "U+0000")),
        ("a\x7f", (1, "U+007F")),
        ("a\u00a0b", (1, "U+00A0")),
    ],
)
def test_first_control_character(value: str, found: tuple[int, str] | None) -> None:
    assert urls.first_control_character(value) == found


def test_urls_imports_only_the_standard_library() -> None:
    """The warm path may import agent.urls: it must stay stdlib-only and import nothing heavy."""
    import subprocess
    import sys

    code = (
        "import sys; before = set(sys.modules); import agent.urls; "
        "new = sorted(m for m in set(sys.modules) - before if not m.startswith('agent')); "
        "print(','.join(new))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    loaded = set(filter(None, out.split(",")))
    assert not loaded & {"typing", "pydantic", "aiohttp", "azure", "structlog", "yarl"}


def test_refused_authorities_never_show_a_password(tmp_path: Path) -> None:
    """An authority with user information is refused without repeating its password."""
    value = "https://user:s3cr3t-pw@login.microsoftonline.com"
    for call in (
        lambda: _library(value, {}),
        lambda: _library(None, {"AZURE_AUTHORITY_HOST": value}),
        lambda: _profile_connection(tmp_path, "login.microsoftonline.com").authority_url(
            {"AZURE_AUTHORITY_HOST": value}
        ),
    ):
        with pytest.raises(ValueError, match="user name") as caught:
            call()
        assert "s3cr3t-pw" not in str(caught.value)
    with pytest.raises(ConfigError) as refused:
        _profile_connection(tmp_path, value)
    assert "s3cr3t-pw" not in str(refused.value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://dév.azure.com/contoso/_apis/distributedtask/oidctoken", "not ASCII"),
        ("https://ｄev.azure.com/contoso/_apis/oidctoken", "not ASCII"),  # fullwidth d
        ("https://dev.azure.com/contoso/_apis/oidctoken#top", "fragment"),
    ],
)
def test_the_oidc_request_uri_follows_the_authoritys_host_rule(value: str, reason: str) -> None:
    """The system access token goes where an access-token request may go: no look-alike host.

    Bug: the authority refused a non-ASCII host but SYSTEM_OIDCREQUESTURI (which receives the
    system access token) took it; and a fragment swallowed the query azauth appends.
    """
    with pytest.raises(ConfigError, match=f"SYSTEM_OIDCREQUESTURI.*{reason}"):
        oidc_request_uri({"SYSTEM_OIDCREQUESTURI": value})
    with pytest.raises(ConfigError, match=f"oidc_request_uri.*{reason}"):
        AzurePipelinesCredential(
            tenant_id=TENANT,
            client_id=CLIENT,
            service_connection_id=SC,
            system_access_token="t",
            oidc_request_uri=value,
            env={},
        )


async def test_the_command_refuses_a_fragment_in_the_oidc_request_uri(
    emulator: Emulator, tmp_path: Path
) -> None:
    """One line, exit 3, nothing sent (before: a request without its query, refused as 400)."""
    emulator.add_connection(SC, TENANT, CLIENT)
    (tmp_path / "azauth.toml").write_text(
        "[connections.prod]\n"
        f'tenant_id = "{TENANT}"\nclient_id = "{CLIENT}"\nservice_connection_id = "{SC}"\n'
        '[profiles.ci]\nconnections = ["prod"]\n',
        encoding="utf-8",
    )
    env = environ(
        SYSTEM_OIDCREQUESTURI=f"{emulator.oidc_request_uri}#x",
        AZAUTH_CACHE_DIR=str(tmp_path / "cache"),
    )
    result = await asyncio.to_thread(azauth, "token", "--no-cache", cwd=tmp_path, env=env)

    assert result.returncode == 3, result.stderr
    assert "SYSTEM_OIDCREQUESTURI" in result.stderr and "fragment" in result.stderr
    assert "Traceback" not in result.stderr
    assert emulator.counts["oidc"] == 0

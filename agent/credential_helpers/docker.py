"""PURE Docker credential-helper protocol (``docker-credential-<name> get|list|store|erase``).

Source: docker/docker-credential-helpers ``credentials/credentials.go`` and
``credentials/error.go``; docker/cli ``cli/config/credentials/native_store.go``.

- The helper takes one argument: ``get``, ``store``, ``erase``, ``list`` or ``version``.
- ``get``: stdin holds the server URL (trimmed); stdout gets
  ``{"ServerURL": "...", "Username": "...", "Secret": "..."}``.
- ``list``: stdout gets a JSON object mapping server URL → user name.
- ``store``: stdin holds ``{"ServerURL", "Username", "Secret"}``; ``erase``: the server URL.
- Errors: the message on **stdout** and exit status 1. ``credentials not found in native
  keychain`` is the one message clients read as "no credentials" (anonymous access), not as a
  failure; ``no credentials server URL`` and ``no credentials username`` are the others.
- Username ``<token>`` would mean the secret is an identity token; ACR's convention is the null
  GUID with an ACR refresh token as the secret, which is what azauth answers.

Stdlib only: the warm ``get`` (:mod:`agent.credential_helpers.warm`) imports this module.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = [
    "ACR_USERNAME",
    "NOT_FOUND",
    "NO_SERVER_URL",
    "NO_USERNAME",
    "OPERATIONS",
    "USAGE",
    "parse_store_request",
    "read_request",
    "read_server_url",
    "registry_host",
    "render_get",
    "render_list",
    "unknown_action",
]

ACR_USERNAME = "00000000-0000-0000-0000-000000000000"
"""The user name that tells Azure Container Registry the secret is an ACR refresh token."""

NOT_FOUND = "credentials not found in native keychain"
"""The exact "no credentials for this server" answer of the protocol."""
NO_SERVER_URL = "no credentials server URL"
NO_USERNAME = "no credentials username"
OPERATIONS = ("get", "list", "store", "erase", "version")
HELPER_NAME = "docker-credential-azauth"
USAGE = f"Usage: {HELPER_NAME} <store|get|erase|list|version>"
"""The answer (stdout, exit 1) to a call without exactly one argument."""


def unknown_action(action: str) -> str:
    """The answer (stdout, exit 1) to an operation the protocol does not define."""
    return f"Unknown credential action `{action}`"


_MAX_INPUT = 64 * 1024
_MAX_HOST = 253 + 6
_MAX_READ = 1024 * 1024


def read_request(stream: BinaryIO | None) -> bytes:
    """What a client wrote on standard input (at most 1 MiB); ``b""`` when there is none.

    ``stream`` is ``sys.stdin.buffer``, or ``None`` when the helper was started with standard
    input closed. A closed or unreadable stream reads as empty, so the operation answers with
    the protocol's message (``no credentials server URL``) instead of failing.
    """
    if stream is None:
        return b""
    try:
        return stream.read(_MAX_READ) or b""
    except (OSError, ValueError):
        return b""


def read_server_url(data: bytes) -> str:
    """The server URL of a ``get``/``erase`` request: stdin, decoded and trimmed.

    Raises:
        ValueError: with :data:`NO_SERVER_URL` when it is empty, not UTF-8 or too long.
    """
    if len(data) > _MAX_INPUT:
        raise ValueError(NO_SERVER_URL)
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(NO_SERVER_URL) from None
    if not text:
        raise ValueError(NO_SERVER_URL)
    return text


def registry_host(server_url: str) -> str:
    """The registry host (``name[:port]``, lower case) of what a client calls a server URL.

    Docker sends ``contoso.azurecr.io``, ``https://contoso.azurecr.io`` or
    ``https://contoso.azurecr.io/v2/``; all three are ``contoso.azurecr.io``.

    Raises:
        ValueError: ``server_url`` names no host, or has a user name, a bad port or scheme.
    """
    import urllib.parse  # noqa: PLC0415 - only a miss or a profile needs it (1 ms)

    text = server_url.strip()
    if not text or len(text) > 2048 or any(ord(ch) < 0x21 for ch in text):
        raise ValueError("not a registry host or URL")
    if "://" not in text:
        text = f"//{text}"
    try:
        parts = urllib.parse.urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise ValueError("not a registry host or URL") from None
    if not host or parts.username is not None or parts.password is not None:
        raise ValueError("not a registry host or URL")
    if parts.scheme not in {"", "https", "http"}:
        raise ValueError("not a registry host or URL")
    if not _is_host_name(host):
        raise ValueError("not a registry host or URL")
    shown = f"[{host}]" if ":" in host else host
    result = f"{shown}:{port}" if port is not None else shown
    if len(result) > _MAX_HOST:
        raise ValueError("not a registry host or URL")
    return result.lower()


_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_IPV6_CHARS = frozenset("0123456789abcdef:.")


def _is_host_name(host: str) -> bool:
    """Whether ``host`` (lower case, without brackets) is a DNS name, an IPv4 or IPv6 address.

    The domain grammar of Docker image references (``distribution/reference``): dot-separated
    labels of letters, digits and inner hyphens. Anything else (``%``, a backslash, ``;``,
    quotes) is not a registry, and must never become part of a URL azauth sends a token to.
    """
    if ":" in host:
        return host.count(":") >= 2 and set(host) <= _IPV6_CHARS
    labels = host.lower().split(".")
    return all(
        label and set(label) <= _LABEL_CHARS and label[0] != "-" and label[-1] != "-"
        for label in labels
    )


def render_get(server_url: str, username: str, secret: str) -> str:
    """The ``get`` answer (one JSON line)."""
    return (
        json.dumps(
            {"ServerURL": server_url, "Username": username, "Secret": secret},
            separators=(",", ":"),
        )
        + "\n"
    )


def render_list(entries: dict[str, str]) -> str:
    """The ``list`` answer: server URL → user name."""
    return json.dumps(entries, separators=(",", ":"), sort_keys=True) + "\n"


def parse_store_request(data: bytes) -> tuple[str, str]:
    """``(ServerURL, Username)`` of a ``store`` request (the secret is read, not kept).

    Raises:
        ValueError: with the protocol's message when a field is missing or the JSON is bad.
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # Recursion: nested too deeply
        raise ValueError("the store request is not a JSON object") from None
    if not isinstance(document, dict):
        raise ValueError("the store request is not a JSON object")  # noqa: TRY004 - bad input
    server = document.get("ServerURL")
    username = document.get("Username")
    if not isinstance(server, str) or not server.strip():
        raise ValueError(NO_SERVER_URL)
    if not isinstance(username, str) or not username.strip():
        raise ValueError(NO_USERNAME)
    return server.strip(), username

"""URL and host policy: the one place that decides where azauth may send a credential.

Every module that accepts a URL from a user or a server asks here instead of parsing it itself:

* :func:`normalize_authority` — the Microsoft Entra authority of the library
  (``AzurePipelinesCredential(authority=)``), of ``AZURE_AUTHORITY_HOST`` and of a profile's
  ``authority``, with one rule for all three;
* :func:`host_of` — the lower-case host of a URL or of a ``host[:port]`` pair;
* :func:`is_loopback_host` — ``localhost`` or a loopback address (127.0.0.0/8, ``::1``);
* :func:`is_tls_or_loopback` — https, or plain http to a loopback host only;
* :func:`loopback_bind_address` — the address a loopback listener binds for a ``--host``;
* :func:`first_control_character` — the first space or control character of a value.

Standard library only and cheap to import (``urllib.parse`` already loads ``ipaddress``): the
warm ``azauth token`` path may import it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "LOCALHOST",
    "NON_ASCII_HOST",
    "PLAIN_HTTP_REFUSED",
    "first_control_character",
    "host_of",
    "host_problem",
    "is_loopback_host",
    "is_tls_or_loopback",
    "loopback_bind_address",
    "normalize_authority",
]

LOCALHOST = "localhost"
"""The one host name taken as loopback without resolving it (RFC 6761 section 6.3)."""

PLAIN_HTTP_REFUSED = "plain http is only allowed for loopback hosts"
"""The reason given when a URL is ``http://`` to a host that is not loopback."""


def first_control_character(value: str) -> tuple[int, str] | None:
    """Return ``(index, "U+XXXX")`` of the first whitespace or control character, else ``None``.

    ``urlsplit`` silently drops tabs and line breaks, so URLs are checked with this first.
    """
    for index, char in enumerate(value):
        if char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F:
            return index, f"U+{ord(char):04X}"
    return None


def is_loopback_host(host: str | None) -> bool:
    """Tell whether ``host`` is ``localhost`` or a loopback IP address (127.0.0.0/8, ``::1``).

    Case-insensitive; an IPv6 literal may keep its brackets (``[::1]``). Nothing is resolved:
    any other name, ``localhost.`` and ``*.localhost`` included, is not loopback.
    """
    if not host:
        return False
    name = host.strip("[]").lower()
    if name == LOCALHOST:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_tls_or_loopback(scheme: str | None, host: str | None) -> bool:
    """Whether a credential may travel to ``scheme://host``: https, or http to loopback only."""
    scheme = (scheme or "").lower()
    if scheme == "https":
        return bool(host)
    return scheme == "http" and is_loopback_host(host)


def host_of(value: str) -> str | None:
    """Return the lower-case host of URL or ``host[:port]`` ``value`` (IPv6 without brackets).

    ``None`` when ``value`` has no host or does not parse (an unclosed ``[``).
    """
    text = value.strip()
    if "://" not in text:
        text = f"//{text}"
    try:
        return urlsplit(text).hostname or None
    except ValueError:
        return None


def loopback_bind_address(host: str) -> str | None:
    """Return the address to listen on for ``host``, or ``None`` when it is not loopback.

    ``localhost`` binds ``127.0.0.1`` (it may resolve to two addresses, which would get two
    different free ports); a loopback IP address binds itself, brackets removed.
    """
    if host.lower() == LOCALHOST:
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return str(address) if address.is_loopback else None


NON_ASCII_HOST = "the host is not ASCII: give its punycode (xn--) form"


def host_problem(host: str) -> str | None:
    """Why a credential may not go to ``host`` whatever the scheme, or ``None``.

    A host that is not ASCII is refused (its punycode ``xn--`` form is accepted): a look-alike
    name must not receive the system access token or a client assertion.
    """
    return None if host.isascii() else NON_ASCII_HOST


def _split(text: str) -> SplitResult:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError past 65535 or when not a number
    except ValueError:
        raise ValueError("the host or port is not valid (a port is a number 0-65535)") from None
    return parts


def normalize_authority(value: str) -> str:
    """Return authority ``value`` as ``scheme://host[:port][/path]`` without a trailing slash.

    The one rule for the library's ``authority=``, ``AZURE_AUTHORITY_HOST`` and a profile's
    ``authority``. A bare host gets ``https://``; the scheme and host are lower-cased. Refused:
    an empty value, spaces or control characters inside, a scheme other than https (plain http
    only for loopback hosts), no host, a non-ASCII host (give its punycode ``xn--`` form: a
    look-alike name must not receive tokens), a user name or password, a query, a fragment, or
    a port that is not a number 0-65535.

    Raises:
        ValueError: with the reason; the reason never repeats the value (which could hold a
            password in its user information).
    """
    text = value.strip()
    if not text:
        raise ValueError("the authority is empty")
    bad = first_control_character(text)
    if bad is not None:
        raise ValueError(f"the authority holds a space or control character ({bad[1]})")
    if "://" not in text:
        text = f"https://{text}"
    parts = _split(text)
    problem = _authority_problem(text, parts)
    if problem is not None:
        raise ValueError(problem)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def _authority_problem(text: str, parts: SplitResult) -> str | None:
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in {"https", "http"}:
        return f"scheme {scheme!r} is not supported (https only)"
    if not host:
        return "the URL has no host"
    if host_problem(host) is not None:
        return NON_ASCII_HOST
    if "@" in parts.netloc or "?" in text or "#" in text:
        return "an authority has no user name, password, query or fragment"
    if not is_tls_or_loopback(scheme, host):
        return PLAIN_HTTP_REFUSED
    return None

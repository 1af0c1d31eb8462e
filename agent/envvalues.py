"""Values azauth reads from the environment: one place that trims them and says what is wrong.

A token read from a file or a CRLF ``.env`` file arrives as ``"eyJ...<CR><LF>"``; sent as it is, it
becomes an HTTP header injection that aiohttp refuses without naming the variable. Every variable
azauth reads goes through here instead:

* surrounding whitespace is trimmed where the value's grammar has no use for it (tokens, URLs);
* anything else that cannot be right (a control character or a space inside a token or a URL,
  an unset or empty required variable) is a :class:`~agent.exceptions.ConfigError` (exit 3) that
  names the variable and what is wrong — never the value of a secret. ``ConfigError`` is also a
  ``ValueError``, the type the Azure SDK raises for bad credential arguments.

The "job environment" messages (:func:`missing_job_variable`) say what is missing, where Azure
Pipelines normally provides it, and that ``--emulate`` exists for runs outside a pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

from agent import envvars
from agent.exceptions import ConfigError
from agent.urls import first_control_character, host_problem, is_tls_or_loopback

__all__ = [
    "EMULATE_HINT",
    "clean_token",
    "clean_url",
    "missing_job_variable",
    "oidc_request_uri",
    "oidc_request_url",
]

EMULATE_HINT = "outside a pipeline, `--emulate` runs against the built-in emulator"

_WHERE = {
    envvars.SYSTEM_OIDCREQUESTURI: (
        "Azure Pipelines sets it in every job (a `script:` or task step on an agent); the service "
        "connection must also be referenced in the stage (by a task input such as "
        "`azureSubscription:`) for Azure DevOps to hand out its OIDC token"
    ),
}


def _is_clean(value: str) -> bool:
    """The common case, at C speed: printable ASCII without spaces."""
    return bool(value) and value.isascii() and value.isprintable() and " " not in value


def _cleaned(value: str, *, source: str, expected: str | None, secret: bool) -> str:
    """``value`` trimmed; a space or control character inside is a ``ConfigError``.

    A ``secret`` is never shown; another value (a URL) is shown without its user information.
    """
    if _is_clean(value):
        return value
    stripped = value.strip()
    if not stripped:
        raise ConfigError(f"{source} is empty or only whitespace", expected=expected)
    bad = first_control_character(stripped)
    if bad is None:
        return stripped
    if secret:
        what, tail = source, " of its trimmed value (the value is not shown)"
        default = "a token: visible ASCII characters only"
    else:
        what, tail = f"{source}={_shown(stripped)!r}", ""
        default = "a URL without spaces or control characters"
    raise ConfigError(
        f"{what} holds a control character or space ({bad[1]}) at position {bad[0] + 1}{tail}",
        expected=expected or default,
    )


def clean_token(value: str, *, source: str, expected: str | None = None) -> str:
    """Return ``value`` without surrounding whitespace; refuse anything else a header can't hold.

    ``source`` names where the value came from (``environment variable SYSTEM_ACCESSTOKEN``);
    the value itself is never shown.

    Raises:
        ConfigError: empty after trimming, or a control character or space inside.
    """
    stripped = _cleaned(value, source=source, expected=expected, secret=True)
    if not stripped.isascii():
        index = next(i for i, char in enumerate(stripped) if not char.isascii())
        raise ConfigError(
            f"{source} holds a non-ASCII character (U+{ord(stripped[index]):04X}) at position "
            f"{index + 1} of its trimmed value (the value is not shown)",
            expected=expected or "a token: visible ASCII characters only",
        )
    return stripped


def clean_url(value: str, *, source: str, expected: str | None = None) -> str:
    """Return URL ``value`` without surrounding whitespace.

    Raises:
        ConfigError: empty after trimming, or a control character or space inside.
    """
    return _cleaned(value, source=source, expected=expected, secret=False)


_OIDC_URL_EXPECTED = (
    "the https URL Azure Pipelines sets (https://dev.azure.com/ORG/PROJECT/_apis/...); plain "
    "http only for a loopback host such as the emulator's"
)


def _url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the OIDC request URI, or ``None`` when it can."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError past 65535 or when not a number
    except ValueError as exc:
        return f"is not a URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return f"is not an http(s) URL (scheme {scheme!r})" if scheme else "is not an absolute URL"
    if not host:
        return "has no host"
    problem = _extra_problem(url, parts) or host_problem(host)
    if problem is not None:
        return problem
    if not is_tls_or_loopback(scheme, host):
        return (
            "is plain http to a host that is not loopback (the system access token would "
            "travel in clear text)"
        )
    return None


def _extra_problem(url: str, parts: SplitResult) -> str | None:
    """What the OIDC request URI may not hold besides a scheme, host, port, path and query."""
    if parts.username is not None or parts.password is not None:
        return "holds a user name or password (the system access token is the credential)"
    if parts.fragment or url.endswith("#"):
        return "holds a fragment (#...): azauth appends its query to the URL"
    return None


def oidc_request_url(value: str, *, source: str) -> str:
    """Return OIDC request URI ``value`` trimmed, checked as a URL the token may be sent to.

    Raises:
        ConfigError: empty, spaces or control characters inside, not an http(s) URL with a host
            and a valid port, credentials in the URL, or plain http to a non-loopback host.
    """
    url = clean_url(value, source=source)
    problem = _url_problem(url)
    if problem is not None:
        raise ConfigError(f"{source}={_shown(url)!r} {problem}", expected=_OIDC_URL_EXPECTED)
    return url


def _shown(url: str) -> str:
    """``url`` as a message may show it: a user name and password become ``***``."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        return f"{scheme}{sep}***@{authority.rpartition('@')[2]}{slash}{path}"
    return url


def missing_job_variable(name: str, state: str = "is not set") -> ConfigError:
    """The error for a variable every Azure Pipelines job has and this environment lacks."""
    where = _WHERE.get(name, "Azure Pipelines sets it in every job")
    return ConfigError(
        f"environment variable {name} {state}: this does not look like an Azure Pipelines job "
        f"step; {where}",
        expected=f"a pipeline step, or {EMULATE_HINT}",
    )


def oidc_request_uri(env: Mapping[str, str]) -> str:
    """``SYSTEM_OIDCREQUESTURI`` from ``env``, trimmed.

    Raises:
        ConfigError: it is unset, empty, or holds spaces or control characters.
    """
    value = env.get(envvars.SYSTEM_OIDCREQUESTURI)
    if value is None or not value.strip():
        raise missing_job_variable(
            envvars.SYSTEM_OIDCREQUESTURI, "is not set" if value is None else "is empty"
        )
    return oidc_request_url(value, source="environment variable SYSTEM_OIDCREQUESTURI")

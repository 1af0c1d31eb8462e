"""The managed-identity token protocols ``azauth serve`` speaks, as pure functions (no I/O).

Two wire shapes, both ``GET`` with query parameters and a JSON answer:

- **App Service / Functions** (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``): ``api-version``
  ``2019-08-01`` with the secret in ``X-IDENTITY-HEADER``; the legacy ``2017-09-01``
  (``MSI_ENDPOINT`` + ``MSI_SECRET``) with the secret in ``secret``; go-azure-sdk (Terraform's
  azurerm) sends the same secret as ``x-ms-identity``. All three headers are accepted at the one
  endpoint. The answer carries ``expires_on`` as a string of epoch seconds; errors are
  ``{"statusCode", "message", "correlationId"}``.
- **IMDS** (``/metadata/identity/oauth2/token``, ``api-version`` >= ``2018-02-01``): no secret;
  ``Metadata: true`` is required and requests carrying ``X-Forwarded-For`` are refused, as the
  real service does. Every answer value is a string; errors are ``{"error",
  "error_description"}``.

A ``resource`` becomes the scope ``resource + "/.default"`` unchanged, as the Azure CLI does: a
trailing slash is kept (``https://management.azure.com/`` → ``https://management.azure.com//
.default``) so Entra issues a token whose ``aud`` is exactly the resource the client named. A
value that already ends in ``/.default`` is used as the scope as it is.

Choosing a connection (the "identity"): ``client_id`` (``clientid`` in 2017-09-01) names the
connection with that app id; ``mi_res_id`` (``msi_res_id`` for IMDS; ``resource_id`` as
azure-identity's async client sends ``identity_config``) names a connection by its name in the
profile file or by its service connection id; ``principal_id`` / ``object_id`` are
refused because azauth does not know service principals' object ids. Without any of them the
server's default connection is used (the only one, unless one is chosen).
"""

from __future__ import annotations

import hmac
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from agent import envvars

__all__ = [
    "APP_SERVICE_API_VERSIONS",
    "APP_SERVICE_PATH",
    "IMDS_MIN_API_VERSION",
    "IMDS_PATH",
    "SECRET_HEADERS",
    "Identity",
    "IdentitySelector",
    "Refusal",
    "SelectorKind",
    "TokenRequest",
    "WireProtocol",
    "app_service_token_body",
    "authorize",
    "check_forwarding",
    "default_connection",
    "error_body",
    "imds_token_body",
    "is_allowed_host",
    "loopback_no_proxy",
    "parse_app_service_request",
    "parse_imds_request",
    "render_export_line",
    "resource_to_scope",
    "select_connection",
    "single_query_values",
]

WireProtocol = Literal["app_service", "imds"]
SelectorKind = Literal["client_id", "resource_id", "object_id"]

APP_SERVICE_PATH = "/msi/token"
IMDS_PATH = "/metadata/identity/oauth2/token"
APP_SERVICE_API_VERSIONS = ("2019-08-01", "2017-09-01")
IMDS_MIN_API_VERSION = "2018-02-01"
SECRET_HEADERS = ("X-IDENTITY-HEADER", "secret", "x-ms-identity")
"""Headers that may carry the per-run secret: 2019-08-01, 2017-09-01, go-azure-sdk."""

_DEFAULT_SUFFIX = "/.default"
_MAX_RESOURCE_LENGTH = 2048
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_LOOPBACK_NO_PROXY = ("127.0.0.1", "localhost", "::1")
_PROXY_NAMES = ("http_proxy", "https_proxy", "all_proxy")
# Query parameters that pick an identity, per protocol, mapped to what they mean.
_APP_SERVICE_SELECTORS: dict[str, SelectorKind] = {
    "client_id": "client_id",
    "clientid": "client_id",
    "mi_res_id": "resource_id",
    "resource_id": "resource_id",
    "principal_id": "object_id",
    "object_id": "object_id",
}
_IMDS_SELECTORS: dict[str, SelectorKind] = {
    "client_id": "client_id",
    "msi_res_id": "resource_id",
    "mi_res_id": "resource_id",
    "resource_id": "resource_id",
    "object_id": "object_id",
    "principal_id": "object_id",
}


class Refusal(Exception):  # noqa: N818 - a refusal is an answer, not a failure of ours
    """A request the server answers with an error; raised by the parsers and checks here.

    Internal control flow of :mod:`agent.tokenserver.server`, never seen by users of azauth: it
    becomes an HTTP answer in the shape of the protocol the request used (:func:`error_body`).

    Attributes:
        status: the HTTP status to answer with.
        error: the IMDS-style error code (``invalid_request``, ``bad_request_102``, ...).
        message: the human-readable reason; never holds a secret.
        retry_after: seconds for a ``Retry-After`` header, if any.
    """

    def __init__(
        self, status: int, error: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after


class Identity(Protocol):
    """What choosing a connection needs to know of it (:class:`agent.config.Connection`)."""

    @property
    def client_id(self) -> str:
        """The app (client) id."""
        ...

    @property
    def service_connection_id(self) -> str:
        """The Azure DevOps service connection id."""
        ...


@dataclass(frozen=True)
class IdentitySelector:
    """The identity a request names: ``kind`` is ``client_id``, ``resource_id`` or ``object_id``.

    ``parameter`` is the query parameter it came in, for error messages.
    """

    kind: SelectorKind
    value: str
    parameter: str


@dataclass(frozen=True)
class TokenRequest:
    """A well-formed token request: the resource, and the identity it names (if any)."""

    protocol: WireProtocol
    api_version: str
    resource: str
    selector: IdentitySelector | None = None

    @property
    def scope(self) -> str:
        """The Entra scope to ask for (:func:`resource_to_scope`)."""
        return resource_to_scope(self.resource)


def resource_to_scope(resource: str) -> str:
    """Return the ``.default`` scope of a v1 ``resource`` (kept as is if already a scope)."""
    if resource.endswith(_DEFAULT_SUFFIX):
        return resource
    return resource + _DEFAULT_SUFFIX


def is_allowed_host(host: str | None, port: int) -> bool:
    """Whether a ``Host`` header names this loopback server (the DNS-rebinding guard).

    Accepted: ``127.0.0.1``, ``localhost`` and ``[::1]``, each bare or with ``:port`` equal to
    the port the server listens on. Anything else, a missing header included, is refused.
    """
    if not host:
        return False
    value = host.lower()
    if value.startswith("["):  # an IPv6 literal: "[::1]" or "[::1]:port"
        inside, _, rest = value.partition("]")
        name = inside + "]"
        if rest and (not rest.startswith(":") or rest == ":"):
            return False
        given_port = rest[1:]
    else:
        name, sep, given_port = value.partition(":")
        if sep and not given_port:
            return False
    return name in _LOOPBACK_HOSTS and given_port in ("", str(port))


def check_forwarding(headers: Mapping[str, str]) -> None:
    """Refuse requests relayed by a proxy or sent by a web page (``headers``: case-insensitive).

    ``X-Forwarded-For`` means another host's request was relayed (IMDS refuses it for the
    same reason); ``Origin`` is sent by browsers and never by Azure SDKs or Terraform.

    Raises:
        Refusal: 400 for ``X-Forwarded-For``, 403 for ``Origin``.
    """
    if "X-Forwarded-For" in headers:
        raise Refusal(
            400,
            "invalid_request",
            "requests carrying X-Forwarded-For are refused: this token server answers local "
            "clients directly, never through a proxy",
        )
    if "Origin" in headers:
        raise Refusal(
            403,
            "forbidden",
            "requests from web pages (with an Origin header) are refused",
        )


def authorize(headers: Mapping[str, str], secret: str) -> None:
    """Check that one of :data:`SECRET_HEADERS` carries ``secret`` (constant-time comparison).

    ``headers`` must be case-insensitive (aiohttp's ``request.headers`` is).

    Raises:
        Refusal: 401 when no header carries the secret; the message never repeats a value.
    """
    expected = secret.encode()
    offered = [headers[name] for name in SECRET_HEADERS if name in headers]
    if not offered:
        raise Refusal(
            401,
            "unauthorized",
            "missing X-IDENTITY-HEADER: send the value of IDENTITY_HEADER in it",
        )
    # Every offered value is compared, so the time taken does not depend on which one matched.
    matched = False
    for value in offered:
        matched |= hmac.compare_digest(value.encode("utf-8", "surrogateescape"), expected)
    if not matched:
        raise Refusal(
            401,
            "unauthorized",
            "the X-IDENTITY-HEADER value is not this server's IDENTITY_HEADER",
        )


def single_query_values(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query parameters as a dict; a parameter given twice is refused (400)."""
    values: dict[str, str] = {}
    for name, value in query:
        if name in values:
            raise Refusal(400, "invalid_request", f"query parameter {name!r} is given twice")
        values[name] = value
    return values


def _resource(values: Mapping[str, str]) -> str:
    resource = values.get("resource", "")
    if not resource:
        raise Refusal(
            400,
            "invalid_request",
            "required query parameter 'resource' is missing (for example "
            "resource=https://management.azure.com/)",
        )
    if len(resource) > _MAX_RESOURCE_LENGTH or any(ch.isspace() for ch in resource):
        raise Refusal(
            400,
            "invalid_resource",
            "'resource' must be one resource URI or app id, without spaces",
        )
    return resource


def _selector(
    values: Mapping[str, str], known: Mapping[str, SelectorKind]
) -> IdentitySelector | None:
    given = [(name, values[name]) for name in known if values.get(name)]
    if not given:
        return None
    if len(given) > 1:
        names = ", ".join(name for name, _ in given)
        raise Refusal(
            400, "invalid_request", f"name the identity with one parameter only, not {names}"
        )
    name, value = given[0]
    return IdentitySelector(known[name], value, name)


def parse_app_service_request(query: Iterable[tuple[str, str]]) -> TokenRequest:
    """Validate the query of an App Service request (after :func:`authorize`).

    Raises:
        Refusal: 400 for a missing or unsupported ``api-version``, a missing ``resource``, a
            repeated parameter, or more than one identity parameter.
    """
    values = single_query_values(query)
    version = values.get("api-version", "")
    if version not in APP_SERVICE_API_VERSIONS:
        shown = f"api-version {version!r} is not supported" if version else "api-version missing"
        raise Refusal(
            400,
            "invalid_request",
            f"{shown}: use {' or '.join(APP_SERVICE_API_VERSIONS)}",
        )
    return TokenRequest(
        "app_service", version, _resource(values), _selector(values, _APP_SERVICE_SELECTORS)
    )


def parse_imds_request(
    query: Iterable[tuple[str, str]], headers: Mapping[str, str]
) -> TokenRequest:
    """Validate an IMDS request: ``Metadata: true``, then the query.

    Raises:
        Refusal: 400 ``bad_request_102`` without ``Metadata: true``; 400 ``invalid_request``
            for a missing or too old ``api-version``, a missing ``resource``, a repeated
            parameter, or more than one identity parameter.
    """
    if headers.get("Metadata", "").strip().lower() != "true":
        raise Refusal(400, "bad_request_102", "Required metadata header not specified")
    values = single_query_values(query)
    version = values.get("api-version", "")
    if not _is_iso_date(version) or version < IMDS_MIN_API_VERSION:
        shown = f"api-version {version!r} is not supported" if version else "api-version missing"
        raise Refusal(
            400, "invalid_request", f"{shown}: use {IMDS_MIN_API_VERSION} or a later version"
        )
    return TokenRequest("imds", version, _resource(values), _selector(values, _IMDS_SELECTORS))


def _is_iso_date(value: str) -> bool:
    parts = value.split("-")
    return (
        len(parts) == 3 and [len(p) for p in parts] == [4, 2, 2] and all(p.isdigit() for p in parts)
    )


def default_connection(connections: Mapping[str, object], default: str | None, how: str) -> str:
    """The connection for a request that names none: ``default``, else the only one.

    Raises:
        Refusal: 400 when the server has several connections and no default; the message says
            to name one with ``how``.
    """
    if default is not None:
        return default
    if len(connections) == 1:
        return next(iter(connections))
    raise Refusal(
        400,
        "invalid_request",
        f"this server has {len(connections)} connections ({', '.join(connections)}): name "
        f"one with {how}",
    )


def select_connection(
    connections: Mapping[str, Identity],
    selector: IdentitySelector | None,
    default: str | None = None,
) -> str:
    """Return the name of the connection a request asks for.

    Args:
        connections: the profile's connections, by name.
        selector: the identity the request names, if any.
        default: the connection used when the request names none; without it, the only one.

    Raises:
        Refusal: 400 when no connection, or more than one, matches.
    """
    if selector is None:
        return default_connection(
            connections, default, "client_id, or mi_res_id set to the connection's name"
        )
    if selector.kind == "object_id":
        raise Refusal(
            400,
            "invalid_request",
            f"{selector.parameter} is not supported by azauth: name the identity with client_id, "
            "or mi_res_id set to the connection's name",
        )
    wanted = selector.value.lower()
    if selector.kind == "client_id":
        found = [name for name, c in connections.items() if c.client_id.lower() == wanted]
    else:
        found = [
            name
            for name, c in connections.items()
            if name == selector.value or c.service_connection_id.lower() == wanted
        ]
    if len(found) == 1:
        return found[0]
    if not found:
        raise Refusal(
            400,
            "invalid_request",
            f"no connection matches {selector.parameter}={selector.value!r}; this server has: "
            f"{', '.join(connections)}",
        )
    raise Refusal(
        400,
        "invalid_request",
        f"{selector.parameter}={selector.value!r} matches {len(found)} connections "
        f"({', '.join(found)}): name one with mi_res_id set to its name",
    )


def app_service_token_body(
    *, access_token: str, expires_on: int, resource: str, client_id: str, token_type: str, now: int
) -> dict[str, str]:
    """The App Service answer: ``expires_on`` as a string of epoch seconds.

    ``expires_in`` is added (the real endpoint omits it) because go-azure-sdk, Terraform's
    client, reads only ``expires_in`` and would otherwise treat the token as never expiring.
    """
    return {
        "access_token": access_token,
        "expires_on": str(expires_on),
        "expires_in": str(max(0, expires_on - now)),
        "resource": resource,
        "token_type": token_type,
        "client_id": client_id,
    }


def imds_token_body(
    *, access_token: str, expires_on: int, resource: str, client_id: str, token_type: str, now: int
) -> dict[str, str]:
    """The IMDS answer: every value a string, as the real service sends them."""
    expires_in = str(max(0, expires_on - now))
    return {
        "access_token": access_token,
        "refresh_token": "",
        "expires_in": expires_in,
        "expires_on": str(expires_on),
        "ext_expires_in": expires_in,
        "not_before": str(now),
        "resource": resource,
        "token_type": token_type,
        "client_id": client_id,
    }


def error_body(
    protocol: WireProtocol | None, refusal: Refusal, correlation_id: str
) -> dict[str, object]:
    """The JSON error of ``protocol`` (IMDS shape when the path matched no protocol)."""
    if protocol == "app_service":
        return {
            "statusCode": refusal.status,
            "message": refusal.message,
            "correlationId": correlation_id,
        }
    return {"error": refusal.error, "error_description": refusal.message}


def loopback_no_proxy(env: Mapping[str, str]) -> dict[str, str]:
    """``NO_PROXY``/``no_proxy`` values that keep loopback traffic away from a proxy.

    Returns nothing when ``env`` names no proxy. Otherwise both spellings are set to the
    existing list (``no_proxy`` winning, as in curl) plus ``127.0.0.1,localhost,::1``: a client
    such as ``requests`` would otherwise send the secret header to the proxy.
    """
    if not any(env.get(name) or env.get(name.upper()) for name in _PROXY_NAMES):
        return {}
    existing = env.get("no_proxy") or env.get(envvars.NO_PROXY) or ""
    items = [item.strip() for item in existing.split(",") if item.strip()]
    items += [host for host in _LOOPBACK_NO_PROXY if host not in items]
    value = ",".join(items)
    return {envvars.NO_PROXY: value, "no_proxy": value}


def render_export_line(values: Mapping[str, str]) -> str:
    """One POSIX ``export NAME='value' ...`` line, newline-terminated (``eval``-able)."""
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())
    return f"export {assignments}\n"

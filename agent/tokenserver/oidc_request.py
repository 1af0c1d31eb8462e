"""The OIDC *request* flow ``azauth serve`` speaks, as pure functions (no I/O).

Tools that refresh their own federated credential do not read a token file: they ask a URL for
a fresh OIDC token before each exchange with Entra. Two shapes exist, and ``azauth serve``
answers both at one path (:data:`OIDC_REQUEST_PATH`), told apart by the method:

- **Azure DevOps** (``SYSTEM_OIDCREQUESTURI``; Terraform with ``ARM_OIDC_REQUEST_URL`` and
  ``ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID``; azure-identity's ``AzurePipelinesCredential``):
  ``POST {url}?api-version=7.1&serviceConnectionId=ID[&audience=…]`` with
  ``Authorization: Bearer <request token>``; answer ``{"oidcToken": "<JWT>"}``; errors in the
  VSS envelope ``{"$id", "innerException", "message", "typeName", "typeKey", "errorCode",
  "eventId"}``.
- **GitHub Actions** (``ACTIONS_ID_TOKEN_REQUEST_URL``; Terraform and Pulumi with
  ``ARM_OIDC_REQUEST_URL`` alone): ``GET {url}[?…]&audience=…`` with the same bearer header;
  answer ``{"count": 1, "value": "<JWT>"}``; errors ``{"message": …}``. The connection is the
  server's default one unless ``serviceConnectionId`` names another.

The request token is a random per-run secret of the server, never the System.AccessToken. The
answer is always the Azure DevOps OIDC token of the connection, whose ``aud`` is
``api://AzureADTokenExchange``: an ``audience`` parameter other than that (or one the server was
configured to accept as its alias) is refused, because the token would not be what was asked.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from agent.tokenserver.managed_identity import (
    Identity,
    Refusal,
    default_connection,
    single_query_values,
)

__all__ = [
    "ADO_API_VERSIONS",
    "DEFAULT_AUDIENCE",
    "GITHUB_API_VERSION",
    "OIDC_REQUEST_PATH",
    "OIDC_REUSE_SECONDS",
    "OidcRequest",
    "RequestShape",
    "authorize_bearer",
    "error_body",
    "parse_oidc_request",
    "select_oidc_connection",
    "shape_of",
    "token_body",
]

RequestShape = Literal["azure_devops", "github"]

OIDC_REQUEST_PATH = "/oidc/token"
ADO_API_VERSIONS = ("7.1", "7.1-preview.1")
GITHUB_API_VERSION = "2.0"
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
OIDC_REUSE_SECONDS = 60
"""A cached OIDC token is handed out again while it has at least this many seconds left."""

_VSS = "Microsoft.VisualStudio.Services.WebApi"
_MAX_VALUE = 256


@dataclass(frozen=True)
class OidcRequest:
    """A well-formed OIDC token request.

    ``service_connection_id`` is ``None`` when a GitHub-shape request names no connection.
    """

    shape: RequestShape
    service_connection_id: str | None
    audience: str


def shape_of(method: str) -> RequestShape | None:
    """``POST`` is the Azure DevOps shape, ``GET`` GitHub's; anything else neither."""
    if method == "POST":
        return "azure_devops"
    if method == "GET":
        return "github"
    return None


def authorize_bearer(authorization: str | None, secret: str) -> None:
    """Check ``Authorization: Bearer <secret>`` in constant time.

    Raises:
        Refusal: 401; the message never repeats the value sent.
    """
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Refusal(
            401,
            "unauthorized",
            "missing Authorization: Bearer <token>: send the value of the OIDC request token "
            "variable (AZAUTH_OIDC_REQUEST_TOKEN, ARM_OIDC_REQUEST_TOKEN)",
        )
    offered = credentials.strip().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(offered, secret.encode()):
        raise Refusal(
            401, "unauthorized", "the bearer token is not this server's OIDC request token"
        )


def _single_values(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    values = single_query_values(query)
    for name, value in values.items():
        if len(value) > _MAX_VALUE:
            raise Refusal(400, "invalid_request", f"query parameter {name!r} is too long")
    return values


def parse_oidc_request(
    shape: RequestShape, query: Iterable[tuple[str, str]], audiences: Iterable[str]
) -> OidcRequest:
    """Validate the query of an OIDC request (after :func:`authorize_bearer`).

    Args:
        shape: from the method (:func:`shape_of`).
        query: the query parameters, in order.
        audiences: the accepted ``audience`` values (:data:`DEFAULT_AUDIENCE` and any alias).

    Raises:
        Refusal: 400 for an unsupported ``api-version`` (Azure DevOps shape), a missing
            ``serviceConnectionId`` (Azure DevOps shape), a repeated parameter, or an audience
            not accepted.
    """
    values = _single_values(query)
    if shape == "azure_devops":
        version = values.get("api-version", "")
        if version not in ADO_API_VERSIONS:
            shown = f"api-version {version!r} is not supported" if version else "no api-version"
            raise Refusal(400, "invalid_request", f"{shown}: use {' or '.join(ADO_API_VERSIONS)}")
        if not values.get("serviceConnectionId"):
            raise Refusal(
                400,
                "invalid_request",
                "serviceConnectionId is required: azauth serves the OIDC tokens of the "
                "profile's service connections only",
            )
    audience = values.get("audience") or DEFAULT_AUDIENCE
    allowed = tuple(audiences)
    if audience not in allowed:
        raise Refusal(
            400,
            "invalid_audience",
            f"audience {audience!r} is not served: Azure DevOps OIDC tokens are issued for "
            f"{DEFAULT_AUDIENCE} (this server accepts: {', '.join(allowed)})",
        )
    return OidcRequest(shape, values.get("serviceConnectionId") or None, audience)


def select_oidc_connection(
    connections: Mapping[str, Identity], service_connection_id: str | None, default: str | None
) -> str:
    """Return the name of the connection whose service connection id (or name) is given.

    Without one (GitHub shape), the server's ``default`` connection, or the only one.

    Raises:
        Refusal: 404 when no connection matches; 400 when none is named and the server has
            several and no default.
    """
    if service_connection_id is None:
        return default_connection(connections, default, "serviceConnectionId")
    wanted = service_connection_id.lower()
    for name, connection in connections.items():
        if connection.service_connection_id.lower() == wanted or name == service_connection_id:
            return name
    raise Refusal(
        404,
        "not_found",
        f"No service connection found with identifier {service_connection_id} among this "
        f"server's connections ({', '.join(connections)}).",
    )


def token_body(shape: RequestShape, oidc_token: str) -> dict[str, object]:
    """The answer carrying ``oidc_token`` in ``shape``."""
    if shape == "azure_devops":
        return {"oidcToken": oidc_token}
    return {"count": 1, "value": oidc_token}


_TYPE_KEYS = {
    400: "InvalidRequestException",
    401: "UnauthorizedRequestException",
    403: "AccessDeniedException",
    404: "ServiceEndpointNotFoundException",
    405: "HttpMethodNotAllowedException",
    429: "RequestBlockedException",
}


def error_body(shape: RequestShape, refusal: Refusal) -> dict[str, object]:
    """The JSON error of ``shape``: the VSS envelope, or GitHub's ``{"message"}``."""
    if shape == "github":
        return {"message": refusal.message}
    type_key = _TYPE_KEYS.get(refusal.status, "ServiceUnavailableException")
    return {
        "$id": "1",
        "innerException": None,
        "message": refusal.message,
        "typeName": f"{_VSS}.{type_key}, {_VSS}",
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    }

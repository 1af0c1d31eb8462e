"""PURE wire protocol of Azure Container Registry's token exchange (what ``az acr login`` does).

Sources: the Azure/acr repository's ``docs/AAD-OAuth.md``; the ACR data-plane REST
specification (``Authentication_ExchangeAadAccessTokenForAcrRefreshToken``, api-version
2021-07-01); azure-cli's ``acr/_docker_utils.py``; the Docker registry token specification.

1. ``POST https://{registry}/oauth2/exchange``, form-encoded ``grant_type=access_token``,
   ``service={registry}``, ``tenant={tenant id}``, ``access_token={Entra access token}``.
   Success: ``200 {"refresh_token": "<ACR refresh token, a JWT>"}``. Failure: the registry's
   error body ``{"errors": [{"code": "UNAUTHORIZED", "message": "...", "detail": ...}]}``.
   The grant types ``access_token_refresh_token`` and ``refresh_token`` are deprecated.
2. Docker-style clients log in with user name ``00000000-0000-0000-0000-000000000000`` and the
   ACR refresh token as the password (or as an identity token), and trade it themselves at
   ``/oauth2/token`` for short-lived repository-scoped access tokens.

Which Entra token. ACR accepts tokens for its own audience, ``https://containerregistry.azure.net``
(``.azure.us``, ``.azure.cn`` in the US Government and China clouds), on every registry. Tokens
for Azure Resource Manager are accepted only while the registry's
``azureADAuthenticationAsArmPolicy`` is enabled (the default, which an Azure Policy built-in
audits and denies). azauth therefore asks for ACR's audience (:func:`acr_scope`) by default,
per registry overridable (``scope`` in the profile), and only when the cached ACR refresh token
is stale.

No I/O here: :mod:`agent.registries.acr_client` sends what this module builds. Stdlib only.
"""

from __future__ import annotations

import json
import urllib.parse

from agent._secrets import server_text
from agent.credential_helpers.docker import ACR_USERNAME, registry_host
from agent.exceptions import AuthenticationError
from agent.exchange import HttpRequest, HttpResponse
from agent.jwt import unverified_claims
from agent.retry import is_retryable_status

__all__ = [
    "ACR_SCOPE",
    "ACR_SCOPES",
    "ACR_SUFFIXES",
    "ACR_USERNAME",
    "EXCHANGE_PATH",
    "TOKEN_PATH",
    "RefreshToken",
    "RegistryError",
    "acr_scope",
    "exchange_request",
    "is_acr_host",
    "parse_challenge",
    "parse_exchange_response",
    "registry_error_body",
    "registry_host",
    "registry_url",
]

ACR_SCOPE = "https://containerregistry.azure.net/.default"
"""The Entra scope of ACR's own audience in the public cloud: accepted by every registry."""

ACR_SCOPES = {
    "public": ACR_SCOPE,
    "usgovernment": "https://containerregistry.azure.us/.default",
    "china": "https://containerregistry.azure.cn/.default",
}
"""ACR's own audience per cloud (the names of :mod:`agent.clouds`)."""


ACR_SUFFIXES = (".azurecr.io", ".azurecr.us", ".azurecr.cn")
"""Login-server suffixes of Azure Container Registry (public, US Government, China clouds)."""

EXCHANGE_PATH = "/oauth2/exchange"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a secret
_FORM = "application/x-www-form-urlencoded"


class RegistryError(AuthenticationError):
    """A container registry refused the token exchange, or answered something unreadable.

    Attributes: ``registry`` (host), ``code`` (the registry's error code, e.g. ``UNAUTHORIZED``).
    """

    def __init__(
        self,
        message: str,
        *,
        registry: str,
        status_code: int | None = None,
        code: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.registry = registry
        self.code = code
        self.retryable = retryable


class RefreshToken:
    """An ACR refresh token: ``token`` (secret), ``registry`` and ``expires_on`` (epoch s)."""

    __slots__ = ("expires_on", "registry", "token")

    def __init__(self, token: str, registry: str, expires_on: int) -> None:
        self.token = token
        self.registry = registry
        self.expires_on = expires_on

    def __repr__(self) -> str:
        return f"RefreshToken(registry={self.registry!r}, expires_on={self.expires_on!r})"


def registry_url(registry: str, path: str) -> str:
    """``https://{registry}{path}``: a registry is always reached over TLS."""
    return f"https://{registry}{path}"


def exchange_request(registry: str, tenant: str, access_token: str) -> HttpRequest:
    """The ``POST /oauth2/exchange`` of an Entra access token for ``registry`` (its host)."""
    form = {
        "grant_type": "access_token",
        "service": registry,
        "tenant": tenant,
        "access_token": access_token,
    }
    return HttpRequest(
        "POST",
        registry_url(registry, EXCHANGE_PATH),
        {"Content-Type": _FORM, "Accept": "application/json"},
        urllib.parse.urlencode(form).encode(),
    )


def parse_exchange_response(
    response: HttpResponse,
    registry: str,
    *,
    fallback_expires_on: int,
    now: float | None = None,
) -> RefreshToken:
    """The refresh token of a ``/oauth2/exchange`` answer.

    Its expiry is the token's ``exp`` claim; ``fallback_expires_on`` (the Entra token's expiry)
    when the token carries none. With ``now`` (epoch seconds), a token that has already expired
    by this machine's clock is refused: it could never be served, and a watch would exchange
    again at once, in a loop.

    Raises:
        RegistryError: the registry refused (its error code and message quoted), the answer
            is not the documented JSON, or the token has expired; ``retryable`` for the statuses
            of :func:`agent.retry.is_retryable_status` (408, 429, 5xx but 501, 505) and an
            expired token.
    """
    status = response.status
    document = _json_object(response.body)
    if status != 200:
        code, message = _first_error(document)
        explained = f": {code}: {message}" if code or message else ""
        raise RegistryError(
            f"registry {registry} refused the token exchange (HTTP {status}){explained}",
            registry=registry,
            status_code=status,
            code=code,
            retryable=is_retryable_status(status),
        )
    token = document.get("refresh_token") if document is not None else None
    if not isinstance(token, str) or not token or any(ch.isspace() for ch in token):
        raise RegistryError(
            f"registry {registry} answered the token exchange without a refresh_token",
            registry=registry,
            status_code=status,
            retryable=True,
        )
    exp = unverified_claims(token).get("exp")
    expires_on = exp if isinstance(exp, int) and not isinstance(exp, bool) else fallback_expires_on
    if now is not None and expires_on <= now:
        raise RegistryError(
            f"registry {registry} answered a refresh token that expired {int(now - expires_on)} s "
            "ago by this machine's clock (is the clock right?)",
            registry=registry,
            status_code=status,
            retryable=True,
        )
    return RefreshToken(token, registry, expires_on)


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply to parse
        return None
    return document if isinstance(document, dict) else None


def _first_error(document: dict[str, object] | None) -> tuple[str | None, str | None]:
    """``(code, message)`` of the first entry of a registry error body (never a token)."""
    if document is None:
        return None, None
    errors = document.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, None
    code = errors[0].get("code")
    message = errors[0].get("message")
    # A registry's text could echo what it was sent: shown as server text (agent._secrets:
    # secrets masked before the cut, one line, capped).
    code = server_text(code, limit=100) if isinstance(code, str) else None
    message = server_text(message, limit=300) if isinstance(message, str) else None
    return code, message


def registry_error_body(code: str, message: str, detail: object = None) -> dict[str, object]:
    """The registry error document: ``{"errors": [{"code", "message"[, "detail"]}]}``."""
    entry: dict[str, object] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return {"errors": [entry]}


def parse_challenge(header: str) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer realm="…",service="…"`` challenge.

    Returns ``{}`` for another scheme. Quoted values may contain commas.
    """
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    params: dict[str, str] = {}
    index = 0
    while index < len(rest):
        while index < len(rest) and rest[index] in " ,":
            index += 1
        equals = rest.find("=", index)
        if equals < 0:
            break
        name = rest[index:equals].strip().lower()
        index = equals + 1
        if index < len(rest) and rest[index] == '"':
            end = rest.find('"', index + 1)
            end = len(rest) if end < 0 else end
            value = rest[index + 1 : end]
            index = end + 1
        else:
            end = rest.find(",", index)
            end = len(rest) if end < 0 else end
            value = rest[index:end].strip()
            index = end
        if name:
            params[name] = value
    return params


def acr_scope(registry: str, cloud: str = "public") -> str:
    """The default Entra scope for ``registry``: its cloud's ACR audience.

    The cloud is the registry's by its suffix (``.azurecr.us``, ``.azurecr.cn``), else
    ``cloud`` (the connection's), else the public cloud.
    """
    name = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if name.endswith(".azurecr.us"):
        return ACR_SCOPES["usgovernment"]
    if name.endswith(".azurecr.cn"):
        return ACR_SCOPES["china"]
    return ACR_SCOPES.get(cloud, ACR_SCOPE)


def is_acr_host(registry: str) -> bool:
    """Whether ``registry`` (a host) is an Azure Container Registry login server by its name."""
    name = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return name.endswith(ACR_SUFFIXES)

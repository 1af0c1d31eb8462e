"""The wire protocol of both token endpoints, as pure build and parse functions.

Step 1 (Azure DevOps): POST ``SYSTEM_OIDCREQUESTURI?api-version=7.1&serviceConnectionId=ID`` with
the job's System.AccessToken → ``{"oidcToken": "<JWT>"}``.
Step 2 (Microsoft Entra): POST ``{authority}/{tenant}/oauth2/v2.0/token`` with a client-credentials
form presenting that JWT as ``client_assertion`` → an access token.

Nothing here touches the network or the clock: requests are values, responses are values, and
errors are raised from :mod:`agent.exceptions`. Messages never include a token: response bodies
are only quoted after being parsed into known fields.
"""

from __future__ import annotations

import json
import math
import string
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from agent import urls
from agent._azure_core import AccessToken, AccessTokenInfo
from agent._secrets import redact_text, server_text
from agent.exceptions import EntraError, ExitCode, NoUsableLifeError, OidcRequestError
from agent.retry import is_retryable_status

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "OIDC_API_VERSION",
    "HttpRequest",
    "HttpResponse",
    "Token",
    "TokenInfo",
    "build_oidc_request",
    "build_token_request",
    "merge_claims",
    "normalize_authority",
    "parse_oidc_response",
    "parse_token_response",
    "resolve_tenant",
    "validate_tenant_id",
]

OIDC_API_VERSION = "7.1"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TROUBLESHOOT = "https://aka.ms/azsdk/python/identity/azurepipelinescredential/troubleshoot"
MISSING_OIDC_URI = (
    "Missing value for the SYSTEM_OIDCREQUESTURI environment variable. "
    "AzurePipelinesCredential is intended for use in Azure Pipelines where the "
    "SYSTEM_OIDCREQUESTURI environment variable is set. Please refer to the troubleshooting "
    f"guide at {TROUBLESHOOT}."
)
INVALID_TENANT = (
    "Invalid tenant ID provided. You can locate your tenant ID by following the instructions "
    "here: https://learn.microsoft.com/partner-center/find-ids-and-domain-names"
)
_MAX_ID = 100  # characters of a server-chosen id (correlation id, trace id, e2eid) we show
_TENANT_CHARS = frozenset(string.ascii_letters + string.digits + "-.")
_MAX_LIFETIME = 7 * 24 * 3600  # longer issued lifetimes are malformed answers

# One-line hints for the AADSTS codes users of Azure Pipelines meet most.
AADSTS_HINTS: dict[int, str] = {
    700016: "the client id is not an application in this tenant: check client_id and tenant_id "
    "of the service connection",
    700024: "the OIDC token expired before it reached Entra: Azure DevOps tokens live minutes, "
    "so fetch a fresh one for every exchange (azauth does) and check the machine's clock",
    700211: "the token's issuer matches no federated credential of the app: the service "
    "connection may use the Entra issuer (login.microsoftonline.com/{tenant}/v2.0) while the "
    "app trusts vstoken.dev.azure.com, or the other way round",
    700212: "the token's audience matches no federated credential: it must be "
    "api://AzureADTokenExchange",
    700213: "the token's subject matches no federated credential: it must equal "
    "sc://{organization}/{project}/{service connection} exactly (case-sensitive)",
    7002138: "federated credential matching is case-sensitive: compare issuer and subject "
    "letter by letter",
    90002: "the tenant does not exist: check tenant_id",
    900023: "the tenant id is neither a GUID nor a domain name: check tenant_id",
    1002012: "client-credential scopes must be one resource followed by /.default "
    "(for example https://management.azure.com/.default)",
    70011: "the scope is not valid for the client-credentials flow: ask for one resource "
    "followed by /.default",
}


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request to send. Its repr hides headers and body, which carry secrets."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {self.url})"


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer: status, reason, headers (lower-case names) and the raw body."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        """Return header ``name`` (case-insensitive) or ``None``."""
        return self.headers.get(name.lower())


class Token(AccessToken):
    """``azure.core.credentials.AccessToken`` whose repr hides the token."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"AccessToken(token='***', expires_on={self.expires_on})"

    def __str__(self) -> str:
        return self.__repr__()


class TokenInfo(AccessTokenInfo):
    """``azure.core.credentials.AccessTokenInfo`` whose repr hides the token.

    ``lifetime`` is the issued life in seconds (Entra's ``expires_in``), measured by the
    server and independent of any clock; ``None`` when the answer did not say.
    """

    lifetime: int | None = None
    refresh_in: int | None = None

    def __repr__(self) -> str:
        return (
            f"AccessTokenInfo(token='***', expires_on={self.expires_on}, "
            f"token_type={self.token_type!r}, refresh_on={self.refresh_on})"
        )


# --------------------------------------------------------------------------------------------
# Validation shared by the constructor and every call


def validate_tenant_id(tenant_id: str) -> None:
    """Raise ``ValueError`` unless ``tenant_id`` is letters, digits, ``-`` and ``.`` only."""
    if not tenant_id or not set(tenant_id) <= _TENANT_CHARS:
        raise ValueError(INVALID_TENANT)


def normalize_authority(value: str) -> str:
    """Return ``https://host[/path]`` without a trailing slash (see :mod:`agent.urls`).

    Raises:
        ValueError: in the Azure SDK's words, with the reason the authority is refused.
    """
    try:
        return urls.normalize_authority(value)
    except ValueError as exc:
        raise ValueError(
            f"'{redact_text(value.strip())}' is an invalid authority ({exc}). The value must be "
            "a TLS protected (https) URL (plain http is accepted only for loopback addresses)."
        ) from None


def resolve_tenant(
    default: str,
    requested: str | None,
    additionally_allowed: Iterable[str],
    *,
    multitenant_disabled: bool,
) -> str:
    """Pick the tenant of one token request, enforcing the multi-tenant rules.

    Same rules as azure-identity: the requested tenant is used only when it is the default, when
    ``additionally_allowed`` holds it or ``"*"``, or when the default is ``organizations`` and no
    extra tenant is configured. ``AZURE_IDENTITY_DISABLE_MULTITENANTAUTH``
    (``multitenant_disabled``) and the ``adfs`` tenant always use the default. A requested
    tenant is validated like the constructor's, so it can never inject a path into the URL.

    Raises:
        ValueError: the requested tenant id has invalid characters.
        AuthenticationError: the requested tenant is not allowed.
    """
    if not requested or requested == default:
        return default
    validate_tenant_id(requested)
    if default == "adfs" or multitenant_disabled:
        return default
    allowed = list(additionally_allowed)
    if "*" in allowed or requested in allowed:
        return requested
    if not allowed and default == "organizations":
        return requested
    raise EntraError(
        f"The current credential is not configured to acquire tokens for tenant {requested}. "
        "To enable acquiring tokens for this tenant add it to the additionally_allowed_tenants "
        'when creating the credential, or add "*" to additionally_allowed_tenants to allow '
        "acquiring tokens for any tenant."
    )


def merge_claims(claims: str | None, *, enable_cae: bool) -> str | None:
    """Return the ``claims`` form value: ``claims`` as given, with ``xms_cc: CP1`` under CAE.

    Raises:
        ValueError: CAE is on and ``claims`` is not a JSON object (checked before any request).
    """
    if not enable_cae:
        return claims or None
    merged: dict[str, Any] = {}
    if claims:
        try:
            merged = json.loads(claims)
        except ValueError:
            raise ValueError("claims must be a JSON object when enable_cae is True") from None
        if not isinstance(merged, dict):
            raise ValueError("claims must be a JSON object when enable_cae is True")
    access = merged.setdefault("access_token", {})
    if not isinstance(access, dict):
        raise ValueError("claims.access_token must be a JSON object")  # noqa: TRY004 - bad input value
    access["xms_cc"] = {"values": ["CP1"]}
    return json.dumps(merged)


# --------------------------------------------------------------------------------------------
# Step 1: Azure DevOps OIDC token


def build_oidc_request(
    request_uri: str,
    service_connection_id: str,
    system_access_token: str,
    *,
    user_agent: str,
) -> HttpRequest:
    """Build the POST that asks Azure DevOps for an OIDC token for one service connection.

    The connection id is percent-encoded (the Azure SDK concatenates it raw). A request URI that
    already has a query gets ``&`` rather than a second ``?``.

    Raises:
        ValueError: the request URI is not https (http is accepted for loopback hosts only), so
            the system access token is never sent in clear text to another machine.
    """
    base = request_uri.strip().rstrip("/")
    parts = urlsplit(base)
    if not urls.is_tls_or_loopback(parts.scheme, parts.hostname):
        raise ValueError(
            "SYSTEM_OIDCREQUESTURI must be an https URL (plain http only for loopback addresses)"
        )
    separator = "&" if parts.query else "?"
    url = (
        f"{base}{separator}api-version={OIDC_API_VERSION}"
        f"&serviceConnectionId={quote(service_connection_id, safe='')}"
    )
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {system_access_token}",
        "X-TFS-FedAuthRedirect": "Suppress",
        "User-Agent": user_agent,
        "x-ms-client-request-id": str(uuid.uuid4()),
        "Accept": "application/json",
    }
    return HttpRequest("POST", url, headers, b"")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # Recursion: nested too deeply
        return None
    return value if isinstance(value, dict) else None


def _devops_diagnostics(response: HttpResponse) -> str:
    e2eid = server_text(response.header("x-vss-e2eid") or "not present", limit=_MAX_ID)
    ref = server_text(response.header("x-msedge-ref") or "not present", limit=_MAX_ID)
    return f"x-vss-e2eid: {e2eid}; x-msedge-ref: {ref}"


def _oidc_hint(status: int, server_message: str) -> str:
    lowered = server_message.lower()
    if "no explicit reference" in lowered:
        return (
            "Azure DevOps hands out OIDC tokens only for service connections referenced in the "
            "same stage or job: reference the connection there (for example in an AzureCLI@2 "
            "task input) or authorize it for the pipeline."
        )
    if "no service connection found" in lowered or status == 404:
        return (
            "Check service_connection_id: it is the resourceId of the service connection "
            "(Project settings > Service connections > the connection's URL)."
        )
    if status in (401, 203) or 300 <= status < 400:
        return (
            "The system access token was refused: it is probably expired, invalid, or not "
            "mapped into this step (add `env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`)."
        )
    if status == 403:
        return (
            "The job's identity may not use this service connection: check its security settings."
        )
    return ""


def parse_oidc_response(response: HttpResponse, service_connection_id: str) -> str:
    """Return the OIDC token from an Azure DevOps answer, or raise a precise OidcRequestError.

    The error names the status, the service connection, the server's own message, the
    ``x-vss-e2eid`` / ``x-msedge-ref`` diagnostics and a hint; never a token.
    """
    document = _json_object(response.body)
    if response.status != 200:
        server_message = ""
        if document is not None:
            raw = document.get("message") or document.get("value") or ""
            server_message = server_text(raw) if raw else ""
        hint = _oidc_hint(response.status, server_message)
        parts = [
            (
                f"Azure DevOps answered {response.status} {_reason(response)} to the OIDC token "
                f"request for service connection {service_connection_id}."
            )
        ]
        if server_message:
            parts.append(f"Azure DevOps said: {server_message}")
        if hint:
            parts.append(hint)
        error = _oidc_error(" ".join(parts), response, service_connection_id)
        if "no explicit reference" in server_message.lower():
            # The job is not set up for this connection: the job environment, like a missing
            # SYSTEM_ACCESSTOKEN mapping, not a refused identity.
            error.exit_code = ExitCode.CONFIG
        error.retry_after = _retry_after(response)
        raise error
    if document is None:
        raise _oidc_error(
            "Azure DevOps answered 200 to the OIDC token request for service connection "
            f"{service_connection_id}, but not with JSON (probably a sign-in page): the system "
            "access token is probably invalid or not mapped into this step (add "
            "`env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`).",
            response,
            service_connection_id,
        )
    token = document.get("oidcToken")
    if not isinstance(token, str) or not token:
        raise _oidc_error(
            "OIDC token not found in response from Azure DevOps for service connection "
            f"{service_connection_id}.",
            response,
            service_connection_id,
        )
    return token


def _oidc_error(
    message: str, response: HttpResponse, service_connection_id: str
) -> OidcRequestError:
    """The error of one OIDC answer: ``message``, then the Azure DevOps diagnostics."""
    return OidcRequestError(
        f"{message} ({_devops_diagnostics(response)})",
        status_code=response.status,
        service_connection_id=service_connection_id,
        e2eid=_server_id(response.header("x-vss-e2eid")),
        msedge_ref=_server_id(response.header("x-msedge-ref")),
        retryable=is_retryable_status(response.status),
    )


# --------------------------------------------------------------------------------------------
# Step 2: Microsoft Entra token


def build_token_request(
    *,
    authority: str,
    tenant_id: str,
    client_id: str,
    assertion: str,
    scopes: Iterable[str],
    claims: str | None,
    user_agent: str,
) -> HttpRequest:
    """Build the client-credentials POST that trades the OIDC token for an access token.

    Form fields in the Azure SDK's order: client_assertion, client_assertion_type, client_id,
    grant_type, scope (space-joined), and claims only when non-empty.
    """
    form = [
        ("client_assertion", assertion),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_id", client_id),
        ("grant_type", "client_credentials"),
        ("scope", " ".join(scopes)),
    ]
    if claims:
        form.append(("claims", claims))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": user_agent,
        "x-ms-client-request-id": str(uuid.uuid4()),
        "Accept": "application/json",
    }
    url = f"{authority}/{tenant_id}/oauth2/v2.0/token"
    return HttpRequest("POST", url, headers, urlencode(form).encode("ascii"))


class _MalformedError(ValueError):
    """A number in an answer that is not a usable count of seconds."""


def _seconds(document: Mapping[str, Any], name: str) -> int | None:
    """Read field ``name`` as whole seconds; ``None`` if absent.

    Accepts JSON numbers and numeric strings (Entra v1 and ADFS send strings). Raises
    :class:`_MalformedError` for anything else: ``inf``, ``nan``, booleans, non-numeric strings,
    values beyond a 64-bit count of seconds.
    """
    value = document.get(name)
    if value is None:
        return None
    number: float
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _MalformedError(f"{name} is {type(value).__name__}, not a number of seconds")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 32:
            raise _MalformedError(f"{name} is not a number of seconds")
        try:
            number = float(text)
        except ValueError:
            raise _MalformedError(f"{name} is not a number of seconds") from None
    else:
        number = float(value) if not isinstance(value, int) or abs(value) < 2**63 else math.inf
    if not math.isfinite(number) or abs(number) >= 2**53:
        raise _MalformedError(f"{name} is not a finite number of seconds")
    return int(number)


def _int(value: object) -> int | None:
    """An AADSTS code from an ``error_codes`` entry, ``None`` when it is not a sane integer."""
    try:
        return _seconds({"code": value}, "code")
    except _MalformedError:
        return None


def _reason(response: HttpResponse) -> str:
    return server_text(response.reason, limit=_MAX_ID)


def _server_id(value: object) -> str | None:
    return (server_text(value, limit=_MAX_ID) or None) if value else None


def _retry_after(response: HttpResponse) -> float | None:
    """The delta-seconds ``Retry-After`` of an answer (dates are left to the HTTP layer)."""
    try:
        return _seconds({"Retry-After": response.header("retry-after")}, "Retry-After")
    except _MalformedError:
        return None


def _entra_error(response: HttpResponse, document: dict[str, Any]) -> EntraError:
    error = server_text(document.get("error") or "unknown_error", limit=_MAX_ID)
    description = server_text(document.get("error_description") or "")
    codes_raw = document.get("error_codes")
    codes = tuple(c for c in map(_int, codes_raw) if c) if isinstance(codes_raw, list) else ()
    correlation_id = _server_id(document.get("correlation_id"))
    trace_id = _server_id(document.get("trace_id"))
    if description:
        message = f"Microsoft Entra ID error '({error}) {description}'"
    else:
        message = f"Microsoft Entra ID error '{error}'"
    hints = [AADSTS_HINTS[code] for code in codes if code in AADSTS_HINTS]
    if hints:
        message += f" Hint: {hints[0]}."
    ids = []
    if correlation_id and correlation_id not in description:
        ids.append(f"correlation_id: {correlation_id}")
    if trace_id and trace_id not in description:
        ids.append(f"trace_id: {trace_id}")
    if ids:
        message += f" ({'; '.join(ids)})"
    status = response.status
    return EntraError(
        message,
        status_code=status,
        error=error,
        error_codes=codes,
        description=description or None,
        correlation_id=correlation_id,
        trace_id=trace_id,
        retryable=is_retryable_status(status),
    )


def _check_lifetime(lifetime: int, status: int) -> None:
    if lifetime <= 0:
        raise NoUsableLifeError(
            f"Microsoft Entra ID issued a token with no usable life (expires in {lifetime} s); "
            "it was not used.",
            status_code=status,
        )
    if lifetime > _MAX_LIFETIME:
        raise EntraError(
            f"Unexpected response from Microsoft Entra ID: a token lifetime of {lifetime} s "
            "is not believable (treated as a failed request and retried).",
            status_code=status,
            retryable=True,
        )


def parse_token_response(response: HttpResponse, *, request_time: int) -> TokenInfo:
    """Turn an Entra answer into an AccessTokenInfo, or raise a precise EntraError.

    Expiry: ``expires_on`` if present, else ``request_time + expires_in``. ``refresh_on``:
    ``request_time + refresh_in`` when Entra sends it, else half the lifetime for tokens of two
    hours or more (as the Azure SDK does), else ``None``.
    """
    document = _json_object(response.body)
    if document is None:
        kind = "an empty body" if not response.body.strip() else "a body that is not JSON"
        raise EntraError(
            f"Unexpected response from Microsoft Entra ID: {response.status} {_reason(response)} "
            f"with {kind}.",
            status_code=response.status,
            retryable=is_retryable_status(response.status),
        )
    if "error" in document:
        error = _entra_error(response, document)
        error.retry_after = _retry_after(response)
        raise error
    if not document:
        raise EntraError("No response content from Microsoft Entra ID", status_code=response.status)
    if response.status != 200:
        raise EntraError(
            f"Unexpected response from Microsoft Entra ID: {response.status} {_reason(response)}.",
            status_code=response.status,
            retryable=is_retryable_status(response.status),
        )
    token = document.get("access_token")
    try:
        expires_on = _seconds(document, "expires_on")
        expires_in = _seconds(document, "expires_in")
        refresh_in = _seconds(document, "refresh_in")
    except _MalformedError as exc:
        raise EntraError(
            f"Unexpected response from Microsoft Entra ID: {exc} (treated as a failed request "
            "and retried).",
            status_code=response.status,
            retryable=True,
        ) from None
    if expires_on is None and expires_in is not None:
        expires_on = request_time + expires_in
    if not isinstance(token, str) or not token or expires_on is None:
        names = sorted(server_text(k, limit=_MAX_ID) for k in document if k != "access_token")
        present = server_text(", ".join(names[:20]) or "none")
        raise EntraError(
            "Unexpected response from Microsoft Entra ID: no access_token or expiry "
            f"(fields present: {present}).",
            status_code=response.status,
            retryable=True,
        )
    lifetime = expires_in if expires_in is not None else expires_on - request_time
    _check_lifetime(lifetime, response.status)
    if refresh_in is not None and not 0 < refresh_in < lifetime:
        refresh_in = None  # a hint outside the token's life is no hint
    if refresh_in is None and lifetime >= 7200:
        refresh_in = lifetime // 2
    refresh_on = request_time + refresh_in if refresh_in is not None else None
    token_type = document.get("token_type") or "Bearer"
    info = TokenInfo(token, expires_on, token_type=str(token_type), refresh_on=refresh_on)
    info.lifetime = lifetime
    info.refresh_in = refresh_in
    return info

"""The Microsoft Entra side of the emulator, without I/O: the directory, request checks, errors.

:func:`check_token_request` is the token endpoint's whole decision: it returns a :class:`Grant`
or raises a :class:`Refusal` carrying the HTTP status, OAuth ``error`` and AADSTS code Entra
answers with. :func:`error_body` renders a refusal in Entra's JSON shape.

Checks run in this order (the first failure wins): method, tenant syntax (AADSTS900023), tenant
existence (90002), ``grant_type`` (900144/70003), ``client_id`` (900144), ``scope``
(900144/1002012/28000), application (700016), ``client_assertion`` presence and type
(7000216/90011), JWT syntax (50027), federated-credential issuer (700211), signature (50013),
time window (700024), subject (700213, or 7002138 when only the letter case differs) and
audience (700212). ``trust_any_app`` skips the tenant, application and federated-credential
checks but never the signature or the time window.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.testing._jwt_signing import (
    BadSignatureError,
    MalformedTokenError,
    SigningKey,
    decode_unverified,
)

__all__ = [
    "ASSERTION_TYPE",
    "AppRegistration",
    "Directory",
    "FederatedCredential",
    "Grant",
    "Refusal",
    "check_token_request",
    "error_body",
    "failure_refusal",
    "format_timestamp",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_FIC_HELP = (
    "Check your federated identity credential Subject, Audience and Issuer against the presented "
    "assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# Scopes OpenID Connect allows next to a resource scope; they name no resource.
_OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
_DEFAULT_SUFFIX = "/.default"


class Refusal(Exception):  # noqa: N818 - it is the answer, not an accident
    """Entra refuses the request: ``status``, OAuth ``error``, AADSTS ``code`` and its text."""

    def __init__(self, status: int, error: str, code: int, text: str) -> None:
        super().__init__(f"AADSTS{code}: {text}")
        self.status = status
        self.error = error
        self.code = code
        self.text = text


@dataclass(frozen=True)
class FederatedCredential:
    """One federated identity credential: the exact (issuer, subject, audience) it trusts."""

    issuer: str
    subject: str
    audience: str


@dataclass
class AppRegistration:
    """An application (client) in a tenant, with its service principal's object id."""

    tenant_id: str
    client_id: str
    object_id: str
    credentials: list[FederatedCredential] = field(default_factory=list)


@dataclass
class Directory:
    """Tenants and their applications. Tenant and client ids match case-insensitively (GUIDs)."""

    apps: dict[tuple[str, str], AppRegistration] = field(default_factory=dict)

    def tenant_exists(self, tenant_id: str) -> bool:
        """Whether any application is registered in ``tenant_id``."""
        key = tenant_id.lower()
        return any(tenant == key for tenant, _ in self.apps)

    def app(self, tenant_id: str, client_id: str) -> AppRegistration | None:
        """The registration of ``client_id`` in ``tenant_id``, if any."""
        return self.apps.get((tenant_id.lower(), client_id.lower()))

    def register(self, tenant_id: str, client_id: str) -> AppRegistration:
        """Return the registration of ``client_id`` in ``tenant_id``, creating it if needed."""
        key = (tenant_id.lower(), client_id.lower())
        app = self.apps.get(key)
        if app is None:
            app = AppRegistration(tenant_id, client_id, object_id=service_principal_id(*key))
            self.apps[key] = app
        return app


def service_principal_id(tenant_id: str, client_id: str) -> str:
    """A stable object id for the service principal of ``client_id`` in ``tenant_id``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"azauth-emulator:{tenant_id.lower()}/{client_id}"))


@dataclass(frozen=True)
class Grant:
    """What a successful token request is granted.

    ``resource`` is the scope without ``/.default`` (the token's ``aud``); ``capabilities`` holds
    ``"CP1"`` when the ``claims`` parameter asked for CAE.
    """

    tenant_id: str
    client_id: str
    object_id: str
    resource: str
    capabilities: tuple[str, ...]
    assertion_claims: dict[str, Any]


def format_timestamp(now: float) -> str:
    """Entra's ``timestamp`` field: ``2025-07-07 10:30:48Z``."""
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _precise(epoch: float) -> str:
    """Times inside AADSTS700024: ``2023-08-01T11:08:01.5274809Z`` (seven fraction digits)."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def error_body(
    refusal: Refusal, *, now: float, trace_id: str, correlation_id: str, authority: str
) -> dict[str, Any]:
    """Render ``refusal`` as Entra's JSON error object."""
    stamp = format_timestamp(now)
    return {
        "error": refusal.error,
        "error_description": (
            f"AADSTS{refusal.code}: {refusal.text} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {stamp}"
        ),
        "error_codes": [refusal.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{authority}/error?code={refusal.code}",
    }


def failure_refusal(status: int) -> Refusal:
    """The refusal an injected failure of the token endpoint answers with as JSON."""
    if status == 429 or status >= 500:
        return Refusal(
            status,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        )
    error = "invalid_client" if status == 401 else "invalid_request"
    return Refusal(
        status,
        error,
        50000,
        "There was an error issuing a token or an issue with our sign-in service.",
    )


def _missing(name: str) -> Refusal:
    return Refusal(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _check_tenant(tenant: str, directory: Directory, *, trust_any_app: bool) -> None:
    if not (_GUID.match(tenant) or _DNS_NAME.match(tenant)):
        raise Refusal(
            400,
            "invalid_request",
            900023,
            f"Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid "
            "external domain.",
        )
    if not trust_any_app and not directory.tenant_exists(tenant):
        raise Refusal(
            400,
            "invalid_request",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud. Check with your subscription administrator, this "
            "may happen if there are no active subscriptions for the tenant.",
        )


def _resource_of(scope: str) -> str:
    """The single resource ``scope`` asks a client-credentials token for."""
    requested = [item for item in scope.split() if item not in _OIDC_SCOPES]
    invalid_scope = Refusal(
        400,
        "invalid_scope",
        1002012,
        f"The provided value for scope {scope} is not valid. Client credential flows must have a "
        "scope value with /.default suffixed to the resource identifier (application ID URI).",
    )
    if not requested:
        raise invalid_scope
    resources = []
    for item in requested:
        if not item.endswith(_DEFAULT_SUFFIX) or item == _DEFAULT_SUFFIX:
            raise invalid_scope
        resource = item.removesuffix(_DEFAULT_SUFFIX)
        if resource not in resources:
            resources.append(resource)
    if len(resources) > 1:
        raise Refusal(
            400,
            "invalid_scope",
            28000,
            "Provided value for the input parameter scope is not valid because it contains more "
            f"than one resource. Scope {scope} is not valid.",
        )
    return resources[0]


def _capabilities(claims: str | None) -> tuple[str, ...]:
    """``("CP1",)`` when the ``claims`` request asks ``access_token.xms_cc`` for CP1.

    A ``claims`` value that is not JSON is ignored rather than refused: the reference does not
    record what Entra answers, and clients never send one on purpose.
    """
    if not claims:
        return ()
    try:
        parsed = json.loads(claims)
        values = parsed["access_token"]["xms_cc"]["values"]
    except (ValueError, KeyError, TypeError):
        return ()
    return ("CP1",) if isinstance(values, list) and "CP1" in values else ()


def _verify(token: str, keys: Sequence[SigningKey]) -> dict[str, Any]:
    header, _ = decode_unverified(token)
    kid = header.get("kid")
    for key in keys:
        if kid in (None, key.kid):
            return key.verify(token)
    raise BadSignatureError(f"The key was not found., Thumbprint of key used by client: '{kid}'")


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, list):
        return [str(item) for item in aud]
    return [str(aud)] if aud is not None else []


def _check_time(claims: Mapping[str, Any], now: float) -> None:
    try:
        not_before = float(claims.get("nbf", claims.get("iat", now)))
        expires = float(claims["exp"])
    except (KeyError, TypeError, ValueError):
        raise Refusal(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
    if not not_before <= now < expires:
        raise Refusal(
            401,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {_precise(now)}, "
            f"assertion valid from {_precise(not_before)}, expiry time of assertion "
            f"{_precise(expires)}. Review the documentation at "
            "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
        )


def _match_issuer(app: AppRegistration, issuer: str) -> list[FederatedCredential]:
    matching = [fic for fic in app.credentials if fic.issuer == issuer]
    if not matching:
        raise Refusal(
            401,
            "invalid_client",
            700211,
            f"No matching federated identity record found for presented assertion issuer "
            f"'{issuer}'. {_FIC_HELP}",
        )
    return matching


def _match_subject_and_audience(
    candidates: list[FederatedCredential], subject: str, audiences: list[str]
) -> None:
    same_subject = [fic for fic in candidates if fic.subject == subject]
    if not same_subject:
        if any(fic.subject.casefold() == subject.casefold() for fic in candidates):
            raise Refusal(
                401,
                "invalid_client",
                7002138,
                f"No matching federated identity record found for presented assertion subject "
                f"'{subject}'. The subject matches with case-insensitive comparison, but not "
                "with case-sensitive comparison.",
            )
        raise Refusal(
            401,
            "invalid_client",
            700213,
            f"No matching federated identity record found for presented assertion subject "
            f"'{subject}'. {_FIC_HELP}",
        )
    if not any(fic.audience in audiences for fic in same_subject):
        shown = audiences[0] if len(audiences) == 1 else " ".join(audiences)
        raise Refusal(
            401,
            "invalid_client",
            700212,
            f"No matching federated identity record found for presented assertion audience "
            f"'{shown}'. {_FIC_HELP}",
        )


def _check_parameters(form: Mapping[str, str]) -> tuple[str, str]:
    """Return ``(client_id, resource)`` of a well-formed client-credentials request."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _missing("grant_type")
    if grant_type != "client_credentials":
        raise Refusal(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )
    client_id = form.get("client_id")
    if not client_id:
        raise _missing("client_id")
    scope = form.get("scope")
    if not scope:
        raise _missing("scope")
    return client_id, _resource_of(scope)


def _check_assertion(
    form: Mapping[str, str], app: AppRegistration | None, keys: Sequence[SigningKey], now: float
) -> dict[str, Any]:
    """Return the verified claims of the client assertion; ``app=None`` skips the FIC match."""
    assertion = form.get("client_assertion")
    if not assertion:
        raise Refusal(
            400,
            "invalid_request",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the "
            "'client_credentials' grant type.",
        )
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise Refusal(400, "invalid_request", 90011, "Unexpected client assertion type.")
    try:
        _, unverified = decode_unverified(assertion)
    except MalformedTokenError:
        raise Refusal(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
    # Entra finds the credential by issuer first: the issuer tells it where the keys are.
    candidates = _match_issuer(app, str(unverified.get("iss"))) if app is not None else []
    try:
        claims = _verify(assertion, keys)
    except BadSignatureError as exc:
        raise Refusal(
            401,
            "invalid_client",
            50013,
            f"Assertion failed signature validation. [Reason - {exc}]",
        ) from None
    _check_time(claims, now)
    if app is not None:
        _match_subject_and_audience(candidates, str(claims.get("sub")), _audiences(claims))
    return claims


def check_token_request(
    *,
    method: str,
    tenant: str,
    form: Mapping[str, str],
    directory: Directory,
    keys: Sequence[SigningKey],
    now: float,
    trust_any_app: bool,
) -> Grant:
    """Decide a client-credentials request with a federated client assertion.

    Args:
        method: the HTTP method.
        tenant: the tenant path segment, as sent.
        form: the form fields (first value of each).
        directory: registered tenants, applications and federated credentials.
        keys: the keys whose signatures the emulator trusts on assertions.
        now: epoch seconds from the emulator's clock.
        trust_any_app: accept any tenant and client whose assertion verifies.

    Raises:
        Refusal: the answer is an error; see the module docstring for the order of checks.
    """
    if method != "POST":
        raise Refusal(
            400,
            "invalid_request",
            900561,
            f"The endpoint only accepts POST requests. Received a {method} request.",
        )
    _check_tenant(tenant, directory, trust_any_app=trust_any_app)
    client_id, resource = _check_parameters(form)
    app = None if trust_any_app else directory.app(tenant, client_id)
    if app is None and not trust_any_app:
        raise Refusal(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant}'. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant. You may have "
            "sent your authentication request to the wrong tenant.",
        )
    claims = _check_assertion(form, app, keys, now)
    return Grant(
        tenant_id=tenant,
        client_id=client_id,
        object_id=app.object_id if app else service_principal_id(tenant, client_id),
        resource=resource,
        capabilities=_capabilities(form.get("claims")),
        assertion_claims=claims,
    )

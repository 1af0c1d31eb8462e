"""Pure builders for the Azure DevOps side of the emulator: claims, error bodies, HTML pages.

Everything here is data in, data out, so the shapes can be read (and tested) apart from the
server. Shapes follow the wire-protocol reference (sections 1 and 7); where the reference
is silent the choice is written next to the builder.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import secrets
import uuid
from typing import Any

from agent.testing._jwt_signing import b64url_encode

__all__ = [
    "AZURE_DEVOPS_APP_ID",
    "OIDC_API_VERSION",
    "OIDC_AUDIENCE",
    "api_version_error",
    "devops_issuer",
    "edge_headers",
    "entra_issuer",
    "entra_subject",
    "failure_body",
    "method_not_allowed_error",
    "object_moved_html",
    "plan_not_found_error",
    "service_connection_not_found_error",
    "service_connection_subject",
    "signin_page_html",
    "unauthorized_error",
    "unreferenced_connection_body",
    "vss_error",
]

OIDC_API_VERSION = "7.1"
OIDC_AUDIENCE = "api://AzureADTokenExchange"
# The Azure DevOps first-party application. Entra-issuer subjects name the *issuing* application
# in their `/a/` segment (as Bot Framework and Copilot Studio subjects do with theirs).
AZURE_DEVOPS_APP_ID = "499b84ac-1321-427f-aa17-267ca6975798"

_SERVER_FRAMEWORK = "Microsoft.TeamFoundation.Framework.Server"
_VSS_WEBAPI = "Microsoft.VisualStudio.Services.WebApi"


def devops_issuer(org_id: str) -> str:
    """``iss`` of tokens from the Azure DevOps issuer (one per organization GUID)."""
    return f"https://vstoken.dev.azure.com/{org_id}"


def entra_issuer(tenant_id: str) -> str:
    """``iss`` of tokens from the Microsoft Entra issuer (one per tenant)."""
    return f"https://login.microsoftonline.com/{tenant_id}/v2.0"


def service_connection_subject(org_name: str, project_name: str, connection_name: str) -> str:
    """``sub`` of a service-connection token from the Azure DevOps issuer."""
    return f"sc://{org_name}/{project_name}/{connection_name}"


def _guid_segment(value: str) -> str:
    """A GUID as Entra writes it in ``/eid1/`` subjects: base64url of its .NET byte order."""
    try:
        return b64url_encode(uuid.UUID(value).bytes_le)
    except ValueError:
        # Not a GUID (a domain-name tenant, say): encode the text so the subject stays stable.
        return b64url_encode(value.encode())


def entra_subject(
    tenant_id: str, org_id: str, service_connection_id: str, app_id: str = AZURE_DEVOPS_APP_ID
) -> str:
    """``sub`` of a service-connection token from the Microsoft Entra issuer."""
    return (
        f"/eid1/c/pub/t/{_guid_segment(tenant_id)}/a/{_guid_segment(app_id)}"
        f"/sc/{org_id}/{service_connection_id}"
    )


def edge_headers(now: float) -> dict[str, str]:
    """Diagnostic headers every Azure DevOps answer carries (all SDKs but Python quote them)."""
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    activity = str(uuid.uuid4())
    return {
        # The answer's Date from the emulator's clock (aiohttp would stamp the real one).
        "Date": email.utils.formatdate(now, usegmt=True),
        "x-vss-e2eid": str(uuid.uuid4()),
        "x-msedge-ref": (
            f"Ref A: {secrets.token_hex(16).upper()} "
            f"Ref B: EMU{secrets.randbelow(10000):04d}EDGE Ref C: {stamp}"
        ),
        "activityid": activity,
        "x-tfs-session": activity,
        "x-content-type-options": "nosniff",
    }


def vss_error(
    message: str, type_key: str, type_name: str, *, event_id: int = 3000
) -> dict[str, Any]:
    """The Azure DevOps (VSS) JSON error envelope."""
    return {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeName": type_name,
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": event_id,
    }


def unauthorized_error() -> dict[str, Any]:
    """401 body for a missing or invalid ``System.AccessToken`` (with the Suppress header)."""
    return vss_error(
        "TF400813: The user '' is not authorized to access this resource.",
        "UnauthorizedRequestException",
        f"{_SERVER_FRAMEWORK}.UnauthorizedRequestException, {_SERVER_FRAMEWORK}",
    )


def api_version_error(api_version: str | None) -> dict[str, Any]:
    """400 body for a missing or unsupported ``api-version``."""
    if not api_version:
        return vss_error(
            'No api-version was supplied for the "POST" request. The version must be supplied '
            'either as part of the Accept header (e.g. "application/json; api-version=1.0") or '
            'as a query parameter (e.g. "?api-version=1.0").',
            "VssVersionNotSpecifiedException",
            f"{_VSS_WEBAPI}.VssVersionNotSpecifiedException, {_VSS_WEBAPI}",
        )
    return vss_error(
        f"The requested REST API version of {api_version} is not supported by this endpoint. "
        f"The oidctoken endpoint is called with api-version {OIDC_API_VERSION}.",
        "VssVersionOutOfRangeException",
        f"{_VSS_WEBAPI}.VssVersionOutOfRangeException, {_VSS_WEBAPI}",
    )


def plan_not_found_error(plan_id: str) -> dict[str, Any]:
    """404 body when the URL does not name this job's plan (a stale SYSTEM_OIDCREQUESTURI)."""
    name = "Microsoft.TeamFoundation.DistributedTask.WebApi"
    return vss_error(
        f"The orchestration plan {plan_id} could not be found.",
        "TaskOrchestrationPlanNotFoundException",
        f"{name}.TaskOrchestrationPlanNotFoundException, {name}",
    )


def method_not_allowed_error(method: str) -> dict[str, Any]:
    """405 body: the endpoint only takes POST."""
    return vss_error(
        f"The requested resource does not support http method '{method}'.",
        "HttpMethodNotAllowedException",
        f"{_VSS_WEBAPI}.HttpMethodNotAllowedException, {_VSS_WEBAPI}",
    )


def service_connection_not_found_error(service_connection_id: str) -> dict[str, Any]:
    """Body when ``serviceConnectionId`` names no connection of the project.

    Sent with status 400: the Azure SDK for JS pins this message on a 400 answer in its
    AzurePipelinesCredential tests, the only public record of the status we found.
    """
    name = "Microsoft.VisualStudio.Services.ServiceEndpoints.WebApi"
    return vss_error(
        f"No service connection found with identifier {service_connection_id}.",
        "ServiceEndpointNotFoundException",
        f"{name}.ServiceEndpointNotFoundException, {name}",
    )


def unreferenced_connection_body(service_connection_id: str, stage_name: str) -> dict[str, Any]:
    """Body when the connection exists but no task of the current stage references it.

    The service answers this refusal as a VSS collection (``count``/``value``), not as the error
    envelope, which is why clients show it as raw content (protocol §1.4 and §8).
    """
    return {
        "count": 1,
        "value": (
            f"There is no explicit reference to service connection {service_connection_id} "
            f"from current stage {stage_name}."
        ),
    }


def failure_body(status: int) -> dict[str, Any]:
    """A plausible JSON body for an injected failure of the OIDC endpoint."""
    if status == 200:
        # A JSON object without `oidcToken` (the "OIDC token not found in response." path).
        return {"count": 0, "value": []}
    if status == 401:
        return unauthorized_error()
    if status == 429:
        return vss_error(
            "TF400733: The request has been canceled: Request was blocked due to exceeding "
            "usage of resource 'Concurrency' in namespace 'User'.",
            "RequestBlockedException",
            f"{_SERVER_FRAMEWORK}.RequestBlockedException, {_SERVER_FRAMEWORK}",
        )
    if status >= 500:
        return vss_error(
            f"TF400898: An Internal Error Occurred. Activity Id: {uuid.uuid4()}.",
            "VssServiceException",
            f"{_VSS_WEBAPI}.VssServiceException, {_VSS_WEBAPI}",
            event_id=0,
        )
    return vss_error(
        f"The emulator failed this request on purpose (HTTP {status}).",
        "VssServiceException",
        f"{_VSS_WEBAPI}.VssServiceException, {_VSS_WEBAPI}",
    )


def signin_page_html(base_url: str) -> str:
    """The HTML sign-in page Azure DevOps shows browsers (and unsuppressed API clients)."""
    action = html.escape(f"{base_url}/_signin", quote=True)
    return (
        '<!DOCTYPE html>\n<html lang="en-US">\n<head>\n'
        '<meta charset="utf-8">\n<title>Azure DevOps Services | Sign In</title>\n'
        "</head>\n<body>\n"
        '<div id="signin-content">\n<h1>Sign in to Azure DevOps</h1>\n'
        f'<form method="post" action="{action}">\n'
        '<input type="hidden" name="realm" value="dev.azure.com">\n'
        '<button type="submit">Sign in</button>\n</form>\n</div>\n'
        "</body>\n</html>\n"
    )


def object_moved_html(location: str) -> str:
    """Body of the 302 redirect to the sign-in page."""
    href = html.escape(location, quote=True)
    return (
        "<html><head><title>Object moved</title></head><body>\n"
        f'<h2>Object moved to <a href="{href}">here</a>.</h2>\n'
        "</body></html>\n"
    )

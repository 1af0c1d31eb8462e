"""Azure Resource Manager, the few calls the Azure CLI makes after ``az login``.

Requests whose ``Host`` is ``management.azure.com`` (or the US Government and China clouds'
ARM hosts), reached through the CONNECT tunnel, are answered here (:meth:`ArmService.middleware`):

- ``GET /subscriptions?api-version=…`` — the subscriptions the caller's app can see;
- ``GET /tenants?api-version=…`` — the caller's tenant;
- ``GET /subscriptions/{id}?api-version=…`` — one subscription (``404 SubscriptionNotFound``).

Each needs ``Authorization: Bearer`` with an unexpired access token the emulator issued for the
ARM resource (``https://management.core.windows.net/`` as az asks, or
``https://management.azure.com/``); errors use ARM's ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from agent.testing.emulator import Emulator

__all__ = ["ARM_HOSTS", "ArmService", "Subscription"]

ARM_HOSTS = ("management.azure.com", "management.usgovcloudapi.net", "management.chinacloudapi.cn")
_AUDIENCES = tuple(
    f"https://{host}{slash}"
    for host in (
        "management.core.windows.net",
        "management.azure.com",
        "management.core.usgovcloudapi.net",
        "management.usgovcloudapi.net",
        "management.core.chinacloudapi.cn",
        "management.chinacloudapi.cn",
    )
    for slash in ("/", "")
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Subscription:
    """A subscription, visible to the apps in ``client_ids``."""

    subscription_id: str
    tenant_id: str
    display_name: str
    client_ids: frozenset[str]

    def body(self) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{self.subscription_id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": self.subscription_id,
            "tenantId": self.tenant_id,
            "displayName": self.display_name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        }


class ArmService:
    """ARM's subscription and tenant listings.

    Attributes:
        subscriptions: by id; add with :meth:`add_subscription`.
        requests: ``(method, path, appid)`` of each authorised request.
    """

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self.subscriptions: dict[str, Subscription] = {}
        self.requests: list[tuple[str, str, str]] = []

    def add_subscription(
        self, subscription_id: str, tenant_id: str, client_ids: list[str], name: str | None = None
    ) -> None:
        """Register a subscription that the apps ``client_ids`` can see."""
        self.subscriptions[subscription_id.lower()] = Subscription(
            subscription_id, tenant_id, name or f"sub-{subscription_id[:8]}", frozenset(client_ids)
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer requests addressed to an ARM host; pass the others on."""
        host = (request.host or "").split(":", 1)[0].lower()
        if host not in ARM_HOSTS:
            return await handler(request)
        headers = {"x-ms-request-id": str(uuid.uuid4()), "Cache-Control": "no-cache"}
        claims = self._authorize(request)
        if claims is None:
            headers["WWW-Authenticate"] = (
                'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
                'error_description="The access token is missing or invalid."'
            )
            return _error(
                401, "InvalidAuthenticationToken", "The access token is invalid.", headers
            )
        return self._answer(request, claims, headers)

    def _answer(
        self, request: web.Request, claims: dict[str, Any], headers: dict[str, str]
    ) -> web.Response:
        appid = str(claims.get("appid", ""))
        self.requests.append((request.method, request.path, appid))
        if request.method != "GET":
            return _error(405, "MethodNotAllowed", "Only GET is emulated.", headers)
        path = request.path.rstrip("/").lower()
        visible = [s for s in self.subscriptions.values() if appid in s.client_ids]
        if path == "/subscriptions":
            return web.json_response({"value": [s.body() for s in visible]}, headers=headers)
        if path == "/tenants":
            tenant = str(claims.get("tid", ""))
            value = [
                {
                    "id": f"/tenants/{tenant}",
                    "tenantId": tenant,
                    "tenantCategory": "Home",
                    "displayName": "azauth emulator",
                    "defaultDomain": "contoso.onmicrosoft.com",
                }
            ]
            return web.json_response({"value": value}, headers=headers)
        if path.startswith("/subscriptions/") and path.count("/") == 2:
            wanted = path.rsplit("/", 1)[1]
            for subscription in visible:
                if subscription.subscription_id.lower() == wanted:
                    return web.json_response(subscription.body(), headers=headers)
            return _error(
                404,
                "SubscriptionNotFound",
                f"The subscription '{wanted}' could not be found.",
                headers,
            )
        return _error(404, "NotFound", f"No emulated ARM resource at {request.path}.", headers)

    def _authorize(self, request: web.Request) -> dict[str, Any] | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        for audience in _AUDIENCES:
            try:
                return self._emulator.verify_access_token(token.strip(), audience=audience)
            except ValueError:
                continue
        return None


def _error(status: int, code: str, message: str, headers: dict[str, str]) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )

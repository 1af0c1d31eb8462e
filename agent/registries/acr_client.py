"""The ACR token exchange over the network: the request of :mod:`.acr`, sent by :mod:`agent._http`.

One call, :func:`exchange_refresh_token`; retries (429, 5xx, network failures) follow the
:class:`~agent.retry.RetryPolicy` of the :class:`~agent._http.HttpClient` it is given.
"""

from __future__ import annotations

from agent._http import HttpClient
from agent._secrets import register_secret
from agent.registries import acr

__all__ = ["exchange_refresh_token"]


async def exchange_refresh_token(
    http: HttpClient,
    registry: str,
    *,
    tenant: str,
    access_token: str,
    access_token_expires_on: int,
    now: float | None = None,
) -> acr.RefreshToken:
    """Exchange an Entra access token for ``registry``'s ACR refresh token.

    Args:
        http: the HTTP client (its session, proxies, CA bundle and retry policy are used).
        registry: the registry host, e.g. ``contoso.azurecr.io``.
        tenant: the tenant the access token was issued in.
        access_token: the Entra access token (ACR or ARM audience).
        access_token_expires_on: its expiry (epoch seconds), the refresh token's expiry when
            the refresh token carries none.
        now: the current time (epoch seconds): a refresh token already expired by then is
            refused (a :class:`~agent.registries.acr.RegistryError`, retryable).

    Raises:
        RegistryError: the registry refused or answered something unreadable.
        TransportError: the registry could not be reached.
    """
    register_secret(access_token)
    response = await http.send(acr.exchange_request(registry, tenant, access_token))
    token = acr.parse_exchange_response(
        response, registry, fallback_expires_on=access_token_expires_on, now=now
    )
    register_secret(token.token)
    return token

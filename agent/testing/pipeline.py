"""A profile's pipeline, emulated: what ``azauth run|exec|serve --emulate`` start.

:func:`emulate_profile` starts an :class:`agent.testing.emulator.Emulator`, registers every
connection of a resolved profile with it (each allowed tenant too), and points an environment
at it as an Azure Pipelines job would be: ``SYSTEM_OIDCREQUESTURI``, ``AZURE_AUTHORITY_HOST``
and each connection's system access token variable; proxies removed (the emulator is on
loopback); with TLS, ``SSL_CERT_FILE`` and ``REQUESTS_CA_BUNDLE`` trusting its throwaway CA.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING

from agent import envvars
from agent.testing.emulator import Emulator

if TYPE_CHECKING:
    from agent.config import ResolvedProfile

__all__ = ["PROXY_VARIABLES", "emulate_profile"]

PROXY_VARIABLES = (
    envvars.HTTP_PROXY,
    envvars.HTTPS_PROXY,
    envvars.ALL_PROXY,
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
"""The proxy variables removed from an emulated job's environment."""


async def emulate_profile(
    profile: ResolvedProfile, env: MutableMapping[str, str], *, tls: bool = False
) -> Emulator:
    """Start an emulator on ``127.0.0.1:0`` trusting ``profile``'s connections; point ``env`` at it.

    ``env`` is changed in place (see the module docstring). With ``tls`` the emulator serves
    https (azure-identity in a child process accepts only https authorities). The caller closes
    the returned emulator (``await emulator.close()``).

    Raises:
        OSError: the emulator cannot listen.
    """
    emulator = Emulator()
    await emulator.start(tls=tls)
    if tls:
        assert emulator.ca_file is not None
        env[envvars.SSL_CERT_FILE] = env[envvars.REQUESTS_CA_BUNDLE] = emulator.ca_file
    for connection in profile.connections.values():
        tenants = [connection.tenant_id]
        tenants += [t for t in connection.additionally_allowed_tenants if t != "*"]
        for tenant in tenants:
            emulator.add_connection(connection.service_connection_id, tenant, connection.client_id)
        env[connection.system_access_token_env] = emulator.system_access_token
    env[envvars.SYSTEM_OIDCREQUESTURI] = emulator.oidc_request_uri
    env[envvars.AZURE_AUTHORITY_HOST] = emulator.authority
    for name in PROXY_VARIABLES:
        env.pop(name, None)  # the emulator is on loopback: never through a proxy
    return emulator

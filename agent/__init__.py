"""azauth: Microsoft Entra tokens for Azure Pipelines jobs.

``from agent import AzurePipelinesCredential`` is a drop-in for
``azure.identity.aio.AzurePipelinesCredential``. Names are imported lazily so that importing
``agent`` (which the ``azauth`` command does) costs nothing until a name is used.
"""

from __future__ import annotations

from agent._lazy import lazy_exports

# Not `from typing import TYPE_CHECKING`: importing typing costs milliseconds, and every
# `azauth` process (the token fast path included) imports this package. Type checkers treat
# any constant named TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.clock import Clock, SystemClock
    from agent.clouds import AzureAuthorityHosts
    from agent.credential import AzurePipelinesCredential, OidcToken
    from agent.exceptions import (
        AuthenticationError,
        AzauthError,
        ConfigError,
        CredentialUnavailableError,
        EntraError,
        ExitCode,
        OidcRequestError,
        OutputError,
        ProxyAuthenticationError,
        TransportError,
        UsageError,
    )
    from agent.retry import RetryPolicy

__all__ = [
    "AuthenticationError",
    "AzauthError",
    "AzureAuthorityHosts",
    "AzurePipelinesCredential",
    "Clock",
    "ConfigError",
    "CredentialUnavailableError",
    "EntraError",
    "ExitCode",
    "OidcRequestError",
    "OidcToken",
    "OutputError",
    "ProxyAuthenticationError",
    "RetryPolicy",
    "SystemClock",
    "TransportError",
    "UsageError",
]

_LOCATIONS: dict[str, str] = {
    "AuthenticationError": "agent.exceptions",
    "AzauthError": "agent.exceptions",
    "AzureAuthorityHosts": "agent.clouds",
    "AzurePipelinesCredential": "agent.credential",
    "Clock": "agent.clock",
    "ConfigError": "agent.exceptions",
    "CredentialUnavailableError": "agent.exceptions",
    "EntraError": "agent.exceptions",
    "ExitCode": "agent.exceptions",
    "OidcRequestError": "agent.exceptions",
    "OidcToken": "agent.credential",
    "OutputError": "agent.exceptions",
    "ProxyAuthenticationError": "agent.exceptions",
    "RetryPolicy": "agent.retry",
    "SystemClock": "agent.clock",
    "TransportError": "agent.exceptions",
    "UsageError": "agent.exceptions",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LOCATIONS)

"""Build the credential of one configured connection (shared by run, token, exec and serve)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent.credential import AzurePipelinesCredential
from agent.exceptions import ConfigError

if TYPE_CHECKING:
    from agent.config import Connection

__all__ = ["credential_for"]


def credential_for(
    name: str, connection: Connection, env: Mapping[str, str], **options: Any
) -> AzurePipelinesCredential:
    """Return an :class:`AzurePipelinesCredential` for ``connection`` reading ``env``.

    ``options`` go to the credential (``session``, ``clock``, ``retry``, ``refresh_offset``...).

    Raises:
        ConfigError: the system access token variable is missing, or a value is invalid.
    """
    from agent.envvalues import oidc_request_uri  # noqa: PLC0415

    if "oidc_request_uri" not in options:
        oidc_request_uri(env)  # the job environment first: a clear CONFIG error with a hint
    try:
        return AzurePipelinesCredential(
            tenant_id=connection.tenant_id,
            client_id=connection.client_id,
            service_connection_id=connection.service_connection_id,
            system_access_token=connection.system_access_token(env),
            authority=connection.authority_url(env),
            additionally_allowed_tenants=list(connection.additionally_allowed_tenants),
            env=env,
            **options,
        )
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc), key_path=f"connections.{name}") from None

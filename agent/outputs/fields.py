"""The documented list of token fields an output can deliver, and the value object holding them.

Every output (env file mappings, pipeline variables, presets, token files) refers to a token's
data by one of :data:`FIELD_NAMES`; the config schema validates mappings against the same tuple.
Kept free of third-party imports: the config models import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import urlsplit

from agent.clouds import cloud_for_authority

# The one RFC 3339 formatter lives with the warm path, which may import nothing heavier.
from agent.credential_helpers.protocols import rfc3339 as format_rfc3339
from agent.urls import normalize_authority

__all__ = ["FIELD_NAMES", "SECRET_FIELDS", "FieldName", "TokenFields", "format_rfc3339"]

FieldName = Literal[
    "access_token",
    "token_type",
    "expires_on",
    "expires_at",
    "scope",
    "tenant_id",
    "client_id",
    "subscription_id",
    "service_connection_id",
    "authority",
    "authority_host",
    "cloud",
    "oidc_token",
    "federated_token_file",
]
"""A token field's name; the config models validate mappings (and the schema) against it."""
FIELD_NAMES: tuple[str, ...] = get_args(FieldName)
"""Field names in documentation order; ``TokenFields.value(name)`` accepts exactly these."""

SECRET_FIELDS: frozenset[str] = frozenset({"access_token", "oidc_token"})
"""Fields whose values are credentials: masked in reprs, logs and pipeline variables."""

_MASK = "***"


@dataclass(frozen=True, repr=False)
class TokenFields:
    """The values one connection/scope can deliver, named as in :data:`FIELD_NAMES`.

    Optional values are ``None`` when unknown (no ``access_token`` for an output that only needs
    the federated token file, no ``subscription_id`` unless configured). ``repr`` never shows
    the secret fields. Build instances with :meth:`build`, which derives ``expires_at``,
    ``authority_host`` and (when not given) ``cloud``.
    """

    access_token: str | None
    token_type: str
    expires_on: int | None
    expires_at: str | None
    scope: str | None
    tenant_id: str
    client_id: str
    subscription_id: str | None
    service_connection_id: str
    authority: str
    authority_host: str
    cloud: str | None
    oidc_token: str | None
    federated_token_file: str | None

    @classmethod
    def build(
        cls,
        *,
        access_token: str | None = None,
        expires_on: int | None = None,
        token_type: str = "Bearer",  # noqa: S107 - the OAuth token type, not a secret
        scope: str | None = None,
        tenant_id: str,
        client_id: str,
        subscription_id: str | None = None,
        service_connection_id: str,
        authority: str,
        cloud: str | None = None,
        oidc_token: str | None = None,
        federated_token_file: str | None = None,
    ) -> TokenFields:
        """Return the fields, deriving what follows from the arguments.

        Args:
            access_token: the Entra access token, if this output has one.
            expires_on: expiry of ``access_token`` in epoch seconds.
            token_type: the OAuth token type (Entra answers ``Bearer``).
            scope: the scope(s) the token was requested for, space separated.
            tenant_id: the Entra tenant.
            client_id: the app registration / managed identity client id.
            subscription_id: the Azure subscription, when configured.
            service_connection_id: the Azure DevOps service connection id.
            authority: the authority host URL (``https://login.microsoftonline.com``) or a
                bare host; normalised by :func:`agent.urls.normalize_authority` (``ValueError``
                when refused).
            cloud: the cloud name (``public``, ``usgovernment``, ``china``); derived from
                ``authority`` when not given, ``None`` for an authority azauth does not know.
            oidc_token: the Azure DevOps OIDC token (JWT), if this output uses it.
            federated_token_file: the path of the federated token file, if one is written.
        """
        url = normalize_authority(authority)
        if cloud is None:
            known = cloud_for_authority(url)
            cloud = known.name if known is not None else None
        return cls(
            access_token=access_token,
            token_type=token_type,
            expires_on=None if expires_on is None else int(expires_on),
            expires_at=None if expires_on is None else format_rfc3339(int(expires_on)),
            scope=scope,
            tenant_id=tenant_id,
            client_id=client_id,
            subscription_id=subscription_id,
            service_connection_id=service_connection_id,
            authority=url,
            authority_host=urlsplit(url).netloc,
            cloud=cloud,
            oidc_token=oidc_token,
            federated_token_file=federated_token_file,
        )

    def value(self, field: str) -> str | None:
        """Return the field named ``field`` as text (``expires_on`` as decimal epoch seconds).

        Raises:
            ValueError: ``field`` is not one of :data:`FIELD_NAMES`.
        """
        if field not in FIELD_NAMES:
            expected = ", ".join(FIELD_NAMES)
            raise ValueError(f"unknown token field {field!r} (expected one of {expected})")
        raw: object = getattr(self, field)
        if raw is None:
            return None
        return str(raw)

    def __repr__(self) -> str:
        parts = []
        for item in dataclasses.fields(self):
            raw = getattr(self, item.name)
            if item.name in SECRET_FIELDS and raw is not None:
                parts.append(f"{item.name}={_MASK}")
            else:
                parts.append(f"{item.name}={raw!r}")
        return f"TokenFields({', '.join(parts)})"

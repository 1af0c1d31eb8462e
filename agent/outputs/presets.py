"""Presets: the environment variables a known consumer reads, filled from a token's fields.

Names are exactly those the consumers read:

``terraform`` (azurerm/azuread providers and the azurerm backend)
    ``ARM_USE_OIDC=true``, ``ARM_CLIENT_ID``, ``ARM_TENANT_ID``, ``ARM_SUBSCRIPTION_ID`` (only
    when known), ``ARM_OIDC_TOKEN_FILE_PATH`` (the federated token file), and ``ARM_ENVIRONMENT``
    for sovereign clouds only (``usgovernment``, ``china``). ``ARM_USE_AZUREAD`` is not set: it
    switches the backend's blob access from account keys to Entra data-plane roles, a decision
    about the storage account's permissions rather than about how to authenticate.
``pulumi`` (pulumi-azure-native)
    The same ``ARM_*`` names, which azure-native reads for ``useOidc``, ``clientId``,
    ``tenantId``, ``subscriptionId``, ``oidcTokenFilePath`` and ``environment``.
``azure-identity`` (``WorkloadIdentityCredential`` and ``DefaultAzureCredential``)
    ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE`` and
    ``AZURE_AUTHORITY_HOST`` (the authority URL; always set, because some SDKs enable workload
    identity only when all of these are present).

Two flows for ``terraform`` and ``pulumi``. Both read a token file once, when the provider or
backend is configured, and keep re-exchanging that one assertion, which Entra refuses after its
``exp`` (an Azure DevOps OIDC token lives about 10 minutes). So when a token server runs for the
consumer (``azauth exec --serve``, ``azauth serve --background``), the presets take the
**request flow** instead (:class:`RequestFlow`): ``ARM_USE_OIDC``, the ids,
``ARM_OIDC_REQUEST_URL`` and ``ARM_OIDC_REQUEST_TOKEN`` (the server's OIDC request endpoint and
its per-run secret, never the System.AccessToken) and ``ARM_ENVIRONMENT`` for sovereign clouds,
and **no** ``ARM_OIDC_TOKEN_FILE_PATH``: a file would win over the request flow in go-azure-sdk's
order. ``terraform`` speaks the Azure DevOps shape (``ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID``
is set, azurerm 4.18+ and Terraform 1.11+); Pulumi azure-native knows only GitHub's shape and
appends ``&audience=…`` to the URL, so ``pulumi`` gets a URL that already holds a query naming
the connection (:meth:`RequestFlow.github_url`).
The consumer then asks for a fresh OIDC token before every exchange and never goes stale.
Without a server they use the **file flow** above.

``azure-identity`` with a server drops ``AZURE_FEDERATED_TOKEN_FILE`` (keeping the ids and the
authority), so ``DefaultAzureCredential`` passes over ``WorkloadIdentityCredential`` and reaches
``ManagedIdentityCredential``, i.e. the server, with ``AZURE_CLIENT_ID`` naming the connection.
``WorkloadIdentityCredential`` (Python, 1.27) keeps what it read from the file for 600 s, so an
exchange within ten minutes of a read re-posts an assertion that may have expired meanwhile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from agent import envvars
from agent.clouds import CLOUDS
from agent.outputs.fields import FIELD_NAMES, TokenFields

__all__ = [
    "COMPETING_VARIABLES",
    "PRESETS",
    "PRESET_NAMES",
    "REQUEST_FLOW_PRESETS",
    "Preset",
    "RequestFlow",
    "competing_variables",
    "preset_names",
    "preset_variables",
    "resolve_variables",
]

Preset = Literal["terraform", "pulumi", "azure-identity"]
"""A preset's name; the config models validate ``preset`` (and the schema) against it."""
PRESETS: tuple[str, ...] = get_args(Preset)
REQUEST_FLOW_PRESETS: frozenset[str] = frozenset({"terraform", "pulumi"})
"""The presets that switch to the OIDC request flow when a token server runs."""


@dataclass(frozen=True)
class RequestFlow:
    """A running OIDC request endpoint: its URL and bearer secret (hidden from the repr)."""

    url: str
    token: str = dataclasses.field(repr=False)

    def github_url(self, service_connection_id: str) -> str:
        """The URL for GitHub-shape clients that append ``&audience=…`` to it."""
        return f"{self.url}?api-version=2.0&serviceConnectionId={service_connection_id}"


_ARM_NAMES = (
    envvars.ARM_USE_OIDC,
    envvars.ARM_CLIENT_ID,
    envvars.ARM_TENANT_ID,
    envvars.ARM_SUBSCRIPTION_ID,
    envvars.ARM_OIDC_TOKEN_FILE_PATH,
    envvars.ARM_ENVIRONMENT,
)
PRESET_NAMES: dict[str, tuple[str, ...]] = {
    "terraform": _ARM_NAMES,
    "pulumi": _ARM_NAMES,
    "azure-identity": (
        envvars.AZURE_CLIENT_ID,
        envvars.AZURE_TENANT_ID,
        envvars.AZURE_FEDERATED_TOKEN_FILE,
        envvars.AZURE_AUTHORITY_HOST,
    ),
}
"""Every name a preset may set (``ARM_SUBSCRIPTION_ID`` and ``ARM_ENVIRONMENT`` only sometimes)."""

# The other variables the consumer reads to choose a credential or a cloud. A preset owns them:
# left in place next to the preset's, they win (go-azure-sdk tries certificate and secret before
# OIDC; azure-identity's EnvironmentCredential comes before WorkloadIdentityCredential) or make
# the consumer refuse to start (`ARM_OIDC_TOKEN` next to `ARM_OIDC_TOKEN_FILE_PATH`: "mismatch
# between supplied OIDC token and supplied OIDC token file contents").
_ARM_COMPETING = (
    envvars.ARM_OIDC_TOKEN,
    envvars.ARM_CLIENT_ID_FILE_PATH,
    envvars.ARM_CLIENT_SECRET,
    envvars.ARM_CLIENT_SECRET_FILE_PATH,
    envvars.ARM_CLIENT_CERTIFICATE,
    envvars.ARM_CLIENT_CERTIFICATE_PATH,
    envvars.ARM_CLIENT_CERTIFICATE_PASSWORD,
    envvars.ARM_OIDC_REQUEST_TOKEN,
    envvars.ARM_OIDC_REQUEST_URL,
    envvars.ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID,
    envvars.ARM_OIDC_AZURE_SERVICE_CONNECTION_ID,
    envvars.ARM_USE_MSI,
    envvars.ARM_MSI_ENDPOINT,
    envvars.ARM_USE_CLI,
    envvars.ARM_USE_AKS_WORKLOAD_IDENTITY,
    envvars.ARM_METADATA_HOSTNAME,
    envvars.ARM_ACCESS_KEY,
    envvars.ARM_SAS_TOKEN,
    envvars.ACTIONS_ID_TOKEN_REQUEST_TOKEN,
    envvars.ACTIONS_ID_TOKEN_REQUEST_URL,
)
COMPETING_VARIABLES: dict[str, tuple[str, ...]] = {
    "terraform": _ARM_COMPETING,
    "pulumi": _ARM_COMPETING,
    "azure-identity": (
        *envvars.AZURE_IDENTITY_SECRET_VARIABLES,
        envvars.AZURE_TOKEN_CREDENTIALS,
    ),
}
"""Per preset: the variables its consumer reads to pick a credential that the preset does not set.

``azauth exec`` removes them from the command's environment, ``sh``/``pwsh`` env files unset
them, and ``azauth run`` warns about those present when a dialect cannot unset."""


def competing_variables(presets: Sequence[str | None], setting: Collection[str] = ()) -> list[str]:
    """The competing variables of ``presets`` (the preset names a preset may leave unset too).

    A preset name it does not set this time (``ARM_ENVIRONMENT`` in the public cloud) is
    competing as well, unless ``setting`` (the names being set) has it.
    """
    names: dict[str, None] = {}
    for preset in presets:
        if preset is None:
            continue
        for name in (*PRESET_NAMES.get(preset, ()), *COMPETING_VARIABLES.get(preset, ())):
            if name not in setting:
                names[name] = None
    return list(names)


def preset_names(preset: str, *, subscription: bool, sovereign: bool) -> tuple[str, ...]:
    """The names ``preset`` sets for a connection with/without subscription, in which cloud."""
    return tuple(
        name
        for name in PRESET_NAMES[preset]
        if (name != envvars.ARM_SUBSCRIPTION_ID or subscription)
        and (name != envvars.ARM_ENVIRONMENT or sovereign)
    )


_PUBLIC_CLOUD = "public"


def preset_variables(
    preset: str, fields: TokenFields, *, request_flow: RequestFlow | None = None
) -> dict[str, str]:
    """Return the variables of ``preset`` (one of :data:`PRESETS`) for ``fields``.

    With ``request_flow`` (a token server runs for the consumer), the presets of
    :data:`REQUEST_FLOW_PRESETS` describe the OIDC request flow instead of the token file, and
    ``azure-identity`` leaves the file out so that the managed-identity server is used.

    Raises:
        ValueError: the preset is unknown, or ``fields`` lacks the federated token file the
            preset points to.
    """
    build = _BUILDERS.get(preset)
    if build is None:
        raise ValueError(f"unknown preset {preset!r} (expected one of {', '.join(PRESETS)})")
    if request_flow is not None and preset in REQUEST_FLOW_PRESETS:
        return _arm_variables(preset, fields, request_flow)
    if request_flow is not None and preset == "azure-identity":
        return {
            envvars.AZURE_CLIENT_ID: fields.client_id,
            envvars.AZURE_TENANT_ID: fields.tenant_id,
            envvars.AZURE_AUTHORITY_HOST: fields.authority,
        }
    return build(fields)


def resolve_variables(
    preset: str | None, mapping: Mapping[str, str], fields: TokenFields
) -> dict[str, str]:
    """Return the preset's variables updated with the explicit ``NAME -> field`` ``mapping``.

    An explicit mapping wins over a preset variable of the same name.

    Raises:
        ValueError: unknown preset or field, or a mapped field whose value is unknown (the
            message names the variable and the field).
    """
    variables = preset_variables(preset, fields) if preset is not None else {}
    for name, field in mapping.items():
        if field not in FIELD_NAMES:
            expected = ", ".join(FIELD_NAMES)
            raise ValueError(
                f"variable {name}: unknown field {field!r} (expected one of {expected})"
            )
        value = fields.value(field)
        if value is None:
            raise ValueError(f"variable {name}: the field {field!r} has no value for this token")
        variables[name] = value
    return variables


def _token_file(preset: str, fields: TokenFields) -> str:
    if not fields.federated_token_file:
        raise ValueError(f"preset {preset!r} needs a federated token file, and none is configured")
    return fields.federated_token_file


def _sovereign_environment(fields: TokenFields, attribute: str) -> str | None:
    """Return the consumer's name of a sovereign cloud, or None for public/unknown clouds."""
    if fields.cloud is None or fields.cloud == _PUBLIC_CLOUD:
        return None
    cloud = CLOUDS.get(fields.cloud)
    if cloud is None:
        return None
    name: str = getattr(cloud, attribute)
    return name


def _arm_variables(
    preset: str, fields: TokenFields, flow: RequestFlow | None = None
) -> dict[str, str]:
    """The ``ARM_*`` variables: the token file, or with ``flow`` the OIDC request flow."""
    variables = {
        envvars.ARM_USE_OIDC: "true",
        envvars.ARM_CLIENT_ID: fields.client_id,
        envvars.ARM_TENANT_ID: fields.tenant_id,
    }
    if fields.subscription_id:
        variables[envvars.ARM_SUBSCRIPTION_ID] = fields.subscription_id
    if flow is None:
        variables[envvars.ARM_OIDC_TOKEN_FILE_PATH] = _token_file(preset, fields)
    elif preset == "terraform":
        variables[envvars.ARM_OIDC_REQUEST_URL] = flow.url
        variables[envvars.ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID] = fields.service_connection_id
        variables[envvars.ARM_OIDC_REQUEST_TOKEN] = flow.token
    else:
        variables[envvars.ARM_OIDC_REQUEST_URL] = flow.github_url(fields.service_connection_id)
        variables[envvars.ARM_OIDC_REQUEST_TOKEN] = flow.token
    environment = _sovereign_environment(fields, f"{preset}_environment")
    if environment is not None:
        variables[envvars.ARM_ENVIRONMENT] = environment
    return variables


def _terraform(fields: TokenFields) -> dict[str, str]:
    return _arm_variables("terraform", fields)


def _pulumi(fields: TokenFields) -> dict[str, str]:
    return _arm_variables("pulumi", fields)


def _azure_identity(fields: TokenFields) -> dict[str, str]:
    return {
        envvars.AZURE_CLIENT_ID: fields.client_id,
        envvars.AZURE_TENANT_ID: fields.tenant_id,
        envvars.AZURE_FEDERATED_TOKEN_FILE: _token_file("azure-identity", fields),
        envvars.AZURE_AUTHORITY_HOST: fields.authority,
    }


_BUILDERS: dict[str, Callable[[TokenFields], dict[str, str]]] = {
    "terraform": _terraform,
    "pulumi": _pulumi,
    "azure-identity": _azure_identity,
}

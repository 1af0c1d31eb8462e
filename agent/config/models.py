"""The profile file as pydantic models: strict types, frozen, unknown keys rejected everywhere.

The class docstrings and field descriptions below are user-facing: they become the descriptions of
``schemas/azauth.schema.json`` and the "expected ..." part of error messages. No model holds a
secret: the system access token is read from the environment when it is used.

Fields, validators and schema live here; what a model answers (its properties and methods) lives
in its mixin in :mod:`agent.config.rules` (``class Connection(ConnectionRules, _Model)``), which
the profile cache (:mod:`agent.config.compiled`) uses without pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict

from agent import envvars
from agent.clouds import CloudName, cloud_for_authority
from agent.config.errors import Problem, invalid
from agent.config.resolution import check_config
from agent.config.rules import (
    AUTHORITY_EXPECTED,
    ConnectionRules,
    DockerConfigRules,
    EnvFileRules,
    FederatedTokenFileRules,
    FeedEnvFileRules,
    FeedOutputRules,
    FeedRules,
    MavenSettingsRules,
    NpmrcRules,
    OutputRules,
    PipelineVariablesRules,
    RegistryBindingRules,
    SettingsRules,
    TokenFileRules,
)
from agent.feeds import FEED_OUTPUT_KINDS
from agent.feeds.urls import AZURE_DEVOPS_SCOPE, FEED_URL_EXPECTED, parse_feed_url
from agent.logs import LogFormat, LogLevel
from agent.outputs.env_file import Dialect
from agent.outputs.fields import FIELD_NAMES, SECRET_FIELDS, FieldName
from agent.outputs.presets import PRESETS, Preset
from agent.outputs.token_file import TokenFileFormat
from agent.urls import normalize_authority

if TYPE_CHECKING:
    from pydantic_settings import PydanticBaseSettingsSource


__all__ = [
    "FEED_OUTPUT_KINDS",
    "FIELD_NAMES",
    "LOAD_PLAN_KEY",
    "PATTERN_MEANINGS",
    "PRESETS",
    "SECRET_FIELDS",
    "AzauthConfig",
    "Connection",
    "DockerConfigOutput",
    "EnvFileOutput",
    "FederatedTokenFileOutput",
    "Feed",
    "FeedEnvFileOutput",
    "FieldName",
    "MavenSettingsOutput",
    "NpmrcOutput",
    "Output",
    "PipelineVariablesOutput",
    "Profile",
    "RegistryBinding",
    "Settings",
    "SourcePlan",
    "TokenFileOutput",
    "normalize_authority",
]

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
TENANT_PATTERN = r"^[A-Za-z0-9.-]+$"
TENANT_OR_ANY_PATTERN = r"^(\*|[A-Za-z0-9.-]+)$"
ID_PATTERN = r"^[A-Za-z0-9._-]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SCOPE_PATTERN = r"^\S+/\.default$"
NPM_SCOPE_PATTERN = r"^@[a-z0-9][a-z0-9._~-]*$"
# Any path that names a file: not empty, no control character (a NUL, a line break: every env
# file and pipeline variable would carry it), its last name neither empty nor "." nor "..".
PATH_PATTERN = (
    r"^(?:[^\x00-\x1f\x7f]*[/\\])?"
    r"(?:[^\x00-\x1f\x7f/\\]*[^\x00-\x1f\x7f/\\.][^\x00-\x1f\x7f/\\]*|\.{3,})$"
)
# A container registry's host, lower case, with an optional port: contoso.azurecr.io[:443].
REGISTRY_PATTERN = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$"


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
TenantId = Annotated[str, StringConstraints(pattern=TENANT_PATTERN)]
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]
TenantOrAny = Annotated[str, StringConstraints(pattern=TENANT_OR_ANY_PATTERN)]
Scope = Annotated[str, StringConstraints(pattern=SCOPE_PATTERN)]
FilePath = Annotated[str, StringConstraints(pattern=PATH_PATTERN)]
RegistryHost = Annotated[str, StringConstraints(pattern=REGISTRY_PATTERN)]

PATTERN_MEANINGS: dict[str, str] = {
    NAME_PATTERN: "a name made of letters, digits, '_', '.' and '-'",
    TENANT_PATTERN: "a tenant id: a GUID or a domain name (letters, digits, '.' and '-')",
    TENANT_OR_ANY_PATTERN: 'a tenant id (a GUID or a domain name) or "*"',
    ID_PATTERN: "an id made of letters, digits, '.', '_' and '-' (usually a GUID)",
    ENV_NAME_PATTERN: "a variable name: letters, digits and '_', not starting with a digit",
    SCOPE_PATTERN: "a scope ending in /.default, such as https://management.azure.com/.default",
    PATH_PATTERN: ("a file path without control characters, not ending in a slash, '.' or '..'"),
    REGISTRY_PATTERN: "a registry host in lower case, with an optional port: contoso.azurecr.io",
    NPM_SCOPE_PATTERN: "an npm scope such as @contoso (lowercase)",
}
"""Each pattern above in words, for error messages."""

LOAD_PLAN_KEY = "__azauth_load_plan__"
"""Init keyword through which ``load_config`` hands its sources to the settings hook."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Settings(SettingsRules, _Model):
    """Run-time behaviour shared by every profile."""

    concurrency: int = Field(
        default=64,
        ge=1,
        le=256,
        description="The most token requests in flight at once (1 to 256).",
    )
    refresh_margin: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        allow_inf_nan=False,
        description="Seconds before expiry at which watch mode acquires a fresh token (0-86400).",
    )
    retry_deadline: float = Field(
        default=120.0,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="Seconds: the total time budget for the retries of one acquisition (<= 86400).",
    )
    fail_fast: bool = Field(
        default=False,
        description="Stop at the first connection that fails instead of delivering the others.",
    )
    remove_on_exit: bool = Field(
        default=False,
        description="Watch mode: delete the written outputs when stopped by SIGTERM or SIGINT.",
    )
    log_format: LogFormat = Field(
        default="auto",
        description=(
            "The format of log lines on stderr: auto (azure-pipelines when TF_BUILD is set, "
            "else console on a terminal, else json)."
        ),
    )
    log_level: LogLevel = Field(
        default="warning",
        description=(
            "The least severe log level written: debug, info, warning (default; -v shows info, "
            "-vv debug) or error."
        ),
    )


class Connection(ConnectionRules, _Model):
    """An Azure DevOps service connection that uses workload identity federation."""

    tenant_id: TenantId = Field(
        description="The Microsoft Entra tenant (directory) id: a GUID or a domain name."
    )
    client_id: Identifier = Field(
        description="The application (client) id the service connection signs in as."
    )
    service_connection_id: Identifier = Field(
        description="The id (a GUID) of the Azure DevOps service connection."
    )
    subscription_id: Identifier | None = Field(
        default=None,
        description="The Azure subscription id, exported by presets as ARM_SUBSCRIPTION_ID.",
    )
    cloud: CloudName = Field(
        default="public",
        description=(
            "The Azure cloud: public, usgovernment or china. When authority is set, the cloud "
            "is inferred from its host (public for other hosts)."
        ),
    )
    authority: str | None = Field(
        default=None,
        description=(
            "The Microsoft Entra authority URL, overriding cloud: https only, http only for "
            "loopback hosts (127.0.0.1, localhost, [::1]). AZURE_AUTHORITY_HOST overrides it."
        ),
    )
    additionally_allowed_tenants: list[TenantOrAny] = Field(
        default_factory=list,
        description='Other tenant ids tokens may be requested for, or "*" for any tenant.',
    )
    system_access_token_env: EnvName = Field(
        default=envvars.SYSTEM_ACCESSTOKEN,
        description="The environment variable that holds the job's System.AccessToken.",
    )
    scope: Scope | None = Field(
        default=None,
        description=(
            "The default scope of this connection's access tokens, ending in /.default "
            "(default: the cloud's Azure Resource Manager scope)."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _infer_cloud(cls, data: Any) -> Any:
        """Refuse cloud with authority; otherwise infer cloud from the authority's host."""
        if not isinstance(data, Mapping) or data.get("authority") is None:
            return data
        if "cloud" in data:
            raise invalid(
                Problem(
                    ("authority",),
                    "cannot be combined with cloud",
                    "either cloud (public, usgovernment, china) or authority, not both",
                )
            )
        authority = data["authority"]
        found = cloud_for_authority(authority) if isinstance(authority, str) else None
        return {**data, "cloud": found.name if found else "public"}

    @field_validator("authority")
    @classmethod
    def _check_authority(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_authority(value)
        except ValueError as exc:
            raise PydanticCustomError(
                "authority_invalid",
                "{reason}",
                {"reason": str(exc), "expected": AUTHORITY_EXPECTED},
            ) from None


ConnectionRef = Annotated[
    Name | None,
    Field(
        description=(
            "The connection whose tokens this output writes; optional when the profile uses "
            "exactly one connection."
        )
    ),
]
OutputScope = Annotated[
    Scope | None,
    Field(
        description=(
            "The scope of the access token, ending in /.default (default: the connection's scope)."
        )
    ),
]
Variables = Annotated[
    dict[Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)], FieldName],
    Field(
        description=(
            "Explicit NAME = field mappings, added to (and overriding) the preset's variables. "
            "Fields: " + ", ".join(FIELD_NAMES) + "."
        )
    ),
]


class _OutputModel(OutputRules, _Model):
    """What every output kind answers about itself; :mod:`agent.outputs.kinds` delivers it.

    The runner, the plan, the profile listing and the checks that span a file ask these
    methods and never compare kinds. A new kind overrides what differs from these defaults.
    """


class TokenFileOutput(TokenFileRules, _OutputModel):
    """An access token written to a file (mode 0600), kept fresh in watch mode."""

    kind: Literal["token_file"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The file to write, relative to the working directory.")
    scope: OutputScope = None
    format: TokenFileFormat = Field(
        default="raw",
        description="raw: the token alone; json: token, token_type, expires_on and expires_at.",
    )


class FederatedTokenFileOutput(FederatedTokenFileRules, _OutputModel):
    """The Azure DevOps OIDC token (a JWT) written to a file, kept fresh in watch mode."""

    kind: Literal["federated_token_file"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The file to write, relative to the working directory.")


class EnvFileOutput(EnvFileRules, _OutputModel):
    """Environment variables written to a file in a shell or tool dialect."""

    kind: Literal["env_file"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The file to write, relative to the working directory.")
    dialect: Dialect = Field(
        default="dotenv", description="The file syntax: dotenv, docker, systemd, sh or pwsh."
    )
    preset: Preset | None = Field(
        default=None,
        description=(
            "A ready-made set of variables: terraform, pulumi (ARM_*) or azure-identity (AZURE_*)."
        ),
    )
    federated_token_path: FilePath | None = Field(
        default=None,
        description=(
            "Where the federated token file used by the preset is kept fresh (default: next to "
            "path, named <path stem>.federated-token)."
        ),
    )
    scope: OutputScope = None
    variables: Variables = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_variables(self) -> EnvFileOutput:
        _require_variables(self.kind, self.preset, self.variables)
        return self


class PipelineVariablesOutput(PipelineVariablesRules, _OutputModel):
    """Azure Pipelines variables set with ##vso[task.setvariable] lines on stdout."""

    kind: Literal["pipeline_variables"]
    connection: ConnectionRef = None
    preset: Preset | None = Field(
        default=None,
        description=(
            "A ready-made set of variables: terraform, pulumi (ARM_*) or azure-identity (AZURE_*)."
        ),
    )
    scope: OutputScope = None
    variables: Variables = Field(default_factory=dict)
    secret: bool | None = Field(
        default=None,
        description=(
            "Default: secret exactly for the secret fields (access_token, oidc_token). false: "
            "none. true: also every value that is not public or well known (true/false, "
            "numbers, GUIDs, paths, URLs, short values), which would mask that text everywhere "
            "in the job log; name such variables in secret_variables to opt in."
        ),
    )
    secret_variables: list[EnvName] = Field(
        default_factory=list,
        description="Variables of this output also set issecret=true, whatever their value.",
    )
    is_output: bool = Field(
        default=False, description="Make the variables output variables (isoutput=true)."
    )

    @model_validator(mode="after")
    def _check_variables(self) -> PipelineVariablesOutput:
        _require_variables(self.kind, self.preset, self.variables)
        return self


class DockerConfigOutput(DockerConfigRules, _OutputModel):
    """A Docker config.json (0600) for the profile's container registries, merged into the file.

    Entries of other registries and every other key of an existing file are kept.
    """

    kind: Literal["docker_config"]
    connection: ConnectionRef = None
    path: FilePath = Field(
        description="The config.json to write or merge into, relative to the working directory."
    )
    mode: Literal["credHelpers", "auths"] = Field(
        default="credHelpers",
        description=(
            "credHelpers: point each registry at docker-credential-azauth (for tools that run "
            "credential helpers); auths: store each registry's ACR refresh token as its "
            "identitytoken, kept fresh in watch mode (for tools that do not)."
        ),
    )
    registries: list[RegistryHost] = Field(
        default_factory=list,
        description=(
            "The registries to write, each served by the profile (default: every registry of "
            "the profile's registries table; in auths mode those of this output's connection)."
        ),
    )
    scope: OutputScope = Field(
        default=None,
        description=(
            "auths mode: the scope of the Entra token exchanged at the registries, ending in "
            "/.default (default: ACR's audience in the connection's cloud, "
            "https://containerregistry.azure.net/.default in the public cloud)."
        ),
    )


class RegistryBinding(RegistryBindingRules, _Model):
    """Which connection's identity a container registry is accessed with."""

    connection: Name | None = Field(
        default=None,
        description="The connection (optional when the profile uses exactly one connection).",
    )
    scope: Scope | None = Field(
        default=None,
        description=(
            "The Entra scope exchanged at the registry (default: ACR's audience in the "
            "registry's cloud, https://containerregistry.azure.net/.default in the public cloud; "
            "the ARM scope also works while the registry accepts ARM-audience tokens)."
        ),
    )


def _require_variables(kind: str, preset: str | None, variables: Mapping[str, str]) -> None:
    if preset is None and not variables:
        raise invalid(
            Problem(
                ("variables",),
                f"this {kind} output has no preset and no variable",
                f"preset ({', '.join(PRESETS)}) or at least one NAME = field entry",
            )
        )


class Feed(FeedRules, _Model):
    """An Azure Artifacts feed, or every feed of an organization, read as a connection's identity.

    The keyring backend answers URLs below ``url`` with that connection's Azure DevOps token;
    the npmrc, maven_settings and feed_env_file outputs configure each client for the feed.
    """

    name: Name = Field(
        description=(
            "The feed's name in client configuration: the uv index name (UV_INDEX_<NAME>_*), "
            "the NuGet source name and the Maven server id."
        )
    )
    url: str = Field(
        description=(
            "The feed URL, https://pkgs.dev.azure.com/ORG[/PROJECT]/_packaging/FEED (or "
            "https://ORG.pkgs.visualstudio.com/...), or an organization URL "
            "https://pkgs.dev.azure.com/ORG for every feed of it (keyring only). Other hosts are "
            "read with the same path layout; plain http only for loopback hosts."
        )
    )
    connection: ConnectionRef = None
    npm_scope: Annotated[str, StringConstraints(pattern=NPM_SCOPE_PATTERN)] | None = Field(
        default=None,
        description=(
            "npmrc outputs: the npm scope (@name) whose packages come from this feed; without "
            "it the feed becomes the default registry."
        ),
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            return parse_feed_url(value).url
        except ValueError as exc:
            raise PydanticCustomError(
                "feed_url_invalid", "{reason}", {"reason": str(exc), "expected": FEED_URL_EXPECTED}
            ) from None


FeedNames = Annotated[
    list[Name],
    Field(
        description=(
            "The feeds (by name) this output configures; default: every feed of the profile "
            "read by the output's connection."
        )
    ),
]
FeedScope = Annotated[
    Scope,
    Field(description="The scope of the access token (default: Azure DevOps)."),
]


class _FeedOutput(FeedOutputRules, _OutputModel):
    """The answers the feed kinds share (npmrc, maven_settings, feed_env_file)."""


class NpmrcOutput(NpmrcRules, _FeedOutput):
    """Registry and _authToken lines for the feeds' npm endpoints, merged into an npmrc file.

    Other lines of an existing file are kept; the file is replaced atomically (mode 0600).
    """

    kind: Literal["npmrc"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The npmrc file to merge into (created when missing).")
    feeds: FeedNames = Field(default_factory=list)
    scope: FeedScope = AZURE_DEVOPS_SCOPE


class MavenSettingsOutput(MavenSettingsRules, _FeedOutput):
    """A Maven settings.xml with one <server> per feed (id: the feed's name)."""

    kind: Literal["maven_settings"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The settings.xml to write (pass it with mvn -s).")
    feeds: FeedNames = Field(default_factory=list)
    scope: FeedScope = AZURE_DEVOPS_SCOPE


class FeedEnvFileOutput(FeedEnvFileRules, _FeedOutput):
    """Feed credentials as environment variables: NuGet, uv and twine read them."""

    kind: Literal["feed_env_file"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The file to write, relative to the working directory.")
    dialect: Dialect = Field(
        default="dotenv", description="The file syntax: dotenv, docker, systemd, sh or pwsh."
    )
    feeds: FeedNames = Field(default_factory=list)
    scope: FeedScope = AZURE_DEVOPS_SCOPE


Output = Annotated[
    TokenFileOutput
    | FederatedTokenFileOutput
    | EnvFileOutput
    | PipelineVariablesOutput
    | DockerConfigOutput
    | NpmrcOutput
    | MavenSettingsOutput
    | FeedEnvFileOutput,
    Field(discriminator="kind"),
]


class Profile(_Model):
    """A named set of connections and the outputs azauth writes for them."""

    description: str | None = Field(default=None, description="What this profile is for.")
    extends: Name | None = Field(
        default=None,
        description=(
            "A profile whose connections and outputs this one inherits; its own entries are "
            "appended."
        ),
    )
    connections: list[Name] = Field(
        default_factory=list,
        description="The names of the connections (from [connections]) this profile uses.",
    )
    outputs: list[Output] = Field(
        default_factory=list, description="Where the tokens go; each entry has a kind."
    )
    registries: dict[RegistryHost, RegistryBinding] = Field(
        default_factory=dict,
        description=(
            "Container registries (host -> connection) that docker-credential-azauth, "
            "docker_config outputs and `azauth exec --registry` serve; inherited through extends."
        ),
    )
    feeds: list[Feed] = Field(
        default_factory=list,
        description=(
            "Azure Artifacts feeds (or organizations) and the connection whose identity reads "
            "each; inherited feeds come first."
        ),
    )
    az_login: bool = Field(
        default=False,
        description=(
            "azauth exec signs the Azure CLI in to every connection through its token server "
            "(as --az-login): az login --identity in a private AZURE_CONFIG_DIR, removed after."
        ),
    )


class SourcePlan(Protocol):
    """What ``load_config`` passes to :meth:`AzauthConfig.settings_customise_sources`."""

    def sources(
        self, settings_cls: type[BaseSettings], init_settings: InitSettingsSource
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Return the sources of one load, highest precedence first."""
        ...


class AzauthConfig(BaseSettings):
    """An azauth profile file: connections, profiles and settings."""

    model_config = SettingsConfigDict(
        env_prefix=envvars.AZAUTH_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
        extra="forbid",
        strict=True,
        frozen=True,
        title="azauth profile file",
    )

    version: Literal[1] = Field(
        default=1, description="The version of this file format; only 1 exists."
    )
    default_profile: Name | None = Field(
        default=None,
        description="The profile used when neither --profile nor AZAUTH_PROFILE names one.",
    )
    settings: Settings = Field(default=Settings(), description="Run-time behaviour.")
    connections: dict[Name, Connection] = Field(
        default_factory=dict, description="Service connections, by name."
    )
    profiles: dict[Name, Profile] = Field(default_factory=dict, description="Profiles, by name.")

    @field_validator("version", mode="before")
    @classmethod
    def _refuse_boolean_version(cls, value: object) -> object:
        # True == 1 in Python, and `version = true` is a mistake worth naming.
        if isinstance(value, bool):
            raise PydanticCustomError(
                "version_invalid", "invalid value: a boolean is not a version", {"expected": "1"}
            )
        return value

    @model_validator(mode="after")
    def _check_references(self) -> AzauthConfig:
        problems = check_config(self)
        if problems:
            raise invalid(*problems)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env support
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no secrets dir
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence, highest first: init keywords > ``AZAUTH_*`` environment > profile file.

        ``load_config`` passes its per-call sources (the file, the environment mapping) through
        the init keyword ``LOAD_PLAN_KEY``, which is removed here before validation. Without it,
        only init keywords and ``os.environ`` are read.
        """
        if isinstance(init_settings, InitSettingsSource):
            plan: SourcePlan | None = init_settings.init_kwargs.pop(LOAD_PLAN_KEY, None)
            if plan is not None:
                return plan.sources(settings_cls, init_settings)
        return (init_settings, env_settings)

"""The profile file as pydantic models: strict types, frozen, unknown keys rejected everywhere.

The class docstrings and field descriptions below are user-facing: they become the descriptions of
``schemas/azauth.schema.json`` and the "expected ..." part of error messages. No model holds a
secret: the system access token is read from the environment when it is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol

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
from agent._secrets import redact_text
from agent.clouds import CLOUDS, Cloud, CloudName, cloud_for_authority
from agent.config.errors import KeyPath, Problem, did_you_mean, invalid
from agent.config.resolution import check_config
from agent.exceptions import ConfigError
from agent.feeds import FEED_OUTPUT_KINDS
from agent.feeds.urls import AZURE_DEVOPS_SCOPE, FEED_URL_EXPECTED, parse_feed_url
from agent.logs import LogFormat, LogLevel
from agent.outputs.env_file import Dialect
from agent.outputs.fields import FIELD_NAMES, SECRET_FIELDS, FieldName
from agent.outputs.pipeline_variables import looks_public
from agent.outputs.presets import PRESET_NAMES as PRESET_VARIABLE_NAMES
from agent.outputs.presets import PRESETS, Preset
from agent.outputs.token_file import TokenFileFormat
from agent.urls import normalize_authority

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pydantic_settings import PydanticBaseSettingsSource

    from agent.config.resolution import ResolvedProfile

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

AUTHORITY_EXPECTED = (
    "an https URL such as https://login.microsoftonline.com (http only for loopback hosts: "
    "127.0.0.1, localhost, [::1])"
)
LOAD_PLAN_KEY = "__azauth_load_plan__"
"""Init keyword through which ``load_config`` hands its sources to the settings hook."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Settings(_Model):
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


class Connection(_Model):
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

    @property
    def cloud_info(self) -> Cloud:
        """The :class:`agent.clouds.Cloud` this connection belongs to."""
        return CLOUDS[self.cloud]

    @property
    def default_scope(self) -> str:
        """``scope`` when set, else the cloud's Azure Resource Manager ``.default`` scope."""
        return self.scope or f"{self.cloud_info.arm_endpoint}.default"

    def authority_url(self, env: Mapping[str, str] | None = None) -> str:
        """Return the authority to send token requests to, as ``https://host[/path]``.

        ``AZURE_AUTHORITY_HOST`` (from ``env``, default ``os.environ``) wins over ``authority``,
        which wins over the cloud's authority host.

        Raises:
            ConfigError: ``AZURE_AUTHORITY_HOST`` is not an acceptable URL.
        """
        environ = os.environ if env is None else env
        override = environ.get(envvars.AZURE_AUTHORITY_HOST)
        if override and override.strip():
            from agent.envvalues import clean_url  # noqa: PLC0415

            override = clean_url(override, source="environment variable AZURE_AUTHORITY_HOST")
            try:
                return normalize_authority(override)
            except ValueError as exc:
                raise ConfigError(
                    f"environment variable AZURE_AUTHORITY_HOST={redact_text(override)!r}: {exc}",
                    expected=AUTHORITY_EXPECTED,
                ) from None
        if self.authority is not None:
            return self.authority
        return f"https://{self.cloud_info.authority_host}"

    def system_access_token(self, env: Mapping[str, str] | None = None) -> str:
        """Return the job's System.AccessToken from ``env[system_access_token_env]``.

        Raises:
            ConfigError: the variable is missing or empty (it is not mapped into the step).
        """
        from agent.envvalues import EMULATE_HINT, clean_token  # noqa: PLC0415

        environ = os.environ if env is None else env
        name = self.system_access_token_env
        value = environ.get(name)
        if value is None or not value.strip():
            from agent._hardening import stashed_value  # noqa: PLC0415 - rarely needed

            # Taken out of os.environ at start (agent._hardening)?
            value = stashed_value(name) or value
        expected = (
            f"`env: {name}: $(System.AccessToken)` on the step that runs azauth; {EMULATE_HINT}"
        )
        if value is None or not value.strip():
            state = "is not set" if value is None else "is empty"
            raise ConfigError(
                f"environment variable {name} {state}: Azure Pipelines passes System.AccessToken "
                f"to a script only when the step maps it",
                expected=expected,
            )
        return clean_token(value, source=f"environment variable {name}", expected=expected)


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


# Fields whose value comes from an access token: an output naming one needs a token for its scope.
_ACCESS_TOKEN_FIELDS = frozenset({"access_token", "token_type", "expires_on", "expires_at"})

WrittenFile = tuple[str, str, tuple[object, ...]]
"""``(key, path, identity)`` of a file an output writes (see :meth:`_OutputModel.written_files`)."""


class _OutputModel(_Model):
    """What every output kind answers about itself; :mod:`agent.outputs.kinds` delivers it.

    The runner, the plan, the profile listing and the checks that span a file ask these
    methods and never compare kinds. A new kind overrides what differs from these defaults.
    """

    on_stdout: ClassVar[bool] = False
    """The output is printed on stdout (logging commands), not written to a file."""

    if TYPE_CHECKING:  # declared by each kind (not fields here: the schema keeps its order)
        kind: str
        connection: str | None = None
        path: str = ""
        scope: str | None = None

    @property
    def target(self) -> str:
        """Where the output goes, as reports and logs name it: its file."""
        return self.path

    def needs_access_token(self) -> bool:
        """Whether delivering this output needs an access token (for :meth:`token_scope`)."""
        return True

    def needs_oidc(self, profile: ResolvedProfile) -> bool:  # noqa: ARG002 - kinds use it
        """Whether delivering this output in ``profile`` needs the Azure DevOps OIDC token."""
        return False

    def token_scope(self, profile: ResolvedProfile) -> str | None:
        """The scope of the access token this output uses (its own, else its connection's)."""
        assert self.connection is not None
        return self.scope or profile.connections[self.connection].default_scope

    def kept_federated_token(self) -> str | None:
        """The file where this output keeps its connection's federated token, if any."""
        return None

    def federated_token_reference(self, profile: ResolvedProfile) -> str | None:  # noqa: ARG002
        """The federated token file this output's variables point at, if any."""
        return None

    def written_files(self, connection: str, where: KeyPath) -> Iterator[WrittenFile]:  # noqa: ARG002 - kinds override it
        """Yield ``(key, path, identity)`` for each file this output writes, its own first.

        ``key``: the field naming the file (``path`` for the output's own file).

        Two writers may share a file only when their identities are equal and shareable:
        ``("federated", c)`` (both keep connection ``c``'s federated token there) or
        ``("merged", ...)`` (each replaces only its own lines).
        """
        yield "path", self.path, ("output", *where)

    def registries_for(self, profile: ResolvedProfile) -> list[str]:  # noqa: ARG002
        """The container registries this output writes into its file."""
        return []

    def exchanges_at_registries(self) -> bool:
        """Whether its access token is exchanged at container registries before rendering."""
        return False

    def describe(self, profile: ResolvedProfile) -> list[str]:
        """Details of this output for ``azauth profiles`` (besides its connection)."""
        scope = self.token_scope(profile)
        return [f"scope {scope}"] if scope is not None else []

    def plan_connection_notes(self) -> list[str]:
        """Lines the dry-run plan adds under this output's connection."""
        return []

    @property
    def mapped_variables(self) -> Mapping[str, str]:
        """Its explicit ``NAME = field`` mappings (none for kinds without variables)."""
        return {}

    def secret_names(self, values: Mapping[str, str]) -> set[str]:
        """The names among ``values`` (its resolved variables) whose values are secret."""
        return {name for name in values if self.mapped_variables.get(name) in SECRET_FIELDS}

    def competing_kept(self) -> list[str]:
        """Variables competing with its preset that it sets but cannot unset in the consumer."""
        return []

    def unmasked_under_secret_true(self, connection: Connection | None) -> list[str]:  # noqa: ARG002
        """Variables its ``secret = true`` does not mask (``None``: any connection's)."""
        return []

    def feed_names(self) -> list[str] | None:
        """The feeds it configures by name (empty: its connection's); ``None``: no feed kind."""
        return None

    def unset_variables(self, values: Mapping[str, str]) -> list[str]:  # noqa: ARG002
        """The variables its file unsets (sh/pwsh env files with a preset)."""
        return []

    def connection_problems(
        self, connection: Connection, name: str, where: KeyPath
    ) -> Iterator[Problem]:
        """Variables mapped to a value ``connection`` (named ``name``) does not have."""
        if connection.subscription_id is not None:
            return
        for variable, field in self.mapped_variables.items():
            if field == "subscription_id":
                yield Problem(
                    (*where, "variables", variable),
                    f"connection {name!r} has no subscription_id",
                    f"subscription_id set in [connections.{name}], or no variable mapped to it",
                )

    def registry_problems(
        self,
        profile: str,  # noqa: ARG002
        where: KeyPath,  # noqa: ARG002
        served: set[str],  # noqa: ARG002
        *,
        implicit: bool,  # noqa: ARG002 - kinds override it
    ) -> Iterator[Problem]:
        """Registries it names that profile ``profile`` does not serve.

        ``served``: the hosts of the profile's registries table; ``implicit``: a profile with
        one connection and no table serves every Azure Container Registry host.
        """
        return iter(())

    def pipeline_variable_names(
        self,
        connection: Connection,  # noqa: ARG002
        where: KeyPath,  # noqa: ARG002 - kinds override it
    ) -> list[tuple[str, KeyPath]]:
        """The pipeline variables it sets, each with the key path that sets it."""
        return []

    def federated_token_problem(
        self,
        profile: str,  # noqa: ARG002
        where: KeyPath,  # noqa: ARG002
        connection: str,  # noqa: ARG002 - kinds override it
    ) -> Problem | None:
        """The problem when it needs a federated token file and profile ``profile`` keeps none."""
        return None


class TokenFileOutput(_OutputModel):
    """An access token written to a file (mode 0600), kept fresh in watch mode."""

    kind: Literal["token_file"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The file to write, relative to the working directory.")
    scope: OutputScope = None
    format: TokenFileFormat = Field(
        default="raw",
        description="raw: the token alone; json: token, token_type, expires_on and expires_at.",
    )


class FederatedTokenFileOutput(_OutputModel):
    """The Azure DevOps OIDC token (a JWT) written to a file, kept fresh in watch mode."""

    kind: Literal["federated_token_file"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The file to write, relative to the working directory.")

    def needs_access_token(self) -> bool:
        """No access token: the file holds the OIDC token."""
        return False

    def needs_oidc(self, profile: ResolvedProfile) -> bool:  # noqa: ARG002
        """Always: the file holds the OIDC token."""
        return True

    def token_scope(self, profile: ResolvedProfile) -> str | None:  # noqa: ARG002
        """``None``: no access token."""
        return None

    def kept_federated_token(self) -> str | None:
        """Its own file."""
        return self.path

    def written_files(self, connection: str, where: KeyPath) -> Iterator[WrittenFile]:  # noqa: ARG002 - kinds override it
        """Its file, shareable with every writer of the same connection's federated token."""
        yield "path", self.path, ("federated", connection)

    def plan_connection_notes(self) -> list[str]:
        """The connection keeps its OIDC token."""
        return ["keep the OIDC token"]


class EnvFileOutput(_OutputModel):
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

    @property
    def needs_federated_token_file(self) -> bool:
        """Whether this output refers to a federated token file (every preset does)."""
        return self.preset is not None or "federated_token_file" in self.variables.values()

    @property
    def effective_federated_token_path(self) -> str | None:
        """The federated token file this output keeps fresh, or ``None`` when it needs none."""
        if not self.needs_federated_token_file:
            return None
        if self.federated_token_path is not None:
            return self.federated_token_path
        path = PurePath(self.path)
        return str(path.with_name(f"{path.stem}.federated-token"))

    def needs_access_token(self) -> bool:
        """When a variable holds a field of the access token."""
        return bool(_ACCESS_TOKEN_FIELDS & set(self.variables.values()))

    def needs_oidc(self, profile: ResolvedProfile) -> bool:  # noqa: ARG002
        """When it keeps a federated token file or a variable holds the OIDC token."""
        return self.needs_federated_token_file or "oidc_token" in self.variables.values()

    def kept_federated_token(self) -> str | None:
        """The federated token file next to it (or at ``federated_token_path``)."""
        return self.effective_federated_token_path

    def federated_token_reference(self, profile: ResolvedProfile) -> str | None:  # noqa: ARG002
        """The federated token file it keeps itself."""
        return self.effective_federated_token_path

    def written_files(self, connection: str, where: KeyPath) -> Iterator[WrittenFile]:
        """Its federated token file (shareable), then the env file that points at it."""
        yield "path", self.path, ("output", *where)
        federated = self.effective_federated_token_path
        if federated is not None:
            yield "federated_token_path", federated, ("federated", connection)

    @property
    def mapped_variables(self) -> Mapping[str, str]:
        """Its ``variables``."""
        return self.variables

    def unset_variables(self, values: Mapping[str, str]) -> list[str]:
        """The variables an sh/pwsh file unsets: a preset owns its consumer's choice."""
        from agent.outputs.env_file import UNSETTING_DIALECTS  # noqa: PLC0415
        from agent.outputs.presets import competing_variables  # noqa: PLC0415

        if self.dialect not in UNSETTING_DIALECTS or self.preset is None:
            return []
        return competing_variables([self.preset], values)

    def competing_kept(self) -> list[str]:
        """With a preset, except in sh/pwsh (which unset them): see :func:`_competing`."""
        from agent.outputs.env_file import UNSETTING_DIALECTS  # noqa: PLC0415

        if self.dialect in UNSETTING_DIALECTS:
            return []
        return _competing(self.preset, self.variables)

    def describe(self, profile: ResolvedProfile) -> list[str]:  # noqa: ARG002
        """Dialect, preset, variables and the federated token file."""
        details = [f"{self.dialect} dialect", *_variables_details(self.preset, self.variables)]
        if self.effective_federated_token_path:
            details.append(f"federated token {self.effective_federated_token_path}")
        return details


class PipelineVariablesOutput(_OutputModel):
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

    on_stdout: ClassVar[bool] = True

    @model_validator(mode="after")
    def _check_variables(self) -> PipelineVariablesOutput:
        _require_variables(self.kind, self.preset, self.variables)
        return self

    @property
    def target(self) -> str:
        """``pipeline variables``: no file."""
        return "pipeline variables"

    @property
    def mapped_variables(self) -> Mapping[str, str]:
        """Its ``variables``."""
        return self.variables

    def needs_access_token(self) -> bool:
        """When a variable holds a field of the access token."""
        return bool(_ACCESS_TOKEN_FIELDS & set(self.variables.values()))

    def needs_oidc(self, profile: ResolvedProfile) -> bool:
        """When a variable holds the OIDC token, or points at a federated token file kept."""
        assert self.connection is not None
        uses_file = self.preset is not None or "federated_token_file" in self.variables.values()
        return "oidc_token" in self.variables.values() or (
            uses_file and profile.federated_token_file_for(self.connection) is not None
        )

    def federated_token_reference(self, profile: ResolvedProfile) -> str | None:
        """The federated token file the profile keeps for its connection."""
        assert self.connection is not None
        return profile.federated_token_file_for(self.connection)

    def written_files(self, connection: str, where: KeyPath) -> Iterator[WrittenFile]:  # noqa: ARG002
        """None: the variables are printed on stdout."""
        return iter(())

    def competing_kept(self) -> list[str]:
        """With a preset: a pipeline variable cannot be unset (see :func:`_competing`)."""
        return _competing(self.preset, self.variables)

    def describe(self, profile: ResolvedProfile) -> list[str]:  # noqa: ARG002
        """Preset and variables."""
        return _variables_details(self.preset, self.variables)

    def pipeline_variable_names(
        self, connection: Connection, where: KeyPath
    ) -> list[tuple[str, KeyPath]]:
        """The preset's variables for ``connection`` (unless mapped), then its own mappings."""
        from agent.outputs.presets import preset_names  # noqa: PLC0415 - cheap, not at import

        names: list[tuple[str, KeyPath]] = []
        if self.preset is not None:
            preset = preset_names(
                self.preset,
                subscription=connection.subscription_id is not None,
                sovereign=connection.cloud != "public",
            )
            names += [(n, (*where, "preset")) for n in preset if n not in self.variables]
        names += [(n, (*where, "variables", n)) for n in self.variables]
        return names

    def federated_token_problem(
        self, profile: str, where: KeyPath, connection: str
    ) -> Problem | None:
        """A preset points a variable at the federated token file; the profile keeps none."""
        if self.preset is None:
            return None
        return Problem(
            (*where, "preset"),
            f"preset {self.preset!r} sets a variable pointing at connection "
            f"{connection!r}'s federated token file, and profile {profile!r} keeps none",
            f"a federated_token_file output (or an env_file with a preset) for "
            f"connection {connection!r} in the profile, or variables without the preset",
        )

    def secret_names(self, values: Mapping[str, str]) -> set[str]:
        """The names among ``values`` (this output's resolved variables) set ``issecret=true``.

        A variable is secret when it holds a secret field, or is in ``secret_variables``, or
        ``secret = true`` and its value is not public (:func:`looks_public`); ``secret = false``
        marks none. Preset variables hold ids, paths and ``true``: never secret by default.
        """
        if self.secret is False:
            return set()
        listed = set(self.secret_variables)
        names = set()
        for name, value in values.items():
            field = self.variables.get(name)
            if (
                name in listed
                or field in SECRET_FIELDS
                or (self.secret is True and not looks_public(value))
            ):
                names.add(name)
        return names

    def unmasked_under_secret_true(self, connection: Connection | None) -> list[str]:
        """:meth:`public_variables_under_secret_true` with the preset's names for ``connection``."""
        from agent.outputs.presets import preset_names  # noqa: PLC0415

        names = None
        if self.preset is not None and connection is not None:
            names = preset_names(
                self.preset,
                subscription=connection.subscription_id is not None,
                sovereign=connection.cloud != "public",
            )
        return self.public_variables_under_secret_true(names)

    def public_variables_under_secret_true(
        self, preset_variables: Sequence[str] | None = None
    ) -> list[str]:
        """With ``secret = true``: the variables that hold public fields (ids, paths, flags).

        ``preset_variables``: the names the preset sets for this output's connection (default:
        every name it may set). ``validate`` warns about them: ``secret = true`` does not mask
        them (masking ``true`` or a path hides it everywhere in the job log) unless they are
        named in ``secret_variables``.
        """
        if self.secret is not True:
            return []
        if preset_variables is None:
            preset_variables = PRESET_VARIABLE_NAMES.get(self.preset or "", ())
        names = [name for name in preset_variables if name not in self.variables]
        names += [name for name, field in self.variables.items() if field not in SECRET_FIELDS]
        return [name for name in names if name not in self.secret_variables]


class DockerConfigOutput(_OutputModel):
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

    def needs_access_token(self) -> bool:
        """In auths mode: its Entra token is exchanged at each registry."""
        return self.mode == "auths"

    def exchanges_at_registries(self) -> bool:
        """In auths mode."""
        return self.mode == "auths"

    def token_scope(self, profile: ResolvedProfile) -> str:
        """The Entra scope exchanged at its registries.

        Its own ``scope``; else, in ``auths`` mode, the one its registries use (their
        ``scope`` in the ``registries`` table, or their cloud's ACR audience: one scope,
        checked on load); else the ACR audience of the connection's cloud.
        """
        from agent.registries.acr import acr_scope  # noqa: PLC0415 - the registry concept stays there
        from agent.registries.tokens import (  # noqa: PLC0415
            RegistryNotServedError,
            served_registry,
        )

        assert self.connection is not None
        if self.scope:
            return self.scope
        if self.mode == "auths":
            for registry in self.registries_for(profile):
                try:
                    connection, scope = served_registry(profile, registry)
                except RegistryNotServedError:
                    continue
                if connection == self.connection:
                    return scope
        return acr_scope("", profile.connections[self.connection].cloud)

    def registries_for(self, profile: ResolvedProfile) -> list[str]:
        """Its registries, else those of the profile's table (auths: of its connection)."""
        from agent.registries.tokens import output_registries  # noqa: PLC0415

        return output_registries(profile, self)

    def describe(self, profile: ResolvedProfile) -> list[str]:
        """Mode, registries, and in auths mode the scope exchanged."""
        details = [
            f"{self.mode} mode",
            f"registries {', '.join(self.registries_for(profile)) or 'none'}",
        ]
        if self.mode == "auths":
            details.append(f"scope {self.token_scope(profile)}")
        return details

    def registry_problems(
        self, profile: str, where: KeyPath, served: set[str], *, implicit: bool
    ) -> Iterator[Problem]:
        """Each listed registry not in the profile's table (nor implicitly served)."""
        from agent.registries.acr import is_acr_host  # noqa: PLC0415 - the registry concept stays there

        for position, host in enumerate(self.registries):
            if host not in served and not (implicit and is_acr_host(host)):
                yield Problem(
                    (*where, "registries", position),
                    f"registry {host!r} is not served by profile {profile!r}"
                    f"{did_you_mean(host, sorted(served))}",
                    f"a host of profiles.{profile}.registries"
                    + (f": {', '.join(sorted(served))}" if served else ""),
                )


class RegistryBinding(_Model):
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


def _competing(preset: str | None, variables: Mapping[str, str]) -> list[str]:
    """The variables competing with ``preset`` given what it and ``variables`` set."""
    from agent.outputs.presets import competing_variables  # noqa: PLC0415

    if preset is None:
        return []
    return competing_variables([preset], {*PRESET_VARIABLE_NAMES[preset], *variables})


def _variables_details(preset: str | None, variables: Mapping[str, str]) -> list[str]:
    details = [f"preset {preset}"] if preset else []
    if variables:
        details.append(f"variables {', '.join(variables)}")
    return details


def _require_variables(kind: str, preset: str | None, variables: Mapping[str, str]) -> None:
    if preset is None and not variables:
        raise invalid(
            Problem(
                ("variables",),
                f"this {kind} output has no preset and no variable",
                f"preset ({', '.join(PRESETS)}) or at least one NAME = field entry",
            )
        )


class Feed(_Model):
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


class _FeedOutput(_OutputModel):
    """The answers the feed kinds share (npmrc, maven_settings, feed_env_file)."""

    if TYPE_CHECKING:
        feeds: list[str] = []

    def feed_names(self) -> list[str]:
        """Its ``feeds``."""
        return self.feeds


class NpmrcOutput(_FeedOutput):
    """Registry and _authToken lines for the feeds' npm endpoints, merged into an npmrc file.

    Other lines of an existing file are kept; the file is replaced atomically (mode 0600).
    """

    kind: Literal["npmrc"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The npmrc file to merge into (created when missing).")
    feeds: FeedNames = Field(default_factory=list)
    scope: FeedScope = AZURE_DEVOPS_SCOPE

    def written_files(self, connection: str, where: KeyPath) -> Iterator[WrittenFile]:  # noqa: ARG002
        """Its npmrc, shareable: each npmrc output replaces only its own lines."""
        yield "path", self.path, ("merged", "npmrc")


class MavenSettingsOutput(_FeedOutput):
    """A Maven settings.xml with one <server> per feed (id: the feed's name)."""

    kind: Literal["maven_settings"]
    connection: ConnectionRef = None
    path: FilePath = Field(description="The settings.xml to write (pass it with mvn -s).")
    feeds: FeedNames = Field(default_factory=list)
    scope: FeedScope = AZURE_DEVOPS_SCOPE


class FeedEnvFileOutput(_FeedOutput):
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

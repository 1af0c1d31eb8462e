"""What the profile models answer, without pydantic: one plain mixin per model.

:mod:`agent.config.models` validates a profile file; each of its models is
``class Connection(ConnectionRules, _Model)``: the fields, validators and schema there, the
behaviour every consumer uses (the runner, the output kinds, the plan, the report, the
registries and feeds) here. :mod:`agent.config.compiled` builds light frozen objects from the
same mixins out of a cached, already validated profile, so that ``azauth run`` and
``azauth validate`` do not import pydantic when nothing changed.

The mixins hold no run-time annotation (pydantic would collect it as a field): the attributes
each one reads are declared for type checkers only. Stdlib and pydantic-free agent modules only.
"""

from __future__ import annotations

import os

from agent import envvars
from agent._secrets import redact_text
from agent.clouds import CLOUDS, Cloud
from agent.config.problems import KeyPath, Problem, did_you_mean
from agent.outputs.fields import SECRET_FIELDS
from agent.outputs.pipeline_variables import looks_public
from agent.outputs.presets import PRESET_NAMES as PRESET_VARIABLE_NAMES
from agent.urls import normalize_authority

TYPE_CHECKING = False  # not from typing: see agent/__init__.py
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from typing import ClassVar

    from agent.clouds import CloudName
    from agent.config.resolution import ResolvedProfile
    from agent.logs import LogFormat, LogLevel
    from agent.outputs.env_file import Dialect
    from agent.outputs.fields import FieldName
    from agent.outputs.presets import Preset
    from agent.outputs.token_file import TokenFileFormat

__all__ = [
    "AUTHORITY_EXPECTED",
    "OUTPUT_RULES",
    "ConnectionRules",
    "DockerConfigRules",
    "EnvFileRules",
    "FederatedTokenFileRules",
    "FeedEnvFileRules",
    "FeedOutputRules",
    "FeedRules",
    "MavenSettingsRules",
    "NpmrcRules",
    "OutputRules",
    "PipelineVariablesRules",
    "RegistryBindingRules",
    "SettingsRules",
    "TokenFileRules",
    "WrittenFile",
]

AUTHORITY_EXPECTED = (
    "an https URL such as https://login.microsoftonline.com (http only for loopback hosts: "
    "127.0.0.1, localhost, [::1])"
)

# Fields whose value comes from an access token: an output naming one needs a token for its scope.
_ACCESS_TOKEN_FIELDS = frozenset({"access_token", "token_type", "expires_on", "expires_at"})

WrittenFile = tuple[str, str, tuple[object, ...]]
"""``(key, path, identity)`` of a file an output writes (see :meth:`OutputRules.written_files`)."""


class SettingsRules:
    """Run-time behaviour shared by every profile (:class:`agent.config.models.Settings`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        concurrency: int
        refresh_margin: float
        retry_deadline: float
        fail_fast: bool
        remove_on_exit: bool
        log_format: LogFormat
        log_level: LogLevel


class ConnectionRules:
    """What a service connection answers (:class:`agent.config.models.Connection`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        tenant_id: str
        client_id: str
        service_connection_id: str
        subscription_id: str | None
        cloud: CloudName
        authority: str | None
        additionally_allowed_tenants: list[str]
        system_access_token_env: str
        scope: str | None

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
            from agent.exceptions import ConfigError  # noqa: PLC0415

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
        from agent.exceptions import ConfigError  # noqa: PLC0415

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


class OutputRules:
    """What every output kind answers about itself; :mod:`agent.outputs.kinds` delivers it.

    The runner, the plan, the profile listing and the checks that span a file ask these
    methods and never compare kinds. A new kind overrides what differs from these defaults.
    """

    __slots__ = ()

    if TYPE_CHECKING:  # declared by each kind (not fields here: the schema keeps its order)
        on_stdout: ClassVar[bool]
        kind: str
        connection: str | None = None
        path: str = ""
        scope: str | None = None

    on_stdout = False
    """The output is printed on stdout (logging commands), not written to a file."""

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

    def unmasked_under_secret_true(self, connection: ConnectionRules | None) -> list[str]:  # noqa: ARG002
        """Variables its ``secret = true`` does not mask (``None``: any connection's)."""
        return []

    def feed_names(self) -> list[str] | None:
        """The feeds it configures by name (empty: its connection's); ``None``: no feed kind."""
        return None

    def unset_variables(self, values: Mapping[str, str]) -> list[str]:  # noqa: ARG002
        """The variables its file unsets (sh/pwsh env files with a preset)."""
        return []

    def connection_problems(
        self, connection: ConnectionRules, name: str, where: KeyPath
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
        connection: ConnectionRules,  # noqa: ARG002
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


class TokenFileRules(OutputRules):
    """An access token written to a file (:class:`agent.config.models.TokenFileOutput`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        format: TokenFileFormat


class FederatedTokenFileRules(OutputRules):
    """The OIDC token in a file (:class:`agent.config.models.FederatedTokenFileOutput`)."""

    __slots__ = ()

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


class EnvFileRules(OutputRules):
    """Variables in a file (:class:`agent.config.models.EnvFileOutput`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        dialect: Dialect
        preset: Preset | None
        federated_token_path: str | None
        variables: dict[str, FieldName]

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
        from pathlib import PurePath  # noqa: PLC0415 - not on every run's path

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


class PipelineVariablesRules(OutputRules):
    """Pipeline variables on stdout (:class:`agent.config.models.PipelineVariablesOutput`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        preset: Preset | None
        variables: dict[str, FieldName]
        secret: bool | None
        secret_variables: list[str]
        is_output: bool

    on_stdout = True

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
        self, connection: ConnectionRules, where: KeyPath
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

    def unmasked_under_secret_true(self, connection: ConnectionRules | None) -> list[str]:
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


class DockerConfigRules(OutputRules):
    """A Docker config.json (:class:`agent.config.models.DockerConfigOutput`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        mode: str
        registries: list[str]

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


class RegistryBindingRules:
    """A registry's connection (:class:`agent.config.models.RegistryBinding`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        connection: str | None
        scope: str | None


class FeedRules:
    """An Azure Artifacts feed (:class:`agent.config.models.Feed`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        name: str
        url: str
        connection: str | None
        npm_scope: str | None


class FeedOutputRules(OutputRules):
    """The answers the feed kinds share (npmrc, maven_settings, feed_env_file)."""

    __slots__ = ()

    if TYPE_CHECKING:
        feeds: list[str]

    def feed_names(self) -> list[str]:
        """Its ``feeds``."""
        return self.feeds


class NpmrcRules(FeedOutputRules):
    """An npmrc (:class:`agent.config.models.NpmrcOutput`)."""

    __slots__ = ()

    def written_files(self, connection: str, where: KeyPath) -> Iterator[WrittenFile]:  # noqa: ARG002
        """Its npmrc, shareable: each npmrc output replaces only its own lines."""
        yield "path", self.path, ("merged", "npmrc")


class MavenSettingsRules(FeedOutputRules):
    """A Maven settings.xml (:class:`agent.config.models.MavenSettingsOutput`)."""

    __slots__ = ()


class FeedEnvFileRules(FeedOutputRules):
    """Feed credentials as variables (:class:`agent.config.models.FeedEnvFileOutput`)."""

    __slots__ = ()

    if TYPE_CHECKING:
        dialect: Dialect


OUTPUT_RULES: dict[str, type[OutputRules]] = {
    "token_file": TokenFileRules,
    "federated_token_file": FederatedTokenFileRules,
    "env_file": EnvFileRules,
    "pipeline_variables": PipelineVariablesRules,
    "docker_config": DockerConfigRules,
    "npmrc": NpmrcRules,
    "maven_settings": MavenSettingsRules,
    "feed_env_file": FeedEnvFileRules,
}
"""The rules of each output kind, by its ``kind``."""


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

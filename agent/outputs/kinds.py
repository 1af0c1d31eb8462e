"""The output-kind registry: one renderer per output kind, the runner's only seam to them.

Each kind's model (:mod:`agent.config.models`) answers what the kind needs and writes (access
token, OIDC token, registry exchange, feeds, files, how it is described); its renderer here
turns the tokens of one delivery into the files or logging commands it consists of, as Vault
Agent's sinks do behind one interface. :data:`KINDS` maps every ``kind`` of the ``Output``
union to its renderer, so the runner, the plan and the checks never compare kind strings.

Adding a kind: its model in :mod:`agent.config.models` (fields, and overrides of the
``_OutputModel`` answers that differ), one :class:`OutputKind` subclass here listed in
:data:`KINDS`, and their tests; ``tests/outputs/test_kinds.py`` fails until both exist.

Renderers are pure apart from reading what a :class:`TokenSource` hands them; they raise
``ValueError`` (naming a variable or field, never a value) for what their format cannot hold.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from agent.outputs.env_file import render_env_file
from agent.outputs.fields import TokenFields
from agent.outputs.pipeline_variables import render_pipeline_variables
from agent.outputs.presets import resolve_variables
from agent.outputs.token_file import render_federated_token_file, render_token_file

if TYPE_CHECKING:
    from agent.config import Output, ResolvedProfile
    from agent.config.models import (  # Feed: agent.config does not export it
        DockerConfigOutput,
        EnvFileOutput,
        FederatedTokenFileOutput,
        Feed,
        FeedEnvFileOutput,
        MavenSettingsOutput,
        NpmrcOutput,
        PipelineVariablesOutput,
        TokenFileOutput,
    )
    from agent.feeds.writer import MergedNpmrc

__all__ = ["KINDS", "OutputKind", "Rendered", "TokenSource", "kind_of", "output_fields"]


class TokenSource(Protocol):
    """What a renderer reads at delivery time; the runner (and the dry-run plan) provide it."""

    @property
    def profile(self) -> ResolvedProfile:
        """The resolved profile being delivered."""

    def fields(self, output: Output) -> TokenFields:
        """The documented fields for ``output`` (its scope's access token, ids, paths)."""

    def oidc_token(self, connection: str) -> str | None:
        """The connection's current Azure DevOps OIDC token, if held."""

    def docker_config(self, output: DockerConfigOutput) -> bytes:
        """The merged ``config.json`` for ``output`` (registry tokens exchanged already)."""


def output_fields(
    profile: ResolvedProfile,
    output: Output,
    *,
    authority: str,
    access_token: str | None,
    expires_on: int | None,
    token_type: str = "Bearer",  # noqa: S107 - the OAuth token type, not a secret
    oidc_token: str | None,
) -> TokenFields:
    """The fields of ``output`` with the given token values and its connection's identity.

    The federated token file it refers to is made absolute, as env files and variables hold it.
    """
    assert output.connection is not None
    connection = profile.connections[output.connection]
    federated = output.federated_token_reference(profile)
    return TokenFields.build(
        access_token=access_token,
        expires_on=expires_on,
        token_type=token_type,
        scope=profile.scope_for(output),
        tenant_id=connection.tenant_id,
        client_id=connection.client_id,
        subscription_id=connection.subscription_id,
        service_connection_id=connection.service_connection_id,
        authority=authority,
        cloud=connection.cloud,
        oidc_token=oidc_token,
        federated_token_file=os.path.abspath(federated) if federated else None,  # noqa: PTH100
    )


@dataclass(frozen=True)
class Rendered:
    """One delivery of an output: files in write order, or text for stdout.

    ``label``: how reports name the delivery (default: the output's target).
    """

    files: list[tuple[str, bytes | MergedNpmrc]] = field(default_factory=list)
    stdout: str | None = None
    label: str | None = None


OutputT = TypeVar("OutputT", bound="Output")
_FeedOutputT = TypeVar("_FeedOutputT", "NpmrcOutput", "MavenSettingsOutput", "FeedEnvFileOutput")


class OutputKind(ABC, Generic[OutputT]):
    """The renderer of one output kind (the sink interface)."""

    kind: ClassVar[str]

    @abstractmethod
    def render(self, output: OutputT, source: TokenSource) -> Rendered:
        """What delivering ``output`` with ``source``'s tokens writes or prints.

        Raises:
            ValueError: a value the format cannot hold, or a token it needs is missing.
        """

    def variables(self, output: OutputT, source: TokenSource) -> dict[str, str] | None:  # noqa: ARG002
        """The variables it sets (name -> value), or ``None`` for kinds that set none."""
        return None


class TokenFileKind(OutputKind["TokenFileOutput"]):
    """``token_file``: the access token, raw or as JSON."""

    kind = "token_file"

    def render(self, output: TokenFileOutput, source: TokenSource) -> Rendered:
        """The token file."""
        data = render_token_file(source.fields(output), output.format)
        return Rendered([(output.path, data)])


class FederatedTokenFileKind(OutputKind["FederatedTokenFileOutput"]):
    """``federated_token_file``: the OIDC token."""

    kind = "federated_token_file"

    def render(self, output: FederatedTokenFileOutput, source: TokenSource) -> Rendered:
        """The federated token file."""
        assert output.connection is not None
        token = source.oidc_token(output.connection)
        assert token is not None
        return Rendered([(output.path, render_federated_token_file(token))])


class EnvFileKind(OutputKind["EnvFileOutput"]):
    """``env_file``: variables in a dialect, after the federated token file they point at."""

    kind = "env_file"

    def variables(self, output: EnvFileOutput, source: TokenSource) -> dict[str, str]:
        """The preset's variables and the explicit mappings."""
        return resolve_variables(output.preset, output.variables, source.fields(output))

    def render(self, output: EnvFileOutput, source: TokenSource) -> Rendered:
        """The federated token file first (the env file points at it), then the env file."""
        assert output.connection is not None
        files: list[tuple[str, bytes | MergedNpmrc]] = []
        federated = output.effective_federated_token_path
        token = source.oidc_token(output.connection)
        if federated is not None and token is not None:
            files.append((federated, render_federated_token_file(token)))
        values = self.variables(output, source)
        text = render_env_file(values, output.dialect, unset=output.unset_variables(values))
        files.append((output.path, text.encode("utf-8")))
        return Rendered(files)


class PipelineVariablesKind(OutputKind["PipelineVariablesOutput"]):
    """``pipeline_variables``: ``##vso[task.setvariable]`` lines on stdout."""

    kind = "pipeline_variables"

    def variables(self, output: PipelineVariablesOutput, source: TokenSource) -> dict[str, str]:
        """The preset's variables and the explicit mappings."""
        return resolve_variables(output.preset, output.variables, source.fields(output))

    def render(self, output: PipelineVariablesOutput, source: TokenSource) -> Rendered:
        """The logging commands, secret ones marked ``issecret=true``."""
        values = self.variables(output, source)
        text = render_pipeline_variables(
            values, secret_names=output.secret_names(values), is_output=output.is_output
        )
        return Rendered(stdout=text, label=f"pipeline variables ({len(values)})")


class DockerConfigKind(OutputKind["DockerConfigOutput"]):
    """``docker_config``: the registries merged into a Docker ``config.json``."""

    kind = "docker_config"

    def render(self, output: DockerConfigOutput, source: TokenSource) -> Rendered:
        """The merged config.json."""
        return Rendered([(output.path, source.docker_config(output))])


class _FeedKind(OutputKind[_FeedOutputT]):
    """A feed kind: one file built from the access token and the output's feeds.

    Each kind's ``build`` imports :mod:`agent.feeds.outputs` when a profile first delivers a
    feed output: with the XML and npmrc code it brings (about 5 ms of imports), which a
    profile without feed outputs never needs.
    """

    build: Callable[[_FeedOutputT, str | None, list[Feed]], bytes | MergedNpmrc]

    def render(self, output: _FeedOutputT, source: TokenSource) -> Rendered:
        """The file (or the merge into the npmrc)."""
        token = source.fields(output).access_token
        return Rendered(
            [(output.path, type(self).build(output, token, source.profile.feeds_for(output)))]
        )


class NpmrcKind(_FeedKind["NpmrcOutput"]):
    """``npmrc``: the feeds' registry and ``_authToken`` lines merged into an npmrc."""

    kind = "npmrc"

    @staticmethod
    def build(output: NpmrcOutput, token: str | None, feeds: list[Feed]) -> MergedNpmrc:
        """:func:`agent.feeds.outputs.npmrc_merge`."""
        from agent.feeds.outputs import npmrc_merge  # noqa: PLC0415 - feed outputs only

        return npmrc_merge(output, token, feeds)


class MavenSettingsKind(_FeedKind["MavenSettingsOutput"]):
    """``maven_settings``: a settings.xml with one server per feed."""

    kind = "maven_settings"

    @staticmethod
    def build(output: MavenSettingsOutput, token: str | None, feeds: list[Feed]) -> bytes:
        """:func:`agent.feeds.outputs.maven_settings_file`."""
        from agent.feeds.outputs import maven_settings_file  # noqa: PLC0415 - feed outputs only

        return maven_settings_file(output, token, feeds)


class FeedEnvFileKind(_FeedKind["FeedEnvFileOutput"]):
    """``feed_env_file``: the feeds' NuGet, uv and twine variables in a dialect."""

    kind = "feed_env_file"

    @staticmethod
    def build(output: FeedEnvFileOutput, token: str | None, feeds: list[Feed]) -> bytes:
        """:func:`agent.feeds.outputs.feed_env_file_bytes`."""
        from agent.feeds.outputs import feed_env_file_bytes  # noqa: PLC0415 - feed outputs only

        return feed_env_file_bytes(output, token, feeds)


KINDS: dict[str, OutputKind[Output]] = {
    renderer.kind: renderer  # type: ignore[misc]
    for renderer in (
        TokenFileKind(),
        FederatedTokenFileKind(),
        EnvFileKind(),
        PipelineVariablesKind(),
        DockerConfigKind(),
        NpmrcKind(),
        MavenSettingsKind(),
        FeedEnvFileKind(),
    )
}
"""Every output kind's renderer, by the ``kind`` its model declares."""


def kind_of(output: Output) -> OutputKind[Output]:
    """The renderer of ``output``'s kind."""
    return KINDS[output.kind]

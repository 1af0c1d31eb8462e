"""``azauth exec --registry HOST``: a private Docker config for the command's container registries.

The supervisor's profile gets one more output, a ``docker_config`` in ``auths`` mode (the ACR
refresh token of each registry as its identity token, renewed by the watch that keeps every
output fresh), written to ``<private directory>/docker/config.json``. The command gets
``DOCKER_CONFIG`` (the Docker CLI, crane, oras, helm) and ``REGISTRY_AUTH_FILE`` (skopeo,
podman, buildah) pointing there; the directory is removed when the command has exited. The
command needs neither the system access token nor ``docker-credential-azauth``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from agent import envvars
from agent.config.models import DockerConfigOutput
from agent.config.resolution import ResolvedProfile
from agent.credential_helpers.docker import registry_host
from agent.exceptions import UsageError
from agent.registries.tokens import RegistryNotServedError, served_registry
from agent.supervisor import EnvProvider, ExecContext, make_private_directory

__all__ = ["RegistrySetup", "registry_setup"]


@dataclasses.dataclass(frozen=True)
class RegistrySetup:
    """The profile to supervise, the env provider and the directory to remove afterwards."""

    profile: ResolvedProfile
    provider: EnvProvider
    directory: Path

    def remove(self) -> None:
        """Delete the private directory (idempotent)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def registry_setup(
    profile: ResolvedProfile, hosts: Sequence[str], env: Mapping[str, str], *, outputs: bool
) -> RegistrySetup:
    """Plan ``--registry`` for ``hosts``; ``outputs`` false keeps only the registry output.

    Messages start with ``registry`` (the CLI names its flag ``--registry`` instead).

    Raises:
        UsageError: a host is not a registry the profile serves, or the hosts need different
            connections or scopes (one file, one connection).
    """
    served: dict[str, tuple[str, str]] = {}
    for host in hosts:
        try:
            registry = registry_host(host)
            served[registry] = served_registry(profile, registry)
        except (ValueError, RegistryNotServedError):
            known = ", ".join(profile.registries) or "none"
            raise UsageError(
                f"registry {host!r}: profile {profile.name!r} does not serve this registry "
                f"(its registries: {known}; a profile with one connection serves *.azurecr.io)"
            ) from None
    bindings = set(served.values())
    if len(bindings) != 1:
        raise UsageError(
            "registry: the registries need different connections or scopes (one private "
            "Docker configuration is for one connection)"
        )
    ((connection, scope),) = bindings
    directory = make_private_directory(env)
    config = directory / "docker" / "config.json"
    output = DockerConfigOutput(
        kind="docker_config",
        connection=connection,
        path=str(config),
        mode="auths",
        registries=list(served),
        scope=scope,
    )
    kept = list(profile.outputs) if outputs else []
    extended = dataclasses.replace(profile, outputs=[*kept, output])

    @asynccontextmanager
    async def provide(context: ExecContext) -> AsyncIterator[Mapping[str, str]]:
        del context
        yield {envvars.DOCKER_CONFIG: str(config.parent), envvars.REGISTRY_AUTH_FILE: str(config)}

    return RegistrySetup(extended, provide, directory)

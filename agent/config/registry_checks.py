"""Load-time checks of ``docker_config`` outputs against the profile's ``registries`` table.

Run by :func:`agent.config.resolution.check_config` for every profile, on its own and its
inherited outputs (a profile that extends another changes the table those outputs use):

- an output that would write no registry (it would silently write ``{}``);
- an ``auths`` output naming a registry the table gives to another connection (the output
  exchanges a token of its own connection);
- an ``auths`` output whose registries need different Entra scopes (it exchanges one token).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.config.problems import KeyPath, Problem
from agent.config.rules import DockerConfigRules

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent.config.models import AzauthConfig

__all__ = ["docker_config_problems"]

_Table = dict[str, tuple[str, "str | None"]]


def docker_config_problems(
    config: AzauthConfig, name: str, lineage: list[str]
) -> Iterator[Problem]:
    """The problems of profile ``name``'s docker_config outputs (``lineage``: root first)."""
    table = _registry_table(config, lineage)
    implicit = not table and len(_connection_names(config, lineage)) == 1
    for depth, owner in enumerate(lineage):
        owner_connections = _connection_names(config, lineage[: depth + 1])
        for index, output in enumerate(config.profiles[owner].outputs):
            if not isinstance(output, DockerConfigRules):
                continue
            connection = output.connection
            if connection is None and len(owner_connections) == 1:
                connection = owner_connections[0]
            if connection is None or connection not in config.connections:
                continue  # reported with the output itself
            where: KeyPath = ("profiles", owner, "outputs", index, "registries")
            context = _Context(config, name, owner, table, connection, implicit=implicit)
            yield from context.problems(where, output)


class _Context:
    """One output as profile ``name`` resolves it."""

    def __init__(
        self,
        config: AzauthConfig,
        name: str,
        owner: str,
        table: _Table,
        connection: str,
        *,
        implicit: bool,
    ) -> None:
        self.config = config
        self.implicit = implicit
        self.name = name
        self.table = table
        self.connection = connection
        self.suffix = "" if owner == name else f" (in profile {name!r}, which extends it)"

    def problems(self, where: KeyPath, output: DockerConfigRules) -> Iterator[Problem]:
        listed = list(output.registries)
        if listed:
            hosts = listed
        elif output.mode == "credHelpers":
            hosts = list(self.table)
        else:
            hosts = [host for host, (by, _) in self.table.items() if by == self.connection]
        if not hosts:
            yield self._nothing_written(where)
        elif output.mode == "auths":
            yield from self._auths_problems(where, hosts, listed=bool(listed), own=output.scope)

    def _nothing_written(self, where: KeyPath) -> Problem:
        if self.table:
            why = f"no registry of profile {self.name!r} uses connection {self.connection!r}"
        else:
            why = f"profile {self.name!r} has no registries table"
        implicit = self.implicit
        return Problem(
            where,
            f"this docker_config output writes no registry{self.suffix}: {why}",
            "registry hosts in `registries`"
            + (" (a profile with one connection serves *.azurecr.io)" if implicit else "")
            + f", or a profiles.{self.name}.registries table",
        )

    def _auths_problems(
        self, where: KeyPath, hosts: list[str], *, listed: bool, own: str | None
    ) -> Iterator[Problem]:
        from agent.registries.acr import acr_scope, is_acr_host  # noqa: PLC0415 - imports azure-core

        cloud = self.config.connections[self.connection].cloud
        scopes: dict[str, list[str]] = {}
        for position, host in enumerate(hosts):
            served_by, scope = self.table.get(host, (self.connection, None))
            if served_by != self.connection:
                yield Problem(
                    (*where, position) if listed else where,
                    f"registry {host!r} uses connection {served_by!r} in "
                    f"profiles.{self.name}.registries, but this auths output exchanges a "
                    f"token of connection {self.connection!r}{self.suffix}",
                    "registries of the output's connection (one docker_config output per "
                    "connection)",
                )
            elif own is None and (host in self.table or is_acr_host(host)):
                scopes.setdefault(scope or acr_scope(host, cloud), []).append(host)
        if len(scopes) > 1:
            needs = "; ".join(f"{', '.join(names)}: {scope}" for scope, names in scopes.items())
            yield Problem(
                where,
                f"the registries of this auths output need different Entra scopes ({needs})"
                f"{self.suffix}; it exchanges one token",
                "registries with one scope, a `scope` on the output, or one output per scope",
            )


def _registry_table(config: AzauthConfig, lineage: list[str]) -> _Table:
    """Registry host -> (connection, scope or ``None``), inherited entries overridden."""
    table: _Table = {}
    for depth, ancestor in enumerate(lineage):
        owner_connections = _connection_names(config, lineage[: depth + 1])
        for host, binding in config.profiles[ancestor].registries.items():
            connection = binding.connection
            if connection is None and owner_connections:
                connection = owner_connections[0]
            table[host] = (connection or "", binding.scope)
    return table


def _connection_names(config: AzauthConfig, lineage: list[str]) -> list[str]:
    listed = (c for ancestor in lineage for c in config.profiles[ancestor].connections)
    return [c for c in dict.fromkeys(listed) if c in config.connections]

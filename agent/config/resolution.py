"""Profile inheritance (``extends``) and the checks that span several parts of a profile file.

A profile that ``extends`` another inherits its connections and outputs; its own entries are
appended. Chains are allowed, cycles are not. :func:`check_config` finds every cross-reference
problem of a parsed file; :func:`resolve_profile` flattens one profile of a valid file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from agent.config.feeds import feed_problems
from agent.config.fschecks import filesystem_problem
from agent.config.problems import (
    KeyPath,
    Problem,
    connection_problems,
    did_you_mean,
    format_key_path,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent.config.models import (
        AzauthConfig,
        Connection,
        Feed,
        Output,
        Profile,
        RegistryBinding,
        Settings,
    )

__all__ = [
    "ResolvedProfile",
    "check_config",
    "profile_lineage",
    "resolve_profile",
    "written_paths",
]

_SHARED_FILE_RULE = (
    "a different path for each output (outputs may share a file only when both keep the same "
    "connection's federated token there)"
)


@dataclass(frozen=True)
class ResolvedProfile:
    """One profile with ``extends`` applied and every output's ``connection`` filled in.

    Attributes:
        name: the profile's name.
        description: its own description (not inherited).
        connections: the connections it uses, by name, inherited ones first.
        outputs: inherited outputs first, then its own; ``connection`` is never ``None``.
        settings: the file's settings after environment and command-line overrides.
        registries: container registry host -> binding, inherited ones overridden by the
            profile's own; every binding's ``connection`` is filled in.
        feeds: inherited feeds first, then its own; ``connection`` is never ``None``.
        az_login: its own ``az_login`` option (not inherited).
    """

    name: str
    description: str | None
    connections: dict[str, Connection]
    outputs: list[Output]
    settings: Settings
    registries: dict[str, RegistryBinding] = dataclasses.field(default_factory=dict)
    feeds: list[Feed] = dataclasses.field(default_factory=list)
    az_login: bool = False

    def feeds_for(self, output: Output) -> list[Feed]:
        """The feeds a feed output configures: those it names, else its connection's feeds."""
        names = output.feed_names()
        if names:
            by_name = {feed.name: feed for feed in self.feeds}
            return [by_name[name] for name in names if name in by_name]
        return [feed for feed in self.feeds if feed.connection == output.connection]

    def scope_for(self, output: Output) -> str | None:
        """The scope of the access token ``output`` uses; ``None`` for federated token files."""
        return output.token_scope(self)

    def federated_token_file_for(self, connection: str) -> str | None:
        """A file this profile keeps ``connection``'s federated token in, if it has one."""
        for output in self.outputs:
            kept = output.kept_federated_token() if output.connection == connection else None
            if kept is not None:
                return kept
        return None


def profile_lineage(profiles: Mapping[str, Profile], name: str) -> list[str]:
    """Return ``name`` and its ancestors, the root first; stops at an unknown name or a cycle."""
    chain: list[str] = []
    current: str | None = name
    while current is not None and current in profiles and current not in chain:
        chain.append(current)
        current = profiles[current].extends
    return chain[::-1]


def resolve_profile(config: AzauthConfig, name: str) -> ResolvedProfile:
    """Flatten profile ``name`` of a validated ``config`` (``check_config`` found no problem).

    An output without ``connection`` belongs to the only connection of the profile that
    defines it: a profile that extends it and adds connections does not change its meaning.
    """
    lineage = profile_lineage(config.profiles, name)
    connections = {c: config.connections[c] for c in _connection_names(config, lineage)}
    filled: list[Output] = []
    feeds: list[Feed] = []
    registries: dict[str, RegistryBinding] = {}
    for depth, ancestor in enumerate(lineage):
        owners = _connection_names(config, lineage[: depth + 1])
        profile = config.profiles[ancestor]
        filled += [_owned(output, owners) for output in profile.outputs]
        feeds += [_owned(feed, owners) for feed in profile.feeds]
        registries.update({host: _owned(b, owners) for host, b in profile.registries.items()})
    description = config.profiles[name].description
    return ResolvedProfile(
        name,
        description,
        connections,
        filled,
        config.settings,
        registries=registries,
        feeds=feeds,
        az_login=config.profiles[name].az_login,
    )


class _Owned(Protocol):
    connection: str | None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Pydantic's copy with fields replaced."""


_OwnedT = TypeVar("_OwnedT", bound=_Owned)


def _owned(item: _OwnedT, owners: list[str]) -> _OwnedT:
    """``item`` with its ``connection`` filled in: the first of its owner profile's ``owners``."""
    if item.connection is not None:
        return item
    return item.model_copy(update={"connection": owners[0]})


def _connection_names(config: AzauthConfig, lineage: list[str]) -> list[str]:
    """The defined connections the profiles of ``lineage`` list, once each, in order."""
    listed = (c for ancestor in lineage for c in config.profiles[ancestor].connections)
    return list(dict.fromkeys(c for c in listed if c in config.connections))


def check_config(config: AzauthConfig) -> list[Problem]:
    """Return every cross-reference problem of ``config``, each at its own key path."""
    problems: dict[KeyPath, Problem] = {}

    def add(problem: Problem) -> None:
        problems.setdefault(problem.path, problem)

    names = list(config.profiles)
    if not names:
        add(Problem(("profiles",), "no profile is defined", "at least one [profiles.NAME] table"))
    if config.default_profile is not None and config.default_profile not in config.profiles:
        add(_unknown("default_profile", config.default_profile, names, "profile"))
    for problem in _reference_problems(config):
        add(problem)
    # Profiles whose extends chain is broken are not resolved: fixing the chain comes first.
    broken = {
        name
        for name, profile in config.profiles.items()
        if profile.extends is not None and profile.extends not in config.profiles
    }
    for problem in _lineage_problems(config.profiles):
        add(problem)
        broken.add(str(problem.path[1]))
    for name in names:
        lineage = profile_lineage(config.profiles, name)
        if any(ancestor in broken for ancestor in lineage):
            continue
        for problem in _resolved_problems(config, name, lineage):
            add(problem)
    return list(problems.values())


def _unknown(key: str, value: str, choices: list[str], what: str) -> Problem:
    expected = f"one of: {', '.join(choices)}" if choices else f"a {what} defined in the file"
    return Problem((key,), f"unknown {what} {value!r}{did_you_mean(value, choices)}", expected)


def _reference_problems(config: AzauthConfig) -> Iterator[Problem]:
    """Profiles naming connections or parent profiles that do not exist."""
    defined = list(config.connections)
    for name, profile in config.profiles.items():
        for index, connection in enumerate(profile.connections):
            where = ("profiles", name, "connections", index)
            if connection not in config.connections:
                expected = (
                    f"a connection defined under [connections]: {', '.join(defined)}"
                    if defined
                    else "a connection defined under [connections.NAME]"
                )
                message = f"unknown connection {connection!r}{did_you_mean(connection, defined)}"
                yield Problem(where, message, expected)
            elif connection in profile.connections[:index]:
                yield Problem(where, f"connection {connection!r} is listed twice", "each once")
        if profile.extends is not None and profile.extends not in config.profiles:
            others = [other for other in config.profiles if other != name]
            unknown = _unknown("extends", profile.extends, others, "profile")
            yield Problem(("profiles", name, "extends"), unknown.message, unknown.expected)


def _lineage_problems(profiles: Mapping[str, Profile]) -> Iterator[Problem]:
    """``extends`` cycles (each reported once, at its first member in file order)."""
    reported: set[str] = set()
    for name in profiles:
        path = [name]
        current = profiles[name].extends
        while current is not None and current in profiles and current not in path:
            path.append(current)
            current = profiles[current].extends
        if current is None or current not in profiles:
            continue
        cycle = path[path.index(current) :]
        if reported.intersection(cycle):
            continue
        reported.update(cycle)
        first = next(member for member in profiles if member in cycle)
        start = cycle.index(first)
        ordered = cycle[start:] + cycle[:start] + [first]
        yield Problem(
            ("profiles", first, "extends"),
            f"extends cycle: {' -> '.join(ordered)}",
            "a chain of extends that ends at a profile without extends",
        )


def _resolved_problems(config: AzauthConfig, name: str, lineage: list[str]) -> Iterator[Problem]:
    """Problems that show only once ``extends`` is applied: connections, outputs, paths.

    Outputs are checked against the profile that defines them; the files they write are
    checked in every profile that inherits them.
    """
    connections = _connection_names(config, lineage)
    if not connections:
        if not any(config.profiles[ancestor].connections for ancestor in lineage):
            yield Problem(
                ("profiles", name, "connections"),
                f"profile {name!r} uses no connection",
                "at least one connection name from [connections]",
            )
        return  # otherwise only unknown names, each already reported
    for index, output in enumerate(config.profiles[name].outputs):
        yield from _output_problems(config, name, ("profiles", name, "outputs", index), output)
    yield from _registry_problems(config, name, lineage, connections)
    resolved = list(_lineage_outputs(config, lineage, connections))
    yield from _path_problems(resolved)
    yield from _pipeline_variable_problems(config, name, resolved)
    yield from feed_problems(config, name, lineage, connections)


def _registry_problems(
    config: AzauthConfig, name: str, lineage: list[str], connections: list[str]
) -> Iterator[Problem]:
    """Registry bindings naming a foreign connection; docker_config registries not served."""
    for host, binding in config.profiles[name].registries.items():
        where = ("profiles", name, "registries", host, "connection")
        if binding.connection is None and len(connections) > 1:
            yield Problem(
                where,
                f"missing required key: profile {name!r} uses several connections",
                f"one of: {', '.join(connections)}",
            )
        elif binding.connection is not None and binding.connection not in connections:
            yield Problem(
                where,
                f"connection {binding.connection!r} is not used by profile {name!r}"
                f"{did_you_mean(binding.connection, connections)}",
                f"one of: {', '.join(connections)}",
            )
    from agent.config.registry_checks import docker_config_problems  # noqa: PLC0415

    yield from docker_config_problems(config, name, lineage)
    served = {host for ancestor in lineage for host in config.profiles[ancestor].registries}
    implicit = not served and len(connections) == 1
    for index, output in enumerate(config.profiles[name].outputs):
        at: KeyPath = ("profiles", name, "outputs", index)
        yield from output.registry_problems(name, at, served, implicit=implicit)


def _lineage_outputs(
    config: AzauthConfig, lineage: list[str], connections: list[str]
) -> Iterator[tuple[KeyPath, Output, str]]:
    """The outputs of a resolved profile with their key paths and connections, in order.

    Outputs whose connection is missing or foreign are left out: they are reported with the
    output's own profile.
    """
    for depth, owner in enumerate(lineage):
        owner_connections = _connection_names(config, lineage[: depth + 1])
        for index, output in enumerate(config.profiles[owner].outputs):
            connection = output.connection
            if connection is None and len(owner_connections) == 1:
                connection = owner_connections[0]
            if connection is not None and connection in connections:
                yield ("profiles", owner, "outputs", index), output, connection


def _path_problems(resolved: list[tuple[KeyPath, Output, str]]) -> Iterator[Problem]:
    """Two outputs writing the same file; a file where another output needs a directory.

    ``out/x`` and ``out/x/y`` cannot both be written: the first makes ``out/x`` a file.
    """
    writers: dict[str, tuple[tuple[object, ...], KeyPath]] = {}
    for where, output, connection in resolved:
        for key, target, identity in output.written_files(connection, where):
            # Not Path.resolve(): symlinks are the writer's business; equal spellings ours.
            normalized = os.path.normcase(os.path.abspath(target))  # noqa: PTH100
            first = writers.get(normalized)
            if first is None:
                writers[normalized] = (identity, (*where, key))
            elif first[0] != identity or identity[0] not in {"federated", "merged"}:
                yield Problem(
                    (*where, key),
                    f"{target!r} is also written by {format_key_path(first[1])}",
                    _SHARED_FILE_RULE,
                )
    for normalized, (_, key_path) in writers.items():
        problem = filesystem_problem(normalized)
        if problem is not None:
            yield Problem(key_path, f"{normalized!r} {problem}", _WRITABLE_RULE)
            continue
        for parent in PurePath(normalized).parents:
            other = writers.get(str(parent))
            if other is not None:
                yield Problem(
                    key_path,
                    f"needs the directory {str(parent)!r}, which {format_key_path(other[1])} "
                    "writes as a file",
                    "paths where no output's file is another output's directory",
                )
                break


_WRITABLE_RULE = "a path where a regular file can be written (not a directory, no file on the way)"


def written_paths(config: AzauthConfig) -> list[str]:
    """Every file the profiles of a valid ``config`` write, absolute and normalized, sorted.

    The paths :func:`check_config` asks the file system about (:mod:`agent.config.fschecks`).
    """
    found: set[str] = set()
    for name in config.profiles:
        lineage = profile_lineage(config.profiles, name)
        connections = _connection_names(config, lineage)
        for where, output, connection in _lineage_outputs(config, lineage, connections):
            for _, target, _ in output.written_files(connection, where):
                found.add(os.path.normcase(os.path.abspath(target)))  # noqa: PTH100
    return sorted(found)


def _pipeline_variable_problems(
    config: AzauthConfig, name: str, resolved: list[tuple[KeyPath, Output, str]]
) -> Iterator[Problem]:
    """Pipeline variables set twice, and presets pointing at a file the profile never writes.

    Two ``##vso[task.setvariable]`` lines for one name: the later silently overwrites the
    earlier (through ``extends`` too, and between a preset and another output's mapping).
    """
    setters: dict[str, KeyPath] = {}
    keeps_file = {
        connection
        for _, output, connection in resolved
        if output.kept_federated_token() is not None
    }
    for where, output, connection in resolved:
        names = output.pipeline_variable_names(config.connections[connection], where)
        if connection not in keeps_file:
            problem = output.federated_token_problem(name, where, connection)
            if problem is not None:
                yield problem
        for variable, key_path in names:
            first = setters.get(variable)
            if first is None:
                setters[variable] = key_path
            elif first[:4] != key_path[:4]:
                yield Problem(
                    key_path,
                    f"pipeline variable {variable} is also set by {format_key_path(first)}; the "
                    "later line would silently overwrite the earlier",
                    "each pipeline variable set by one output of the profile",
                )


def _output_problems(
    config: AzauthConfig, name: str, where: KeyPath, output: Output
) -> Iterator[Problem]:
    """A missing, ambiguous or foreign ``connection``, and variables it cannot fill."""
    connections = _connection_names(config, profile_lineage(config.profiles, name))
    connection = output.connection
    if connection is None and len(connections) == 1:
        connection = connections[0]
    problems = list(connection_problems(name, where, connection, connections))
    if problems or connection is None:
        yield from problems
        return
    yield from output.connection_problems(config.connections[connection], connection, where)

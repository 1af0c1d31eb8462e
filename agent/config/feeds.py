"""The checks of a profile's ``feeds`` and of the outputs that configure feed clients.

Run by :func:`agent.config.resolution.check_config` once ``extends`` is applied; each problem is
reported at the key that holds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.config.problems import KeyPath, Problem, connection_problems, did_you_mean
from agent.feeds.urls import parse_feed_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent.config.models import AzauthConfig, Feed

__all__ = ["feed_problems"]


def _owner(feed: Feed, owner_connections: list[str]) -> str | None:
    if feed.connection is not None:
        return feed.connection
    return owner_connections[0] if len(owner_connections) == 1 else None


def feed_problems(
    config: AzauthConfig, name: str, lineage: list[str], connections: list[str]
) -> Iterator[Problem]:
    """Problems of profile ``name``'s own feeds and feed outputs (``extends`` applied)."""
    resolved: dict[str, tuple[str | None, bool]] = {}  # feed name -> (connection, is a feed)
    for depth, ancestor in enumerate(lineage):
        owner_connections = [c for c in connections if _listed(config, lineage[: depth + 1], c)]
        for index, feed in enumerate(config.profiles[ancestor].feeds):
            where: KeyPath = ("profiles", ancestor, "feeds", index)
            own = ancestor == name
            if feed.name in resolved:
                if own:
                    yield Problem(
                        (*where, "name"), f"feed {feed.name!r} is defined twice", "unique names"
                    )
                continue
            connection = _owner(feed, owner_connections)
            if own:
                yield from connection_problems(name, where, connection, owner_connections)
            resolved[feed.name] = (connection, parse_feed_url(feed.url).feed is not None)
    for index, output in enumerate(config.profiles[name].outputs):
        names = output.feed_names()
        if names is None:
            continue
        where = ("profiles", name, "outputs", index)
        yield from _output_feed_problems(name, where, output, connections, resolved, names=names)


def _listed(config: AzauthConfig, lineage: list[str], connection: str) -> bool:
    return any(connection in config.profiles[ancestor].connections for ancestor in lineage)


def _output_feed_problems(
    name: str,
    where: KeyPath,
    output: object,
    connections: list[str],
    resolved: dict[str, tuple[str | None, bool]],
    *,
    names: list[str],
) -> Iterator[Problem]:
    connection = getattr(output, "connection", None)
    if connection is None and len(connections) == 1:
        connection = connections[0]
    if connection is None or connection not in connections:
        return  # reported by the output checks
    for position, feed_name in enumerate(names):
        entry = resolved.get(feed_name)
        key: KeyPath = (*where, "feeds", position)
        if entry is None:
            choices = list(resolved)
            yield Problem(
                key,
                f"unknown feed {feed_name!r}{did_you_mean(feed_name, choices)}",
                f"one of: {', '.join(choices)}" if choices else f"a feed in profiles.{name}.feeds",
            )
        elif entry[0] != connection:
            yield Problem(
                key,
                f"feed {feed_name!r} is read by connection {entry[0]!r}, not {connection!r}",
                "feeds of the output's connection (one output per connection)",
            )
        elif not entry[1]:
            yield Problem(
                key,
                f"feed {feed_name!r} names an organization, which has no client endpoints",
                "a feed URL ending in /_packaging/FEED",
            )
    if not names and not any(c == connection and is_feed for c, is_feed in resolved.values()):
        yield Problem(
            (*where, "feeds"),
            f"connection {connection!r} reads no feed of profile {name!r}",
            f"a feed URL in profiles.{name}.feeds read by connection {connection!r}",
        )

"""``azauth profiles``: list the profiles of a profile file, marking the active one."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from agent._pipelines import pipeline_safe
from agent.cli.validate import add_config_argument
from agent.exceptions import ConfigError, ExitCode

if TYPE_CHECKING:
    from agent.config import Connection, LoadedConfig, Output, ResolvedProfile

__all__ = ["register", "render_profiles", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``profiles`` command."""
    parser = subparsers.add_parser(
        "profiles",
        help="list the profiles, their connections and outputs",
        description=(
            "List every profile with its connections and outputs (extends applied). The active "
            "profile (AZAUTH_PROFILE, else default_profile, else the only one) is marked with *."
        ),
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the listing on stdout; a note on stderr when no profile is active."""
    from agent.config import load_config  # noqa: PLC0415 - keep --help fast

    loaded = load_config(args.config)
    try:
        active: str | None = loaded.select_profile_name()
    except ConfigError as exc:
        active = None
        print(f"azauth: note: no active profile: {pipeline_safe(str(exc))}", file=sys.stderr)
    sys.stdout.write(pipeline_safe(render_profiles(loaded, active)))
    return ExitCode.OK


def render_profiles(loaded: LoadedConfig, active: str | None) -> str:
    """Return the listing: one block per profile, the active one marked ``*``."""
    lines: list[str] = []
    for name in loaded.profile_names:
        profile = loaded.profile(name)
        extends = loaded.config.profiles[name].extends
        title = f"{'*' if name == active else ' '} {name}"
        if name == active:
            title += " (active)"
        if profile.description:
            title += f": {profile.description}"
        lines.append(title)
        if extends:
            lines.append(f"    extends {extends}")
        lines.extend(
            _connection_line(connection_name, connection)
            for connection_name, connection in profile.connections.items()
        )
        lines.extend(
            f"    feed {feed.name}: {feed.url} (connection {feed.connection})"
            for feed in profile.feeds
        )
        lines.extend(_output_line(profile, output) for output in profile.outputs)
        if not profile.outputs:
            lines.append("    (no outputs)")
        lines.extend(
            f"    registry {host}: connection {binding.connection}"
            + (f", scope {binding.scope}" if binding.scope else "")
            for host, binding in profile.registries.items()
        )
    return "\n".join(lines) + "\n"


def _connection_line(name: str, connection: Connection) -> str:
    parts = [
        f"tenant {connection.tenant_id}",
        f"client id {connection.client_id}",
        f"service connection {connection.service_connection_id}",
    ]
    if connection.subscription_id:
        parts.append(f"subscription {connection.subscription_id}")
    if connection.cloud != "public":
        parts.append(f"cloud {connection.cloud}")
    return f"    connection {name}: {', '.join(parts)}"


def _output_line(profile: ResolvedProfile, output: Output) -> str:
    details = [f"connection {output.connection}", *output.describe(profile)]
    return f"    {output.kind} -> {output.target} ({'; '.join(details)})"

"""The files of the feed output kinds (npmrc, maven_settings, feed_env_file) for the runner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.feeds.render import feed_variables, render_maven_settings, targets
from agent.feeds.writer import MergedNpmrc
from agent.outputs.env_file import render_env_file

if TYPE_CHECKING:
    from agent.config.models import Feed, Output

__all__ = ["feed_files"]


def feed_files(
    output: Output, token: str | None, feeds: list[Feed]
) -> list[tuple[str, bytes | MergedNpmrc]]:
    """What delivering ``output`` writes: file content, or a merge into an npmrc.

    Raises:
        ValueError: no token, no feed with client endpoints, or a value the format cannot hold.
    """
    if not token:
        raise ValueError("no access token for the feeds")
    found = targets(feeds)
    if not found:
        raise ValueError("no feed URL (down to /_packaging/FEED) for this output")
    if output.kind == "npmrc":
        assert output.connection is not None
        return [(output.path, MergedNpmrc(output.path, output.connection, found, token))]
    if output.kind == "maven_settings":
        return [(output.path, render_maven_settings(found, token))]
    assert output.kind == "feed_env_file"
    text = render_env_file(feed_variables(found, token), output.dialect)
    return [(output.path, text.encode("utf-8"))]

"""The files of the feed output kinds (npmrc, maven_settings, feed_env_file) for the runner.

:mod:`agent.outputs.kinds` calls one function per kind; each raises ``ValueError`` when there
is no token or no feed with client endpoints, or a value its format cannot hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.feeds.render import feed_variables, render_maven_settings, targets
from agent.feeds.writer import MergedNpmrc
from agent.outputs.env_file import render_env_file

if TYPE_CHECKING:
    from agent.config.models import Feed, FeedEnvFileOutput, MavenSettingsOutput, NpmrcOutput
    from agent.feeds.render import FeedTarget

__all__ = ["feed_env_file_bytes", "maven_settings_file", "npmrc_merge"]


def _targets(token: str | None, feeds: list[Feed]) -> tuple[str, list[FeedTarget]]:
    if not token:
        raise ValueError("no access token for the feeds")
    found = targets(feeds)
    if not found:
        raise ValueError("no feed URL (down to /_packaging/FEED) for this output")
    return token, found


def npmrc_merge(output: NpmrcOutput, token: str | None, feeds: list[Feed]) -> MergedNpmrc:
    """The merge of this connection's registry and ``_authToken`` lines into the npmrc."""
    token, found = _targets(token, feeds)
    assert output.connection is not None
    return MergedNpmrc(output.path, output.connection, found, token)


def maven_settings_file(output: MavenSettingsOutput, token: str | None, feeds: list[Feed]) -> bytes:  # noqa: ARG001 - one signature per kind
    """A complete ``settings.xml``."""
    token, found = _targets(token, feeds)
    return render_maven_settings(found, token)


def feed_env_file_bytes(output: FeedEnvFileOutput, token: str | None, feeds: list[Feed]) -> bytes:
    """The feed variables in the output's dialect."""
    token, found = _targets(token, feeds)
    return render_env_file(feed_variables(found, token), output.dialect).encode("utf-8")

"""``azauth exec --feeds``: every feed client configured privately for one command.

:func:`prepare` creates a private directory (``0700``, under ``$AGENT_TEMPDIRECTORY`` when it
exists) and adds outputs to the profile that ``azauth exec`` delivers and keeps fresh:

- for each connection that reads a feed, a token file ``<dir>/<connection>.feed-token`` (scope
  Azure DevOps), and ``<dir>/feeds.json`` routing each feed URL to it: the keyring backend of
  pip, uv and twine in the command reads them (``AZAUTH_FEEDS_DIR``), always the current token;
- ``UV_KEYRING_PROVIDER=subprocess`` unless already set;
- an npmrc ``<dir>/npmrc``: a copy of the user's npmrc (``NPM_CONFIG_USERCONFIG``, else
  ``~/.npmrc``, through a link if it is one) with each connection's feed lines merged in,
  given to npm as ``NPM_CONFIG_USERCONFIG``; npm reads it when it starts, so every npm run sees
  the current token.

The command also gets the NuGet variables (``VSS_NUGET_EXTERNAL_FEED_ENDPOINTS``,
``VSS_NUGET_ACCESSTOKEN``, ``VSS_NUGET_URI_PREFIXES``, ``NuGetPackageSourceCredentials_*``) and
uv's ``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD``. Variables cannot change in a running process:
they hold the token current when the command starts (an Entra token for Azure DevOps lives
about an hour). twine's variables are not set: twine asks the keyring, which stays current.

:meth:`FeedExec.cleanup` removes the directory after the command exited.
"""

# ruff: noqa: PTH118 - str paths, as the runner's outputs
from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent import envvars
from agent.exceptions import ConfigError
from agent.feeds.lookup import FEEDS_DIR_ENV, write_exec_routes
from agent.feeds.render import feed_variables, targets
from agent.feeds.urls import AZURE_DEVOPS_SCOPE
from agent.feeds.writer import read_text

if TYPE_CHECKING:
    from agent.config import Output, ResolvedProfile
    from agent.supervisor import ExecContext

__all__ = ["KEYRING_PROVIDERS", "NPMRC_ENV", "FeedExec", "prepare", "user_npmrc"]

NPMRC_ENV = envvars.NPM_CONFIG_USERCONFIG
KEYRING_PROVIDERS = {envvars.UV_KEYRING_PROVIDER: "subprocess"}
"""Set for the command unless already set: uv runs the ``keyring`` command (its index URL must
name a user, e.g. ``https://VssSessionToken@...``). pip's choice is left to the caller: ``import``
works only when pip's own environment has keyring and azauth, ``subprocess`` only when it does
not (pip skips a ``keyring`` command in its own environment)."""


def user_npmrc(env: Mapping[str, str]) -> str:
    """The user's npmrc: ``NPM_CONFIG_USERCONFIG`` (any case npm accepts), else ``~/.npmrc``."""
    for name, value in env.items():
        if name.upper() == NPMRC_ENV and value:
            return value
    home = env.get(envvars.HOME) or os.path.expanduser("~")  # noqa: PTH111
    return os.path.join(home, ".npmrc")


@dataclass
class FeedExec:
    """The private feed setup of one ``azauth exec``.

    Attributes:
        profile: the profile to deliver: its outputs plus the feed outputs.
        directory: the private directory.
        token_files: the token file of each connection that reads a feed.
        npmrc: the private npmrc, or ``None`` when no feed has client endpoints.
    """

    profile: ResolvedProfile
    directory: str
    token_files: dict[str, str]
    npmrc: str | None

    @asynccontextmanager
    async def provide(self, context: ExecContext) -> AsyncIterator[Mapping[str, str]]:
        """The env provider: the command's feed variables (see the module docstring)."""
        variables: dict[str, str] = {FEEDS_DIR_ENV: self.directory}
        # pip and uv consult keyring only when told to; the caller's own choice wins.
        variables.update(
            (name, provider)
            for name, provider in KEYRING_PROVIDERS.items()
            if not context.env.get(name)
        )
        if self.npmrc is not None:
            variables[NPMRC_ENV] = self.npmrc
        for connection in self.token_files:
            report = context.runner.reports.get(connection)
            info = report.tokens.get(AZURE_DEVOPS_SCOPE) if report is not None else None
            feeds = [feed for feed in self.profile.feeds if feed.connection == connection]
            found = targets(feeds)
            if info is not None and found:
                variables.update(
                    (name, value)
                    for name, value in feed_variables(found, info.token).items()
                    if not name.startswith("TWINE_")
                )
        yield variables

    def cleanup(self) -> None:
        """Remove the private directory (safe to call twice)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def prepare(profile: ResolvedProfile, env: Mapping[str, str], *, outputs: bool) -> FeedExec:
    """Create the private directory and the profile to deliver (``outputs``: keep its own).

    Raises:
        ConfigError: the profile lists no feed.
        OutputError: the user's npmrc cannot be read, or the copy cannot be written.
    """
    from agent.config.models import NpmrcOutput, TokenFileOutput  # noqa: PLC0415
    from agent.outputs._atomic import atomic_write  # noqa: PLC0415
    from agent.supervisor import make_private_directory  # noqa: PLC0415

    if not profile.feeds:
        raise ConfigError(
            f"azauth exec --feeds: profile {profile.name!r} lists no feed",
            key_path=f"profiles.{profile.name}.feeds",
            expected="at least one [[profiles.NAME.feeds]] entry with name and url",
        )
    directory = str(make_private_directory(env))
    try:
        added: list[Output] = []
        token_files: dict[str, str] = {}
        for feed in profile.feeds:
            assert feed.connection is not None
            if feed.connection not in token_files:
                path = os.path.join(directory, f"{feed.connection}.feed-token")
                token_files[feed.connection] = path
                added.append(
                    TokenFileOutput(
                        kind="token_file",
                        connection=feed.connection,
                        path=path,
                        scope=AZURE_DEVOPS_SCOPE,
                    )
                )
        write_exec_routes(
            directory, [(feed.url, feed.connection or "") for feed in profile.feeds], token_files
        )
        npmrc = None
        with_endpoints = {feed.connection for feed in profile.feeds if targets([feed])}
        if with_endpoints:
            npmrc = os.path.join(directory, "npmrc")
            atomic_write(npmrc, read_text(user_npmrc(env), follow_symlinks=True).encode())
            added.extend(
                NpmrcOutput(kind="npmrc", connection=connection, path=npmrc)
                for connection in token_files
                if connection in with_endpoints
            )
        kept = list(profile.outputs) if outputs else []
        delivered = dataclasses.replace(profile, outputs=[*kept, *added])
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return FeedExec(delivered, directory, token_files, npmrc)

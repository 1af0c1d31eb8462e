"""PURE renderers of feed client configuration: npmrc (merged), Maven settings.xml, variables.

Formats, from each client's documentation:

npmrc (npm ``config`` docs, "Auth related configuration")
    ``registry=URL`` or ``@scope:registry=URL``, and credentials keyed on the registry URL
    without its scheme (a "nerf dart"): ``//host/path/npm/registry/:_authToken=TOKEN``, which npm
    sends as ``Authorization: Bearer TOKEN`` to every URL below that path. Azure Artifacts also
    documents the ``//host/path/npm/:`` prefix, so both are written. Lines are ``key=value``;
    ``;`` and ``#`` start comments.
Maven ``settings.xml`` (settings 1.2.0 schema)
    ``<settings><servers><server><id/><username/><password/></server></servers></settings>``;
    the server ``id`` must equal the repository ``id`` in ``pom.xml``/``settings.xml``.
Environment variables
    Azure Artifacts Credential Provider: ``VSS_NUGET_EXTERNAL_FEED_ENDPOINTS`` (JSON
    ``{"endpointCredentials": [{"endpoint", "username", "password"}]}``) and the simpler
    ``VSS_NUGET_ACCESSTOKEN`` with ``VSS_NUGET_URI_PREFIXES`` (``;``-separated URL prefixes).
    NuGet itself: ``NuGetPackageSourceCredentials_{source}`` = ``Username=U;Password=P``.
    uv: ``UV_INDEX_{NAME}_USERNAME``/``_PASSWORD`` (the index name upper-cased, every other
    character than a letter or digit replaced by ``_``). twine: ``TWINE_REPOSITORY_URL``,
    ``TWINE_USERNAME``, ``TWINE_PASSWORD`` (only for a single feed). pip reads credentials from
    no variable except inside an index URL, which azauth never writes: pip uses the keyring
    backend.

Azure Artifacts accepts an Entra access token for Azure DevOps as a Bearer token, or as the
password of Basic authentication with any user name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Protocol
from xml.sax.saxutils import escape

from agent import envvars
from agent.feeds.urls import FeedLocation, parse_feed_url

__all__ = [
    "FEED_USERNAME",
    "FeedLike",
    "FeedTarget",
    "feed_variables",
    "merge_npmrc",
    "npmrc_lines",
    "render_maven_settings",
    "targets",
    "unmerge_npmrc",
    "uv_index_variable",
]

FEED_USERNAME = "azauth"
"""The user name sent with Basic authentication; Azure Artifacts ignores it."""

_BEGIN = "; >>> azauth feeds ({owner}): written by azauth, do not edit"
_END = "; <<< azauth feeds ({owner})"
_ANY_BEGIN = re.compile(r"; >>> azauth feeds \(.*\): written by azauth, do not edit")
_ANY_END = re.compile(r"; <<< azauth feeds \(.*\)")
_SAVED = "; azauth saved: "
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAVEN_NS = "http://maven.apache.org/SETTINGS/1.2.0"
_MAVEN_XSD = "https://maven.apache.org/xsd/settings-1.2.0.xsd"


class FeedTarget:
    """One feed as the renderers need it: its name, location and npm scope."""

    __slots__ = ("location", "name", "npm_scope")

    def __init__(self, name: str, location: FeedLocation, npm_scope: str | None = None) -> None:
        self.name = name
        self.location = location
        self.npm_scope = npm_scope

    def __repr__(self) -> str:
        return f"FeedTarget({self.name!r}, {self.location.url!r}, npm_scope={self.npm_scope!r})"


def _check_token(token: str) -> None:
    if not token or any(char in token for char in "\r\n\0"):
        raise ValueError("the access token is empty or holds a line break")


# ------------------------------------------------------------------------------------- npmrc


def _nerf_darts(location: FeedLocation) -> tuple[str, str]:
    base = f"//{location.netloc}{location.path}"
    return f"{base}/npm/registry/", f"{base}/npm/"


def npmrc_lines(feeds: Sequence[FeedTarget], token: str) -> list[str]:
    """The npmrc lines for ``feeds``: a registry line each, and two ``_authToken`` lines each.

    Raises:
        ValueError: more than one feed without an npm scope (npm has one default registry), or
            an unusable token.
    """
    _check_token(token)
    unscoped = [feed.name for feed in feeds if feed.npm_scope is None]
    if len(unscoped) > 1:
        raise ValueError(
            f"feeds {', '.join(unscoped)}: only one feed without npm_scope can be the default "
            "npm registry"
        )
    lines = []
    for feed in feeds:
        key = "registry" if feed.npm_scope is None else f"{feed.npm_scope}:registry"
        lines.append(f"{key}={feed.location.npm_registry}")
        lines.extend(f"{dart}:_authToken={token}" for dart in _nerf_darts(feed.location))
    return lines


def _key(line: str) -> str | None:
    text = line.strip()
    if not text or text[0] in ";#" or "=" not in text:
        return None
    return text.split("=", 1)[0].strip()


def _owned_keys(feeds: Sequence[FeedTarget]) -> tuple[set[str], tuple[str, ...]]:
    keys = {"registry" if f.npm_scope is None else f"{f.npm_scope}:registry" for f in feeds}
    prefixes = tuple(f"{dart}:" for feed in feeds for dart in _nerf_darts(feed.location))
    return keys, prefixes


def _split_lines(text: str) -> list[str]:
    """``text``'s lines, split only at line feeds.

    A carriage return (CRLF file) stays with its line, and the characters
    :meth:`str.splitlines` would also break at (form feed, U+2028...) stay inside it.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _join_lines(lines: Sequence[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def unmerge_npmrc(existing: str, owner: str) -> str:
    """``existing`` without the block azauth wrote for ``owner`` (other lines untouched).

    The user's own lines the merge displaced (kept in the block as ``; azauth saved:``
    comments) are given back where the block was.
    """
    begin, end = _BEGIN.format(owner=owner), _END.format(owner=owner)
    kept: list[str] = []
    inside = False
    for line in _split_lines(existing):
        stripped = line.strip()
        if stripped == begin:
            inside = True
            continue
        if inside:
            inside = stripped != end
            if line.startswith(_SAVED):
                kept.append(line[len(_SAVED) :])
            continue
        kept.append(line)
    return _join_lines(kept)


def merge_npmrc(existing: str, owner: str, feeds: Sequence[FeedTarget], token: str) -> str:
    """Return ``existing`` with ``owner``'s block for ``feeds`` replaced or appended.

    The block sits between marker comments naming ``owner`` (a connection), so outputs of
    several connections share one file. The user's lines (outside any azauth block) that set
    the same registry keys or credentials for the same registries are moved into the block as
    ``; azauth saved: LINE`` comments (npm would otherwise read whichever comes last), and
    :func:`unmerge_npmrc` gives them back; every other line is kept, in order, byte for byte.

    Raises:
        ValueError: see :func:`npmrc_lines`.
    """
    lines = npmrc_lines(feeds, token)
    keys, prefixes = _owned_keys(feeds)
    kept: list[str] = []
    saved: list[str] = []
    other_block = False
    for line in _split_lines(unmerge_npmrc(existing, owner)):
        stripped = line.strip()
        if _ANY_BEGIN.fullmatch(stripped):
            other_block = True
        elif _ANY_END.fullmatch(stripped):
            other_block = False
        key = _key(line)
        if key is not None and (key in keys or key.startswith(prefixes)):
            if not other_block:
                saved.append(f"{_SAVED}{line}")
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    block = [_BEGIN.format(owner=owner), *lines, *saved, _END.format(owner=owner)]
    return _join_lines([*kept, *block])


# ------------------------------------------------------------------------------------- Maven


def render_maven_settings(feeds: Sequence[FeedTarget], token: str) -> bytes:
    """A complete ``settings.xml`` with one ``<server>`` per feed (id = the feed's name).

    The user name is the feed's organization, as Azure Artifacts' "Connect to feed" page
    writes it (any value works).

    Raises:
        ValueError: an unusable token.
    """
    _check_token(token)
    servers = [
        "    <server>\n"
        f"      <id>{escape(feed.name)}</id>\n"
        f"      <username>{escape(feed.location.organization)}</username>\n"
        f"      <password>{escape(token)}</password>\n"
        "    </server>\n"
        for feed in feeds
    ]
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!-- written by azauth; do not edit -->\n"
        f'<settings xmlns="{_MAVEN_NS}"\n'
        '          xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        f'          xsi:schemaLocation="{_MAVEN_NS} {_MAVEN_XSD}">\n'
        "  <servers>\n" + "".join(servers) + "  </servers>\n"
        "</settings>\n"
    )
    return text.encode("utf-8")


# ------------------------------------------------------------------------------------- variables


def uv_index_variable(name: str, suffix: str) -> str:
    """Uv's variable for index ``name``: ``UV_INDEX_{NAME}_{suffix}``."""
    return f"UV_INDEX_{_NON_ALNUM.sub('_', name).upper()}_{suffix}"


def feed_variables(feeds: Sequence[FeedTarget], token: str) -> dict[str, str]:
    """The variables NuGet, its Azure Artifacts credential provider, uv and twine read.

    ``NuGetPackageSourceCredentials_{name}`` is set only for feed names that are variable
    names; the twine variables only when there is exactly one feed.

    Raises:
        ValueError: an unusable token.
    """
    _check_token(token)
    endpoints = [
        {"endpoint": feed.location.nuget_index, "username": FEED_USERNAME, "password": token}
        for feed in feeds
    ]
    variables: dict[str, str] = {
        envvars.VSS_NUGET_EXTERNAL_FEED_ENDPOINTS: json.dumps(
            {"endpointCredentials": endpoints}, separators=(",", ":")
        ),
        envvars.VSS_NUGET_ACCESSTOKEN: token,
        envvars.VSS_NUGET_URI_PREFIXES: ";".join(f"{feed.location.url}/" for feed in feeds),
    }
    for feed in feeds:
        if _ENV_NAME.fullmatch(feed.name):
            variables[f"NuGetPackageSourceCredentials_{feed.name}"] = (
                f"Username={FEED_USERNAME};Password={token}"
            )
    for feed in feeds:
        variables[uv_index_variable(feed.name, "USERNAME")] = FEED_USERNAME
        variables[uv_index_variable(feed.name, "PASSWORD")] = token
    if len(feeds) == 1:
        variables[envvars.TWINE_REPOSITORY_URL] = feeds[0].location.pypi_upload
        variables[envvars.TWINE_USERNAME] = FEED_USERNAME
        variables[envvars.TWINE_PASSWORD] = token
    return variables


class FeedLike(Protocol):
    """What :func:`targets` reads of a feed (``agent.config.models.Feed`` has it)."""

    @property
    def name(self) -> str:
        """The feed's name."""
        ...

    @property
    def url(self) -> str:
        """The feed URL."""
        ...

    @property
    def npm_scope(self) -> str | None:
        """The npm scope, if any."""
        ...


def targets(feeds: Sequence[FeedLike]) -> list[FeedTarget]:
    """:class:`FeedTarget` of config ``Feed`` models, skipping organization URLs."""
    found = []
    for feed in feeds:
        location = parse_feed_url(feed.url)
        if location.feed is not None:
            found.append(FeedTarget(feed.name, location, feed.npm_scope))
    return found

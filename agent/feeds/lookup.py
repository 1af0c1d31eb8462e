"""The keyring backend's answers: which token a feed URL gets, from where.

:func:`find_token` tries, in order:

1. ``azauth exec --feeds``: ``$AZAUTH_FEEDS_DIR/feeds.json`` routes the URL to a connection
   whose token file the running ``azauth exec`` keeps fresh (stdlib only, no network);
2. the shared on-disk cache of ``azauth token`` (:mod:`agent.credential_helpers.cache`): a *routing
record*
   ``<selector>.feeds`` (written by the first full answer for this profile file and
   environment; the selector covers the file's bytes, so an edit makes a new one) routes the
   URL to a connection, whose cached token is served while fresh. No pydantic, aiohttp or
   structlog is imported on this path;
3. the full path: load the profile, route the URL through its ``feeds``, and get the token
   exactly as ``azauth token --connection C --scope 499b84ac-.../.default`` does (cache
   entry shared with it, refreshed under the cache's lock), then record the routing.

A URL no feed of the profile covers gets ``None`` (the keyring then asks its other backends).
"""

# ruff: noqa: PTH109, PTH118 - str paths, as tokencache
from __future__ import annotations

import json
import os
import sys
import time

from agent import envvars
from agent.credential_helpers import cache as tokencache
from agent.feeds.urls import AZURE_DEVOPS_SCOPE, parse_feed_url, route
from agent.feeds.urls import split_service as _split

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent.feeds.urls import FeedLocation

__all__ = [
    "EXEC_ROUTES_FILE",
    "FEEDS_DIR_ENV",
    "ROUTING_SCOPE",
    "find_token",
    "routing_selector",
    "write_exec_routes",
]

FEEDS_DIR_ENV = envvars.AZAUTH_FEEDS_DIR
"""Set by ``azauth exec --feeds`` for its command: the private directory with feeds.json."""
EXEC_ROUTES_FILE = "feeds.json"
ROUTING_SCOPE = "azauth:feeds-routing"
"""Stands for "the routing of this configuration" in a cache selector (never a real scope)."""
_FORMAT = 1


def _read_json(path: str) -> object | None:
    data = tokencache.read_private(path)
    if data is None:
        return None
    try:
        document: object = json.loads(data)
    except ValueError:
        return None
    return document


def _routes(document: object) -> list[tuple[FeedLocation, str]] | None:
    """``[(location, connection)]`` of a routing document, or ``None`` when malformed."""
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        return None
    entries = document.get("feeds")
    if not isinstance(entries, list):
        return None
    routes = []
    for entry in entries:
        if not (
            isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)
        ):
            return None
        try:
            routes.append((parse_feed_url(entry[0]), entry[1]))
        except ValueError:
            return None
    return routes


# ------------------------------------------------------------------------------ azauth exec


def write_exec_routes(directory: str, feeds: list[tuple[str, str]], tokens: dict[str, str]) -> None:
    """Write ``feeds.json`` for ``azauth exec --feeds``.

    ``feeds`` holds ``(feed URL, connection)``; ``tokens`` the token file of each connection.

    Raises:
        OutputError: the file cannot be written.
    """
    from agent.outputs._atomic import atomic_write  # noqa: PLC0415 - only exec writes

    document = {"format": _FORMAT, "feeds": [list(pair) for pair in feeds], "tokens": tokens}
    atomic_write(os.path.join(directory, EXEC_ROUTES_FILE), json.dumps(document).encode())


def _from_exec(directory: str, service: str) -> str | None:
    document = _read_json(os.path.join(directory, EXEC_ROUTES_FILE))
    routes = _routes(document)
    if routes is None or not isinstance(document, dict):
        return None
    connection = route(service, routes)
    tokens = document.get("tokens")
    if connection is None or not isinstance(tokens, dict):
        return None
    path = tokens.get(connection)
    if not isinstance(path, str):
        return None
    data = tokencache.read_private(path)
    token = data.decode("utf-8", "replace").strip() if data else ""
    return token or None


# ------------------------------------------------------------------------------ the cache


def routing_selector(identity: tokencache.ConfigIdentity, env: Mapping[str, str]) -> str:
    """The cache selector of the routing record: the configuration and the environment."""
    request = tokencache.TokenRequest(scopes=(ROUTING_SCOPE,))
    return tokencache.selector_for(request, identity, env)


def _routing_path(cache: tokencache.TokenCache, selector: str) -> str:
    return os.path.join(cache.directory, f"{selector}.feeds")


def _cached_token(connection: str, env: Mapping[str, str], now: float) -> str | None:
    """The fresh cached token ``azauth token --connection C --scope <Azure DevOps>`` shares."""
    request = tokencache.TokenRequest(connection=connection, scopes=(AZURE_DEVOPS_SCOPE,))
    identity = tokencache.identify_config(None, env, os.getcwd())
    selector = tokencache.selector_for(request, identity, env)
    cache = tokencache.TokenCache(tokencache.cache_dir(env))
    variable = cache.read_variable(selector)
    system_access_token = env.get(variable) if variable else None
    if not system_access_token or variable is None:
        return None
    entry = cache.load(tokencache.entry_key(selector, variable, system_access_token))
    if entry is None or not tokencache.is_fresh(entry, now):
        return None
    return entry.details.access_token


def _warm(service: str, env: Mapping[str, str]) -> tuple[bool, str | None]:
    """``(known, token)``: ``known`` when the routing record answered (token or not)."""
    try:
        identity = tokencache.identify_config(None, env, os.getcwd())
    except (OSError, LookupError):
        return True, None  # no configuration: nothing to serve
    cache = tokencache.TokenCache(tokencache.cache_dir(env))
    routes = _routes(_read_json(_routing_path(cache, routing_selector(identity, env))))
    if routes is None:
        return False, None
    connection = route(service, routes)
    if connection is None:
        return True, None
    token = _cached_token(connection, env, time.time())
    return token is not None, token


def _cold(service: str, env: Mapping[str, str]) -> str | None:
    """Load the profile, route, obtain the token (cache shared), record the routing."""
    from agent.config import load_config  # noqa: PLC0415
    from agent.credential_helpers.service import obtain_token  # noqa: PLC0415 - the heavy path

    loaded = load_config(None, env=env)
    profile = loaded.profile(None, env=env)
    pairs = [(feed.url, feed.connection or "") for feed in profile.feeds]
    _record_routing(pairs, loaded.digest, env)
    connection = route(service, [(parse_feed_url(url), name) for url, name in pairs])
    if connection is None:
        return None
    request = tokencache.TokenRequest(connection=connection, scopes=(AZURE_DEVOPS_SCOPE,))
    return obtain_token(request, env).access_token


def _record_routing(pairs: list[tuple[str, str]], digest: str, env: Mapping[str, str]) -> None:
    """Write the routing record of the configuration whose bytes hash to ``digest``.

    Best effort: nothing is recorded when the file changed since it was loaded (the record
    would describe another file) or the cache cannot be written; the next call then loads again.
    """
    from agent.exceptions import OutputError  # noqa: PLC0415
    from agent.outputs._atomic import atomic_write  # noqa: PLC0415

    try:
        identity = tokencache.identify_config(None, env, os.getcwd())
        if identity.path is not None and identity.digest != digest:
            return
        cache = tokencache.TokenCache(tokencache.cache_dir(env))
        cache.ensure_directory()
        document = {"format": _FORMAT, "feeds": [list(pair) for pair in pairs]}
        atomic_write(
            _routing_path(cache, routing_selector(identity, env)), json.dumps(document).encode()
        )
    except (OSError, LookupError, OutputError):
        return


def find_token(service: str, env: Mapping[str, str] | None = None) -> str | None:
    """The Azure DevOps access token for the feed URL (or bare host) ``service``, or ``None``.

    Never raises: a failure (invalid profile, refused token) is one line on stderr, and
    ``None``, so the client reports its own authentication error.
    """
    environ = os.environ if env is None else env
    split = _split(service)
    if split is None:
        return None
    directory = environ.get(FEEDS_DIR_ENV)
    if directory:
        return _from_exec(directory, service)
    known, token = _warm(service, environ)
    if known:
        return token
    try:
        return _cold(service, environ)
    except Exception as exc:  # noqa: BLE001 - a keyring backend must not break its caller
        from agent._secrets import redact_text  # noqa: PLC0415

        shown = f"{split[0] + '://' if split[0] else ''}{split[1]}{split[2]}"  # no user info
        sys.stderr.write(f"azauth keyring: {shown}: {redact_text(str(exc))}\n")
        return None

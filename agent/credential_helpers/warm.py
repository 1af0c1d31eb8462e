"""The warm path of ``azauth token`` and ``azauth git-credential get``: answer from the cache.

kubectl runs its exec plugin, and git its credential helper, once per invocation; most of those
calls find a valid token in the on-disk cache. This module answers them with the standard library
only (no aiohttp, pydantic, structlog or azure-core, not even :mod:`agent.exceptions` or
:mod:`agent.config`), so a warm call costs about as much as starting Python.

:func:`serve` parses the command line itself, computes the cache key exactly as the full command
does (:mod:`agent.credential_helpers.cache`), reads the entry and prints it. Anything it does not
handle (a miss, a stale entry, ``--no-cache``, ``--help``, an unknown flag, an unreadable file, an
unusual git request) returns ``None`` and the full command line runs instead, which also
produces every error message: this module never prints an error.
"""

from __future__ import annotations

import io
import os
import sys
import time

from agent.credential_helpers import cache as tokencache
from agent.credential_helpers import protocols as cp

# Neither typing nor collections.abc at run time: a warm call must not pay for importing them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["parse_flags", "serve"]

_VALUE_FLAGS = {
    "--config": "config",
    "--profile": "profile",
    "--connection": "connection",
    "--scope": "scope",
    "--tenant": "tenant",
    "--output": "output",
    "-o": "output",
}


def parse_flags(args: Sequence[str]) -> tuple[dict[str, str | None], list[str], list[str]] | None:
    """Parse the token flags of ``args`` (after the command name).

    Returns ``(values, scopes, positionals)``, or ``None`` when ``args`` holds anything the full
    parser should judge: an unknown flag, a flag without its value, ``--``.
    """
    values: dict[str, str | None] = dict.fromkeys(_VALUE_FLAGS.values())
    scopes: list[str] = []
    positionals: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.startswith("-"):
            positionals.append(arg)
            continue
        flag, sep, value = arg.partition("=")
        name = _VALUE_FLAGS.get(flag)
        if name is None:
            return None
        if not sep:
            if index >= len(args) or args[index].startswith("-"):
                return None
            value = args[index]
            index += 1
        if name == "scope":
            scopes.append(value)
        else:
            values[name] = value
    return values, scopes, positionals


def serve(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
    """Answer ``argv`` (``sys.argv[1:]``) from the cache and return 0, or return ``None``.

    ``None`` means "run the full command". When ``git-credential get`` had already read git's
    request from stdin, ``sys.stdin`` is replaced with a buffer holding it, so the full command
    reads the same request.
    """
    environ = os.environ if env is None else env
    try:
        if argv and argv[0] == "token":
            answer = _answer_token(argv[1:], environ)
        elif argv and argv[0] == "git-credential":
            answer = _answer_git(argv[1:], environ)
        else:
            return None
    except Exception:  # noqa: BLE001 - the warm path never fails: the full command decides
        return None
    if answer is None:
        return None
    # Outside the try: once anything is written, falling back would write it twice.
    sys.stdout.write(answer)
    sys.stdout.flush()
    return 0


def _answer_token(args: Sequence[str], env: Mapping[str, str]) -> str | None:
    parsed = parse_flags(args)
    if parsed is None:
        return None
    values, scopes, positionals = parsed
    output = values["output"] or cp.OUTPUT_FORMATS[0]
    if positionals or output not in cp.OUTPUT_FORMATS:
        return None
    details = _cached(values, tuple(scopes), env)
    if details is None:
        return None
    return cp.render(output, details, env)


def _answer_git(args: Sequence[str], env: Mapping[str, str]) -> str | None:
    parsed = parse_flags(args)
    if parsed is None:
        return None
    values, scopes, positionals = parsed
    if len(positionals) != 1 or values["output"] is not None:
        return None
    operation = positionals[0]
    if operation != "get":
        # store, erase and future operations are the full command's (erase drops an entry).
        return None
    text = cp.read_git_credential(sys.stdin)
    sys.stdin = io.StringIO(text)  # the full command reads the same request
    request = cp.parse_git_credential(text)
    if request.protocol != "https":
        return None  # the full command decides about plain http
    details = _cached(values, tuple(scopes) or (cp.AZURE_REPOS_SCOPE,), env)
    if details is None:
        return None
    return cp.render_git_credential(details, authtype=request.wants_authtype)


def _cached(
    values: Mapping[str, str | None], scopes: tuple[str, ...], env: Mapping[str, str]
) -> cp.TokenDetails | None:
    """The fresh cached token for these flags, or ``None``."""
    request = tokencache.TokenRequest(
        config=values["config"],
        profile=values["profile"],
        connection=values["connection"],
        scopes=scopes,
        tenant=values["tenant"],
    )
    identity = tokencache.identify_config(request.config, env, os.getcwd())  # noqa: PTH109 - str paths
    selector = tokencache.selector_for(request, identity, env)
    cache = tokencache.TokenCache(tokencache.cache_dir(env))
    variable = cache.read_variable(selector)
    if variable is None:
        return None
    # Trimmed as the full command trims it (agent.envvalues), so both find the same entry.
    system_access_token = (env.get(variable) or "").strip()
    if not system_access_token:
        return None
    entry = cache.load(tokencache.entry_key(selector, variable, system_access_token))
    if entry is None or not tokencache.is_fresh(entry, time.time()):
        return None
    return entry.details

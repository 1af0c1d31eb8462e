"""``azauth token``: print one access token in the format the caller speaks.

Formats (``--output``): ``raw`` (default), ``json``, ``azure-cli`` (``az account
get-access-token``) and ``exec-credential`` (kubectl exec plugins); see
:mod:`agent.credential_process`. Tokens come from the shared on-disk cache
(:mod:`agent.tokencache`) while they have enough validity left; concurrent processes that miss
it wait for one refresh. A warm call never reaches this module: :mod:`agent.fastpath` answers it.

On failure the exit code follows the ExitCode table (2 usage, 3 configuration, 4
authentication), one line goes to stderr and nothing to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from agent import envvars, tokencache
from agent.cli.run import add_logging_arguments, configure_logging_from_args
from agent.cli.validate import add_config_argument
from agent.credential_process import (
    EXEC_INFO_ENV,
    OUTPUT_FORMATS,
    TokenDetails,
    exec_credential_version,
    render,
)
from agent.exceptions import AuthenticationError, ConfigError, ExitCode, OutputError, UsageError
from agent.tokencache import CacheEntry, TokenCache, TokenRequest

if TYPE_CHECKING:
    from agent.clock import Clock
    from agent.config import Connection, LoadedConfig, ResolvedProfile

__all__ = [
    "add_token_arguments",
    "forget_token",
    "obtain_token",
    "register",
    "request_from_args",
    "run",
    "select_connection",
]


def add_token_arguments(parser: argparse.ArgumentParser, *, default_scope: str) -> None:
    """Add the flags that choose a token: config, profile, connection, scope, tenant, cache."""
    add_config_argument(parser)
    parser.add_argument("--profile", metavar="NAME", help="the profile (default: AZAUTH_PROFILE)")
    parser.add_argument(
        "--connection",
        metavar="NAME",
        help="the connection (default: the profile's only connection)",
    )
    parser.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help=f"a scope ending in /.default; repeat for one token for several ({default_scope})",
    )
    parser.add_argument(
        "--tenant",
        metavar="TENANT",
        help="request the token in this tenant (must be allowed by the connection)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="ask Entra for a new token; do not read or write the on-disk cache",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``token`` command."""
    parser = subparsers.add_parser(
        "token",
        help="print an access token (raw, json, azure-cli or a kubectl ExecCredential)",
        description=(
            "Print one access token of a connection on stdout, in the format the caller "
            "speaks. Tokens are shared through an on-disk cache (AZAUTH_CACHE_DIR, else "
            "$XDG_CACHE_HOME/azauth, else ~/.cache/azauth) while they have at least 5 minutes "
            "(or half their lifetime) left."
        ),
    )
    add_token_arguments(parser, default_scope="default: the connection's scope")
    parser.add_argument(
        "--output",
        "-o",
        choices=OUTPUT_FORMATS,
        default=OUTPUT_FORMATS[0],
        help=(
            "raw: the token; json: every field; azure-cli: az account get-access-token's JSON; "
            "exec-credential: a Kubernetes ExecCredential (default: raw)"
        ),
    )
    add_logging_arguments(parser)
    parser.set_defaults(handler=run)


def request_from_args(
    args: argparse.Namespace, *, default_scope: str | None = None
) -> TokenRequest:
    """The :class:`TokenRequest` of parsed token flags (``default_scope`` when none is given)."""
    scopes = tuple(args.scope or ())
    if not scopes and default_scope is not None:
        scopes = (default_scope,)
    return TokenRequest(
        config=args.config,
        profile=args.profile,
        connection=args.connection,
        scopes=scopes,
        tenant=args.tenant,
    )


def run(args: argparse.Namespace) -> int:
    """Print the token; return 0 (failures raise, and ``agent.cli.main`` maps them)."""
    configure_logging_from_args(args)
    env: Mapping[str, str] = os.environ
    if args.output == "exec-credential":
        # Refuse a version we cannot write before spending a token request on it.
        try:
            exec_credential_version(env.get(EXEC_INFO_ENV))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    details = obtain_token(request_from_args(args), env, use_cache=not args.no_cache)
    try:
        text = render(args.output, details, env)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(text)
    sys.stdout.flush()
    return ExitCode.OK


def select_connection(profile: ResolvedProfile, name: str | None) -> tuple[str, Connection]:
    """The connection named ``name``, or the profile's only one.

    Raises:
        UsageError: ``name`` is not one of the profile's connections, or the profile has several
            and ``name`` is ``None``.
        ConfigError: the profile has no connection.
    """
    names = list(profile.connections)
    if name is not None:
        if name not in profile.connections:
            raise UsageError(
                f"--connection {name!r}: profile {profile.name!r} has no such connection "
                f"(its connections: {', '.join(names) or 'none'})"
            )
        return name, profile.connections[name]
    if len(names) == 1:
        return names[0], profile.connections[names[0]]
    if not names:
        raise ConfigError(
            f"profile {profile.name!r} has no connection",
            key_path=f"profiles.{profile.name}.connections",
            expected="the name of at least one connection",
        )
    raise UsageError(
        f"profile {profile.name!r} has {len(names)} connections ({', '.join(names)}): "
        "choose one with --connection"
    )


def check_scopes(scopes: Sequence[str]) -> None:
    """Refuse a malformed ``--scope`` before anything is read or sent.

    Raises:
        UsageError: a scope does not end in ``/.default`` (the client-credentials grant takes
            only a resource's ``.default`` scope).
    """
    import re  # noqa: PLC0415

    from agent.config.models import PATTERN_MEANINGS, SCOPE_PATTERN  # noqa: PLC0415

    for scope in scopes:
        if not re.fullmatch(SCOPE_PATTERN, scope):
            raise UsageError(f"--scope {scope!r}: expected {PATTERN_MEANINGS[SCOPE_PATTERN]}")


class _Plan(NamedTuple):
    """One resolved token request: what to ask for, and where it is cached."""

    profile: str
    connection_name: str
    connection: Connection
    scopes: tuple[str, ...]
    tenant: str
    system_access_token_env: str
    system_access_token: str


class _Slot(NamedTuple):
    cache: TokenCache
    selector: str
    key: str


def _plan(request: TokenRequest, env: Mapping[str, str]) -> tuple[LoadedConfig, _Plan]:
    from agent.config import load_config  # noqa: PLC0415 - imports pydantic
    from agent.protocol import resolve_tenant  # noqa: PLC0415

    check_scopes(request.scopes)
    loaded = load_config(request.config, env=env)
    profile = loaded.profile(request.profile, env=env)
    name, connection = select_connection(profile, request.connection)
    scopes = request.scopes or (connection.default_scope,)
    try:
        tenant = resolve_tenant(
            connection.tenant_id,
            request.tenant,
            connection.additionally_allowed_tenants,
            multitenant_disabled=bool(env.get(envvars.AZURE_IDENTITY_DISABLE_MULTITENANTAUTH)),
        )
    except ValueError as exc:
        raise UsageError(f"--tenant: {exc}") from None
    plan = _Plan(
        profile=profile.name,
        connection_name=name,
        connection=connection,
        scopes=scopes,
        tenant=tenant,
        system_access_token_env=connection.system_access_token_env,
        system_access_token=connection.system_access_token(env),
    )
    return loaded, plan


def _slot(
    request: TokenRequest, loaded: LoadedConfig, plan: _Plan, env: Mapping[str, str], log: Any
) -> _Slot | None:
    """Where ``plan``'s token is cached; ``None`` when the key cannot be trusted."""
    try:
        identity = tokencache.identify_config(request.config, env, os.getcwd())  # noqa: PTH109 - str paths
    except (OSError, LookupError):
        return None
    # abspath, not resolve(): the same spelling tokencache uses, links not followed.
    loaded_path = os.path.abspath(loaded.source) if loaded.source is not None else None  # noqa: PTH100
    if identity.path != loaded_path or (
        identity.path is not None and identity.digest != loaded.digest
    ):
        # The file changed between the two reads: the key would not describe this token.
        log.info("token_cache_skipped", reason="the profile file changed while it was read")
        return None
    selector = tokencache.selector_for(request, identity, env)
    key = tokencache.entry_key(selector, plan.system_access_token_env, plan.system_access_token)
    return _Slot(TokenCache(tokencache.cache_dir(env)), selector, key)


def obtain_token(
    request: TokenRequest,
    env: Mapping[str, str],
    *,
    use_cache: bool = True,
    clock: Clock | None = None,
) -> TokenDetails:
    """Return a token for ``request``: from the cache while fresh, else from Entra.

    A miss takes the key's lock, reads the cache again (another process may have refreshed it
    meanwhile), and only then asks Entra, storing the answer. When a refresh fails for a reason
    that may pass (``retryable``), a cached token with at least a minute left is served instead,
    with a warning. A cache that cannot be written is reported as a warning, not an error.

    Raises:
        ConfigError: the profile file, selection or environment is wrong.
        UsageError: ``--connection`` or ``--tenant`` is wrong.
        AuthenticationError: Azure DevOps or Entra refused, or the network failed.
    """
    from agent.clock import SystemClock  # noqa: PLC0415 - imports asyncio
    from agent.logs import get_logger  # noqa: PLC0415 - imports structlog

    log = get_logger("agent.cli.token")
    clock = clock or SystemClock()
    loaded, plan = _plan(request, env)
    slot = _slot(request, loaded, plan, env, log) if use_cache else None
    if slot is None:
        return _acquire(plan, env, clock).details
    slot.cache.verify_directory()  # an untrusted cache directory is an OUTPUT error
    entry = slot.cache.load(slot.key)
    if entry is not None and tokencache.is_fresh(entry, clock.time()):
        log.info("token_from_cache", connection=plan.connection_name, expires_on=_expiry(entry))
        return entry.details
    with _locked(slot, log):
        entry = slot.cache.load(slot.key)
        if entry is not None and tokencache.is_fresh(entry, clock.time()):
            log.info("token_from_cache", connection=plan.connection_name, expires_on=_expiry(entry))
            return entry.details
        try:
            fresh = _acquire(plan, env, clock)
        except AuthenticationError as exc:
            if exc.retryable and entry is not None and tokencache.is_usable(entry, clock.time()):
                log.warning(
                    "token_refresh_failed_using_cached",
                    connection=plan.connection_name,
                    expires_on=_expiry(entry),
                    error=str(exc),
                )
                return entry.details
            raise
        try:
            slot.cache.store(slot.key, slot.selector, plan.system_access_token_env, fresh)
        except (OutputError, OSError, ValueError) as exc:
            log.warning("token_cache_write_failed", error=str(exc))
        slot.cache.sweep(clock.time())
    return fresh.details


def forget_token(request: TokenRequest, env: Mapping[str, str], token: str) -> bool:
    """Drop the cached entry of ``request`` if it holds exactly ``token``; ``True`` if dropped.

    Raises:
        ConfigError: the profile file, selection or environment is wrong.
        UsageError: ``--connection`` or ``--tenant`` is wrong.
    """
    from agent.logs import get_logger  # noqa: PLC0415 - imports structlog

    log = get_logger("agent.cli.token")
    loaded, plan = _plan(request, env)
    slot = _slot(request, loaded, plan, env, log)
    if slot is None:
        return False
    with _locked(slot, log):
        entry = slot.cache.load(slot.key)
        if entry is None or not hmac.compare_digest(
            entry.details.access_token.encode(), token.encode()
        ):
            return False
        removed = slot.cache.remove(slot.key)
    if removed:
        log.info("token_forgotten", connection=plan.connection_name)
    return removed


@contextlib.contextmanager
def _locked(slot: _Slot, log: Any) -> Iterator[bool]:
    """Hold the key's lock, or go on unlocked (with a warning) when it cannot be had."""
    lock = slot.cache.lock(slot.key)
    with lock as held:
        if lock.error is not None:
            log.warning("token_cache_unavailable", error=str(lock.error))
        elif lock.timed_out:
            log.warning("token_cache_lock_timeout", timeout=tokencache.LOCK_TIMEOUT)
        yield held


def _acquire(plan: _Plan, env: Mapping[str, str], clock: Clock) -> CacheEntry:
    """Ask Azure DevOps and Entra for a new token (one OIDC and one token request)."""
    return asyncio.run(_request(plan, env, clock))


async def _request(plan: _Plan, env: Mapping[str, str], clock: Clock) -> CacheEntry:
    from agent.connections import credential_for  # noqa: PLC0415 - imports aiohttp

    credential = credential_for(plan.connection_name, plan.connection, env, clock=clock)
    async with credential:
        obtained_at = clock.time()
        try:
            info = await credential.request_token(*plan.scopes, tenant_id=plan.tenant)
        except ConfigError:
            raise
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    details = TokenDetails(
        access_token=info.token,
        token_type=info.token_type or "Bearer",
        expires_on=int(info.expires_on),
        tenant=plan.tenant,
        scopes=plan.scopes,
        client_id=plan.connection.client_id,
        subscription=plan.connection.subscription_id,
        connection=plan.connection_name,
        profile=plan.profile,
    )
    # Freshness is judged on this machine's clock: the issued lifetime counted from the
    # request (agent.refresh's rule), so a skewed clock neither serves expired tokens nor
    # refetches fresh ones. expires_on above keeps Entra's value for consumers.
    lifetime = getattr(info, "lifetime", None)
    refresh_in = getattr(info, "refresh_in", None)
    local_expires_on = obtained_at + lifetime if lifetime is not None else None
    if refresh_in is not None:
        refresh_on: int | None = int(obtained_at + refresh_in)
    else:
        refresh_on = int(info.refresh_on) if info.refresh_on is not None else None
    return CacheEntry(details, obtained_at, refresh_on, local_expires_on)


def _expiry(entry: CacheEntry) -> int:
    return entry.details.expires_on

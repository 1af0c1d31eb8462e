"""The cached-token service of ``azauth token`` and ``git-credential``: lock, re-read, refresh.

:func:`obtain_token` answers a :class:`agent.credential_helpers.cache.TokenRequest` from the shared
on-disk cache (:mod:`agent.credential_helpers.cache`) while the token has enough validity left;
processes that miss it take the key's lock, read the cache again, and only then ask Entra
(stale-if-error: a cached token with a minute left is served when the refresh fails for a reason
that may pass). Tokens come from the profile's :class:`agent.pool.CredentialPool`, so the profile's
retry deadline applies. The warm path (:mod:`agent.credential_helpers.warm`) answers fresh entries
without importing this.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from agent import envvars
from agent.credential_helpers import cache as tokencache
from agent.credential_helpers.cache import CacheEntry, TokenCache, TokenRequest
from agent.credential_helpers.protocols import TokenDetails
from agent.exceptions import AuthenticationError, ConfigError, OutputError, UsageError

if TYPE_CHECKING:
    from agent.clock import Clock
    from agent.config import Connection, LoadedConfig, Settings

__all__ = ["TokenRequestError", "check_scopes", "forget_token", "obtain_token"]


class TokenRequestError(UsageError):
    """A field of the token request is wrong (exit code USAGE, 2).

    The message starts with the field's name (``scope``, ``tenant``), so a command line can
    name its flag instead (``azauth token`` says ``--scope``).

    Attributes:
        field: ``"scope"`` or ``"tenant"``.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def check_scopes(scopes: Sequence[str]) -> None:
    """Refuse a malformed ``--scope`` before anything is read or sent.

    Raises:
        TokenRequestError: a scope does not end in ``/.default`` (the client-credentials grant takes
            only a resource's ``.default`` scope).
    """
    import re  # noqa: PLC0415

    from agent.config.models import PATTERN_MEANINGS, SCOPE_PATTERN  # noqa: PLC0415

    for scope in scopes:
        if not re.fullmatch(SCOPE_PATTERN, scope):
            raise TokenRequestError(
                "scope", f"scope {scope!r}: expected {PATTERN_MEANINGS[SCOPE_PATTERN]}"
            )


class _Plan(NamedTuple):
    """One resolved token request: what to ask for, and where it is cached."""

    profile: str
    connection_name: str
    connection: Connection
    scopes: tuple[str, ...]
    tenant: str
    system_access_token_env: str
    system_access_token: str
    settings: Settings


class _Slot(NamedTuple):
    cache: TokenCache
    selector: str
    key: str


def _plan(request: TokenRequest, env: Mapping[str, str]) -> tuple[LoadedConfig, _Plan]:
    from agent.config import load_config  # noqa: PLC0415 - imports pydantic
    from agent.exchange import resolve_tenant  # noqa: PLC0415

    check_scopes(request.scopes)
    loaded = load_config(request.config, env=env)
    profile = loaded.profile(request.profile, env=env)
    from agent.pool import choose_connection  # noqa: PLC0415

    name = choose_connection(profile, request.connection)
    connection = profile.connections[name]
    scopes = request.scopes or (connection.default_scope,)
    try:
        tenant = resolve_tenant(
            connection.tenant_id,
            request.tenant,
            connection.additionally_allowed_tenants,
            multitenant_disabled=bool(env.get(envvars.AZURE_IDENTITY_DISABLE_MULTITENANTAUTH)),
        )
    except ValueError as exc:
        raise TokenRequestError("tenant", f"tenant: {exc}") from None
    plan = _Plan(
        profile=profile.name,
        connection_name=name,
        connection=connection,
        scopes=scopes,
        tenant=tenant,
        system_access_token_env=connection.system_access_token_env,
        system_access_token=connection.system_access_token(env),
        settings=profile.settings,
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
        ConnectionChoiceError: the request's connection is not the profile's, or it names none and
            the profile has several (:mod:`agent.pool`).
        TokenRequestError: a scope or the tenant is wrong.
        AuthenticationError: Azure DevOps or Entra refused, or the network failed.
    """
    from agent.clock import SystemClock  # noqa: PLC0415 - imports asyncio
    from agent.logs import get_logger  # noqa: PLC0415 - imports structlog

    log = get_logger("agent.credential_helpers.service")
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
        UsageError: the connection, the scopes or the tenant are wrong (as :func:`obtain_token`).
    """
    from agent.logs import get_logger  # noqa: PLC0415 - imports structlog

    log = get_logger("agent.credential_helpers.service")
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
    from agent.pool import CredentialPool  # noqa: PLC0415 - imports aiohttp

    # The profile's pool: its retry deadline bounds the retries (the cache lock outlasts it).
    connections = {plan.connection_name: plan.connection}
    async with CredentialPool(connections, env=env, settings=plan.settings, clock=clock) as pool:
        credential = pool.credential(plan.connection_name)
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

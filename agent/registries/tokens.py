"""ACR refresh tokens for ``docker-credential-azauth``: who serves a registry, and the cache.

Which registries a profile serves: the hosts of its ``registries`` table, each with its
connection and Entra scope; without that table, a profile with exactly one connection serves
every Azure Container Registry login server (``*.azurecr.io``, ``.us``, ``.cn``) with it.

Refresh tokens live in the cache of ``azauth token`` (:mod:`agent.credential_helpers.cache`): same
directory, same file rules, same lock, same System.AccessToken binding. Their selector is the
SHA-256 of ``["acr-refresh-token", registry, <the selector of the configuration>]``, so a
warm ``get`` needs only the registry host, the environment and the profile file's bytes. A
refresh token is served while it has at least 30 minutes (or half its life, when shorter)
left, so a pull or push started with it can trade it for access tokens all along.

A miss takes the entry's lock, looks again, then asks for the connection's Entra token (itself
served from the cache while fresh) and exchanges it at the registry
(:mod:`agent.registries.acr_client`).

Stdlib only at import: :mod:`agent.credential_helpers.warm` reads cached entries through this
module.
"""

from __future__ import annotations

import json
import os

from agent.credential_helpers import cache as tokencache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent.clock import Clock
    from agent.config import LoadedConfig, ResolvedProfile
    from agent.credential_helpers.protocols import TokenDetails

__all__ = [
    "REUSE_MARGIN",
    "RegistryNotServedError",
    "RegistryTarget",
    "cached_refresh_token",
    "forget_refresh_token",
    "obtain_refresh_token",
    "output_registries",
    "refresh_on",
    "registry_selector",
    "resolve_registry",
    "served_registry",
    "warm_get",
]

REUSE_MARGIN = 1800.0
"""Seconds of validity a refresh token must have left to be served (at most half its life)."""
TOKEN_TYPE = "acr_refresh_token"  # noqa: S105 - a kind, not a secret


class RegistryNotServedError(LookupError):
    """The profile does not serve this registry (the helper answers "credentials not found")."""


def registry_selector(config_selector: str, registry: str) -> str:
    """The selector of ``registry``'s refresh token under a configuration's selector."""
    data = json.dumps(["acr-refresh-token", registry, config_selector], separators=(",", ":"))
    return tokencache.sha256_hex(data.encode())


def refresh_on(obtained_at: float, expires_on: int) -> int:
    """When a refresh token stops being served: 30 minutes (or half its life) before expiry."""
    lifetime = max(0.0, expires_on - obtained_at)
    return int(
        expires_on - max(tokencache.refresh_margin(lifetime), min(REUSE_MARGIN, lifetime / 2))
    )


def _selector(registry: str, env: Mapping[str, str], cwd: str) -> str:
    identity = tokencache.identify_config(None, env, cwd)
    request = tokencache.TokenRequest()
    return registry_selector(tokencache.selector_for(request, identity, env), registry)


def _slot(registry: str, env: Mapping[str, str]) -> tuple[tokencache.TokenCache, str] | None:
    """The cache and entry key of ``registry``'s refresh token; ``None`` when there is none."""
    try:
        selector = _selector(registry, env, os.getcwd())  # noqa: PTH109 - str paths
    except (OSError, LookupError):
        return None
    cache = tokencache.TokenCache(tokencache.cache_dir(env))
    variable = cache.read_variable(selector)
    if variable is None:
        return None
    system_access_token = (env.get(variable) or "").strip()  # trimmed as agent.envvalues does
    if not system_access_token:
        return None
    return cache, tokencache.entry_key(selector, variable, system_access_token)


def cached_refresh_token(registry: str, env: Mapping[str, str], now: float) -> str | None:
    """The fresh cached refresh token of ``registry``, or ``None`` (stdlib only, never raises)."""
    slot = _slot(registry, env)
    if slot is None:
        return None
    cache, key = slot
    entry = cache.load(key)
    return entry.details.access_token if entry is not None and _servable(entry, now) else None


def warm_get(data: bytes, env: Mapping[str, str], now: float) -> str | None:
    """The answer to ``get`` of the server URL in ``data`` from the cache, or ``None``."""
    from agent.credential_helpers import docker as dc  # noqa: PLC0415 - stdlib only

    try:
        server_url = dc.read_server_url(data)
        registry = dc.registry_host(server_url)
    except ValueError:
        return None
    token = cached_refresh_token(registry, env, now)
    if token is None:
        return None
    return dc.render_get(server_url, dc.ACR_USERNAME, token)


def output_registries(profile: ResolvedProfile, output: object) -> list[str]:
    """The registries a docker_config ``output`` writes.

    Its ``registries`` list; else every registry of the profile (``credHelpers`` mode, where
    the helper picks the connection), or those its connection serves (``auths`` mode).
    """
    listed: list[str] = list(getattr(output, "registries", []) or [])
    if listed:
        return listed
    if getattr(output, "mode", None) == "credHelpers":
        return list(profile.registries)
    connection = getattr(output, "connection", None)
    return [
        host for host, binding in profile.registries.items() if binding.connection == connection
    ]


def served_registry(profile: ResolvedProfile, registry: str) -> tuple[str, str]:
    """``(connection name, Entra scope)`` serving ``registry`` in ``profile``.

    Raises:
        RegistryNotServedError: the profile does not serve it.
    """
    from agent.registries.acr import acr_scope, is_acr_host  # noqa: PLC0415 - imports azure-core

    binding = profile.registries.get(registry)
    if binding is not None:
        assert binding.connection is not None
        cloud = profile.connections[binding.connection].cloud
        return binding.connection, binding.scope or acr_scope(registry, cloud)
    if not profile.registries and len(profile.connections) == 1 and is_acr_host(registry):
        name, connection = next(iter(profile.connections.items()))
        return name, acr_scope(registry, connection.cloud)
    raise RegistryNotServedError(registry)


class RegistryTarget:
    """Who serves a registry: the loaded file, the profile, the connection and the scope."""

    __slots__ = ("connection_name", "loaded", "profile", "registry", "scope")

    def __init__(
        self,
        registry: str,
        loaded: LoadedConfig,
        profile: ResolvedProfile,
        binding: tuple[str, str],
    ) -> None:
        self.registry = registry
        self.loaded = loaded
        self.profile = profile
        self.connection_name, self.scope = binding

    def __repr__(self) -> str:
        return f"RegistryTarget({self.registry!r}, connection={self.connection_name!r})"


def resolve_registry(registry: str, env: Mapping[str, str]) -> RegistryTarget:
    """Load the profile ``azauth token`` would use and find who serves ``registry``.

    Raises:
        ConfigError: no profile can be loaded or selected.
        RegistryNotServedError: the profile does not serve ``registry``.
    """
    from agent.config import load_config  # noqa: PLC0415 - imports pydantic

    loaded = load_config(None, env=env)
    profile = loaded.profile(None, env=env)
    return RegistryTarget(registry, loaded, profile, served_registry(profile, registry))


def obtain_refresh_token(
    registry: str | RegistryTarget, env: Mapping[str, str], *, clock: Clock | None = None
) -> TokenDetails:
    """A refresh token for ``registry``: from the cache while fresh, else a new exchange.

    The profile is the one ``azauth token`` would use (``AZAUTH_CONFIG``, ``AZAUTH_PROFILE``,
    discovery), unless ``registry`` is an already resolved target. The returned details hold
    the refresh token as ``access_token``.

    Raises:
        RegistryNotServedError: the profile does not serve ``registry``.
        ConfigError: the profile file or the environment is wrong.
        AuthenticationError: Azure DevOps, Entra or the registry refused, or the network failed.
    """
    from agent.clock import SystemClock  # noqa: PLC0415 - imports asyncio
    from agent.exceptions import OutputError  # noqa: PLC0415

    clock = clock or SystemClock()
    target = registry if isinstance(registry, RegistryTarget) else resolve_registry(registry, env)
    registry, loaded, profile = target.registry, target.loaded, target.profile
    connection_name, scope = target.connection_name, target.scope
    connection = profile.connections[connection_name]
    variable = connection.system_access_token_env
    system_access_token = connection.system_access_token(env)
    selector = _trusted_selector(registry, loaded.source, loaded.digest, env)

    def exchange() -> tokencache.CacheEntry:
        return _exchange(
            registry,
            profile=profile,
            connection_name=connection_name,
            scope=scope,
            env=env,
            clock=clock,
        )

    if selector is None:
        return exchange().details
    cache = tokencache.TokenCache(tokencache.cache_dir(env))
    key = tokencache.entry_key(selector, variable, system_access_token)
    entry = cache.load(key)
    if _servable(entry, clock.time()):
        assert entry is not None
        return entry.details
    with cache.lock(key):
        entry = cache.load(key)
        if _servable(entry, clock.time()):
            assert entry is not None
            return entry.details
        fresh = exchange()
        try:
            cache.store(key, selector, variable, fresh)
        except (OutputError, OSError, ValueError) as exc:
            _warn_not_cached(exc)
    return fresh.details


def _servable(entry: tokencache.CacheEntry | None, now: float) -> bool:
    return (
        entry is not None
        and entry.details.token_type == TOKEN_TYPE
        and tokencache.is_fresh(entry, now)
    )


def _trusted_selector(
    registry: str, source: object, digest: str | None, env: Mapping[str, str]
) -> str | None:
    """The selector, or ``None`` when the profile file changed between the two reads."""
    cwd = os.getcwd()  # noqa: PTH109 - str paths
    try:
        identity = tokencache.identify_config(None, env, cwd)
    except (OSError, LookupError):
        return None
    loaded_path = os.path.abspath(str(source)) if source is not None else None  # noqa: PTH100
    if identity.path != loaded_path or (identity.path is not None and identity.digest != digest):
        return None
    request = tokencache.TokenRequest()
    return registry_selector(tokencache.selector_for(request, identity, env), registry)


def forget_refresh_token(registry: str, env: Mapping[str, str]) -> bool:
    """Drop ``registry``'s cached refresh token (``erase``); ``True`` if there was one."""
    slot = _slot(registry, env)
    if slot is None:
        return False
    cache, key = slot
    return cache.remove(key)


def _exchange(
    registry: str,
    *,
    profile: ResolvedProfile,
    connection_name: str,
    scope: str,
    env: Mapping[str, str],
    clock: Clock,
) -> tokencache.CacheEntry:
    """Get the connection's Entra token for ``scope`` and exchange it at ``registry``."""
    import asyncio  # noqa: PLC0415

    from agent._http import HttpClient  # noqa: PLC0415 - imports aiohttp
    from agent.credential_helpers.protocols import TokenDetails  # noqa: PLC0415
    from agent.credential_helpers.service import obtain_token  # noqa: PLC0415
    from agent.pool import CredentialPool  # noqa: PLC0415
    from agent.registries.acr_client import exchange_refresh_token  # noqa: PLC0415

    request = tokencache.TokenRequest(connection=connection_name, scopes=(scope,))
    entra = obtain_token(request, env, clock=clock)

    async def send() -> tokencache.CacheEntry:
        # The profile's pool: its session, and its retry deadline for the exchange too.
        async with CredentialPool.for_profile(profile, env=env, clock=clock) as pool:
            http = HttpClient(session=pool.session, retry=pool.retry, env=env, clock=clock)
            obtained_at = clock.time()
            token = await exchange_refresh_token(
                http,
                registry,
                tenant=_tenant_id(entra.access_token, entra.tenant),
                access_token=entra.access_token,
                access_token_expires_on=entra.expires_on,
                now=clock.time(),
            )
        details = TokenDetails(
            access_token=token.token,
            token_type=TOKEN_TYPE,
            expires_on=token.expires_on,
            tenant=entra.tenant,
            scopes=(scope,),
            client_id=entra.client_id,
            subscription=entra.subscription,
            connection=connection_name,
            profile=profile.name,
        )
        return tokencache.CacheEntry(
            details, obtained_at, refresh_on(obtained_at, token.expires_on)
        )

    return asyncio.run(send())


def _tenant_id(access_token: str, fallback: str) -> str:
    """The token's ``tid`` (a GUID, what ACR expects), else the configured tenant."""
    from agent.jwt import unverified_claims  # noqa: PLC0415

    tid = unverified_claims(access_token).get("tid")
    return tid if isinstance(tid, str) and tid else fallback


def _warn_not_cached(exc: BaseException) -> None:
    from agent.logs import get_logger  # noqa: PLC0415 - the warm `get` never logs

    get_logger("agent.registries.tokens").warning(
        "refresh_token_cache_write_failed", error=str(exc)
    )

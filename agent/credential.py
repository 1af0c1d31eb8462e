"""``AzurePipelinesCredential``: the Azure SDK's class, rebuilt on aiohttp, faster and safer.

Same constructor, methods, exceptions and wire format as
``azure.identity.aio.AzurePipelinesCredential``. What differs, on purpose:

- **single-flight**: concurrent callers for the same (tenant, scopes, claims, CAE) share one
  exchange, and concurrent exchanges share one in-flight OIDC request;
- **OIDC reuse**: the Azure DevOps token is reused across scopes and retries while its own ``exp``
  leaves ``oidc_min_validity`` seconds (a fresh one is fetched, once, if Entra still calls it
  expired: AADSTS700024);
- **exact cache keys**: scope *sets* must be equal; CAE and non-CAE tokens are separate; tokens
  obtained with ``claims`` are never cached, so they are never served to callers without claims;
- **per-key refresh backoff**: a failed proactive refresh keeps serving the valid token and is
  retried no sooner than ``refresh_retry_delay`` seconds later, for that key only;
- nothing blocks the event loop; redirects are never followed; per-call tenants are validated;
  errors name the cause and never a secret; reprs hide tokens.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
from collections.abc import Callable, Coroutine, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, TypeVar

from agent import _secrets, envvars
from agent._http import HttpClient
from agent.clock import Clock, SystemClock
from agent.envvalues import clean_token, oidc_request_url
from agent.exceptions import (
    AuthenticationError,
    EntraError,
    NoUsableLifeError,
    OidcRequestError,
    credential_unavailable,
)
from agent.exchange import (
    MISSING_OIDC_URI,
    HttpResponse,
    Token,
    TokenInfo,
    build_oidc_request,
    build_token_request,
    merge_claims,
    normalize_authority,
    parse_oidc_response,
    parse_token_response,
    resolve_tenant,
    validate_tenant_id,
)
from agent.jwt import unverified_claims
from agent.logs import get_logger
from agent.refresh import RefreshPolicy, describe_offset, oidc_lifetime
from agent.retry import RetryPolicy, parse_http_date

if TYPE_CHECKING:
    import aiohttp
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

__all__ = ["AzurePipelinesCredential", "OidcToken", "oidc_token_from_response"]

_log = get_logger(__name__)

DEFAULT_AUTHORITY = "login.microsoftonline.com"
DEFAULT_REFRESH_OFFSET = 300
DEFAULT_REFRESH_RETRY_DELAY = 30
DEFAULT_OIDC_MIN_VALIDITY = 60
_AADSTS_ASSERTION_EXPIRED = 700024
_CLOCK_WARNED: list[str] = []  # the clock offset is reported once per process


@functools.cache
def _user_agent() -> str:
    from agent._version import __version__  # noqa: PLC0415

    return f"azauth/{__version__}"


@dataclass(frozen=True)
class OidcToken:
    """An Azure DevOps OIDC token (the client assertion), with what its claims say.

    ``expires_on`` is the JWT's ``exp`` as Azure DevOps stamped it (``None`` when unreadable,
    in which case the token is never reused). ``lifetime`` is its issued life in seconds
    (:func:`agent.refresh.oidc_lifetime`: ``exp - iat``, shortened by the answer's ``Date``),
    counted from ``received`` (the local monotonic clock at arrival): that, not the local wall
    clock, decides when it is reused or renewed. ``subject``, ``issuer`` and ``audience`` are
    for diagnostics: they are what an Entra federated credential must match.
    """

    token: str = field(repr=False)
    expires_on: int | None
    subject: str | None = None
    issuer: str | None = None
    audience: str | None = None
    issued_at: int | None = None
    lifetime: float | None = None
    received: float = 0.0

    @classmethod
    def from_jwt(
        cls,
        token: str,
        *,
        local_now: float | None = None,
        server_now: float | None = None,
        received: float = 0.0,
    ) -> OidcToken:
        """Read the non-secret claims of ``token`` (without verifying it).

        ``local_now`` (wall clock) and ``server_now`` (the answer's ``Date``) feed the lifetime;
        without ``local_now`` the lifetime is ``exp - iat`` only.
        """
        claims = unverified_claims(token)
        exp = _finite(claims.get("exp"))
        iat = _finite(claims.get("iat"))
        aud = claims.get("aud")
        lifetime = None
        if exp is not None and (iat is not None or local_now is not None):
            lifetime = oidc_lifetime(
                exp,
                iat,
                server_now=server_now,
                local_now=local_now if local_now is not None else exp,
            )
        return cls(
            token=token,
            expires_on=int(exp) if exp is not None else None,
            subject=claims.get("sub") if isinstance(claims.get("sub"), str) else None,
            issuer=claims.get("iss") if isinstance(claims.get("iss"), str) else None,
            audience=aud if isinstance(aud, str) else None,
            issued_at=int(iat) if iat is not None else None,
            lifetime=lifetime,
            received=received,
        )

    def remaining(self, monotonic_now: float) -> float | None:
        """Seconds of life left, by the local monotonic clock; ``None`` when unknown."""
        if self.lifetime is None:
            return None
        return self.received + self.lifetime - monotonic_now


def _finite(value: object) -> float | None:
    """A JWT time claim as a float, ``None`` when absent or not a sane number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0 <= number < 2**40 else None


def oidc_token_from_response(
    response: HttpResponse, service_connection_id: str, *, local_now: float, received: float
) -> OidcToken:
    """Read Azure DevOps' answer into an :class:`OidcToken` with its lifetime.

    ``local_now`` is this machine's wall clock, ``received`` its monotonic clock, at arrival.

    Raises:
        OidcRequestError: the answer is a refusal or holds no token.
        NoUsableLifeError: the token's ``exp`` is already past (by ``iat`` or ``Date``).
    """
    token = parse_oidc_response(response, service_connection_id)
    _secrets.register_secret(token)
    oidc = OidcToken.from_jwt(
        token,
        local_now=local_now,
        server_now=parse_http_date(response.header("date")),
        received=received,
    )
    if oidc.lifetime is not None and oidc.lifetime <= 0:
        raise NoUsableLifeError(
            "Azure DevOps issued an OIDC token for service connection "
            f"{service_connection_id} with no usable life (exp {oidc.expires_on}, "
            f"iat {oidc.issued_at}); it was not used.",
            status_code=response.status,
        )
    return oidc


@dataclass
class _Entry:
    """A cached token; ``expires_at``, ``renew_at`` and ``last_attempt`` are monotonic."""

    info: TokenInfo
    last_attempt: float
    expires_at: float
    renew_at: float
    token: Token | None = None  # ``info`` as an AccessToken, built once for get_token

    def access_token(self) -> Token:
        if self.token is None:
            self.token = Token(self.info.token, self.info.expires_on)
        return self.token


_CacheKey = tuple[str, frozenset[str], bool]
_T = TypeVar("_T")


class AzurePipelinesCredential:
    """Authenticates with Microsoft Entra workload identity federation in Azure Pipelines.

    Args:
        tenant_id: the service connection's tenant id.
        client_id: the service connection's app (client) id.
        service_connection_id: the service connection's ``resourceId``.
        system_access_token: the job's ``System.AccessToken``.
        authority: Entra authority host or URL (default ``AZURE_AUTHORITY_HOST``, else
            ``login.microsoftonline.com``); see :class:`agent.AzureAuthorityHosts`. https only,
            except plain http to loopback addresses (an emulator or a local proxy).
        additionally_allowed_tenants: tenants besides ``tenant_id`` a per-call ``tenant_id`` may
            name; ``"*"`` allows any.
        session: a caller-owned ``aiohttp.ClientSession`` to send requests with.
        timeout: seconds one HTTP attempt may take.
        retry: retry policy for each HTTP exchange (attempts, backoff, deadline).
        clock: time source (tests inject a fake one).
        oidc_request_uri: the OIDC endpoint; default: ``SYSTEM_OIDCREQUESTURI``, read per call.
        refresh_offset: seconds before expiry at which a cached token is refreshed proactively
            (but not before half its life: :meth:`agent.refresh.RefreshPolicy.renew_delay`).
            Lifetimes are counted on the monotonic clock from ``expires_in``, so a wrong wall
            clock neither expires cached tokens early nor keeps them late.
        refresh_retry_delay: minimum seconds between proactive refresh attempts of one token.
        oidc_min_validity: an OIDC token is reused while it has at least this many seconds left.
        env: environment mapping to read variables from (default ``os.environ``).

    Raises:
        ValueError: a required argument is empty, the tenant id or authority is invalid.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        service_connection_id: str,
        system_access_token: str,
        authority: str | None = None,
        additionally_allowed_tenants: list[str] | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        oidc_request_uri: str | None = None,
        refresh_offset: int = DEFAULT_REFRESH_OFFSET,
        refresh_retry_delay: int = DEFAULT_REFRESH_RETRY_DELAY,
        oidc_min_validity: int = DEFAULT_OIDC_MIN_VALIDITY,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if not (tenant_id and client_id and service_connection_id and system_access_token):
            raise ValueError(
                "'tenant_id', 'client_id', 'service_connection_id', and 'system_access_token' "
                "must be passed in as keyword arguments. Please refer to the troubleshooting guide "
                "at https://aka.ms/azsdk/python/identity/azurepipelinescredential/troubleshoot."
            )
        validate_tenant_id(tenant_id)
        system_access_token = clean_token(system_access_token, source="system_access_token")
        self._env = env
        environment = self._environ()
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._service_connection_id = service_connection_id
        self._system_access_token = system_access_token
        from_env = (environment.get(envvars.AZURE_AUTHORITY_HOST) or "").strip()  # blank: unset
        self._authority = normalize_authority(authority or from_env or DEFAULT_AUTHORITY)
        self._allowed_tenants = list(additionally_allowed_tenants or [])
        if oidc_request_uri is not None:
            oidc_request_uri = oidc_request_url(oidc_request_uri, source="oidc_request_uri")
        self._oidc_request_uri = oidc_request_uri
        # The last SYSTEM_OIDCREQUESTURI read from the environment and its checked form: a
        # cached answer re-reads the variable but checks the URL again only when it changed.
        self._checked_env_uri: tuple[str, str] | None = None
        self._clock = clock or SystemClock()
        self._http = HttpClient(
            session=session, timeout=timeout, retry=retry, clock=self._clock, env=env
        )
        self._refresh_offset = refresh_offset
        self._renewal = RefreshPolicy(refresh_margin=refresh_offset, min_interval=0.0)
        self._refresh_retry_delay = refresh_retry_delay
        self._oidc_min_validity = oidc_min_validity
        self._user_agent = _user_agent()
        self._cache: dict[_CacheKey, _Entry] = {}
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self._oidc: OidcToken | None = None
        if kwargs:
            # azure-identity accepts azure-core pipeline options (transport, policies, ...); they
            # have no meaning on aiohttp, so they are accepted for drop-in use and ignored.
            _log.debug("azure_core_options_ignored", options=sorted(kwargs))
        _secrets.register_secret(system_access_token)

    # ----------------------------------------------------------------------------------------
    # Public API

    @property
    def tenant_id(self) -> str:
        """The default tenant."""
        return self._tenant_id

    @property
    def client_id(self) -> str:
        """The app (client) id."""
        return self._client_id

    @property
    def service_connection_id(self) -> str:
        """The service connection's resourceId."""
        return self._service_connection_id

    @property
    def authority(self) -> str:
        """The normalised authority URL (``https://host``)."""
        return self._authority

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(tenant_id={self._tenant_id!r}, client_id={self._client_id!r}, "
            f"service_connection_id={self._service_connection_id!r}, authority={self._authority!r})"
        )

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,  # noqa: ARG002 - accepted for API parity
    ) -> AccessToken:
        """Request an access token for ``scopes`` (at least one).

        Raises:
            CredentialUnavailableError: ``SYSTEM_OIDCREQUESTURI`` is not set.
            ClientAuthenticationError: authentication failed (an :class:`AuthenticationError`
                subclass with ``status_code`` set when there was an HTTP answer).
            ValueError: no scope, an invalid per-call tenant id, or invalid CAE claims.
        """
        if scopes and not claims:
            # The common case answered without a coroutine switch: a fresh cached token.
            self._require_oidc_uri()
            key: _CacheKey = (self._resolve_tenant(tenant_id), frozenset(scopes), enable_cae)
            entry = self._servable(key, self._clock.monotonic())
            if entry is not None:
                return entry.access_token()
        info = await self._get(
            "get_token", scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae
        )
        return Token(info.token, info.expires_on)

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        """Request an access token with its type and refresh time; unknown options are ignored."""
        opts: Mapping[str, Any] = options or {}
        return await self._get(
            "get_token_info",
            scopes,
            claims=opts.get("claims"),
            tenant_id=opts.get("tenant_id"),
            enable_cae=bool(opts.get("enable_cae", False)),
        )

    async def get_oidc_token(
        self, *, min_validity: int | None = None, force: bool = False
    ) -> OidcToken:
        """Return an Azure DevOps OIDC token with at least ``min_validity`` seconds left.

        A cached token is returned when it qualifies (never with ``force``); otherwise one
        request is made and shared by every concurrent caller.
        """
        self._require_oidc_uri()
        margin = self._oidc_min_validity if min_validity is None else min_validity
        cached = self._oidc
        if not force and cached is not None:
            remaining = cached.remaining(self._clock.monotonic())
            if remaining is not None and remaining > margin:
                return cached
        return await self._single_flight(("oidc",), self._fetch_oidc)

    async def request_token(
        self, *scopes: str, tenant_id: str | None = None, enable_cae: bool = False
    ) -> AccessTokenInfo:
        """Ask Entra for a new token now, update the cache, and raise on failure.

        Unlike :meth:`get_token_info`, a failure is never hidden behind a still-valid cached
        token: this is what a scheduler that refreshes on its own timetable needs.
        """
        self._require_oidc_uri()
        if not scopes:
            raise ValueError('"request_token" requires at least one scope')
        tenant = self._resolve_tenant(tenant_id)
        form_claims = merge_claims(None, enable_cae=enable_cae)
        key: _CacheKey = (tenant, frozenset(scopes), enable_cae)
        return await self._single_flight(
            key, lambda: self._exchange(tenant, scopes, form_claims, key)
        )

    def use_retry_policy(self, retry: RetryPolicy) -> None:
        """Retry each later HTTP exchange by ``retry``.

        A scheduler that retries on its own sets ``RetryPolicy(max_attempts=1)``, so that its
        request-rate bound holds.
        """
        self._http.retry = retry

    async def close(self) -> None:
        """Close the HTTP session this credential created. Cached tokens stay usable."""
        await self._http.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ----------------------------------------------------------------------------------------
    # Cache and refresh

    def _environ(self) -> Mapping[str, str]:
        return self._env if self._env is not None else os.environ

    def _require_oidc_uri(self) -> str:
        if self._oidc_request_uri is not None:
            return self._oidc_request_uri
        uri = self._environ().get(envvars.SYSTEM_OIDCREQUESTURI)
        if uri is None:
            raise credential_unavailable(MISSING_OIDC_URI)
        checked = self._checked_env_uri
        if checked is not None and checked[0] == uri:
            return checked[1]
        url = oidc_request_url(uri, source="environment variable SYSTEM_OIDCREQUESTURI")
        self._checked_env_uri = (uri, url)
        return url

    async def _get(
        self,
        method: str,
        scopes: tuple[str, ...],
        *,
        claims: str | None,
        tenant_id: str | None,
        enable_cae: bool,
    ) -> TokenInfo:
        # Same order of checks as the Azure SDK: the environment first, then the scopes.
        self._require_oidc_uri()
        if not scopes:
            raise ValueError(f'"{method}" requires at least one scope')
        tenant = self._resolve_tenant(tenant_id)
        form_claims = merge_claims(claims, enable_cae=enable_cae)
        key: _CacheKey = (tenant, frozenset(scopes), enable_cae)
        if claims:
            # A claims challenge must reach Entra, and its answer must not be handed to callers
            # that did not ask for those claims: no cache read, no cache write.
            return await self._single_flight(
                (*key, claims),
                lambda: self._exchange(tenant, scopes, form_claims, None),
            )

        now = self._clock.monotonic()
        servable = self._servable(key, now)
        if servable is not None:
            return servable.info
        entry = self._cache.get(key)
        if entry is None or now >= entry.expires_at:
            return await self._single_flight(
                key, lambda: self._exchange(tenant, scopes, form_claims, key)
            )
        entry.last_attempt = now
        try:
            return await self._single_flight(
                key, lambda: self._exchange(tenant, scopes, form_claims, key)
            )
        except AuthenticationError as exc:
            # Stale-while-refresh: the token still works; try again after the retry delay.
            _log.warning(
                "token_refresh_failed_using_cached", expires_on=entry.info.expires_on, error=exc
            )
            return entry.info

    def _servable(self, key: _CacheKey, now: float) -> _Entry | None:
        """The cached entry to answer with no request at all, or ``None``.

        Servable: not expired, and either not due for a proactive refresh or retried less
        than ``refresh_retry_delay`` seconds ago.
        """
        entry = self._cache.get(key)
        if entry is None or now >= entry.expires_at:
            return None
        if now - entry.last_attempt < self._refresh_retry_delay:
            return entry
        return None if now >= entry.renew_at else entry

    def _resolve_tenant(self, requested: str | None) -> str:
        if not requested or requested == self._tenant_id:
            return self._tenant_id  # the common case, without an environment lookup
        disabled = bool(self._environ().get(envvars.AZURE_IDENTITY_DISABLE_MULTITENANTAUTH))
        return resolve_tenant(
            self._tenant_id, requested, self._allowed_tenants, multitenant_disabled=disabled
        )

    def _entry(self, info: TokenInfo) -> _Entry:
        """A cache entry for ``info``, just received: its life on the monotonic clock.

        Renewed by the refresh engine's rule (:meth:`agent.refresh.RefreshPolicy.renew_delay`,
        ``refresh_offset`` as the margin): what ``azauth run --watch`` does, the same here.
        """
        now = self._clock.monotonic()
        lifetime = info.lifetime
        if lifetime is None:
            lifetime = int(info.expires_on - self._clock.time())
        renew = self._renewal.renew_delay(lifetime, info.refresh_in)
        return _Entry(info, last_attempt=now, expires_at=now + lifetime, renew_at=now + renew)

    async def _single_flight(
        self, key: Hashable, start: Callable[[], Coroutine[Any, Any, _T]]
    ) -> _T:
        """Run ``start()`` once for all concurrent callers of ``key`` and share its outcome.

        Callers await a shield, so one cancelled caller does not cancel the others' request.
        """
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(start())
            self._inflight[key] = future

            def _done(done: asyncio.Future[Any]) -> None:
                if self._inflight.get(key) is done:
                    del self._inflight[key]
                if not done.cancelled():
                    done.exception()  # mark retrieved even if every caller went away

            future.add_done_callback(_done)
        result: _T = await asyncio.shield(future)
        return result

    # ----------------------------------------------------------------------------------------
    # The two network steps

    async def _fetch_oidc(self) -> OidcToken:
        uri = self._require_oidc_uri()
        try:
            request = build_oidc_request(
                uri,
                self._service_connection_id,
                self._system_access_token,
                user_agent=self._user_agent,
            )
        except ValueError as exc:
            raise OidcRequestError(
                str(exc), service_connection_id=self._service_connection_id
            ) from None
        response = await self._http.send(request)
        local_now = self._clock.time()
        oidc = oidc_token_from_response(
            response,
            self._service_connection_id,
            local_now=local_now,
            received=self._clock.monotonic(),
        )
        remote: float | None = oidc.issued_at
        if remote is None:
            remote = parse_http_date(response.header("date"))
        self._check_clock(remote, local_now, "Azure DevOps")
        if oidc.lifetime is not None:
            self._oidc = oidc
        _log.debug(
            "oidc_token_acquired",
            service_connection_id=self._service_connection_id,
            expires_on=oidc.expires_on,
        )
        return oidc

    def _check_clock(self, remote: float | None, local_now: float, name: str) -> None:
        """Warn once per process when this machine's clock is over a minute off ``name``'s.

        ``remote`` is what the service's clock said: the OIDC token's ``iat``, else an
        answer's ``Date``.
        """
        if remote is None or _CLOCK_WARNED:
            return
        message = describe_offset(local_now, remote, name)
        if message is not None:
            _CLOCK_WARNED.append(name)
            _log.warning("clock_skew", service=name, detail=message)

    async def _exchange(
        self,
        tenant: str,
        scopes: tuple[str, ...],
        claims: str | None,
        cache_key: _CacheKey | None,
    ) -> TokenInfo:
        oidc = await self.get_oidc_token()
        try:
            info = await self._post_assertion(tenant, scopes, claims, oidc.token)
        except EntraError as exc:
            if _AADSTS_ASSERTION_EXPIRED not in exc.error_codes:
                raise
            # Entra judged the reused assertion expired (clock skew): one retry with a new one.
            if self._oidc is oidc:
                self._oidc = None
            oidc = await self.get_oidc_token()
            info = await self._post_assertion(tenant, scopes, claims, oidc.token)
        _secrets.register_secret(info.token)
        if cache_key is not None:
            self._cache[cache_key] = self._entry(info)
        _log.info(
            "token_acquired", scope=" ".join(scopes), tenant=tenant, expires_on=info.expires_on
        )
        return info

    async def _post_assertion(
        self, tenant: str, scopes: tuple[str, ...], claims: str | None, assertion: str
    ) -> TokenInfo:
        request = build_token_request(
            authority=self._authority,
            tenant_id=tenant,
            client_id=self._client_id,
            assertion=assertion,
            scopes=scopes,
            claims=claims,
            user_agent=self._user_agent,
        )
        request_time = self._clock.time()
        response = await self._http.send(request)
        # Absolute times keep the server's values: expires_on counts from Entra's Date.
        server_time = parse_http_date(response.header("date"))
        self._check_clock(server_time, request_time, "Microsoft Entra ID")
        start = server_time if server_time is not None else request_time
        return parse_token_response(response, request_time=int(start))

"""``azauth serve``: a loopback token server that speaks the Azure managed-identity protocols.

Programs find it through the environment alone, as they would on Azure App Service or a VM:
``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER`` (every current Azure SDK's
``ManagedIdentityCredential``, hence ``DefaultAzureCredential``), the legacy ``MSI_ENDPOINT`` +
``MSI_SECRET`` (older SDKs; go-azure-sdk, that is Terraform's azurerm with ``ARM_USE_MSI``), and,
opt-in with ``imds=True``, the IMDS shape at ``ARM_MSI_ENDPOINT``. Each request is answered from
the profile's :class:`~agent.credential.AzurePipelinesCredential` of the chosen connection, whose
single-flight cache makes many clients asking at once cost one exchange with Entra. No client
ever sees the System.AccessToken. The same server also answers the OIDC *request* flow at
``/oidc/token`` (:mod:`agent.tokenserver.oidc_request`): the connections' Azure DevOps OIDC tokens
for tools that fetch a fresh assertion before every exchange (Terraform, Pulumi,
AzurePipelinesCredential), behind a second per-run secret.

Security model (the wire details are in :mod:`agent.tokenserver.managed_identity`):

- it listens on 127.0.0.1, ::1 or localhost only; anything else is refused at start;
- the App Service endpoint requires a random per-run secret (``secrets.token_urlsafe(32)``,
  compared with ``hmac.compare_digest``); a request without it is refused with 401 before any
  credential is touched;
- the ``Host`` header must name the loopback server (DNS rebinding), and requests carrying
  ``X-Forwarded-For`` (relayed) or ``Origin`` (sent by a web page) are refused;
- the OIDC request endpoint requires ``Authorization: Bearer`` with its own random secret
  (``AZAUTH_OIDC_REQUEST_TOKEN``), distinct from the App Service one;
- the IMDS endpoint has no secret, as on Azure: any local process that finds the port can get a
  token. It is off unless asked for; ``Metadata: true`` is required;
- requests are bounded: no body, short request lines and headers, at most ``max_concurrency``
  requests handled at once (more are answered 429 with ``Retry-After``);
- connections are bounded (:mod:`agent.tokenserver._listener`): at most 512 open (a quarter of
  ``RLIMIT_NOFILE`` when lower; over the cap the oldest connection not handling a request is
  closed), 5 s to present a complete request, 15 s idle between keep-alive requests;
- logs name the protocol, resource, connection and status, never a token or the secret.

Use :func:`serve_profile` (an async context manager) to run one around other work.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from aiohttp import web

from agent import envvars
from agent._http import ssl_context_from_env
from agent.clock import Clock, SystemClock
from agent.envvalues import oidc_request_uri
from agent.exceptions import (
    AuthenticationError,
    CredentialUnavailableError,
    EntraError,
    UsageError,
)
from agent.logs import get_logger, redact_text, register_secret
from agent.pool import CredentialPool
from agent.tokenserver._listener import DEFAULT_KEEPALIVE_TIMEOUT, GuardedListener
from agent.tokenserver.managed_identity import (
    APP_SERVICE_PATH,
    IMDS_PATH,
    Refusal,
    TokenRequest,
    WireProtocol,
    app_service_token_body,
    authorize,
    check_forwarding,
    error_body,
    imds_token_body,
    is_allowed_host,
    loopback_no_proxy,
    parse_app_service_request,
    parse_imds_request,
    select_connection,
)
from agent.tokenserver.oidc_request import (
    DEFAULT_AUDIENCE,
    OIDC_REQUEST_PATH,
    OIDC_REUSE_SECONDS,
    RequestShape,
    authorize_bearer,
    parse_oidc_request,
    select_oidc_connection,
    shape_of,
    token_body,
)
from agent.tokenserver.oidc_request import error_body as oidc_error_body
from agent.urls import loopback_bind_address

if TYPE_CHECKING:
    from agent.config import Connection, ResolvedProfile, Settings
    from agent.credential import AzurePipelinesCredential

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "LOOPBACK_HOSTS",
    "TokenServer",
    "check_loopback_host",
    "serve_profile",
]

DEFAULT_MAX_CONCURRENCY = 128
"""Requests handled at once; waiting on one shared exchange costs little, so this is generous."""

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
"""The addresses the server may listen on."""

MAX_REQUEST_BYTES = 1024
"""``client_max_size``: token requests carry no body, so anything beyond this is refused."""

_MAX_LINE = 4096  # request line (the query string) and each header line
_MAX_HEADERS = 64
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The headers of a token answer, as web.json_response sets them, built once.
_TOKEN_HEADERS = (("Content-Type", "application/json; charset=utf-8"), *_NO_STORE.items())
_RETRY_AFTER_BUSY = 1
# Parsed requests and encoded answers kept per distinct query / resource (bounded: clients
# choose these strings, so a full cache is emptied rather than grown).
_MAX_CACHED = 256


class _CorrelationId:
    """A request's correlation id, drawn only when an answer or a log line needs it."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = str(uuid.uuid4())
        return self._value


_log = get_logger("agent.tokenserver.server")
_T = TypeVar("_T")


def check_loopback_host(host: str) -> str:
    """Return the address to bind for ``host`` (``localhost`` binds 127.0.0.1).

    Raises:
        UsageError: ``host`` is not 127.0.0.1, ::1 or localhost.
    """
    address = loopback_bind_address(host)
    if address not in LOOPBACK_HOSTS:
        raise UsageError(
            f"{host!r} is not a loopback address: the token server listens on loopback only "
            "(127.0.0.1, ::1 or localhost), because it hands out tokens to the processes that "
            "can reach it"
        )
    return address


class TokenServer:
    """An HTTP server on loopback that mints tokens for ``connections`` on demand.

    Args:
        connections: the connections it serves, by name (a profile's ``connections``).
        env: where credentials read ``SYSTEM_OIDCREQUESTURI``, the System.AccessToken and
            ``AZURE_AUTHORITY_HOST`` (default ``os.environ``).
        imds: also serve the IMDS shape (no secret: any local process can ask it).
        default_connection: the connection used by requests that name none (default: the only
            connection; with several, such requests are refused).
        max_concurrency: requests handled at once; more are answered 429.
        settings: the profile file's settings (refresh margin, retry deadline), if any.
        clock: time source for credentials and answers.
        oidc_audiences: ``audience`` values the OIDC request endpoint accepts besides
            ``api://AzureADTokenExchange`` (the token is Azure DevOps' whatever the alias).

    Raises:
        UsageError: no connection, or ``default_connection`` is not one of them.
    """

    def __init__(
        self,
        connections: Mapping[str, Connection],
        *,
        env: Mapping[str, str] | None = None,
        imds: bool = False,
        default_connection: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        settings: Settings | None = None,
        clock: Clock | None = None,
        oidc_audiences: Sequence[str] = (),
    ) -> None:
        if not connections:
            raise UsageError("the profile has no connection to serve tokens for")
        if default_connection is not None and default_connection not in connections:
            raise UsageError(
                f"default_connection {default_connection!r} is not one of the connections "
                f"served (they are: {', '.join(connections)})"
            )
        if max_concurrency < 1:
            raise UsageError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self._connections = dict(connections)
        self._env = env
        self._imds = imds
        self._default = default_connection
        self._max_concurrency = max_concurrency
        self._settings = settings
        self._clock = clock or SystemClock()
        # Random per run; never logged, never in an error message (the logs mask it as well).
        self._secret = secrets.token_urlsafe(32)
        register_secret(self._secret)
        # The OIDC request endpoint has its own secret: holding one grants only that endpoint.
        self._oidc_secret = secrets.token_urlsafe(32)
        register_secret(self._oidc_secret)
        self._oidc_audiences = tuple(dict.fromkeys((DEFAULT_AUDIENCE, *oidc_audiences)))
        self._routes: dict[str, WireProtocol] = {APP_SERVICE_PATH: "app_service"}
        if imds:
            self._routes[IMDS_PATH] = "imds"
        self._pool: CredentialPool | None = None
        self._credentials: dict[str, AzurePipelinesCredential] = {}
        self._runner: web.AppRunner | None = None
        self._listener = GuardedListener()
        self._slots = asyncio.Semaphore(max_concurrency)
        # App Service query string -> its parsed request and the connection it selects.
        self._parsed: dict[str, tuple[TokenRequest, str]] = {}
        # (protocol, resource, connection) -> the token, second and JSON answer encoded for them.
        self._bodies: dict[tuple[str, str, str], tuple[str, int, str, int, bytes]] = {}
        self._url: str | None = None
        self._port = 0
        #: Requests answered with a token, and requests refused (any error status).
        self.counts: dict[str, int] = {"served": 0, "refused": 0}

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Build the credentials and listen on ``host:port`` (port 0: any free port).

        Raises:
            UsageError: ``host`` is not loopback, or the port cannot be bound.
            ConfigError: a connection's System.AccessToken variable is missing.
            ConfigError: ``SYSTEM_OIDCREQUESTURI`` is not set (the job environment).
        """
        if self._runner is not None:
            raise RuntimeError("the token server is already started")
        bind = check_loopback_host(host)
        environ = self._environ()
        oidc_request_uri(environ)  # the job environment first: CONFIG, with a hint
        ssl_context_from_env(environ)  # a broken CA bundle fails the start, not each request
        self._pool = CredentialPool(
            self._connections, env=environ, settings=self._settings, clock=self._clock
        )
        try:
            self._credentials = self._pool.build()
            runner = web.AppRunner(
                self._build_app(),
                access_log=None,
                shutdown_timeout=1.0,
                keepalive_timeout=DEFAULT_KEEPALIVE_TIMEOUT,
                max_line_size=_MAX_LINE,
                max_field_size=_MAX_LINE,
                max_headers=_MAX_HEADERS,
            )
            await runner.setup()
            try:
                bound = await self._listener.start(runner, bind, port)
            except OSError as exc:
                await runner.cleanup()
                raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        except BaseException:
            await self._close_credentials()
            raise
        self._runner = runner
        self._port = bound
        url_host = f"[{bind}]" if ":" in bind else bind
        self._url = f"http://{url_host}:{self._port}"
        _log.debug(
            "token_server_started",
            url=self._url,
            connections=list(self._connections),
            imds=self._imds,
        )
        return self

    async def close(self) -> None:
        """Stop serving and close the credentials' HTTP session. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await self._listener.close()
            await runner.cleanup()
            _log.info("token_server_stopped", **self.counts)
        await self._close_credentials()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _environ(self) -> Mapping[str, str]:
        return self._env if self._env is not None else os.environ

    async def _close_credentials(self) -> None:
        pool, self._pool = self._pool, None
        self._credentials = {}
        if pool is not None:
            await pool.close()

    # ----------------------------------------------------------------------------- what to export

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (or ``http://[::1]:PORT``) once started."""
        if self._url is None:
            raise RuntimeError("the token server is not started")
        return self._url

    @property
    def port(self) -> int:
        """The port it listens on (0 before start)."""
        return self._port

    @property
    def identity_endpoint(self) -> str:
        """The App Service endpoint: the value of ``IDENTITY_ENDPOINT`` and ``MSI_ENDPOINT``."""
        return self.url + APP_SERVICE_PATH

    @property
    def imds_endpoint(self) -> str | None:
        """The IMDS token URL (``ARM_MSI_ENDPOINT``), or ``None`` when IMDS is off."""
        return self.url + IMDS_PATH if self._imds else None

    @property
    def oidc_request_url(self) -> str:
        """The OIDC request endpoint (both shapes; see :mod:`agent.tokenserver.oidc_request`)."""
        return self.url + OIDC_REQUEST_PATH

    @property
    def oidc_request_token(self) -> str:
        """The bearer secret of the OIDC request endpoint (never the System.AccessToken)."""
        return self._oidc_secret

    @property
    def env(self) -> dict[str, str]:
        """The variables that point a program at this server.

        ``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER``, ``MSI_ENDPOINT``, ``MSI_SECRET``,
        ``AZAUTH_OIDC_REQUEST_URL`` and ``AZAUTH_OIDC_REQUEST_TOKEN``; with IMDS
        also ``ARM_USE_MSI=true`` and ``ARM_MSI_ENDPOINT``; when the environment names a proxy,
        ``NO_PROXY``/``no_proxy`` extended with the loopback addresses. The values include the
        secret: hand them to the child process, never to a log.
        """
        values = {
            envvars.IDENTITY_ENDPOINT: self.identity_endpoint,
            envvars.IDENTITY_HEADER: self._secret,
            envvars.MSI_ENDPOINT: self.identity_endpoint,
            envvars.MSI_SECRET: self._secret,
            envvars.AZAUTH_OIDC_REQUEST_URL: self.oidc_request_url,
            envvars.AZAUTH_OIDC_REQUEST_TOKEN: self._oidc_secret,
        }
        if self.imds_endpoint is not None:
            values[envvars.ARM_USE_MSI] = "true"
            values[envvars.ARM_MSI_ENDPOINT] = self.imds_endpoint
        values.update(loopback_no_proxy(self._environ()))
        return values

    # ----------------------------------------------------------------------------- serving

    def _build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_REQUEST_BYTES, middlewares=[self._listener.middleware]
        )
        # One catch-all route: every answer, 404 and 405 included, goes through the same guards
        # and comes back as JSON in the protocol's shape.
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == OIDC_REQUEST_PATH:
            return await self._handle_oidc_request(request)
        protocol = self._routes.get(path)
        correlation_id = _CorrelationId()
        try:
            token_request, name = self._check(request, protocol)
            return await self._answer(token_request, name, correlation_id)
        except Refusal as refusal:
            return self._refuse(protocol, refusal, str(correlation_id), path)

    def _check_origin(self, request: web.Request) -> None:
        """The DNS-rebinding, relay and web-page guards every endpoint shares."""
        if not is_allowed_host(request.headers.get("Host"), self._port):
            raise Refusal(
                403,
                "forbidden",
                "the Host header must name this loopback server (127.0.0.1, localhost or [::1])",
            )
        check_forwarding(request.headers)

    def _check(
        self, request: web.Request, protocol: WireProtocol | None
    ) -> tuple[TokenRequest, str]:
        """Every guard, cheapest and least revealing first; nothing here touches a credential.

        Returns the request and the connection it selects. A query string seen before is not
        parsed again (parsing and selection are pure functions of it and the server's fixed
        connections); every other check runs on every request.
        """
        self._check_origin(request)
        if protocol is None:
            paths = " and ".join([*self._routes, OIDC_REQUEST_PATH])
            raise Refusal(404, "not_found", f"no endpoint at this path; this server serves {paths}")
        if request.method != "GET":
            raise Refusal(405, "method_not_allowed", "only GET is supported")
        if request.body_exists:
            raise Refusal(413, "invalid_request", "token requests carry no body")
        if protocol == "app_service":
            authorize(request.headers, self._secret)
            query = request.rel_url.raw_query_string
            parsed = self._parsed.get(query)
            if parsed is None:
                token_request = parse_app_service_request(request.query.items())
                name = select_connection(self._connections, token_request.selector, self._default)
                if len(self._parsed) >= _MAX_CACHED:
                    self._parsed.clear()
                parsed = self._parsed[query] = (token_request, name)
            return parsed
        token_request = parse_imds_request(request.query.items(), request.headers)
        return token_request, select_connection(
            self._connections, token_request.selector, self._default
        )

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the ``max_concurrency`` request slots, or a 429 refusal when none is free."""
        if self._slots.locked():
            raise self._busy()
        async with self._slots:
            yield

    def _busy(self) -> Refusal:
        """The 429 answer when every request slot is taken."""
        return Refusal(
            429,
            "too_many_requests",
            f"more than {self._max_concurrency} requests at once; retry shortly",
            retry_after=_RETRY_AFTER_BUSY,
        )

    async def _answer(
        self, token_request: TokenRequest, name: str, correlation_id: _CorrelationId
    ) -> web.Response:
        slots = self._slots
        if slots.locked():  # as _slot(), without a context manager on the hot path
            raise self._busy()
        async with slots:
            info = await self._token(name, token_request.scope, correlation_id)
        body = self._token_body(token_request, name, info)
        self.counts["served"] += 1
        _log.debug(
            "token_served",
            protocol=token_request.protocol,
            resource=token_request.resource,
            connection=name,
            status=200,
        )
        return web.Response(body=body, headers=_TOKEN_HEADERS)

    def _token_body(self, token_request: TokenRequest, name: str, info: Any) -> bytes:
        """The JSON answer, encoded once per token, resource and second (``expires_in``)."""
        now = int(self._clock.time())
        token, expires_on = info.token, int(info.expires_on)
        token_type = info.token_type or "Bearer"
        key = (token_request.protocol, token_request.resource, name)
        cached = self._bodies.get(key)
        if (
            cached is not None
            and cached[0] is token
            and cached[1] == now
            and cached[2] == token_type
            and cached[3] == expires_on
        ):
            return cached[4]
        render = (
            app_service_token_body if token_request.protocol == "app_service" else imds_token_body
        )
        body = json.dumps(
            render(
                access_token=token,
                expires_on=expires_on,
                resource=token_request.resource,
                client_id=self._connections[name].client_id,
                token_type=token_type,
                now=now,
            )
        ).encode()
        if len(self._bodies) >= _MAX_CACHED:
            self._bodies.clear()
        self._bodies[key] = (token, now, token_type, expires_on, body)
        return body

    async def _handle_oidc_request(self, request: web.Request) -> web.Response:
        """The OIDC request endpoint: a connection's Azure DevOps OIDC token, in either shape."""
        method_shape = shape_of(request.method)
        shape: RequestShape = method_shape or "azure_devops"
        correlation_id = str(uuid.uuid4())
        try:
            name = self._check_oidc(request, method_shape)
            token = await self._answer_oidc(name, correlation_id)
        except Refusal as refusal:
            self.counts["refused"] += 1
            log = _log.warning if refusal.status in (401, 403) else _log.info
            log(
                "oidc_request_refused",
                shape=shape,
                status=refusal.status,
                reason=refusal.message,
                correlation_id=correlation_id,
            )
            body = oidc_error_body(shape, refusal)
            headers = _refusal_headers(refusal, allow="GET, POST")
            return web.json_response(body, status=refusal.status, headers=headers)
        self.counts["served"] += 1
        _log.debug("oidc_token_served", shape=shape, connection=name, status=200)
        return web.json_response(token_body(shape, token), headers=_NO_STORE)

    def _check_oidc(self, request: web.Request, shape: RequestShape | None) -> str:
        """The OIDC endpoint's guards; returns the connection asked for."""
        self._check_origin(request)
        if shape is None:
            raise Refusal(
                405,
                "method_not_allowed",
                "use POST (Azure DevOps shape) or GET (GitHub Actions shape)",
            )
        authorize_bearer(request.headers.get("Authorization"), self._oidc_secret)
        parsed = parse_oidc_request(shape, request.query.items(), self._oidc_audiences)
        return select_oidc_connection(
            self._connections, parsed.service_connection_id, self._default
        )

    async def _answer_oidc(self, name: str, correlation_id: str) -> str:
        async with self._slot():
            return await self._oidc_token(name, correlation_id)

    async def _oidc_token(self, name: str, correlation_id: str) -> str:
        oidc = await self._borrow(
            name,
            correlation_id,
            lambda credential: credential.get_oidc_token(min_validity=OIDC_REUSE_SECONDS),
            crashed="oidc_request_crashed",
        )
        return oidc.token

    async def _token(self, name: str, scope: str, correlation_id: _CorrelationId | str) -> Any:
        return await self._borrow(
            name,
            correlation_id,
            lambda credential: credential.get_token_info(scope),
            crashed="token_request_crashed",
            invalid=(ValueError,),
        )

    async def _borrow(
        self,
        name: str,
        correlation_id: _CorrelationId | str,
        acquire: Callable[[AzurePipelinesCredential], Awaitable[_T]],
        *,
        crashed: str,
        invalid: tuple[type[Exception], ...] = (),
    ) -> _T:
        """``acquire`` with ``name``'s credential; a failure becomes the answer's :class:`Refusal`.

        ``invalid`` errors are the client's (400, ``invalid_resource``); ``crashed`` is the event
        logged for a bug of ours (500).
        """
        try:
            return await acquire(self._credentials[name])
        except AuthenticationError as exc:
            # The upstream text (Entra's description, a proxy's name) goes to our log only; the
            # client gets a generic message and the correlation id that finds this line.
            _log.warning(
                "upstream_failed",
                connection=name,
                error=redact_text(str(exc)),
                correlation_id=str(correlation_id),
            )
            raise _upstream_refusal(exc, str(correlation_id)) from None
        except invalid as exc:
            raise Refusal(400, "invalid_resource", redact_text(str(exc))) from None
        except Exception as exc:  # noqa: BLE001 - one request fails, the server keeps serving
            # A bug of ours: answer in the protocol's shape, keep the details for the log.
            _log.exception(crashed, connection=name, error=type(exc).__name__)
            raise Refusal(500, "unknown", "internal error of the token server") from None

    def _refuse(
        self,
        protocol: WireProtocol | None,
        refusal: Refusal,
        correlation_id: str,
        path: str,
    ) -> web.Response:
        self.counts["refused"] += 1
        log = _log.warning if refusal.status in (401, 403) else _log.info
        log(
            "request_refused",
            protocol=protocol,
            path=path,
            status=refusal.status,
            reason=refusal.message,
            correlation_id=correlation_id,
        )
        return web.json_response(
            error_body(protocol, refusal, correlation_id),
            status=refusal.status,
            headers=_refusal_headers(refusal, allow="GET"),
        )


def _refusal_headers(refusal: Refusal, *, allow: str) -> dict[str, str]:
    """No caching; ``Retry-After`` when the refusal has one; ``Allow`` on a 405."""
    headers = dict(_NO_STORE)
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(refusal.retry_after)
    if refusal.status == 405:
        headers["Allow"] = allow
    return headers


def _upstream_refusal(exc: AuthenticationError, correlation_id: str) -> Refusal:
    """Translate a failed acquisition into the answer a managed-identity endpoint would give.

    Entra's verdict on the resource itself (unknown resource, invalid scope) is the client's
    mistake: 400. A transient failure (network, 429, 5xx after retries) is 503, which clients
    retry. Anything else (the federation is misconfigured, the job token expired) is 500.
    """
    # Generic: upstream text never reaches a client; it is logged under ``correlation_id``.
    message = (
        "the token request failed upstream; the azauth log has the details under "
        f"correlation id {correlation_id}"
    )
    # EntraError.error is the OAuth error code (azure-core types the attribute otherwise).
    oauth_error: Any = getattr(exc, "error", None)
    if isinstance(exc, EntraError) and oauth_error in ("invalid_resource", "invalid_scope"):
        return Refusal(400, "invalid_resource", message)
    if exc.retryable:
        return Refusal(503, "service_unavailable", message, retry_after=_RETRY_AFTER_BUSY)
    if isinstance(exc, CredentialUnavailableError):
        return Refusal(500, "unavailable", message)
    return Refusal(500, "unknown", message)


@asynccontextmanager
async def serve_profile(
    profile: ResolvedProfile,
    *,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    imds: bool = False,
    default_connection: str | None = None,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    clock: Clock | None = None,
    oidc_audiences: Sequence[str] = (),
) -> AsyncIterator[TokenServer]:
    """Serve ``profile``'s connections for the duration of the ``async with`` block.

    Yields the started :class:`TokenServer`; give ``server.env`` to the processes that should
    use it (``azauth exec --serve`` does)::

        async with serve_profile(profile, env=env) as server:
            child_env = {**env, **server.env}
            ...

    Raises:
        UsageError, ConfigError, CredentialUnavailableError: as :meth:`TokenServer.start`.
    """
    server = TokenServer(
        profile.connections,
        env=env,
        imds=imds,
        default_connection=default_connection,
        max_concurrency=max_concurrency,
        settings=profile.settings,
        clock=clock,
        oidc_audiences=oidc_audiences,
    )
    await server.start(host, port)
    try:
        yield server
    finally:
        await server.close()

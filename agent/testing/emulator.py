"""An offline emulator of Azure DevOps' ``oidctoken`` endpoint and Microsoft Entra's token endpoint.

One :class:`Emulator` is one ``aiohttp`` server on loopback that answers both steps of Azure
Pipelines workload identity federation the way the real services do (paths, status codes,
headers, error bodies), issues RS256 tokens from keys it publishes as JWKS, and checks the
client assertion as Entra does (signature, time window, federated identity credential).

Its state is plain attributes, readable and changeable between requests::

    async with Emulator() as emu:
        emu.add_connection(SC, TENANT, CLIENT)
        emu.fail_next("token", 503, retry_after="0")
        # ... run the code under test with SYSTEM_OIDCREQUESTURI=emu.oidc_request_uri,
        # System.AccessToken emu.system_access_token and authority emu.authority ...
        assert emu.counts == {"oidc": 1, "token": 2}

Knobs (read on every request): ``latency``, ``oidc_lifetime``, ``token_lifetime``,
``refresh_in``, ``trust_any_app``, ``issuer``, ``unauthorized_style``, ``stage_name``; for
faults across time: ``refused_scopes`` (Entra answers ``400 invalid_scope`` for those scopes
only), ``expires_in`` (a raw JSON value sent instead of the lifetime: ``0``, ``-5``,
``"inf"``...), ``token_body`` (raw bytes answered with 200 instead of a token),
``oidc_exp_offset`` (added to the OIDC ``exp``: negative makes tokens that are already expired),
and :meth:`clear_failures`.
Time comes from the injected :class:`~agent.clock.Clock`; ``latency`` is real waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import hmac
import html
import json
import secrets
import shutil
import tempfile
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, get_args

from aiohttp import web
from multidict import CIMultiDict

from agent import envvars
from agent.clock import Clock, SystemClock
from agent.testing import _acr as acr
from agent.testing import _devops as devops
from agent.testing import _entra as entra
from agent.testing._arm import ArmService
from agent.testing._blob import BlobService
from agent.testing._feeds import FeedService
from agent.testing._jwt_signing import SigningKey, b64url_encode
from agent.testing._tls import TlsMaterial, create_tls_material
from agent.urls import loopback_bind_address

__all__ = [
    "TLS_NAMES",
    "Emulator",
    "Endpoint",
    "FailureBody",
    "IssuedToken",
    "IssuerKind",
    "RecordedRequest",
    "ServiceConnection",
]

TLS_NAMES = (
    "localhost",
    "login.microsoftonline.com",
    "management.azure.com",
    "management.usgovcloudapi.net",
    "management.chinacloudapi.cn",
    "*.blob.core.windows.net",
)
"""Names the TLS certificate holds: with a CONNECT tunnel (:mod:`agent.testing._tunnel`), real
clients that build their own URLs from these hosts reach the emulator."""

Endpoint = Literal["oidc", "token"]
FailureBody = Literal["json", "html", "empty", "garbage", "drop"]
IssuerKind = Literal["devops", "entra"]
UnauthorizedStyle = Literal["redirect", "signin_page"]

_JSON = "application/json"
_HTML = "text/html"
_FORM = "application/x-www-form-urlencoded"
_OIDC_PATH = "/{org}/{project}/_apis/distributedtask/hubs/{hub}/plans/{plan}/jobs/{job}/oidctoken"
_ENTRA_SIGNIN_HTML = (
    '<!DOCTYPE html>\n<html dir="ltr" lang="en">\n<head>\n<title>Sign in to your account</title>'
    '\n</head>\n<body>\n<form name="f1" method="post">Sign in</form>\n</body>\n</html>\n'
)
_GARBAGE = {
    "oidc": '{"oidcToken":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.',
    "token": '{"token_type":"Bearer","expires_in":35',
}


@dataclass
class RecordedRequest:
    """One request received by an endpoint, as it arrived.

    ``headers`` is case-insensitive. ``form`` holds the form fields of token requests (first
    value of each) and is ``None`` for the OIDC endpoint. ``status`` is what the emulator
    answered (``None`` while pending, or when the connection was dropped). ``time`` is from the
    emulator's clock. Headers, form and body hold secrets, so they stay out of the repr.
    """

    endpoint: Endpoint
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str] = field(repr=False)
    form: dict[str, str] | None = field(repr=False)
    time: float
    body: bytes = field(default=b"", repr=False)
    status: int | None = None


@dataclass
class ServiceConnection:
    """An Azure DevOps service connection of the emulated project."""

    id: str
    name: str
    referenced: bool = True
    issuer: IssuerKind = "devops"
    tenant_id: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    """A token the emulator minted: ``kind`` is ``"oidc"`` (step 1) or ``"access"`` (step 2)."""

    kind: Literal["oidc", "access"]
    claims: dict[str, Any]
    token: str = field(repr=False)


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None
    body: FailureBody


def _json_response(status: int, payload: Any, headers: dict[str, str]) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        content_type=_JSON,
        charset="utf-8",
        headers=headers,
    )


def _html_response(status: int, text: str, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, text=text, content_type=_HTML, headers=headers)


class Emulator:
    """Both endpoints of Azure Pipelines workload identity federation, on one loopback server.

    Args:
        latency: seconds to wait (really) before answering each request.
        oidc_lifetime: seconds between ``iat`` and ``exp`` of OIDC tokens (Azure DevOps: 300).
        token_lifetime: ``expires_in`` of access tokens (Entra: 3599).
        refresh_in: when set, sent as ``refresh_in`` in token answers.
        trust_any_app: accept any service connection id (registering it on the fly) and any
            tenant/client whose assertion verifies; federated credentials are not checked.
        issuer: ``"devops"`` (``https://vstoken.dev.azure.com/{org GUID}``) or ``"entra"``
            (``https://login.microsoftonline.com/{tenant}/v2.0``) for connections that do not
            choose.
        clock: where token times and assertion checks read time (default: the system clock).
        org_name: the Azure DevOps organization name (in the URL and in ``sc://`` subjects).
        project_name: the project name (in ``sc://`` subjects).
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        oidc_lifetime: int = 300,
        token_lifetime: int = 3599,
        refresh_in: int | None = None,
        trust_any_app: bool = False,
        issuer: IssuerKind = "devops",
        clock: Clock | None = None,
        org_name: str = "contoso",
        project_name: str = "azauth",
    ) -> None:
        self.latency = latency
        self.oidc_lifetime = oidc_lifetime
        self.token_lifetime = token_lifetime
        self.refresh_in = refresh_in
        self.trust_any_app = trust_any_app
        self.issuer: IssuerKind = _check_issuer(issuer)
        self.clock: Clock = clock or SystemClock()
        #: How an invalid System.AccessToken is answered when the client does not send
        #: ``X-TFS-FedAuthRedirect: Suppress``: a 302 to the sign-in page, or a 203 sign-in page.
        self.unauthorized_style: UnauthorizedStyle = "redirect"
        #: The stage named in the "no explicit reference to service connection" refusal.
        self.stage_name = "__default"
        #: Scopes Entra refuses with ``400 invalid_scope`` (AADSTS70011), the others still work.
        self.refused_scopes: set[str] = set()
        #: When not None, sent as ``expires_in`` verbatim (a JSON value; exp is unchanged).
        self.expires_in: Any = None
        #: When not None, the body of every successful token answer (200, application/json).
        self.token_body: bytes | None = None
        #: Seconds added to the ``exp`` of OIDC tokens (negative: expired when issued).
        self.oidc_exp_offset = 0

        # Azure DevOps identity of the emulated job (random per emulator).
        self.org_name = org_name
        self.project_name = project_name
        self.org_id = str(uuid.uuid4())
        self.project_id = str(uuid.uuid4())
        self.plan_id = str(uuid.uuid4())
        self.job_id = str(uuid.uuid4())
        self.pipeline_name = "azauth-ci"
        self.definition_id = 42
        self.run_id = 1000 + secrets.randbelow(9000)
        self.repository_id = str(uuid.uuid4())
        self.commit = secrets.token_hex(20)
        self.system_access_token = secrets.token_urlsafe(32)
        #: Tenant of connections registered on the fly (trust_any_app) with the Entra issuer.
        self.default_tenant_id = str(uuid.uuid4())

        self.connections: dict[str, ServiceConnection] = {}
        self.directory = entra.Directory()
        self.counts: dict[str, int] = {"oidc": 0, "token": 0}
        self.requests: list[RecordedRequest] = []
        self.issued: list[IssuedToken] = []
        #: Called with each recorded request once it is answered (the CLI prints them).
        self.observer: Callable[[RecordedRequest], None] | None = None
        #: PEM CA bundle clients must trust when started with ``tls=True``.
        self.ca_file: str | None = None
        #: The Azure Container Registry served at this address (agent.testing._acr).
        self.registry = acr.Registry(
            now=lambda: self.clock.time(),  # noqa: PLW0108 - tests replace the clock
            verify_entra_token=self.verify_access_token,
        )
        #: Azure Blob Storage for ``*.blob.*`` hosts (:mod:`agent.testing._blob`).
        self.blob = BlobService(self)
        #: Azure Resource Manager's subscription listings (:mod:`agent.testing._arm`).
        self.arm = ArmService(self)

        #: Azure Artifacts feeds (``emu.feeds.add_feed(org, name)``), served on the same address.
        self.feeds = FeedService(
            self.verify_access_token, lambda: self.url, lambda: self.default_tenant_id
        )
        self._failures: dict[str, deque[_Failure]] = {"oidc": deque(), "token": deque()}
        self._devops_key: SigningKey | None = None
        self._entra_key: SigningKey | None = None
        self._runner: web.AppRunner | None = None
        self._tls: TlsMaterial | None = None
        self._url: str | None = None

    def __repr__(self) -> str:
        return f"Emulator(url={self._url!r}, counts={self.counts!r})"

    # ----------------------------------------------------------------------------- addresses

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` with TLS). Raises RuntimeError before start()."""
        if self._url is None:
            raise RuntimeError("the emulator is not started")
        return self._url

    @property
    def authority(self) -> str:
        """The value for ``AZURE_AUTHORITY_HOST`` / ``authority=``: the server itself."""
        return self.url

    @property
    def oidc_request_uri(self) -> str:
        """The value for ``SYSTEM_OIDCREQUESTURI``."""
        org = urllib.parse.quote(self.org_name, safe="")
        return (
            f"{self.url}/{org}/{self.project_id}/_apis/distributedtask/hubs/build"
            f"/plans/{self.plan_id}/jobs/{self.job_id}/oidctoken"
        )

    def pipeline_environment(self) -> dict[str, str]:
        """The variables of a pipeline step that maps ``$(System.AccessToken)``, pointing here.

        ``SYSTEM_OIDCREQUESTURI`` (:attr:`oidc_request_uri`), ``SYSTEM_ACCESSTOKEN``
        (:attr:`system_access_token`) and ``AZURE_AUTHORITY_HOST`` (:attr:`authority`): merge it
        into ``os.environ`` (or a child's environment) to run code as inside a job. With TLS,
        trusting :attr:`ca_file` is left to the caller. Raises RuntimeError before start().
        """
        return {
            envvars.SYSTEM_OIDCREQUESTURI: self.oidc_request_uri,
            envvars.SYSTEM_ACCESSTOKEN: self.system_access_token,
            envvars.AZURE_AUTHORITY_HOST: self.authority,
        }

    @property
    def devops_key(self) -> SigningKey:
        """The key of the Azure DevOps issuer (created on first use)."""
        if self._devops_key is None:
            self._devops_key = SigningKey()
        return self._devops_key

    @property
    def entra_key(self) -> SigningKey:
        """The key of Microsoft Entra: access tokens and Entra-issuer OIDC tokens."""
        if self._entra_key is None:
            self._entra_key = SigningKey()
        return self._entra_key

    # ----------------------------------------------------------------------------- registration

    def add_service_connection(
        self,
        service_connection_id: str,
        *,
        name: str | None = None,
        referenced: bool = True,
        issuer: IssuerKind | None = None,
        tenant_id: str | None = None,
    ) -> ServiceConnection:
        """Register a service connection on the Azure DevOps side only.

        ``referenced=False`` makes the OIDC endpoint refuse it with "There is no explicit
        reference to service connection …". ``issuer`` defaults to the emulator's; the Entra
        issuer needs ``tenant_id`` (it is part of the token's ``iss``).
        """
        kind = _check_issuer(issuer or self.issuer)
        if kind == "entra" and not tenant_id:
            raise ValueError("a connection with the Entra issuer needs a tenant_id")
        connection = ServiceConnection(
            id=service_connection_id,
            name=name or _default_connection_name(service_connection_id),
            referenced=referenced,
            issuer=kind,
            tenant_id=tenant_id,
        )
        self.connections[service_connection_id.lower()] = connection
        return connection

    def add_connection(
        self,
        service_connection_id: str,
        tenant_id: str,
        client_id: str,
        *,
        name: str | None = None,
        subject: str | None = None,
        issuer: IssuerKind | None = None,
    ) -> None:
        """Register a working service connection end to end.

        Adds the connection on the Azure DevOps side, the application ``client_id`` in
        ``tenant_id`` on the Entra side, and a federated identity credential on that application
        matching the tokens the connection gets. ``subject`` replaces the credential's subject
        (to provoke a mismatch); ``issuer`` picks the issuer kind for this connection.
        """
        connection = self.add_service_connection(
            service_connection_id, name=name, issuer=issuer, tenant_id=tenant_id
        )
        fic_issuer, fic_subject, audience = self.federated_credential_for(connection.id)
        app = self.directory.register(tenant_id, client_id)
        app.credentials.append(
            entra.FederatedCredential(fic_issuer, subject or fic_subject, audience)
        )

    def register_app(
        self,
        tenant_id: str,
        client_id: str,
        federated_credentials: list[tuple[str, str, str]],
    ) -> None:
        """Register ``client_id`` in ``tenant_id`` with exactly these federated credentials.

        Each credential is an ``(issuer, subject, audience)`` tuple, matched exactly.
        """
        app = self.directory.register(tenant_id, client_id)
        app.credentials = [entra.FederatedCredential(*fic) for fic in federated_credentials]

    def federated_credential_for(self, service_connection_id: str) -> tuple[str, str, str]:
        """The (issuer, subject, audience) a credential must hold to trust this connection."""
        connection = self.connections[service_connection_id.lower()]
        if connection.issuer == "entra":
            tenant = connection.tenant_id or self.default_tenant_id
            return (
                devops.entra_issuer(tenant),
                devops.entra_subject(tenant, self.org_id, connection.id),
                devops.OIDC_AUDIENCE,
            )
        return (
            devops.devops_issuer(self.org_id),
            devops.service_connection_subject(self.org_name, self.project_name, connection.name),
            devops.OIDC_AUDIENCE,
        )

    # ----------------------------------------------------------------------------- knobs

    def fail_next(
        self,
        endpoint: Endpoint,
        status: int,
        *,
        count: int = 1,
        retry_after: str | None = None,
        body: FailureBody = "json",
    ) -> None:
        """Make the next ``count`` requests to ``endpoint`` fail, before any other check.

        ``body``: ``"json"`` (the service's error shape for ``status``; with 200, a JSON object
        without the token), ``"html"`` (a sign-in page), ``"empty"``, ``"garbage"`` (truncated
        JSON) or ``"drop"`` (close the connection without answering; ``status`` is ignored).
        ``retry_after`` is sent as the ``Retry-After`` header.
        """
        if endpoint not in self._failures:
            raise ValueError(f"endpoint must be 'oidc' or 'token', not {endpoint!r}")
        if body not in get_args(FailureBody):
            raise ValueError(f"body must be one of {get_args(FailureBody)}, not {body!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if body != "drop" and not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, not {status!r}")
        self._failures[endpoint].extend([_Failure(status, retry_after, body)] * count)

    def clear_failures(self) -> None:
        """Forget the failures queued by :meth:`fail_next` (the cloud is healthy again)."""
        for queue in self._failures.values():
            queue.clear()

    def reset_counts(self) -> None:
        """Zero the request counters and forget the recorded requests and issued tokens."""
        self.counts = {"oidc": 0, "token": 0}
        self.requests.clear()
        self.issued.clear()

    def verify_access_token(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """Return the claims of an access token this emulator issued, after checking it.

        Checks the signature (Entra key), that it is an access token (not an OIDC token), the
        ``nbf``/``exp`` window against the emulator's clock and, when given, ``aud`` (exact).

        Raises:
            ValueError: any check failed; the message never contains the token.
        """
        try:
            claims = self.entra_key.verify(token)
        except ValueError as exc:
            raise ValueError(f"not an access token issued by this emulator: {exc}") from None
        if claims.get("idtyp") != "app" or "appid" not in claims:
            raise ValueError("not an access token issued by this emulator")
        now = self.clock.time()
        if now >= float(claims["exp"]):
            raise ValueError("the access token has expired")
        if float(claims["nbf"]) > now:
            raise ValueError("the access token is not valid yet")
        if audience is not None and claims.get("aud") != audience:
            raise ValueError(f"the access token is for {claims.get('aud')!r}, not {audience!r}")
        return claims

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False) -> Self:
        """Serve on ``host:port`` (port 0: any free port); ``tls`` also creates ``ca_file``."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already started")
        ssl_context = None
        if tls:
            self._tls = create_tls_material(
                Path(tempfile.mkdtemp(prefix="azauth-emulator-")), dns_names=TLS_NAMES
            )
            ssl_context = self._tls.server_context()
            self.ca_file = str(self._tls.ca_file)
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        bind = loopback_bind_address(host) or host  # localhost: one address, one free port
        try:
            await web.TCPSite(runner, bind, port, ssl_context=ssl_context).start()
        except BaseException:
            await runner.cleanup()
            self._remove_tls()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        self._url = f"{'https' if tls else 'http'}://{url_host}:{bound_port}"
        return self

    async def close(self) -> None:
        """Stop serving and delete the TLS files. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._remove_tls()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _remove_tls(self) -> None:
        if self._tls is not None:
            shutil.rmtree(self._tls.directory, ignore_errors=True)
            self._tls = None
            self.ca_file = None

    def _build_app(self) -> web.Application:
        # Services told apart by Host (reached through a CONNECT tunnel) answer first.
        app = web.Application(middlewares=[self.blob.middleware, self.arm.middleware])
        router = app.router
        router.add_route("*", _OIDC_PATH, self._handle_oidc)
        router.add_route("*", "/{tenant:.+}/oauth2/v2.0/token", self._handle_token)
        router.add_get("/.well-known/jwks", self._handle_devops_jwks)
        router.add_get("/{org_id}/.well-known/openid-configuration", self._handle_devops_discovery)
        router.add_get(
            "/{tenant}/v2.0/.well-known/openid-configuration", self._handle_entra_discovery
        )
        router.add_get("/{tenant}/discovery/v2.0/keys", self._handle_entra_jwks)
        router.add_get("/_signin", self._handle_signin)
        router.add_get("/error", self._handle_error_page)
        self.registry.add_routes(router)
        self.feeds.add_routes(router)
        return app

    # ----------------------------------------------------------------------------- serving

    async def _handle_oidc(self, request: web.Request) -> web.StreamResponse:
        return await self._serve("oidc", request)

    async def _handle_token(self, request: web.Request) -> web.StreamResponse:
        return await self._serve("token", request)

    async def _serve(self, endpoint: Endpoint, request: web.Request) -> web.StreamResponse:
        """Record, wait, then answer with a queued failure or the endpoint's real decision."""
        arrived = asyncio.get_running_loop().time()
        record = await self._record(endpoint, request)
        # Taken on arrival, so "the next N requests" means the next N received, latency or not.
        queue = self._failures[endpoint]
        failure = queue.popleft() if queue else None
        if failure is not None and failure.body == "drop":
            await self._wait_latency(arrived)
            if request.transport is not None:
                request.transport.abort()
            self._notify(record)
            return web.Response()  # never written: the connection is gone
        if failure is not None:
            response = self._failure_response(endpoint, failure, request)
        elif endpoint == "oidc":
            response = self._answer_oidc(request)
        else:
            response = self._answer_token(request, record.form or {})
        # The answer is computed first and the rest of the latency waited after, so `latency`
        # is the time from arrival to answer, as with a real service that works on many
        # requests at once; signing tokens one after another here must not add to it.
        await self._wait_latency(arrived)
        record.status = response.status
        self._notify(record)
        return response

    async def _wait_latency(self, arrived: float) -> None:
        remaining = self.latency - (asyncio.get_running_loop().time() - arrived)
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def _record(self, endpoint: Endpoint, request: web.Request) -> RecordedRequest:
        body = await request.read()
        form: dict[str, str] | None = None
        if endpoint == "token":
            form = {}
            if request.content_type == _FORM:
                text = body.decode("utf-8", "replace")
                for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
                    form.setdefault(key, value)
        record = RecordedRequest(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            form=form,
            time=self.clock.time(),
            body=body,
        )
        self.counts[endpoint] = self.counts.get(endpoint, 0) + 1
        self.requests.append(record)
        return record

    def _notify(self, record: RecordedRequest) -> None:
        if self.observer is not None:
            self.observer(record)

    def _failure_response(
        self, endpoint: Endpoint, failure: _Failure, request: web.Request
    ) -> web.Response:
        now = self.clock.time()
        if endpoint == "oidc":
            headers = devops.edge_headers(now)
        else:
            headers, trace_id, correlation_id = self._entra_headers(request)
        if failure.retry_after is not None:
            headers["Retry-After"] = failure.retry_after
        status = failure.status
        if failure.body == "empty":
            return web.Response(status=status, headers=headers)
        if failure.body == "garbage":
            return web.Response(
                status=status, text=_GARBAGE[endpoint], content_type=_JSON, headers=headers
            )
        if failure.body == "html":
            page = devops.signin_page_html(self.url) if endpoint == "oidc" else _ENTRA_SIGNIN_HTML
            return _html_response(status, page, headers)
        if endpoint == "oidc":
            return _json_response(status, devops.failure_body(status), headers)
        if status == 200:
            return _json_response(status, {"token_type": "Bearer"}, headers)
        return self._entra_refusal(
            entra.failure_refusal(status), now, headers, (trace_id, correlation_id)
        )

    # ----------------------------------------------------------------------------- Azure DevOps

    def _answer_oidc(self, request: web.Request) -> web.Response:
        now = self.clock.time()
        headers = devops.edge_headers(now)
        refused = self._refuse_oidc(request, headers)
        if refused is not None:
            return refused
        connection_id = request.query.get("serviceConnectionId")
        if connection_id is None:
            return _json_response(200, {"oidcToken": self._mint_pipeline_token(now)}, headers)
        connection = self.connections.get(connection_id.lower())
        if connection is None and self.trust_any_app and connection_id:
            tenant = self.default_tenant_id if self.issuer == "entra" else None
            connection = self.add_service_connection(connection_id, tenant_id=tenant)
        if connection is None:
            body = devops.service_connection_not_found_error(connection_id)
            return _json_response(400, body, headers)
        if not connection.referenced:
            body = devops.unreferenced_connection_body(connection_id, self.stage_name)
            return _json_response(400, body, headers)
        return _json_response(200, {"oidcToken": self._mint_oidc_token(connection, now)}, headers)

    def _refuse_oidc(self, request: web.Request, headers: dict[str, str]) -> web.Response | None:
        """The answer to a request that fails before any service connection is looked at."""
        if not self._authorized(request):
            return self._unauthorized(request, headers)
        api_version = request.query.get("api-version")
        if api_version != devops.OIDC_API_VERSION:
            return _json_response(400, devops.api_version_error(api_version), headers)
        if not self._is_own_job(request.match_info):
            return _json_response(
                404, devops.plan_not_found_error(request.match_info["plan"]), headers
            )
        if request.method != "POST":
            return _json_response(405, devops.method_not_allowed_error(request.method), headers)
        return None

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.system_access_token.encode()
        )

    def _unauthorized(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        if request.headers.get("X-TFS-FedAuthRedirect", "").lower() == "suppress":
            body = devops.unauthorized_error()
            response = _json_response(401, body, headers)
            response.headers["X-TFS-ServiceError"] = urllib.parse.quote(body["message"])
            for challenge in ("Bearer", f'Basic realm="{self.url}/"', "TFS-Federated"):
                response.headers.add("WWW-Authenticate", challenge)
            return response
        if self.unauthorized_style == "signin_page":
            return _html_response(203, devops.signin_page_html(self.url), headers)
        query = urllib.parse.urlencode(
            {
                "realm": request.host,
                "reply_to": str(request.url),
                "redirect": "1",
                "context": secrets.token_urlsafe(12),
            }
        )
        location = f"{self.url}/_signin?{query}"
        headers["Location"] = location
        return _html_response(302, devops.object_moved_html(location), headers)

    def _is_own_job(self, match: web.UrlMappingMatchInfo) -> bool:
        return (
            match["org"].casefold() == self.org_name.casefold()
            and match["project"].casefold() in (self.project_id, self.project_name.casefold())
            and match["hub"] == "build"
            and match["plan"].lower() == self.plan_id
            and match["job"].lower() == self.job_id
        )

    def _mint_oidc_token(self, connection: ServiceConnection, now: float) -> str:
        issuer, subject, audience = self.federated_credential_for(connection.id)
        key = self.entra_key if connection.issuer == "entra" else self.devops_key
        iat = int(now)
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "sub": subject,
            "aud": audience,
            "iss": issuer,
            # Observed on real tokens: valid from ten minutes before issue (clock skew).
            "nbf": iat - 600,
            "exp": iat + self.oidc_lifetime + self.oidc_exp_offset,
            "iat": iat,
        }
        return self._issue("oidc", key, claims)

    def _mint_pipeline_token(self, now: float) -> str:
        iat = int(now)
        org = self.org_name
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "sub": f"p://{org}/{self.project_name}/{self.pipeline_name}",
            "aud": devops.OIDC_AUDIENCE,
            "iss": devops.devops_issuer(self.org_id),
            "nbf": iat - 600,
            "exp": iat + self.oidc_lifetime,
            "iat": iat,
            "org_id": self.org_id,
            "prj_id": self.project_id,
            "def_id": str(self.definition_id),
            "rpo_id": self.repository_id,
            "rpo_uri": f"https://dev.azure.com/{org}/{self.project_name}/_git/{self.project_name}",
            "rpo_ver": self.commit,
            "rpo_ref": "refs/heads/main",
            "run_id": str(self.run_id),
        }
        return self._issue("oidc", self.devops_key, claims)

    # ----------------------------------------------------------------------------- Entra

    def _entra_headers(self, request: web.Request) -> tuple[dict[str, str], str, str]:
        trace_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id") or request.headers.get(
            "x-ms-client-request-id"
        )
        headers = {
            # The answer's Date from the emulator's clock (aiohttp would stamp the real one).
            "Date": email.utils.formatdate(self.clock.time(), usegmt=True),
            "x-ms-request-id": trace_id,
            "x-ms-ests-server": "2.1.99999.0 - EMU ProdSlices",
            "Cache-Control": "no-store, no-cache",
            "Pragma": "no-cache",
        }
        if client_request_id:
            headers["client-request-id"] = client_request_id
        # Entra reports the caller's client-request-id as the correlation id.
        return headers, trace_id, client_request_id or str(uuid.uuid4())

    def _entra_refusal(
        self,
        refusal: entra.Refusal,
        now: float,
        headers: dict[str, str],
        ids: tuple[str, str],
    ) -> web.Response:
        """Entra's JSON error answer for ``refusal``; ``ids`` are (trace id, correlation id)."""
        trace_id, correlation_id = ids
        payload = entra.error_body(
            refusal,
            now=now,
            trace_id=trace_id,
            correlation_id=correlation_id,
            authority=self.authority,
        )
        return _json_response(refusal.status, payload, headers)

    def _check_token_request(
        self, request: web.Request, form: dict[str, str], now: float
    ) -> entra.Grant:
        """The grant Entra would give, or :class:`entra.Refusal` (also for ``refused_scopes``)."""
        grant = entra.check_token_request(
            method=request.method,
            tenant=request.match_info["tenant"],
            form=form,
            directory=self.directory,
            keys=(self.devops_key, self.entra_key),
            now=now,
            trust_any_app=self.trust_any_app,
        )
        if form.get("scope") in self.refused_scopes:
            raise entra.Refusal(
                400,
                "invalid_scope",
                70011,
                f"The provided value for scope {form.get('scope')} is not valid.",
            )
        return grant

    def _answer_token(self, request: web.Request, form: dict[str, str]) -> web.Response:
        now = self.clock.time()
        headers, trace_id, correlation_id = self._entra_headers(request)
        try:
            grant = self._check_token_request(request, form, now)
        except entra.Refusal as refusal:
            return self._entra_refusal(refusal, now, headers, (trace_id, correlation_id))
        if self.token_body is not None:
            return web.Response(
                status=200, body=self.token_body, content_type=_JSON, headers=headers
            )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime if self.expires_in is None else self.expires_in,
            "ext_expires_in": self.token_lifetime,
            "access_token": self._mint_access_token(grant, now),
        }
        if self.refresh_in is not None:
            body["refresh_in"] = self.refresh_in
        return _json_response(200, body, headers)

    def _mint_access_token(self, grant: entra.Grant, now: float) -> str:
        iat = int(now)
        sts = f"https://sts.windows.net/{grant.tenant_id}/"
        claims: dict[str, Any] = {
            "aud": grant.resource,
            "iss": sts,
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.token_lifetime,
            "appid": grant.client_id,
            "appidacr": "2",
            "azp": grant.client_id,
            "azpacr": "2",
            "idp": sts,
            "idtyp": "app",
            "oid": grant.object_id,
            "sub": grant.object_id,
            "tid": grant.tenant_id,
            "uti": b64url_encode(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        if grant.capabilities:
            claims["xms_cc"] = list(grant.capabilities)
        return self._issue("access", self.entra_key, claims)

    def _issue(
        self, kind: Literal["oidc", "access"], key: SigningKey, claims: dict[str, Any]
    ) -> str:
        token = key.sign(claims)
        self.issued.append(IssuedToken(kind, claims, token))
        return token

    # ----------------------------------------------------------------------------- discovery

    async def _handle_devops_jwks(self, _request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.devops_key.jwk()]})

    async def _handle_devops_discovery(self, request: web.Request) -> web.Response:
        if request.match_info["org_id"].lower() != self.org_id:
            raise web.HTTPNotFound
        return web.json_response(
            {
                "issuer": devops.devops_issuer(self.org_id),
                "jwks_uri": f"{self.url}/.well-known/jwks",
                "subject_types_supported": ["public", "pairwise"],
                "response_types_supported": ["id_token"],
                "claims_supported": ["sub", "aud", "exp", "iat", "iss", "nbf"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid"],
            }
        )

    async def _handle_entra_discovery(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        return web.json_response(
            {
                "issuer": devops.entra_issuer(tenant),
                "token_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/authorize",
                "end_session_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/logout",
                "jwks_uri": f"{self.url}/{tenant}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "tenant_region_scope": "WW",
            }
        )

    async def _handle_entra_jwks(self, _request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.entra_key.jwk()]})

    async def _handle_signin(self, _request: web.Request) -> web.Response:
        return _html_response(200, devops.signin_page_html(self.url), {})

    async def _handle_error_page(self, request: web.Request) -> web.Response:
        code = html.escape(request.query.get("code", ""))
        text = f"<!DOCTYPE html><html><body><h1>AADSTS{code}</h1></body></html>\n"
        return _html_response(200, text, {})


def _check_issuer(issuer: str) -> IssuerKind:
    if issuer == "devops":
        return "devops"
    if issuer == "entra":
        return "entra"
    raise ValueError(f"issuer must be 'devops' or 'entra', not {issuer!r}")


def _default_connection_name(service_connection_id: str) -> str:
    return f"connection-{service_connection_id[:8]}"

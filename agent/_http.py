"""The one place the credential touches aiohttp: sessions, proxies, TLS trust, retries.

Contracts:
- redirects are never followed, so a bearer token never reaches a host it was not meant for;
- ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` (either case, lower case
  winning) choose a proxy per request, as curl and requests do; ``~/.netrc`` is never read;
  when none of the ``*_PROXY`` variables is set, the Azure Pipelines agent's ``AGENT_PROXYURL``,
  ``AGENT_PROXYUSERNAME``, ``AGENT_PROXYPASSWORD`` and ``AGENT_PROXYBYPASSLIST`` (a JSON array
  of regular expressions matched, case-insensitively, against the request URL) are honoured
  the way the agent's own tasks (azure-pipelines-task-lib) honour them;
- proxy credentials travel in ``Proxy-Authorization`` only: the password is a registered secret
  and the proxy URL is shown without its user-info; a proxy answering 407 ends the exchange
  at once with :class:`agent.exceptions.ProxyAuthenticationError` naming the proxy host;
- an answer body larger than :data:`MAX_BODY_BYTES` is not read to its end: the exchange fails
  with :class:`agent.exceptions.TransportError` naming the endpoint (memory stays bounded);
- ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE`` (and ``SSL_CERT_DIR``) replace the system trust store;
- network failures and timeouts are retried by :class:`agent.retry.RetryPolicy`, then raised as
  :class:`agent.exceptions.TransportError` whose message names the host, not the request.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import re
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiohttp

from agent import envvars
from agent._secrets import redact_text, register_secret, strip_userinfo
from agent._trust import ssl_context_from_env
from agent.clock import Clock, SystemClock
from agent.exceptions import ProxyAuthenticationError, TransportError
from agent.exchange import HttpRequest, HttpResponse
from agent.logs import get_logger
from agent.retry import RetryPolicy

__all__ = [
    "MAX_BODY_BYTES",
    "HttpClient",
    "Proxy",
    "ProxySettings",
    "new_session",
    "proxy_for",
    "ssl_context_from_env",
]

_log = get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""Largest answer body read from Azure DevOps or Entra (1 MiB). Real answers are a few KiB:
a token answer is one JWT (under 16 KiB even with many groups) plus a few fields."""
_READ_CHUNK = 64 * 1024
_AGENT_PROXY_URL = envvars.AGENT_PROXYURL
_AGENT_PROXY_USERNAME = envvars.AGENT_PROXYUSERNAME
_AGENT_PROXY_PASSWORD = envvars.AGENT_PROXYPASSWORD
_AGENT_PROXY_BYPASS = envvars.AGENT_PROXYBYPASSLIST


class _SharedSession:
    """One ``aiohttp.ClientSession`` per event loop for the clients given no session.

    Credentials of one process share its connection pool (keep-alive connections, DNS cache):
    ten credentials calling at once open fewer TLS connections than ten sessions would. A
    session is bound to the loop it was made in, hence one per loop; it is closed when the
    last client using it closes (a count of users), so closing one credential never closes
    another's connections. Connections are still keyed by TLS context inside the pool, so
    clients trusting different CA bundles never share a connection.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.users = 0
        self.session = new_session(limit=_SHARED_LIMIT)

    @classmethod
    def acquire(cls) -> aiohttp.ClientSession:
        """The running loop's shared session (made if needed), counted as one more user."""
        loop = asyncio.get_running_loop()
        for key, old in list(_SHARED.items()):  # forget the sessions of finished loops
            if old.loop.is_closed() or old.session.closed:
                del _SHARED[key]
        found = _SHARED.get(id(loop))
        shared = found if found is not None and found.loop is loop else cls(loop)
        _SHARED[id(loop)] = shared
        shared.users += 1
        return shared.session

    @classmethod
    async def release(cls, session: aiohttp.ClientSession) -> None:
        """One user fewer of ``session``; the last one closes it."""
        for key, shared in list(_SHARED.items()):
            if shared.session is session:
                shared.users -= 1
                if shared.users > 0:
                    return
                del _SHARED[key]
                break
        await session.close()


_SHARED_LIMIT = 100
"""Connections in flight at once through the shared session (aiohttp's default limit)."""
_SHARED: dict[int, _SharedSession] = {}
"""The shared session of each event loop, by ``id(loop)``."""


@dataclass(frozen=True)
class Proxy:
    """The proxy of one request: its URL without user-info, and its Basic credentials.

    ``repr`` and :attr:`display` never show the password.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """``host:port`` of the proxy, for messages."""
        parts = urlsplit(self.url)
        return parts.netloc or self.url

    def headers(self) -> dict[str, str] | None:
        """The ``Proxy-Authorization: Basic`` header (RFC 7617, UTF-8), if there are credentials."""
        if self.username is None and self.password is None:
            return None
        pair = f"{self.username or ''}:{self.password or ''}".encode()
        return {"Proxy-Authorization": f"Basic {base64.b64encode(pair).decode('ascii')}"}


def _proxy_from_url(url: str, username: str | None = None, password: str | None = None) -> Proxy:
    """Split user-info off ``url``; explicit ``username``/``password`` win over it."""
    if "://" not in url:
        url = f"http://{url}"  # curl's default scheme for a proxy
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        username = username if username is not None else unquote(parts.username or "")
        password = password if password is not None else unquote(parts.password or "")
        register_secret(parts.password)  # as written in the URL (percent-encoded)
    register_secret(password)
    return Proxy(strip_userinfo(url), username or None, password or None)


def proxy_for(url: str, env: Mapping[str, str]) -> Proxy | None:
    """Return the proxy for ``url`` under the environment, or None (see the module docstring)."""
    return ProxySettings.from_env(env).proxy_for(url)


class ProxySettings:
    """The proxy variables of one environment, read once: the proxy of each URL is a lookup.

    Each :class:`HttpClient` takes one snapshot at its first request (when it loads its TLS
    trust), so a client sending 2,000 requests scans the environment once; a new client (a new
    credential, the next command) sees the environment as it is then. The choice for each URL
    is kept (at most 256 URLs: token endpoints are few).
    """

    __slots__ = ("_answers", "_env", "_proxies")
    _MAX_ANSWERS = 256

    def __init__(self, proxies: dict[str, str], env: Mapping[str, str]) -> None:
        self._proxies = proxies
        # The agent's proxy variables only (used when no *_proxy variable is set).
        self._env = env
        self._answers: dict[str, tuple[str, str | None, str | None] | None] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProxySettings:
        """Read ``*_proxy`` (lower case winning) and the agent's ``AGENT_PROXY*`` variables."""
        proxies: dict[str, str] = {}
        # Lower-case names win over upper-case ones, as in curl and urllib.
        for name, value in env.items():
            lowered = name.lower()
            if value and lowered.endswith("_proxy"):
                scheme = lowered[: -len("_proxy")]
                if name == lowered or scheme not in proxies:
                    proxies[scheme] = value
        agent = {
            name: env[name]
            for name in (
                _AGENT_PROXY_URL,
                _AGENT_PROXY_USERNAME,
                _AGENT_PROXY_PASSWORD,
                _AGENT_PROXY_BYPASS,
            )
            if name in env
        }
        return cls(proxies, agent)

    def proxy_for(self, url: str) -> Proxy | None:
        """The proxy for ``url``, or None (see the module docstring).

        The choice is kept per URL; the :class:`Proxy` is built anew each time, which registers
        its password again, so a long run never lets it age out of the secret registry.
        """
        try:
            chosen = self._answers[url]
        except KeyError:
            chosen = self._choose(url)
            if len(self._answers) >= self._MAX_ANSWERS:
                self._answers.clear()
            self._answers[url] = chosen
        return None if chosen is None else _proxy_from_url(*chosen)

    def _choose(self, url: str) -> tuple[str, str | None, str | None] | None:
        """The proxy URL and explicit credentials for ``url``, or None."""
        proxies = self._proxies
        if not any(name in proxies for name in ("http", "https", "all")):
            return _agent_proxy_for(url, self._env)
        parts = urlsplit(url)
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        if not proxy:
            return None
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined] # untyped
        if "no" in proxies and bypass(parts.hostname or "", proxies):
            return None
        return (proxy, None, None)


def _agent_proxy_for(url: str, env: Mapping[str, str]) -> tuple[str, str | None, str | None] | None:
    """The Azure Pipelines agent's proxy (``AGENT_PROXY*``) for ``url``, or None.

    Returns the proxy URL, user name and password, as :func:`_proxy_from_url` takes them.
    """
    proxy_url = env.get(_AGENT_PROXY_URL, "").strip()
    if not proxy_url:
        return None
    for pattern in _bypass_patterns(env.get(_AGENT_PROXY_BYPASS, "")):
        if pattern.search(url):
            return None
    return (
        proxy_url,
        env.get(_AGENT_PROXY_USERNAME) or None,
        env.get(_AGENT_PROXY_PASSWORD) or None,
    )


@functools.lru_cache(maxsize=8)
def _bypass_patterns(text: str) -> tuple[re.Pattern[str], ...]:
    """Compile ``AGENT_PROXYBYPASSLIST``; entries that are not regular expressions are skipped."""
    if not text.strip():
        return ()
    try:
        items = json.loads(text)
    except ValueError:
        _log.warning(
            "proxy_bypass_list_invalid", variable=_AGENT_PROXY_BYPASS, expected="a JSON array"
        )
        return ()
    if not isinstance(items, list):
        items = []
    patterns = []
    for item in items:
        try:
            patterns.append(re.compile(str(item), re.IGNORECASE))
        except re.error:
            _log.warning("proxy_bypass_pattern_skipped", variable=_AGENT_PROXY_BYPASS, pattern=item)
    return tuple(patterns)


def new_session(*, limit: int = 100) -> aiohttp.ClientSession:
    """A new ``aiohttp.ClientSession``: the only place one is built for the credentials.

    It never reads proxies or ``~/.netrc`` from the environment (``trust_env=False``: proxies
    are chosen per request by :func:`proxy_for`); requests pass their own TLS context; ``limit``
    caps its open connections. Call it inside the running event loop. Used by the shared
    session of credentials given none, and by :class:`agent.pool.CredentialPool`.
    """
    connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, trust_env=False)


class HttpClient:
    """Sends :class:`HttpRequest` values and returns :class:`HttpResponse` values.

    Args:
        session: a caller-owned ``aiohttp.ClientSession`` (never closed here); by default the
            event loop's shared session (one per loop for every client given none) is used
            from the first send, and :meth:`close` lets go of it (the last user closes it).
        timeout: seconds one attempt may take.
        retry: the retry policy.
        clock: time source for the retry deadline and sleeps.
        env: environment for proxies and TLS trust (default ``os.environ``); read once, at
            the first request (:class:`ProxySettings`).
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._clock = clock or SystemClock()
        self._env = env
        self._ssl: ssl.SSLContext | None = None
        self._proxies: ProxySettings | None = None
        self._closed = False

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in force (replaceable: watch mode retries on its own schedule)."""
        return self._retry

    @retry.setter
    def retry(self, policy: RetryPolicy) -> None:
        self._retry = policy

    def _environment(self) -> Mapping[str, str]:
        return self._env if self._env is not None else os.environ

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ValueError(
                "HTTP transport has already been closed. You may check if you're calling a "
                "function outside of the `with` of your client creation, or if you called "
                "`close()` on your client already."
            )
        if self._ssl is None:
            self._ssl = ssl_context_from_env(self._environment())
        if self._proxies is None:
            self._proxies = ProxySettings.from_env(self._environment())
        if self._session is None:
            self._session = _SharedSession.acquire()
        return self._session

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` with retries; return the last answer received.

        Retryable statuses are retried until attempts or the deadline run out; then the last
        answer is returned for the protocol layer to explain.

        Raises:
            TransportError: no answer at all (connection, TLS, timeout) after the retries.
        """
        session = self._get_session()
        policy = self._retry
        host = _endpoint_host(request.url)
        assert self._proxies is not None  # set at the first request, with the TLS trust
        proxy = self._proxies.proxy_for(request.url)
        started = self._clock.monotonic()
        attempt = 0
        while True:
            attempt += 1
            remaining = policy.deadline - (self._clock.monotonic() - started)
            try:
                response = await self._attempt(session, request, proxy, max(0.1, remaining))
            except aiohttp.ClientHttpProxyError as exc:
                if exc.status == 407 and proxy is not None:
                    raise _proxy_refused(proxy, host) from None
                failure = f"the proxy answered {exc.status} to CONNECT"
                delay = policy.backoff(attempt)
                if attempt >= policy.max_attempts or not self._fits(started, delay):
                    raise TransportError(
                        f"Could not reach {host} through proxy "
                        f"{proxy.display if proxy else '?'}: {failure} (after {attempt} attempt"
                        f"{'s' if attempt > 1 else ''})."
                    ) from None
                await self._clock.sleep(delay)
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = _describe(exc)
                _log.debug("request_failed", host=host, attempt=attempt, error=failure)
                delay = policy.backoff(attempt)
                if attempt >= policy.max_attempts or not self._fits(started, delay):
                    raise TransportError(
                        f"Could not reach {host}: {failure} (after {attempt} attempt"
                        f"{'s' if attempt > 1 else ''})."
                    ) from None
                await self._clock.sleep(delay)
                continue
            if response.status == 407 and proxy is not None:
                raise _proxy_refused(proxy, host)
            if attempt < policy.max_attempts and policy.is_retryable_status(
                response.status, response.headers
            ):
                wait = policy.delay(attempt, response.headers, now=self._clock.time())
                if wait is not None and self._fits(started, wait):
                    _log.debug(
                        "request_retried",
                        host=host,
                        status=response.status,
                        attempt=attempt,
                        delay=round(wait, 2),
                    )
                    await self._clock.sleep(wait)
                    continue
            return response

    def _fits(self, started: float, delay: float) -> bool:
        return self._clock.monotonic() - started + delay < self._retry.deadline

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        request: HttpRequest,
        proxy: Proxy | None,
        budget: float,
    ) -> HttpResponse:
        timeout = aiohttp.ClientTimeout(total=min(self._timeout, budget))
        async with session.request(
            request.method,
            request.url,
            headers=dict(request.headers),
            data=request.body or None,
            allow_redirects=False,
            proxy=proxy.url if proxy is not None else None,
            proxy_headers=proxy.headers() if proxy is not None else None,
            timeout=timeout,
            ssl=self._ssl if self._ssl is not None else True,
        ) as resp:
            body = await _read_bounded(resp, request.url)
            headers = {key.lower(): value for key, value in resp.headers.items()}
            return HttpResponse(resp.status, resp.reason or "", headers, body)

    async def close(self) -> None:
        """Let go of the shared session (the last user closes it); later sends raise ``ValueError``.

        A caller-owned session is never closed here.
        """
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await _SharedSession.release(session)


def _endpoint_host(url: str) -> str:
    """``host[:port]`` of ``url`` without user-info, for messages."""
    return strip_userinfo(urlsplit(url).netloc.rpartition("@")[2])


def _endpoint(url: str) -> str:
    """``scheme://host/path`` of ``url`` for messages: no user-info, no query (it may hold ids)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{_endpoint_host(url)}{parts.path}"


async def _read_bounded(resp: aiohttp.ClientResponse, url: str) -> bytes:
    """Read the body, refusing (without reading on) one larger than MAX_BODY_BYTES."""
    too_large = TransportError(
        f"The answer of {_endpoint(url)} is larger than {MAX_BODY_BYTES // 1024} KiB, the most "
        "azauth reads from a token endpoint; nothing was read beyond that."
    )
    if resp.content_length is not None and resp.content_length > MAX_BODY_BYTES:
        resp.close()
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            resp.close()
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _proxy_refused(proxy: Proxy, host: str) -> ProxyAuthenticationError:
    how = (
        "the credentials sent were refused"
        if proxy.username or proxy.password
        else "no credentials were configured"
    )
    return ProxyAuthenticationError(
        f"The proxy refused authentication: {proxy.display} answered 407 Proxy Authentication "
        f"Required to the request for {host} ({how}; set them in the proxy URL's user-info or "
        "in AGENT_PROXYUSERNAME / AGENT_PROXYPASSWORD).",
        status_code=407,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    # aiohttp names the TLS setting of the attempt (" ssl:<ssl.SSLContext object at 0x...>",
    # " ssl:default"): a memory address tells a user nothing, and differs on every run.
    text = _SSL_SETTING.sub("", text)
    return redact_text(f"{type(exc).__name__}: {text}")


_SSL_SETTING = re.compile(r" ssl:(?:<[^>]*>|\S+)")

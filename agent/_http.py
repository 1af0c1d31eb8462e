"""The one place the credential touches aiohttp: sessions, proxies, TLS trust, retries.

Contracts:
- redirects are never followed, so a bearer token never reaches a host it was not meant for;
- ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` (either case, lower case
  winning) choose a proxy per request, as curl and requests do; ``~/.netrc`` is never read;
- ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE`` (and ``SSL_CERT_DIR``) replace the system trust store;
- network failures and timeouts are retried by :class:`agent.retry.RetryPolicy`, then raised as
  :class:`agent.exceptions.TransportError` whose message names the host, not the request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from agent._secrets import redact_text
from agent.clock import Clock, SystemClock
from agent.exceptions import ConfigError, TransportError
from agent.protocol import HttpRequest, HttpResponse
from agent.retry import RetryPolicy

__all__ = ["HttpClient", "proxy_for", "ssl_context_from_env"]

_log = logging.getLogger("agent.http")


def ssl_context_from_env(env: Mapping[str, str]) -> ssl.SSLContext:
    """The TLS context: the CA bundle named by the environment, else the system store.

    Contexts are shared per (file, directory) as they are on disk now: loading a trust store
    costs milliseconds, and a profile with twenty connections would otherwise load it twenty
    times; a bundle rewritten in place (new size or modification time) is loaded again.
    """
    file_variable = "SSL_CERT_FILE" if env.get("SSL_CERT_FILE") else "REQUESTS_CA_BUNDLE"
    cafile = env.get(file_variable) or None
    capath = env.get("SSL_CERT_DIR") or None
    _check_ca_location(file_variable, cafile, want_dir=False)
    _check_ca_location("SSL_CERT_DIR", capath, want_dir=True)
    try:
        return _ssl_context(cafile, capath, _version(cafile), _version(capath))
    except (OSError, ssl.SSLError, ValueError) as exc:
        named = f"{file_variable}={cafile!r}" if cafile else f"SSL_CERT_DIR={capath!r}"
        raise ConfigError(
            f"environment variable {named}: the CA bundle cannot be loaded "
            f"({getattr(exc, 'reason', None) or exc.__class__.__name__})",
            expected=_CA_EXPECTED,
        ) from None


_CA_EXPECTED = (
    "a PEM file of CA certificates (SSL_CERT_FILE / REQUESTS_CA_BUNDLE) or a directory of hashed "
    "certificates (SSL_CERT_DIR); unset the variable to use the system trust store (a stopped "
    "`azauth emulator --tls` deletes its CA)"
)


def _check_ca_location(variable: str, path: str | None, *, want_dir: bool) -> None:
    """Name the variable when its CA file or directory is missing or of the wrong kind."""
    if path is None:
        return
    problem = None
    location = Path(path)
    if not location.exists():
        problem = "does not exist"
    elif want_dir and not location.is_dir():
        problem = "is not a directory"
    elif not want_dir and location.is_dir():
        problem = "is a directory, not a file (a directory belongs in SSL_CERT_DIR)"
    if problem is not None:
        raise ConfigError(
            f"environment variable {variable}={path!r}: {problem}", expected=_CA_EXPECTED
        )


def _version(path: str | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = Path(path).stat()
    except OSError:
        return None  # let create_default_context report the missing file
    return (info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=8)
def _ssl_context(
    cafile: str | None,
    capath: str | None,
    _file_version: tuple[int, int] | None,
    _dir_version: tuple[int, int] | None,
) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile, capath=capath)


def proxy_for(url: str, env: Mapping[str, str]) -> str | None:
    """Return the proxy URL for ``url`` under the ``*_PROXY`` / ``NO_PROXY`` variables, or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    proxies: dict[str, str] = {}
    # Lower-case names win over upper-case ones, as in curl and urllib.
    for name, value in env.items():
        lowered = name.lower()
        if value and lowered.endswith("_proxy"):
            scheme = lowered[: -len("_proxy")]
            if name == lowered or scheme not in proxies:
                proxies[scheme] = value
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined] # untyped
    if "no" in proxies and bypass(host, proxies):
        return None
    return proxy


class HttpClient:
    """Sends :class:`HttpRequest` values and returns :class:`HttpResponse` values.

    Args:
        session: a caller-owned ``aiohttp.ClientSession`` (never closed here); by default one is
            created on first use and closed by :meth:`close`.
        timeout: seconds one attempt may take.
        retry: the retry policy.
        clock: time source for the retry deadline and sleeps.
        env: environment for proxies and TLS trust (default ``os.environ``, read at first use).
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
        self._closed = False

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._retry

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
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=64, ttl_dns_cache=300),
                trust_env=False,
            )
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
        host = urlsplit(request.url).netloc
        proxy = proxy_for(request.url, self._environment())
        started = self._clock.monotonic()
        attempt = 0
        while True:
            attempt += 1
            remaining = policy.deadline - (self._clock.monotonic() - started)
            try:
                response = await self._attempt(session, request, proxy, max(0.1, remaining))
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = _describe(exc)
                _log.debug("request to %s failed (attempt %d): %s", host, attempt, failure)
                delay = policy.backoff(attempt)
                if attempt >= policy.max_attempts or not self._fits(started, delay):
                    raise TransportError(
                        f"Could not reach {host}: {failure} (after {attempt} attempt"
                        f"{'s' if attempt > 1 else ''})."
                    ) from None
                await self._clock.sleep(delay)
                continue
            if attempt < policy.max_attempts and policy.is_retryable_status(
                response.status, response.headers
            ):
                wait = policy.delay(attempt, response.headers, now=self._clock.time())
                if wait is not None and self._fits(started, wait):
                    _log.debug(
                        "%s answered %d (attempt %d); retrying in %.2fs",
                        host,
                        response.status,
                        attempt,
                        wait,
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
        proxy: str | None,
        budget: float,
    ) -> HttpResponse:
        timeout = aiohttp.ClientTimeout(total=min(self._timeout, budget))
        async with session.request(
            request.method,
            request.url,
            headers=dict(request.headers),
            data=request.body or None,
            allow_redirects=False,
            proxy=proxy,
            timeout=timeout,
            ssl=self._ssl if self._ssl is not None else True,
        ) as resp:
            body = await resp.read()
            headers = {key.lower(): value for key, value in resp.headers.items()}
            return HttpResponse(resp.status, resp.reason or "", headers, body)

    async def close(self) -> None:
        """Close the session if this client created it; later sends raise ``ValueError``."""
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return redact_text(f"{type(exc).__name__}: {text}")

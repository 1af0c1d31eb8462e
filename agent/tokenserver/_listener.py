"""A listening socket for an aiohttp app that bounds connections, not only requests.

aiohttp's own sites accept every connection and keep an idle one for the keep-alive timeout;
a local process can then hold hundreds of silent connections (they need no secret) until the
server runs out of file descriptors and a legitimate client times out. :class:`GuardedListener`
adds, in front of the app's request handler:

* a cap on open connections (:func:`connection_cap`: at most ``max_connections`` and at most a
  quarter of ``RLIMIT_NOFILE``, leaving descriptors for connections accepted but not yet
  handed over (up to twice the listen backlog of 64), outgoing requests and files: the server
  never meets ``EMFILE``, which makes asyncio stop accepting for a second). A new connection
  over the cap closes the *oldest* connection that is not handling a request, so silent
  connections cannot crowd out a client that speaks; when every connection is handling a
  request, the new one is closed unanswered;
* a header-read timeout: a connection that has not presented a complete request within
  ``header_timeout`` seconds of connecting is closed;
* the keep-alive idle timeout of aiohttp (``keepalive_timeout`` of the runner), which closes a
  connection idle between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "GuardedListener",
    "connection_cap",
]

DEFAULT_MAX_CONNECTIONS = 512
"""Open connections at most (lowered to a quarter of ``RLIMIT_NOFILE`` when that is smaller)."""
BACKLOG = 64
"""``listen(2)`` backlog, also how many connections asyncio accepts per wake-up."""
DEFAULT_HEADER_TIMEOUT = 5.0
"""Seconds a new connection has to present a complete request line and headers."""
DEFAULT_KEEPALIVE_TIMEOUT = 15.0
"""Seconds an idle keep-alive connection is kept between requests."""
_MIN_CAP = 8

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def connection_cap(max_connections: int = DEFAULT_MAX_CONNECTIONS) -> int:
    """``max_connections``, lowered to a quarter of the soft ``RLIMIT_NOFILE`` (at least 8)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return max_connections
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return max_connections
    return max(_MIN_CAP, min(max_connections, soft // 4))


class GuardedListener:
    """Accepts connections for ``runner`` under the limits of the module docstring.

    Use :attr:`middleware` in the app (it tells which connections are handling a request), then
    :meth:`start` after ``runner.setup()``, and :meth:`close` before ``runner.cleanup()``.
    """

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    ) -> None:
        self.max_connections = connection_cap(max_connections)
        self.header_timeout = header_timeout
        self._runner: web.BaseRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._busy: dict[RequestHandler, int] = {}
        self._unproven: set[RequestHandler] = set()  # no complete request yet
        #: Connections closed by the cap, refused at the cap, and closed by the header timeout.
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Mark the connection busy while ``request`` is handled."""
        protocol = request.protocol
        self._unproven.discard(protocol)
        self._busy[protocol] = self._busy.get(protocol, 0) + 1
        try:
            return await handler(request)
        finally:
            left = self._busy.pop(protocol, 1) - 1
            if left:
                self._busy[protocol] = left

    async def start(self, runner: web.BaseRunner, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port) and return the bound port."""
        if runner.server is None:
            raise RuntimeError("call runner.setup() first")
        self._runner = runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, host, port, backlog=BACKLOG)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting; open connections are closed by the runner's cleanup."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    def _accept(self) -> asyncio.BaseProtocol:
        assert self._runner is not None
        web_server = self._runner.server
        assert web_server is not None
        open_ = [h for h in web_server.connections if h.transport is not None]
        if len(open_) >= self.max_connections:
            idle = next((h for h in open_ if h not in self._busy), None)
            if idle is None:  # every connection is handling a request: no room for this one
                self.refused += 1
                return _Refused()
            self._close(idle)
            self.evicted += 1
        handler = web_server()
        self._unproven.add(handler)
        asyncio.get_running_loop().call_later(self.header_timeout, self._expire, handler)
        return handler

    def _expire(self, handler: RequestHandler) -> None:
        if handler in self._unproven:
            self._unproven.discard(handler)
            if handler.transport is not None and handler not in self._busy:
                self._close(handler)
                self.timed_out += 1

    def _close(self, handler: RequestHandler) -> None:
        self._unproven.discard(handler)
        handler.force_close()


class _Refused(asyncio.Protocol):
    """A connection over the cap while every other one is busy: closed at once, unanswered."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()

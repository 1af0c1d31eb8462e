"""A loopback HTTP ``CONNECT`` proxy that demands Basic credentials, for tests.

Behaves like squid with ``proxy_auth`` on the wire: a ``CONNECT host:port`` with the right
``Proxy-Authorization: Basic ...`` gets ``200 Connection established`` and the bytes are relayed
both ways; any other credentials (or none) get ``407 Proxy Authentication Required`` with a
``Proxy-Authenticate: Basic realm=...`` header, and the connection is closed. Only ``CONNECT`` is
relayed (that is what https clients send); a plain-http request in absolute form gets the same
407 without credentials, else 405.

::

    proxy = ConnectProxy(username="build", password="s3cret")
    await proxy.start()
    env["HTTPS_PROXY"] = proxy.url_with_credentials   # or proxy.url for a 407
    ...
    proxy.tunnels, proxy.refused                      # counts
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Self

__all__ = ["ConnectProxy"]

_MAX_HEAD = 16 * 1024


class ConnectProxy:
    """The proxy (see the module docstring).

    Attributes:
        tunnels: CONNECT requests accepted.
        refused: requests answered 407.
        targets: the request target of every request (``host:port`` for CONNECT), in order.
    """

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self.tunnels = 0
        self.refused = 0
        self.targets: list[str] = []
        self._server: asyncio.Server | None = None
        self._port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1") -> Self:
        """Listen on ``host`` at a free port."""
        self._server = await asyncio.start_server(self._client, host, 0)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        """Stop listening and cut every tunnel."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no credentials)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def url_with_credentials(self) -> str:
        """``http://user:password@127.0.0.1:PORT``."""
        return f"http://{self.username}:{self.password}@127.0.0.1:{self._port}"

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.username is None and self.password is None:
            return True
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return headers.get("proxy-authorization", "") == f"Basic {expected}"

    def _upstream(self, target: str) -> tuple[str, int] | None:
        """Where a ``CONNECT target`` goes: the ``host:port`` it names (None: answer 405)."""
        host, _, port = target.rpartition(":")
        return host.strip("[]"), int(port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.partition(" ")[0]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        self.targets.append(target)
        if not self._authorized(headers):
            self.refused += 1
            body = b"<html><body>Proxy authentication required</body></html>"
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="azauth-test-proxy"\r\n'
                b"Content-Type: text/html\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            return
        upstream = self._upstream(target) if method == "CONNECT" else None
        if upstream is None:
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*upstream)
        self.tunnels += 1
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()

"""A loopback ``CONNECT`` proxy that sends every tunnel to the emulator, whatever host it names.

Real clients build their own URLs from well-known host names (Terraform's azurerm backend talks to
``https://{account}.blob.core.windows.net`` and ``https://login.microsoftonline.com``, az to
``https://management.azure.com``) and cannot be pointed at ``127.0.0.1`` otherwise. Given
``HTTPS_PROXY=http://127.0.0.1:PORT`` (which Go and ``requests`` honour) and the emulator's CA
in ``SSL_CERT_FILE``, their TLS connections reach the emulator, whose certificate names those
hosts (:data:`agent.testing.emulator.TLS_NAMES`); nothing leaves the machine. The hosts asked
for are recorded in :attr:`ConnectTunnel.hosts`.

Only ``CONNECT host:port`` is served; any other request is answered 405 and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

__all__ = ["ConnectTunnel"]

_MAX_HEAD = 8192
_BUFFER = 65536


class ConnectTunnel:
    """Tunnels ``CONNECT`` requests to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        #: ``host:port`` of each CONNECT received, in order.
        self.hosts: list[str] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``HTTPS_PROXY``."""
        if self._server is None:
            raise RuntimeError("the tunnel is not started")
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self) -> Self:
        """Listen on 127.0.0.1, any free port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        """Stop listening and cut the open tunnels. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._tunnel(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            return
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        target = rest.split(" ", 1)[0]
        if method != "CONNECT" or ":" not in target:
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        self.hosts.append(target)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_BUFFER):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()

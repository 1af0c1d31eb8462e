"""`azauth serve` under a connection flood: 400 idle connections, RLIMIT_NOFILE 256."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shlex
import signal
import time

import aiohttp
import pytest

from agent.tokenserver._listener import connection_cap
from tests.support import CLIENT, SC, TENANT, spawn_azauth

ARM = "https://management.azure.com/"
NOFILE = 256


def _limit_descriptors() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def test_cap_is_half_the_descriptor_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(100_000) == max(8, soft // 4)
    assert connection_cap(10) == min(10, soft // 4)


async def _hold(port: int, count: int) -> list[asyncio.StreamWriter]:
    async def one() -> asyncio.StreamWriter | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, TimeoutError):
            return None
        writer.write(b"GET /msi/token HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        return writer

    held = await asyncio.gather(*(one() for _ in range(count)))
    return [writer for writer in held if writer is not None]


async def test_good_client_is_served_within_2s_while_400_idle_connections_are_held(
    tmp_path, write_profile
):
    write_profile(tmp_path)
    stderr = (tmp_path / "serve.log").open("wb")  # a pipe nobody reads could block the server
    proc = await spawn_azauth(
        "serve",
        "--profile",
        "ci",
        "--emulate",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_limit_descriptors,  # noqa: PLW1509 - setrlimit only, no threads involved
    )
    held: list[asyncio.StreamWriter] = []
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        exported = dict(word.split("=", 1) for word in shlex.split(line)[1:])
        endpoint = exported["IDENTITY_ENDPOINT"]
        port = int(endpoint.split(":")[2].split("/")[0])

        held = await _hold(port, 400)
        assert len(held) >= 300  # the flood really happened

        started = time.monotonic()
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
            http.get(
                endpoint,
                params={"api-version": "2019-08-01", "resource": ARM},
                headers={"X-IDENTITY-HEADER": exported["IDENTITY_HEADER"]},
            ) as resp,
        ):
            body = await resp.json()
        elapsed = time.monotonic() - started
        assert resp.status == 200, body
        assert body["access_token"]
        assert elapsed < 2.0
        assert proc.returncode is None  # still serving
    finally:
        for writer in held:
            writer.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        stderr.close()
    log = (tmp_path / "serve.log").read_text()
    assert "Too many open files" not in log


@pytest.mark.parametrize("partial", [b"", b"GET /msi/token HTTP/1.1\r\nHost: x\r\n"])
async def test_a_connection_without_a_complete_request_is_closed_after_the_header_timeout(
    partial, monkeypatch
):
    """Silent or half-sent requests are cut after 5 s, not kept for the keep-alive time."""
    from agent.config import Connection  # noqa: PLC0415
    from agent.tokenserver.server import TokenServer  # noqa: PLC0415

    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", "http://127.0.0.1:9/oidc")
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "system-access-token-value")
    connection = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC)
    async with TokenServer({"prod": connection}) as server:
        server._listener.header_timeout = 0.3  # noqa: SLF001 - shorten the wait of the test
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(partial)
        started = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 5)
        assert time.monotonic() - started < 3
        assert data == b""  # closed without an answer
        writer.close()


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_closed(connected_emulator):
    """Past the cap, with no idle connection to close, the newcomer is closed unanswered."""
    from agent.config import Connection  # noqa: PLC0415
    from agent.tokenserver.server import TokenServer  # noqa: PLC0415

    connected_emulator.latency = 2.0  # keeps the first requests busy in the handler
    connection = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC)
    async with TokenServer({"prod": connection}) as server:
        server._listener.max_connections = 4  # noqa: SLF001 - a small cap for the test
        request = (
            f"GET /msi/token?api-version=2019-08-01&resource={ARM} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            f"X-IDENTITY-HEADER: {server.env['IDENTITY_HEADER']}\r\n\r\n"
        ).encode()
        busy = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request)
            busy.append((reader, writer))
        await asyncio.sleep(0.5)  # all four are inside the handler now

        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert time.monotonic() - started < 1.5
        writer.close()

        for reader, writer in busy:
            status_line = await asyncio.wait_for(reader.readline(), 10)
            assert status_line.startswith(b"HTTP/1.1 200")
            writer.close()
        assert server._listener.refused == 1  # noqa: SLF001


async def test_an_idle_keep_alive_connection_is_closed(connected_emulator, monkeypatch):
    """After an answered request, a connection left idle is closed at the keep-alive timeout."""
    import agent.tokenserver.server  # noqa: PLC0415
    from agent.config import Connection  # noqa: PLC0415

    monkeypatch.setattr(agent.tokenserver.server, "DEFAULT_KEEPALIVE_TIMEOUT", 0.5)
    connection = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC)
    async with agent.tokenserver.server.TokenServer({"prod": connection}) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            (
                f"GET /msi/token?api-version=2019-08-01&resource={ARM} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\n"
                f"X-IDENTITY-HEADER: {server.env['IDENTITY_HEADER']}\r\n\r\n"
            ).encode()
        )
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        started = time.monotonic()
        rest = await asyncio.wait_for(reader.read(), 10)  # the body, then EOF when closed
        assert time.monotonic() - started < 5
        assert b"access_token" in rest
        writer.close()

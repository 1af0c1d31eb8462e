"""The floor of `azauth serve`: a bare aiohttp handler answering the App Service token request.

What a developer would write in a few lines: one route, the ``X-IDENTITY-HEADER`` secret checked
with ``hmac.compare_digest``, the ``resource`` query parameter read, one cached token answered as
the App Service JSON (``access_token``, ``expires_on``, ``expires_in``, ``resource``,
``token_type``, ``client_id``) with ``Cache-Control: no-store``. No Host, Origin or
X-Forwarded-For checks, no connection limits, no logging. ``bench/bench_server.py`` runs it in a
child process next to ``azauth serve`` and compares the CPU each spends per answer.

It prints ``export IDENTITY_ENDPOINT=... IDENTITY_HEADER=...`` on its first line, as
``azauth serve`` does, and serves until SIGTERM.

Usage: python bench/bare_token_server.py
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import signal
import sys
import time

from aiohttp import web

# A token as Entra issues them (the length matters for the answer's size, the value does not).
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + "e" * 1200 + ".signature"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


async def main() -> None:
    secret = secrets.token_urlsafe(32)
    expected = secret.encode()
    expires_on = int(time.time()) + 3600

    async def token(request: web.Request) -> web.Response:
        offered = request.headers.get("X-IDENTITY-HEADER", "")
        if not hmac.compare_digest(offered.encode(), expected):
            return web.json_response({"error": "unauthorized"}, status=401)
        resource = request.query.get("resource")
        if not resource:
            return web.json_response({"error": "resource missing"}, status=400)
        body = {
            "access_token": TOKEN,
            "expires_on": str(expires_on),
            "expires_in": str(max(0, expires_on - int(time.time()))),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": CLIENT_ID,
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    app = web.Application()
    app.router.add_get("/msi/token", token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server  # noqa: SLF001 - the bound port
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    endpoint = f"http://127.0.0.1:{port}/msi/token"
    sys.stdout.write(f"export IDENTITY_ENDPOINT={endpoint} IDENTITY_HEADER={secret}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())

"""Answers larger than the body cap: refused with an error naming the endpoint, memory bounded."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from agent import AzurePipelinesCredential
from agent._http import MAX_BODY_BYTES
from agent.exceptions import TransportError
from agent.retry import RetryPolicy
from tests.support import CLIENT, SC, TENANT

HUGE = 64 * 1024 * 1024
CHUNK = b'{"oidcToken": "' + b"A" * (1024 * 1024 - 15)


async def _huge(request: web.Request) -> web.StreamResponse:
    """64 MiB of JSON-looking bytes, chunked (no Content-Length) unless ?length=1."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if request.query.get("length"):
        response.content_length = HUGE
    await response.prepare(request)
    try:
        for _ in range(HUGE // len(CHUNK)):
            await response.write(CHUNK)
    except (ConnectionResetError, RuntimeError):
        pass  # the client stopped reading: that is the point
    return response


@pytest.fixture
async def huge_server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _huge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/org/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("length", [False, True], ids=["chunked", "content-length"])
async def test_a_body_over_the_cap_is_an_error_naming_the_endpoint(huge_server, length):
    uri = huge_server + ("?length=1" if length else "")
    cred = AzurePipelinesCredential(
        tenant_id=TENANT,
        client_id=CLIENT,
        service_connection_id=SC,
        system_access_token="system-access-token-value",
        oidc_request_uri=uri,
        retry=RetryPolicy(max_attempts=1),
    )
    async with cred:
        with pytest.raises(TransportError) as caught:
            await cred.get_token("https://management.azure.com/.default")
    message = str(caught.value)
    assert "/org/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken" in message
    assert f"{MAX_BODY_BYTES // 1024} KiB" in message
    assert "length=1" not in message  # the query is not part of the name


async def test_a_64_mib_answer_leaves_azauth_token_under_200_mb(huge_server, tmp_path):
    """`azauth token` against a 64 MiB answer fails cleanly; its peak RSS stays under 200 MB."""
    env = {
        **os.environ,
        "SYSTEM_OIDCREQUESTURI": huge_server,
        "SYSTEM_ACCESSTOKEN": "system-access-token-value",
        "AZURESUBSCRIPTION_TENANT_ID": TENANT,
        "AZURESUBSCRIPTION_CLIENT_ID": CLIENT,
        "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": SC,
    }
    # The child's peak RSS, measured by a parent that starts only it (RUSAGE_CHILDREN).
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run([sys.executable, '-m', 'agent', 'token', '--no-cache'],"
        " capture_output=True, text=True)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(done.stderr, file=sys.stderr)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        probe,
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    code, peak_kib = (int(value) for value in out.split())
    assert code == 4, err.decode()
    assert "larger than 1024 KiB" in err.decode()
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB"

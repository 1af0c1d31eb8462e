"""Text a server controls: redacted, one line, length-capped wherever azauth shows it."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from agent._secrets import MAX_SERVER_TEXT, server_text
from agent.exchange import HttpResponse, parse_token_response
from agent.testing.emulator import Emulator
from tests.support import CLIENT, SC, TENANT, spawn_azauth

INJECTED = "\n##vso[task.setvariable variable=PWNED]1\r\x1b[31m"


async def _reflecting_entra(request: web.Request) -> web.Response:
    """An Entra look-alike that reflects the client assertion and injects log commands."""
    form = await request.post()
    assertion = str(form.get("client_assertion", ""))
    body = {
        "error": f"invalid_client{INJECTED}",
        "error_description": f"AADSTS700211: assertion {assertion} rejected{INJECTED}" + "x" * 5000,
        "error_codes": [700211],
        "correlation_id": f"corr{INJECTED}{assertion}",
        "trace_id": "t" * 500,
        f"unexpected{INJECTED}": assertion,
    }
    return web.json_response(body, status=400)


@pytest.fixture
async def reflecting(monkeypatch) -> AsyncIterator[Emulator]:
    app = web.Application()
    app.router.add_post("/{tenant}/oauth2/v2.0/token", _reflecting_entra)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with Emulator() as emu:
        emu.add_connection(SC, TENANT, CLIENT)
        monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emu.oidc_request_uri)
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", emu.system_access_token)
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", f"http://127.0.0.1:{port}")
        yield emu
    await runner.cleanup()


def _assertions(emu: Emulator) -> list[str]:
    return [emu.system_access_token, *(t.token for t in emu.issued)]


async def _azauth(*args: str, cwd: Path) -> tuple[int, str]:
    proc = await spawn_azauth(*args, cwd=cwd, env=dict(os.environ))
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


def _check(text: str, emu: Emulator) -> None:
    assert "##vso[" not in text.replace(" ##vso[", "")  # never at the start of a line
    for line in text.splitlines():
        assert not line.lstrip().startswith("##vso["), line
    assert "\x1b" not in text and "\r" not in text
    issued = [t.token for t in emu.issued]
    assert issued, "the emulator issued the OIDC token that Entra reflected"
    for secret in [emu.system_access_token, *issued]:
        assert secret not in text


async def test_error_line_of_azauth_token(reflecting, tmp_path, write_profile):
    write_profile(tmp_path, outputs=True)
    code, text = await _azauth("token", "--profile", "ci", "--no-cache", cwd=tmp_path)
    assert code == 4, text
    _check(text, reflecting)
    (error,) = [line for line in text.splitlines() if line.startswith("azauth: error:")]
    assert len(error) < 2 * MAX_SERVER_TEXT + 400
    assert "AADSTS700211" in error


async def test_summary_table_and_logs_of_azauth_run(reflecting, tmp_path, write_profile):
    write_profile(tmp_path, outputs=True)
    code, text = await _azauth("run", "--profile", "ci", "--log-format", "console", cwd=tmp_path)
    assert code == 4, text
    _check(text, reflecting)
    assert "FAILED:" in text


def test_unexpected_keys_and_ids_are_capped_and_single_line():
    body = {"access_token": "", f"k{INJECTED}": 1, "correlation_id": "c" * 1000}
    response = HttpResponse(200, "OK", {}, json.dumps(body).encode())
    with pytest.raises(Exception) as caught:
        parse_token_response(response, request_time=0)
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message


def test_server_text_rules():
    text = server_text("a\nb\x00c\u202ed" + "e" * 1000 + " http://u:pw@h/x")
    assert text.startswith("a b c d")
    assert len(text) == MAX_SERVER_TEXT + 1 and text.endswith("…")
    assert server_text("see http://user:pw@proxy:3128/") == "see http://proxy:3128/"


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_log_value_cannot_forge_a_log_line(fmt):
    import io  # noqa: PLC0415

    from agent.logs import configure_logging, get_logger  # noqa: PLC0415

    stream = io.StringIO()
    configure_logging(fmt=fmt, level="info", stream=stream)
    get_logger("test").info("refused", reason=f"bad resource{INJECTED}", url="http://u:pw@h:1/x")
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert "##vso[" in text and "\n##vso[" not in text
    assert "u:pw@" not in text

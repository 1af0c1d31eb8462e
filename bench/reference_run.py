"""The reference for `azauth run --once`: the same job hand-written with the standard library.

What a careful engineer would write for one pipeline with N service connections and S scopes,
without azauth and without any dependency (asyncio, ssl, json, os):

- per connection, one POST to ``SYSTEM_OIDCREQUESTURI?api-version=7.1&serviceConnectionId=ID``
  (``Authorization: Bearer $SYSTEM_ACCESSTOKEN``), then its S Entra client-credentials POSTs
  to ``{AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token`` concurrently, the OIDC token as
  ``client_assertion``: the same requests `azauth run --once` makes (N + N x S);
- every connection at once (one asyncio task each); HTTP/1.1 over TLS with
  ``ssl.create_default_context()``, which honours ``SSL_CERT_FILE`` as any stdlib script
  would; one connection per request (``Connection: close``); the status and JSON of every
  answer checked;
- each token written as azauth writes a token file: a ``0600`` temporary file created with
  ``O_EXCL | O_NOFOLLOW`` in the target's directory (created ``0700``), fsynced, renamed over
  the target, the directory fsynced; the writes run in worker threads.

The job comes from a JSON file (``[{"tenant_id", "client_id", "service_connection_id",
"outputs": [{"scope", "path"}]}]``), the equivalent of azauth's profile; the environment gives
``SYSTEM_OIDCREQUESTURI``, ``SYSTEM_ACCESSTOKEN`` and ``AZURE_AUTHORITY_HOST``.
``bench/bench_run.py`` runs it next to azauth and the other peers.

Usage: python bench/reference_run.py JOB.json
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import ssl
import sys
from urllib.parse import quote, urlencode, urlsplit

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def post(context: ssl.SSLContext, url: str, headers: dict[str, str], body: bytes) -> dict:
    """POST ``body`` to ``url`` over TLS; return the JSON answer (raise unless 200)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    reader, writer = await asyncio.open_connection(
        host, parts.port or 443, ssl=context, server_hostname=host
    )
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if fields.get("transfer-encoding", "").lower() == "chunked":
        payload = dechunk(payload)
    if status != 200:
        raise RuntimeError(f"{host} answered {status}")
    answer: dict = json.loads(payload)
    return answer


def dechunk(data: bytes) -> bytes:
    """The body of a chunked HTTP/1.1 message."""
    out = bytearray()
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[:size]
        data = data[size + 2 :]


def write_private(path: str, data: bytes) -> None:
    """Atomic, durable, 0600: temporary file, fsync, rename, directory fsync."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    temp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def connection(context: ssl.SSLContext, job: dict, env: dict[str, str]) -> None:
    """One service connection: its OIDC token, then its scopes concurrently, each file written."""
    oidc_url = (
        f"{env['SYSTEM_OIDCREQUESTURI']}?api-version=7.1"
        f"&serviceConnectionId={quote(job['service_connection_id'], safe='')}"
    )
    oidc = await post(
        context,
        oidc_url,
        {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {env['SYSTEM_ACCESSTOKEN']}",
            "X-TFS-FedAuthRedirect": "Suppress",
            "Accept": "application/json",
        },
        b"",
    )
    assertion = oidc["oidcToken"]
    token_url = f"{env['AZURE_AUTHORITY_HOST'].rstrip('/')}/{job['tenant_id']}/oauth2/v2.0/token"

    async def scope(output: dict) -> None:
        form = urlencode(
            [
                ("client_assertion", assertion),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_id", job["client_id"]),
                ("grant_type", "client_credentials"),
                ("scope", output["scope"]),
            ]
        ).encode("ascii")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        answer = await post(context, token_url, headers, form)
        await asyncio.to_thread(write_private, output["path"], answer["access_token"].encode())

    await asyncio.gather(*(scope(output) for output in job["outputs"]))


async def main(job_file: str) -> int:
    with open(job_file, encoding="utf-8") as handle:
        jobs = json.load(handle)
    env = dict(os.environ)
    context = ssl.create_default_context()
    await asyncio.gather(*(connection(context, job, env) for job in jobs))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))

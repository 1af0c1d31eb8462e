"""Azure Blob Storage, as much of it as Terraform's azurerm state backend uses, with Entra auth.

Requests whose ``Host`` is ``{account}.blob.core.windows.net`` (or any ``{account}.blob.…``
host) are answered here, ahead of the emulator's own routes (:meth:`BlobService.middleware`).
Served, with the service's status codes, ``x-ms-error-code`` headers and XML error bodies:

- ``GET /{container}?restype=container&comp=list[&prefix=…]`` — list blobs;
- ``GET``/``HEAD /{container}/{blob}`` — read (``404 BlobNotFound``), properties and metadata;
- ``PUT /{container}/{blob}`` with ``x-ms-blob-type: BlockBlob`` — write (``412`` when the blob
  is leased and the request does not carry the lease id);
- ``PUT ?comp=lease`` — ``acquire`` (``409 LeaseAlreadyPresent``), ``release``, ``break``,
  ``renew``;
- ``PUT ?comp=metadata``, ``GET``/``HEAD ?comp=metadata`` — ``x-ms-meta-*``;
- ``DELETE /{container}/{blob}``.

Every request must carry ``Authorization: Bearer`` with an access token the emulator issued for
``https://storage.azure.com`` that has not expired (``401`` with the ``WWW-Authenticate``
challenge otherwise): a client that keeps using a stale token is caught here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from agent.testing.emulator import Emulator

__all__ = ["BlobService", "StoredBlob"]

STORAGE_AUDIENCE = "https://storage.azure.com"
_API_VERSION = "2023-11-03"
_META = "x-ms-meta-"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class StoredBlob:
    """One block blob: content, user metadata, lease."""

    data: bytes = b""
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/octet-stream"
    content_md5: str | None = None
    lease_id: str | None = None
    etag: str = field(default_factory=lambda: f'"0x{uuid.uuid4().hex[:15].upper()}"')
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def touch(self) -> None:
        self.etag = f'"0x{uuid.uuid4().hex[:15].upper()}"'
        self.modified = dt.datetime.now(dt.UTC)


def _http_date(moment: dt.datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


class _BlobError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class BlobService:
    """The blob endpoints of every storage account (accounts and containers made on demand).

    Attributes:
        containers: ``{(account, container): {blob name: StoredBlob}}``; add a container with
            :meth:`create_container` (requests to a missing one get ``404 ContainerNotFound``).
        counts: requests answered, by operation (``list``, ``get``, ``put``, ``lease``, ...).
    """

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self.containers: dict[tuple[str, str], dict[str, StoredBlob]] = {}
        self.counts: dict[str, int] = {}
        self.rejected_tokens = 0

    def create_container(self, account: str, container: str) -> None:
        """Create an empty container (no-op when it exists)."""
        self.containers.setdefault((account.lower(), container), {})

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer requests addressed to a ``*.blob.*`` host; pass the others on."""
        host = (request.host or "").split(":", 1)[0].lower()
        account, sep, rest = host.partition(".")
        if not sep or not rest.startswith("blob."):
            return await handler(request)
        headers = {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-version": request.headers.get("x-ms-version", _API_VERSION),
            "Date": _http_date(dt.datetime.now(dt.UTC)),
        }
        try:
            self._authorize(request)
            return await self._dispatch(request, account, headers)
        except _BlobError as error:
            headers["x-ms-error-code"] = error.code
            if error.status == 401:
                tenant = self._emulator.default_tenant_id
                headers["WWW-Authenticate"] = (
                    f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/"
                    f"oauth2/authorize resource_id={STORAGE_AUDIENCE}"
                )
            if request.method == "HEAD":
                return web.Response(status=error.status, headers=headers)
            body = (
                '<?xml version="1.0" encoding="utf-8"?><Error>'
                f"<Code>{error.code}</Code><Message>{html.escape(error.message)}\n"
                f"RequestId:{headers['x-ms-request-id']}</Message></Error>"
            )
            return web.Response(
                status=error.status, text=body, content_type="application/xml", headers=headers
            )

    def _authorize(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _BlobError(
                401,
                "NoAuthenticationInformation",
                "Server failed to authenticate the request. Please refer to the information "
                "in the www-authenticate header.",
            )
        try:
            self._emulator.verify_access_token(token.strip(), audience=STORAGE_AUDIENCE)
        except ValueError:
            self.rejected_tokens += 1
            raise _BlobError(
                401,
                "InvalidAuthenticationInfo",
                "Server failed to authenticate the request. Please refer to the information "
                "in the www-authenticate header.",
            ) from None

    def _count(self, operation: str) -> None:
        self.counts[operation] = self.counts.get(operation, 0) + 1

    async def _dispatch(
        self, request: web.Request, account: str, headers: dict[str, str]
    ) -> web.StreamResponse:
        parts = request.path.lstrip("/").split("/", 1)
        container = parts[0]
        key = (account, container)
        if key not in self.containers:
            raise _BlobError(404, "ContainerNotFound", "The specified container does not exist.")
        blobs = self.containers[key]
        query = request.query
        if len(parts) == 1 or not parts[1]:
            if request.method == "GET" and query.get("comp") == "list":
                self._count("list")
                return _list_response(blobs, query.get("prefix", ""), container, headers)
            raise _BlobError(400, "UnsupportedQueryParameter", "Unsupported container request.")
        name = parts[1]
        comp = query.get("comp")
        if comp == "lease" and request.method == "PUT":
            self._count("lease")
            return _lease(blobs, name, request, headers)
        if comp == "metadata":
            self._count("metadata")
            return await _metadata(blobs, name, request, headers)
        if comp is not None:
            raise _BlobError(400, "UnsupportedQueryParameter", f"comp={comp} is not emulated.")
        if request.method in ("GET", "HEAD"):
            self._count("get" if request.method == "GET" else "head")
            return _read(blobs, name, request.method, headers)
        if request.method == "PUT":
            self._count("put")
            return await _write(blobs, name, request, headers)
        if request.method == "DELETE":
            self._count("delete")
            blob = _existing(blobs, name)
            _check_lease(blob, request)
            del blobs[name]
            return web.Response(status=202, headers=headers)
        raise _BlobError(405, "UnsupportedHttpVerb", f"{request.method} is not supported.")


def _existing(blobs: dict[str, StoredBlob], name: str) -> StoredBlob:
    blob = blobs.get(name)
    if blob is None:
        raise _BlobError(404, "BlobNotFound", "The specified blob does not exist.")
    return blob


def _check_lease(blob: StoredBlob | None, request: web.Request) -> None:
    if blob is None or blob.lease_id is None:
        return
    given = request.headers.get("x-ms-lease-id")
    if given is None:
        raise _BlobError(
            412,
            "LeaseIdMissing",
            "There is currently a lease on the blob and no lease ID was specified in the request.",
        )
    if given != blob.lease_id:
        raise _BlobError(
            412,
            "LeaseIdMismatchWithBlobOperation",
            "The lease ID specified did not match the lease ID for the blob.",
        )


def _properties(blob: StoredBlob, headers: dict[str, str]) -> dict[str, str]:
    out = dict(headers)
    out.update(
        {
            "ETag": blob.etag,
            "Last-Modified": _http_date(blob.modified),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-creation-time": _http_date(blob.modified),
            "x-ms-lease-status": "locked" if blob.lease_id else "unlocked",
            "x-ms-lease-state": "leased" if blob.lease_id else "available",
            "x-ms-server-encrypted": "true",
            "Accept-Ranges": "bytes",
        }
    )
    if blob.lease_id:
        out["x-ms-lease-duration"] = "infinite"
    if blob.content_md5:
        out["Content-MD5"] = blob.content_md5
    for name, value in blob.metadata.items():
        out[_META + name] = value
    return out


def _read(
    blobs: dict[str, StoredBlob], name: str, method: str, headers: dict[str, str]
) -> web.Response:
    blob = _existing(blobs, name)
    out = _properties(blob, headers)
    if method == "HEAD":
        out["Content-Length"] = str(len(blob.data))
        out["Content-Type"] = blob.content_type
        return web.Response(status=200, headers=out)
    return web.Response(status=200, body=blob.data, content_type=blob.content_type, headers=out)


async def _write(
    blobs: dict[str, StoredBlob], name: str, request: web.Request, headers: dict[str, str]
) -> web.Response:
    if request.headers.get("x-ms-blob-type", "") != "BlockBlob":
        raise _BlobError(
            400, "MissingRequiredHeader", "An HTTP header that's mandatory is not specified."
        )
    existing = blobs.get(name)
    _check_lease(existing, request)
    data = await request.read()
    blob = existing or StoredBlob()
    blob.data = data
    blob.content_type = (
        request.headers.get("x-ms-blob-content-type")
        or request.headers.get("Content-Type")
        or "application/octet-stream"
    )
    blob.content_md5 = request.headers.get("x-ms-blob-content-md5") or base64.b64encode(
        hashlib.md5(data, usedforsecurity=False).digest()
    ).decode("ascii")
    blob.metadata = {
        key[len(_META) :]: value
        for key, value in request.headers.items()
        if key.lower().startswith(_META)
    }
    blob.touch()
    blobs[name] = blob
    out = dict(headers)
    out.update(
        {
            "ETag": blob.etag,
            "Last-Modified": _http_date(blob.modified),
            "Content-MD5": blob.content_md5,
            "x-ms-request-server-encrypted": "true",
        }
    )
    return web.Response(status=201, headers=out)


def _lease(
    blobs: dict[str, StoredBlob], name: str, request: web.Request, headers: dict[str, str]
) -> web.Response:
    blob = _existing(blobs, name)
    action = request.headers.get("x-ms-lease-action", "").lower()
    out = dict(headers)
    out.update({"ETag": blob.etag, "Last-Modified": _http_date(blob.modified)})
    if action == "acquire":
        if blob.lease_id is not None:
            raise _BlobError(409, "LeaseAlreadyPresent", "There is already a lease present.")
        blob.lease_id = request.headers.get("x-ms-proposed-lease-id") or str(uuid.uuid4())
        out["x-ms-lease-id"] = blob.lease_id
        return web.Response(status=201, headers=out)
    if action in ("release", "renew"):
        if blob.lease_id is None:
            raise _BlobError(409, "LeaseNotPresentWithLeaseOperation", "There is no lease.")
        if request.headers.get("x-ms-lease-id") != blob.lease_id:
            raise _BlobError(
                409, "LeaseIdMismatchWithLeaseOperation", "The lease ID did not match."
            )
        if action == "release":
            blob.lease_id = None
        else:
            out["x-ms-lease-id"] = blob.lease_id
        return web.Response(status=200, headers=out)
    if action == "break":
        blob.lease_id = None
        out["x-ms-lease-time"] = "0"
        return web.Response(status=202, headers=out)
    raise _BlobError(400, "InvalidHeaderValue", f"x-ms-lease-action {action!r} is not valid.")


async def _metadata(
    blobs: dict[str, StoredBlob], name: str, request: web.Request, headers: dict[str, str]
) -> web.Response:
    blob = _existing(blobs, name)
    if request.method in ("GET", "HEAD"):
        out = dict(headers)
        out.update({"ETag": blob.etag, "Last-Modified": _http_date(blob.modified)})
        for key, value in blob.metadata.items():
            out[_META + key] = value
        return web.Response(status=200, headers=out)
    if request.method != "PUT":
        raise _BlobError(405, "UnsupportedHttpVerb", f"{request.method} is not supported.")
    _check_lease(blob, request)
    blob.metadata = {
        key[len(_META) :]: value
        for key, value in request.headers.items()
        if key.lower().startswith(_META)
    }
    blob.touch()
    out = dict(headers)
    out.update({"ETag": blob.etag, "Last-Modified": _http_date(blob.modified)})
    return web.Response(status=200, headers=out)


def _list_response(
    blobs: dict[str, StoredBlob], prefix: str, container: str, headers: dict[str, str]
) -> web.Response:
    items = []
    for name in sorted(blobs):
        if not name.startswith(prefix):
            continue
        blob = blobs[name]
        items.append(
            f"<Blob><Name>{html.escape(name)}</Name><Properties>"
            f"<Last-Modified>{_http_date(blob.modified)}</Last-Modified>"
            f"<Etag>{blob.etag}</Etag><Content-Length>{len(blob.data)}</Content-Length>"
            f"<Content-Type>{html.escape(blob.content_type)}</Content-Type>"
            "<BlobType>BlockBlob</BlobType>"
            f"<LeaseStatus>{'locked' if blob.lease_id else 'unlocked'}</LeaseStatus>"
            f"<LeaseState>{'leased' if blob.lease_id else 'available'}</LeaseState>"
            "</Properties></Blob>"
        )
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<EnumerationResults ContainerName="{html.escape(container)}">'
        f"<Prefix>{html.escape(prefix)}</Prefix><Blobs>{''.join(items)}</Blobs>"
        "<NextMarker /></EnumerationResults>"
    )
    return web.Response(status=200, text=body, content_type="application/xml", headers=headers)

"""The emulator's Azure Artifacts: feeds with a PyPI (PEP 503) and an npm endpoint.

Routes, below ``/{organization}[/{project}]/_packaging/{feed}`` on the emulator's address:

``GET pypi/simple/``, ``GET pypi/simple/{name}/``
    PEP 503 pages; file links carry ``#sha256=`` and point at ``pypi/download/...``.
``GET pypi/download/{name}/{version}/{file}``
    the distribution file.
``POST pypi/upload/``
    the legacy upload API twine speaks (multipart form: ``:action=file_upload``, ``name``,
    ``version``, ``content``, ``sha256_digest``); the file is added to the feed.
``GET npm/registry/{package}``, ``GET npm/registry/{package}/-/{file}.tgz``
    the package document (``dist.tarball``, ``shasum``, ``integrity``) and the tarball.

Authentication, as Azure DevOps takes it: ``Authorization: Bearer <Entra access token>`` or
``Basic base64(<any user>:<Entra access token>)``, where the token is one this emulator issued,
unexpired, for the Azure DevOps resource ``499b84ac-1321-427f-aa17-267ca6975798``. Without a
usable credential the answer is ``401`` with Azure DevOps' challenge headers
(``WWW-Authenticate: Bearer authorization_uri=...``, ``Basic realm=...``, ``TFS-Federated``);
an identity without the feed permission gets ``403`` with the service's JSON error
(``FeedNeedsPermissionsException``); an unknown feed or package ``404``.

Each feed starts with one package in both ecosystems, ``azauth-feed-probe`` 1.0.0: a pure-Python
wheel and an npm tarball, built at run time (deterministic bytes).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import html
import io
import json
import re
import tarfile
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = [
    "AZURE_DEVOPS_RESOURCE",
    "PROBE_NAME",
    "PROBE_VERSION",
    "EmulatedFeed",
    "FeedService",
    "build_npm_tarball",
    "build_wheel",
]

AZURE_DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
PROBE_NAME = "azauth-feed-probe"
PROBE_VERSION = "1.0.0"
_MODULE = "azauth_feed_probe"
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
_NORMALIZE = re.compile(r"[-_.]+")
_READ = "ReadPackages"
_ADD = "AddPackage"


def _normalize(name: str) -> str:
    """PEP 503 name normalisation."""
    return _NORMALIZE.sub("-", name).lower()


def _b64_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(name: str = PROBE_NAME, version: str = PROBE_VERSION) -> tuple[str, bytes]:
    """A minimal pure-Python wheel (PEP 427) holding one module; returns ``(filename, bytes)``.

    The module ``azauth_feed_probe`` (``name`` with ``_``) defines ``SOURCE = "emulated feed"``.
    """
    module = _NORMALIZE.sub("_", name).lower()
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}.py": b'SOURCE = "emulated feed"\n',
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: A package served by the azauth emulator's feed\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: azauth-emulator\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = "".join(
        f"{path},sha256={_b64_digest(data)},{len(data)}\n" for path, data in files.items()
    )
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return f"{module}-{version}-py3-none-any.whl", buffer.getvalue()


def build_npm_tarball(name: str = PROBE_NAME, version: str = PROBE_VERSION) -> bytes:
    """An npm package tarball (``package/package.json`` and ``package/index.js``), gzipped."""
    manifest = json.dumps({"name": name, "version": version, "main": "index.js"}).encode()
    files = {
        "package/package.json": manifest,
        "package/index.js": b'module.exports = "emulated feed";\n',
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_704_067_200
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass
class _File:
    filename: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class EmulatedFeed:
    """One feed of the emulated organization.

    ``readers``/``publishers`` are the app (client) ids allowed to read/publish; ``None`` allows
    every identity the emulator's Entra signed a token for Azure DevOps.
    """

    organization: str
    project: str | None
    name: str
    readers: set[str] | None = None
    publishers: set[str] | None = None
    python: dict[str, dict[str, _File]] = field(default_factory=dict)  # name -> version -> file
    npm: dict[str, dict[str, bytes]] = field(default_factory=dict)  # package -> version -> tgz
    uploads: list[dict[str, str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        """``/{organization}[/{project}]/_packaging/{feed}``."""
        project = f"/{self.project}" if self.project else ""
        return f"/{self.organization}{project}/_packaging/{self.name}"

    def add_wheel(self, filename: str, data: bytes, name: str, version: str) -> None:
        """Serve ``data`` as ``filename`` of ``name`` ``version``."""
        self.python.setdefault(_normalize(name), {})[version] = _File(filename, data)


@dataclass
class _Caller:
    client_id: str
    object_id: str


class FeedService:
    """The feeds of one :class:`~agent.testing.emulator.Emulator` (``emu.feeds``).

    Args:
        verify: checks an access token and returns its claims (the emulator's
            ``verify_access_token``), raising ``ValueError`` when it is not acceptable.
        url: returns the emulator's base URL.
        tenant: returns the tenant named in the challenge (``authorization_uri``).
    """

    def __init__(
        self,
        verify: Callable[..., dict[str, Any]],
        url: Callable[[], str],
        tenant: Callable[[], str],
    ) -> None:
        self._verify = verify
        self._url = url
        self._tenant = tenant
        self.feeds: dict[str, EmulatedFeed] = {}
        #: ``(method, path, status, scheme)`` of every feed request (scheme: Bearer, Basic, None).
        self.requests: list[tuple[str, str, int, str | None]] = []
        #: The access token of every authenticated request, in order (tests compare them).
        self.accepted: list[str] = []

    def add_feed(
        self,
        organization: str,
        name: str,
        *,
        project: str | None = None,
        readers: set[str] | None = None,
        publishers: set[str] | None = None,
    ) -> EmulatedFeed:
        """Create a feed holding the probe package (wheel and npm tarball); return it."""
        feed = EmulatedFeed(organization, project, name, readers, publishers)
        filename, data = build_wheel()
        feed.add_wheel(filename, data, PROBE_NAME, PROBE_VERSION)
        feed.npm[PROBE_NAME] = {PROBE_VERSION: build_npm_tarball()}
        self.feeds[feed.path.lower()] = feed
        return feed

    def url_of(self, feed: EmulatedFeed) -> str:
        """The feed URL (``{emulator}/{org}[/{project}]/_packaging/{feed}``)."""
        return f"{self._url()}{feed.path}"

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Add the feed routes to the emulator's router."""
        router.add_route("*", "/{org}/{project}/_packaging/{feed}/{rest:.*}", self._handle)
        router.add_route("*", "/{org}/_packaging/{feed}/{rest:.*}", self._handle)

    # ------------------------------------------------------------------------------ serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        match = request.match_info
        project = match.get("project")
        path = f"/{match['org']}{'/' + project if project else ''}/_packaging/{match['feed']}"
        scheme = request.headers.get("Authorization", "").partition(" ")[0] or None
        response = await self._answer(request, self.feeds.get(path.lower()), match["rest"])
        self.requests.append((request.method, request.path, response.status, scheme))
        return response

    async def _answer(
        self, request: web.Request, feed: EmulatedFeed | None, rest: str
    ) -> web.StreamResponse:
        if feed is None:
            return _error(404, "FeedIdNotFoundException", "Feed does not exist.")
        caller = self._authenticate(request)
        if caller is None:
            return self._challenge()
        upload = request.method == "POST" and rest.rstrip("/") == "pypi/upload"
        permission = _ADD if upload else _READ
        allowed = feed.publishers if upload else feed.readers
        if allowed is not None and caller.client_id not in allowed:
            return _error(
                403,
                "FeedNeedsPermissionsException",
                f"User '{caller.object_id}' lacks permission to complete this action. You need "
                f"to have '{permission}'.",
            )
        if upload:
            return await self._upload(request, feed)
        if request.method not in {"GET", "HEAD"}:
            return _error(405, "MethodNotAllowedException", "The method is not allowed.")
        return self._read(feed, rest)

    def _authenticate(self, request: web.Request) -> _Caller | None:
        header = request.headers.get("Authorization", "")
        kind, _, value = header.partition(" ")
        token = None
        if kind.lower() == "bearer":
            token = value.strip()
        elif kind.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            token = decoded.partition(":")[2]
        if not token:
            return None
        try:
            claims = self._verify(token, audience=AZURE_DEVOPS_RESOURCE)
        except ValueError:
            return None
        self.accepted.append(token)
        return _Caller(str(claims.get("appid", "")), str(claims.get("oid", "")))

    def _challenge(self) -> web.Response:
        realm = f"{self._url()}/"
        headers = [
            ("WWW-Authenticate", f"Bearer authorization_uri={self._url()}/{self._tenant()}"),
            ("WWW-Authenticate", f'Basic realm="{realm}"'),
            ("WWW-Authenticate", "TFS-Federated"),
            ("X-TFS-FedAuthRealm", realm),
            ("X-VSS-ResourceTenant", self._tenant()),
            ("ActivityId", str(uuid.uuid4())),
        ]
        response = _error(
            401,
            "UnauthorizedRequestException",
            "TF400813: The user '' is not authorized to access this resource.",
        )
        for name, value in headers:
            response.headers.add(name, value)
        return response

    def _read(self, feed: EmulatedFeed, rest: str) -> web.StreamResponse:
        parts = [part for part in rest.split("/") if part]
        if parts[:2] == ["pypi", "simple"]:
            return self._simple(feed, parts[2:])
        if parts[:2] == ["pypi", "download"] and len(parts) == 5:
            versions = feed.python.get(_normalize(parts[2]), {})
            found = versions.get(parts[3])
            if found is not None and found.filename == parts[4]:
                return web.Response(body=found.data, content_type="application/octet-stream")
        if parts[:2] == ["npm", "registry"] and len(parts) >= 3:
            return self._npm(feed, parts[2:])
        return _error(404, "PackageNotFoundException", "The package was not found.")

    def _simple(self, feed: EmulatedFeed, parts: list[str]) -> web.Response:
        if not parts:
            links = "".join(
                f'<a href="{html.escape(name)}/">{html.escape(name)}</a>\n'
                for name in sorted(feed.python)
            )
            return _page("Simple index", links)
        versions = feed.python.get(_normalize(parts[0]))
        if not versions:
            return _error(404, "PackageNotFoundException", "The package was not found.")
        base = f"{self._url()}{feed.path}/pypi/download/{_normalize(parts[0])}"
        links = "".join(
            f'<a href="{base}/{version}/{found.filename}#sha256={found.sha256}">'
            f"{html.escape(found.filename)}</a>\n"
            for version, found in versions.items()
        )
        return _page(f"Links for {html.escape(parts[0])}", links)

    def _npm(self, feed: EmulatedFeed, parts: list[str]) -> web.Response:
        package = parts[0]
        versions = feed.npm.get(package)
        if not versions:
            return web.json_response({"error": "Not found"}, status=404)
        if len(parts) == 1:
            return web.json_response(self._packument(feed, package, versions))
        if len(parts) == 3 and parts[1] == "-":
            for version, data in versions.items():
                if parts[2] == f"{package}-{version}.tgz":
                    return web.Response(body=data, content_type="application/octet-stream")
        return web.json_response({"error": "Not found"}, status=404)

    def _packument(
        self, feed: EmulatedFeed, package: str, versions: dict[str, bytes]
    ) -> dict[str, Any]:
        base = f"{self._url()}{feed.path}/npm/registry/{package}/-"
        documents = {}
        for version, data in versions.items():
            integrity = base64.b64encode(hashlib.sha512(data).digest()).decode()
            documents[version] = {
                "name": package,
                "version": version,
                "main": "index.js",
                "dist": {
                    "tarball": f"{base}/{package}-{version}.tgz",
                    "shasum": hashlib.sha1(data).hexdigest(),  # noqa: S324 - npm's format
                    "integrity": f"sha512-{integrity}",
                },
            }
        return {
            "_id": package,
            "name": package,
            "dist-tags": {"latest": max(versions)},
            "versions": documents,
        }

    async def _upload(self, request: web.Request, feed: EmulatedFeed) -> web.Response:
        form = await request.post()
        content = form.get("content")
        if form.get(":action") != "file_upload" or not isinstance(content, web.FileField):
            return _error(400, "InvalidPackageException", "The package upload is not valid.")
        data = content.file.read()
        digest = form.get("sha256_digest")
        if isinstance(digest, str) and digest and digest != hashlib.sha256(data).hexdigest():
            return _error(400, "InvalidPackageException", "The sha256 digest does not match.")
        name, version = str(form.get("name", "")), str(form.get("version", ""))
        if not name or not version:
            return _error(400, "InvalidPackageException", "The name or version is missing.")
        existing = feed.python.get(_normalize(name), {}).get(version)
        if existing is not None:
            return _error(
                409,
                "PackageExistsException",
                f"The feed already contains file '{content.filename}' in package "
                f"'{name} {version}'.",
            )
        feed.add_wheel(content.filename, data, name, version)
        feed.uploads.append({"name": name, "version": version, "filename": content.filename})
        return web.Response(status=200, text="OK")


def _page(title: str, links: str) -> web.Response:
    text = (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n<body>\n"
        f"<h1>{title}</h1>\n{links}</body></html>\n"
    )
    return web.Response(text=text, content_type="text/html")


def _error(status: int, type_key: str, message: str) -> web.Response:
    """Azure DevOps' JSON error body (``$id``, ``message``, ``typeName``, ``typeKey`` ...)."""
    body = {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeName": f"Microsoft.VisualStudio.Services.Feed.WebApi.{type_key}, "
        "Microsoft.VisualStudio.Services.Feed.WebApi",
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": 3000,
    }
    return web.json_response(body, status=status)

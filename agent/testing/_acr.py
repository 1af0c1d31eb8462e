"""An emulated Azure Container Registry: the token exchange and enough registry API to pull.

Served by the :class:`~agent.testing.emulator.Emulator` on its own address; the registry's name
(its ``service``) is the host the client used (``127.0.0.1:PORT`` or ``localhost:PORT``, so one
emulator can stand for two registries). Sources: Azure/acr ``docs/AAD-OAuth.md``, the ACR
data-plane REST specification (2021-07-01) and the Docker registry token specification.

- ``POST /oauth2/exchange`` (form ``grant_type=access_token``, ``service``, ``tenant``,
  ``access_token``): checks the Entra token (signature, expiry, audience, tenant) and answers
  ``{"refresh_token": JWT}``. ACR's audience is always accepted; ARM's only while
  ``authentication_as_arm`` is on (ACR's default).
- ``POST /oauth2/token`` (``grant_type=refresh_token``, ``service``, ``scope``,
  ``refresh_token``) and ``GET /oauth2/token?service=&scope=`` with Basic
  ``00000000-0000-0000-0000-000000000000:<refresh token>``: answer ``{"access_token": JWT}``
  for the requested repository scopes (pull only).
- ``GET /v2/``, ``GET /v2/<name>/tags/list``, ``GET|HEAD /v2/<name>/manifests/<ref>``,
  ``GET|HEAD /v2/<name>/blobs/<digest>``:
  without a valid registry access token, ``401`` with
  ``WWW-Authenticate: Bearer realm="https://<host>/oauth2/token",service="<host>"[,scope=…]``.

Errors use the registry's body, ``{"errors": [{"code", "message", "detail"}]}``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from agent.registries.acr import ACR_USERNAME, registry_error_body
from agent.testing._jwt_signing import SigningKey

__all__ = ["ACR_AUDIENCE", "ARM_AUDIENCES", "Image", "Registry", "build_image"]

ACR_AUDIENCE = "https://containerregistry.azure.net"
ARM_AUDIENCES = frozenset(
    {
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://management.core.windows.net",
        "https://management.core.windows.net/",
    }
)
ISSUER = "Azure Container Registry"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_AUTH_HELP = "authentication required, visit https://aka.ms/acr/authorization for more information."
_API_HEADERS = {"Docker-Distribution-Api-Version": "registry/2.0"}


class _Refusal(Exception):  # noqa: N818 - an answer, not an error of ours
    """The registry's error answer; ``args`` is (HTTP status, error code, message)."""

    args: tuple[int, str, str]


@dataclass(frozen=True)
class Image:
    """One small image: its manifest, config and layer, by digest."""

    repository: str
    tag: str
    manifest: bytes
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        """The manifest's digest."""
        return _digest(self.manifest)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_image(repository: str = "hello", tag: str = "v1", text: str = "hello\n") -> Image:
    """A one-layer linux/amd64 image holding ``/hello.txt`` (byte-for-byte reproducible)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
    layer_tar = raw.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_TYPE, "size": len(layer), "digest": _digest(layer)}],
        },
        indent=3,
    ).encode()
    return Image(repository, tag, manifest, {_digest(config): config, _digest(layer): layer})


@dataclass
class Registry:
    """The registry's state and knobs (read on every request).

    Args:
        now: the emulator's current time (its clock's ``time``).
        verify_entra_token: checks an Entra access token's signature and time window and
            returns its claims (raises ValueError).
        refresh_token_lifetime: seconds an ACR refresh token is valid (ACR: 3 hours).
        access_token_lifetime: seconds an ACR access token is valid (never past its refresh
            token's expiry).
        authentication_as_arm: accept ARM-audience Entra tokens (``azureADAuthenticationAsArm``).
        tenant_id: the registry's tenant; ``None`` accepts any tenant the token names.
    """

    now: Callable[[], float]
    verify_entra_token: Callable[[str], dict[str, Any]]
    refresh_token_lifetime: int = 3 * 3600
    access_token_lifetime: int = 4500
    authentication_as_arm: bool = True
    tenant_id: str | None = None
    images: dict[str, Image] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: {"exchange": 0, "token": 0, "registry": 0}
    )
    #: Refresh tokens issued before this time (epoch) are refused (a revocation).
    revoked_before: float = 0.0
    #: Statuses the next exchanges answer with, in order, before any check.
    exchange_failures: list[int] = field(default_factory=list)
    #: The ``sub`` of every refresh token issued, in order (for tests).
    issued_refresh_tokens: list[dict[str, Any]] = field(default_factory=list)
    key: SigningKey = field(default_factory=SigningKey)

    def __post_init__(self) -> None:
        if not self.images:
            image = build_image()
            self.images[image.repository] = image

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Serve the registry's paths on ``router``."""
        router.add_post("/oauth2/exchange", self._exchange)
        router.add_route("*", "/oauth2/token", self._token)
        router.add_get("/v2/", self._base)
        router.add_get("/v2/{name:.+}/tags/list", self._tags)
        router.add_get("/v2/{name:.+}/manifests/{reference}", self._manifest)
        router.add_get("/v2/{name:.+}/blobs/{digest}", self._blob)

    # ------------------------------------------------------------------------------ exchange

    async def _exchange(self, request: web.Request) -> web.Response:
        self.counts["exchange"] += 1
        if self.exchange_failures:
            status = self.exchange_failures.pop(0)
            code = "TOOMANYREQUESTS" if status == 429 else "UNAVAILABLE"
            return _error(status, code, "the service is temporarily unavailable, retry later")
        form = await _form(request)
        service = request.host.lower()
        try:
            claims = self._check_exchange(form, service)
        except _Refusal as refusal:
            return _error(*refusal.args)
        now = int(self.now())
        refresh_claims = {
            "jti": str(uuid.uuid4()),
            "sub": claims.get("oid") or claims.get("sub"),
            "nbf": now,
            "exp": now + self.refresh_token_lifetime,
            "iat": now,
            "iss": ISSUER,
            "aud": service,
            "version": "1.0",
            "grant_type": "refresh_token",
            "tenant": form["tenant"],
            "permissions": {"actions": ["*"], "notActions": []},
            "roles": [],
        }
        self.issued_refresh_tokens.append(refresh_claims)
        return _json(200, {"refresh_token": self.key.sign(refresh_claims)})

    def _check_exchange(self, form: dict[str, str], service: str) -> dict[str, Any]:
        """The Entra token's claims, once the exchange request passed every check."""
        grant_type = form.get("grant_type", "")
        if grant_type in {"access_token_refresh_token", "refresh_token"}:
            raise _Refusal(400, "UNSUPPORTED", f"grant_type {grant_type} is deprecated")
        if grant_type != "access_token":
            raise _Refusal(400, "UNSUPPORTED", "grant_type must be access_token")
        if form.get("service", "").lower() != service:
            raise _Refusal(400, "BADREQUEST", f"service must be {service}")
        tenant = form.get("tenant", "")
        token = form.get("access_token", "")
        if not tenant or not token:
            raise _Refusal(400, "BADREQUEST", "tenant and access_token are required")
        try:
            claims = self.verify_entra_token(token)
        except ValueError as exc:
            raise _Refusal(401, "UNAUTHORIZED", f"invalid AAD access token: {exc}") from None
        audience = str(claims.get("aud", "")).rstrip("/")
        if audience != ACR_AUDIENCE and not (
            self.authentication_as_arm and audience in ARM_AUDIENCES
        ):
            off = "" if self.authentication_as_arm else " (authentication-as-arm is disabled)"
            raise _Refusal(
                401,
                "UNAUTHORIZED",
                f"invalid AAD access token: audience {audience} is not accepted{off}",
            )
        if claims.get("tid") != tenant or (self.tenant_id and tenant != self.tenant_id):
            raise _Refusal(401, "UNAUTHORIZED", "invalid AAD access token: tenant mismatch")
        return claims

    # ------------------------------------------------------------------------------ token

    async def _token(self, request: web.Request) -> web.Response:
        self.counts["token"] += 1
        service = request.host.lower()
        if request.method == "POST":
            form = await _form(request, multi=True)
            grant_type = form.get("grant_type", [""])[0]
            refresh = form.get("refresh_token", [""])[0]
            scopes = form.get("scope", [])
            asked_service = form.get("service", [""])[0]
            if grant_type != "refresh_token":
                return _error(400, "UNSUPPORTED", "grant_type must be refresh_token")
        elif request.method == "GET":
            scopes = request.query.getall("scope", [])
            asked_service = request.query.get("service", "")
            username, refresh = _basic(request.headers.get("Authorization", ""))
            if username != ACR_USERNAME:
                return _error(401, "UNAUTHORIZED", _AUTH_HELP)
        else:
            return _error(405, "UNSUPPORTED", "the method is not allowed")
        if asked_service.lower() != service:
            return _error(400, "BADREQUEST", f"service must be {service}")
        claims = self._check_refresh_token(refresh, service)
        if claims is None:
            return _error(401, "UNAUTHORIZED", _AUTH_HELP)
        now = int(self.now())
        access = [entry for scope in scopes if (entry := _pull_access(scope)) is not None]
        access_claims = {
            "jti": str(uuid.uuid4()),
            "sub": claims["sub"],
            "nbf": now,
            "exp": min(now + self.access_token_lifetime, int(claims["exp"])),
            "iat": now,
            "iss": ISSUER,
            "aud": service,
            "version": "1.0",
            "access": access,
            "roles": [],
            "grant_type": "refresh_token",
        }
        return _json(200, {"access_token": self.key.sign(access_claims)})

    def _check_refresh_token(self, token: str, service: str) -> dict[str, Any] | None:
        try:
            claims = self.key.verify(token)
        except ValueError:
            return None
        now = self.now()
        valid = (
            claims.get("iss") == ISSUER
            and claims.get("grant_type") == "refresh_token"
            and claims.get("aud") == service
            and float(claims.get("nbf", 0)) <= now < float(claims.get("exp", 0))
            and float(claims.get("iat", 0)) >= self.revoked_before
        )
        return claims if valid else None

    # ------------------------------------------------------------------------------ registry API

    def _challenge(self, request: web.Request, scope: str | None) -> web.Response:
        service = request.host.lower()
        challenge = f'Bearer realm="https://{service}/oauth2/token",service="{service}"'
        detail = None
        if scope is not None:
            challenge += f',scope="{scope}"'
            kind, name, action = scope.split(":", 2)
            detail = [{"Type": kind, "Name": name, "Action": action}]
        response = _error(401, "UNAUTHORIZED", _AUTH_HELP, detail)
        response.headers["WWW-Authenticate"] = challenge
        return response

    def _authorized(self, request: web.Request, repository: str | None) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            claims = self.key.verify(token.strip())
        except ValueError:
            return False
        now = self.now()
        if claims.get("aud") != request.host.lower() or not (
            float(claims.get("nbf", 0)) <= now < float(claims.get("exp", 0))
        ):
            return False
        if "access" not in claims:
            return False
        if repository is None:
            return True
        return any(
            entry.get("type") == "repository"
            and entry.get("name") == repository
            and "pull" in entry.get("actions", [])
            for entry in claims["access"]
        )

    async def _base(self, request: web.Request) -> web.Response:
        self.counts["registry"] += 1
        if not self._authorized(request, None):
            return self._challenge(request, None)
        return _json(200, {})

    def _pull(self, request: web.Request) -> Image | web.Response | None:
        """Count and authorize a pull of ``<name>``: its image (None if unknown) or a challenge."""
        self.counts["registry"] += 1
        name = request.match_info["name"]
        if not self._authorized(request, name):
            return self._challenge(request, f"repository:{name}:pull")
        return self.images.get(name)

    def _known_image(self, request: web.Request) -> Image | web.Response:
        """Like :meth:`_pull`, with the registry's ``NAME_UNKNOWN`` answer for an unknown name."""
        image = self._pull(request)
        if image is None:
            name = request.match_info["name"]
            return _error(
                404, "NAME_UNKNOWN", "repository name not known to registry", {"Name": name}
            )
        return image

    async def _manifest(self, request: web.Request) -> web.Response:
        image = self._known_image(request)
        if isinstance(image, web.Response):
            return image
        reference = request.match_info["reference"]
        if reference not in {image.tag, image.digest}:
            return _error(
                404,
                "MANIFEST_UNKNOWN",
                f'manifest tagged by "{reference}" is not found',
                {"Tag": reference},
            )
        headers = {**_API_HEADERS, "Docker-Content-Digest": image.digest}
        return web.Response(
            status=200, body=image.manifest, content_type=MANIFEST_TYPE, headers=headers
        )

    async def _tags(self, request: web.Request) -> web.Response:
        """``GET /v2/<name>/tags/list``: ``{"name", "tags"}`` (``skopeo inspect`` lists them)."""
        image = self._known_image(request)
        if isinstance(image, web.Response):
            return image
        return _json(200, {"name": request.match_info["name"], "tags": [image.tag]})

    async def _blob(self, request: web.Request) -> web.Response:
        image = self._pull(request)
        if isinstance(image, web.Response):
            return image
        digest = request.match_info["digest"]
        blob = image.blobs.get(digest) if image is not None else None
        if blob is None:
            return _error(404, "BLOB_UNKNOWN", "blob unknown to registry", digest)
        headers = {**_API_HEADERS, "Docker-Content-Digest": digest}
        return web.Response(
            status=200, body=blob, content_type="application/octet-stream", headers=headers
        )


def _pull_access(scope: str) -> dict[str, Any] | None:
    parts = scope.split(":")
    if len(parts) != 3 or parts[0] != "repository":
        return None
    actions = [action for action in parts[2].split(",") if action == "pull"]
    return {"type": "repository", "name": parts[1], "actions": actions}


def _basic(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:
        return "", ""
    username, _, password = decoded.partition(":")
    return username, password


async def _form(request: web.Request, *, multi: bool = False) -> dict[str, Any]:
    body = (await request.read()).decode("utf-8", "replace")
    pairs = urllib.parse.parse_qsl(body, keep_blank_values=True)
    if multi:
        grouped: dict[str, list[str]] = {}
        for key, value in pairs:
            grouped.setdefault(key, []).append(value)
        return grouped
    single: dict[str, str] = {}
    for key, value in pairs:
        single.setdefault(key, value)
    return single


def _json(status: int, payload: object) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
        headers={**_API_HEADERS, "X-Ms-Correlation-Request-Id": str(uuid.uuid4())},
    )


def _error(status: int, code: str, message: str, detail: object = None) -> web.Response:
    return _json(status, registry_error_body(code, message, detail))

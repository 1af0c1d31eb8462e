"""Render token files: the access token (raw or JSON) and the federated token file (the OIDC JWT).

Pure functions returning the exact bytes to write; :func:`agent.outputs._atomic.atomic_write`
puts them on disk.

* ``raw``: the access token alone, **without** a trailing newline. ``$(cat file)`` strips a
  newline anyway, but programs that read the file verbatim (an ``Authorization`` header built
  from the bytes, SDK token-file options) would send the newline along. Kubernetes' projected
  service-account token files have no newline either.
* ``json``: one JSON object and a newline, keys in this order: ``token``, ``expires_on`` (epoch
  seconds, integer), ``expires_at`` (RFC 3339 UTC, ``Z``), ``token_type``, ``tenant``, ``scope``.
* federated token file: the Azure DevOps OIDC token (a compact JWT) without a newline, the format
  of ``AZURE_FEDERATED_TOKEN_FILE`` / ``ARM_OIDC_TOKEN_FILE_PATH``.
"""

from __future__ import annotations

import json
from typing import Literal, get_args

from agent.outputs.fields import TokenFields

__all__ = [
    "TOKEN_FILE_FORMATS",
    "TokenFileFormat",
    "render_federated_token_file",
    "render_token_file",
]

TokenFileFormat = Literal["raw", "json"]
"""A token file's format; the config models validate ``format`` (and the schema) against it."""
TOKEN_FILE_FORMATS: tuple[str, ...] = get_args(TokenFileFormat)


def render_token_file(fields: TokenFields, fmt: str) -> bytes:
    """Return the content of a token file in format ``fmt``, ``raw`` or ``json`` (see above).

    Raises:
        ValueError: ``fmt`` is unknown, there is no access token, or the token contains
            whitespace (a sign of a corrupted value; the message never contains the token).
    """
    token = fields.access_token
    if not token:
        raise ValueError("no access token to write")
    if _has_whitespace(token):
        raise ValueError("the access token contains whitespace; refusing to write it")
    if fmt == "raw":
        return token.encode("utf-8")
    if fmt == "json":
        document = {
            "token": token,
            "expires_on": fields.expires_on,
            "expires_at": fields.expires_at,
            "token_type": fields.token_type,
            "tenant": fields.tenant_id,
            "scope": fields.scope,
        }
        return (json.dumps(document) + "\n").encode("utf-8")
    expected = ", ".join(TOKEN_FILE_FORMATS)
    raise ValueError(f"unknown token file format {fmt!r} (expected one of {expected})")


def render_federated_token_file(oidc_token: str) -> bytes:
    """Return the content of a federated token file: the OIDC JWT, no newline.

    Raises:
        ValueError: the token is empty or contains whitespace.
    """
    if not oidc_token:
        raise ValueError("no OIDC token to write")
    if _has_whitespace(oidc_token):
        raise ValueError("the OIDC token contains whitespace; refusing to write it")
    return oidc_token.encode("utf-8")


def _has_whitespace(text: str) -> bool:
    # str.split() scans in C: a token is one word exactly when it has no whitespace.
    return "\0" in text or text.split() != [text]

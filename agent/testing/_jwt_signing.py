"""RS256 JSON Web Tokens for the emulator: one signing key, its JWKS entry, sign and verify.

Azure DevOps and Microsoft Entra sign their tokens with RSA keys published as JWKS; the emulator
does the same with keys it generates, so clients and loopback resource servers can verify what it
issues exactly as they would verify the real thing. Only the emulator needs ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "BadSignatureError",
    "MalformedTokenError",
    "SigningKey",
    "b64url_decode",
    "b64url_encode",
    "decode_unverified",
]


class MalformedTokenError(ValueError):
    """The string is not a compact JWS with a JSON header and payload."""


class BadSignatureError(ValueError):
    """The token is well formed, but this key did not sign it (or it is not RS256)."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url_encode`; raises ``ValueError`` on bad input."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment))
    except ValueError:
        raise MalformedTokenError("a JWT segment is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise MalformedTokenError("a JWT segment is not a JSON object")
    return value


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(header, claims)`` of a compact JWS without checking its signature.

    Raises:
        MalformedTokenError: ``token`` is not three base64url segments of JSON objects.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise MalformedTokenError("a JWT has three non-empty dot-separated segments")
    return _json_segment(parts[0]), _json_segment(parts[1])


class SigningKey:
    """An RSA-2048 key that signs and verifies RS256 tokens.

    ``kid`` is the upper-case hex SHA-1 thumbprint of the public key and ``x5t`` the same digest
    in base64url, the shapes Azure DevOps puts in its token headers.
    """

    def __init__(self, private_key: rsa.RSAPrivateKey | None = None) -> None:
        self._private = private_key or rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        self._public = self._private.public_key()
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashlib.sha1(der, usedforsecurity=False).digest()
        self.kid = digest.hex().upper()
        self.x5t = b64url_encode(digest)

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Return the compact RS256 JWS of ``claims``; the header has typ, alg, x5t and kid."""
        header = {"typ": "JWT", "alg": "RS256", "x5t": self.x5t, "kid": self.kid}
        signing_input = ".".join(
            b64url_encode(json.dumps(part, separators=(",", ":")).encode())
            for part in (header, dict(claims))
        )
        signature = self._private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url_encode(signature)}"

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of ``token`` after checking that this key signed it with RS256.

        Only the signature is checked; time and audience are the caller's business.

        Raises:
            MalformedTokenError: ``token`` is not a compact JWS.
            BadSignatureError: wrong algorithm, another key's ``kid``, or a bad signature.
        """
        header, claims = decode_unverified(token)
        if header.get("alg") != "RS256":
            raise BadSignatureError(f"unsupported algorithm {header.get('alg')!r}")
        if header.get("kid", self.kid) != self.kid:
            raise BadSignatureError("The key was not found.")
        signing_input, _, signature = token.rpartition(".")
        try:
            self._public.verify(
                b64url_decode(signature),
                signing_input.encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            raise BadSignatureError(
                "Key was found, but use of the key to verify the signature failed."
            ) from None
        return claims

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 7517) with ``kid``, ``x5t``, ``use`` and ``alg``."""
        numbers = self._public.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": b64url_encode(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url_encode(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }

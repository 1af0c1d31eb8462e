"""Read the claims of a JWT without verifying it (for expiry and diagnostics only).

azauth never trusts these claims for security decisions: Azure DevOps and Entra verify tokens.
We only need ``exp`` (to know how long an OIDC token can be reused) and ``sub``/``iss``/``aud``
(to tell a user which federated credential a token would match). Kept free of third-party
imports because the ``azauth token`` fast path uses it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["unverified_claims"]


def unverified_claims(token: str) -> dict[str, Any]:
    """Return the payload of a compact JWS, or ``{}`` when ``token`` is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: nested too deeply
        return {}
    return claims if isinstance(claims, dict) else {}

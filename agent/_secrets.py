"""The registry of secret values this process has handled, for redaction.

The credential registers every system access token, OIDC token and access token it sees; the log
pipeline and error formatting mask any registered value wherever it appears in text. Stdlib only,
because the ``azauth token`` fast path may use it.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

__all__ = ["MASK", "redact_text", "register_secret"]

MASK = "***"
# Only values this long are registered: shorter strings could mask innocent text.
_MIN_LENGTH = 8
# Bounded so a watch process running for weeks does not grow without limit.
_MAX_SECRETS = 4096
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")

_lock = threading.Lock()
_secrets: OrderedDict[str, None] = OrderedDict()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that :func:`redact_text` masks it from now on."""
    if not value or len(value) < _MIN_LENGTH:
        return
    with _lock:
        _secrets[value] = None
        _secrets.move_to_end(value)
        while len(_secrets) > _MAX_SECRETS:
            _secrets.popitem(last=False)


def redact_text(text: str) -> str:
    """Return ``text`` with registered secrets and anything shaped like a JWT replaced by MASK."""
    with _lock:
        known = list(_secrets)
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return _JWT.sub(MASK, text)

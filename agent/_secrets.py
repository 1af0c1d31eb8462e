"""The one registry of secret values this process has handled, and redaction of text.

The credential registers every system access token, OIDC token and access token it sees; log
rendering (:mod:`agent.logs`) and error formatting (:mod:`agent.protocol`) mask any registered
value wherever it appears, and anything shaped like a JWT. Stdlib only, because the
``azauth token`` fast path may use it.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

__all__ = ["MASK", "MIN_SECRET_LENGTH", "forget_secrets", "redact_text", "register_secret"]

MASK = "***"
MIN_SECRET_LENGTH = 8
"""Shorter values are not registered: they would mask ordinary words, and no credential azauth
handles (job tokens, JWTs) is that short."""
# Bounded so a watch process running for weeks does not grow without limit.
_MAX_SECRETS = 4096
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*")

_lock = threading.Lock()
_order: OrderedDict[str, None] = OrderedDict()  # every registered value, oldest first
# Values indexed by their first MIN_SECRET_LENGTH characters, each entry longest first. A scan
# costs one dict lookup per character of the text however many secrets a long run registered
# (one regex alternation of all of them grows too slow to compile and match).
_by_prefix: dict[str, tuple[str, ...]] = {}


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears from now on (also inside longer text)."""
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _order:
            _order.move_to_end(value)
            return
        _order[value] = None
        _index(value)
        while len(_order) > _MAX_SECRETS:
            oldest, _ = _order.popitem(last=False)
            _unindex(oldest)


def forget_secrets() -> None:
    """Empty the registry (for tests)."""
    with _lock:
        _order.clear()
        _by_prefix.clear()


def _index(value: str) -> None:
    key = value[:MIN_SECRET_LENGTH]
    # Longest first, so a secret that starts like a shorter one is masked whole.
    _by_prefix[key] = tuple(sorted((*_by_prefix.get(key, ()), value), key=len, reverse=True))


def _unindex(value: str) -> None:
    key = value[:MIN_SECRET_LENGTH]
    remaining = tuple(v for v in _by_prefix.get(key, ()) if v != value)
    if remaining:
        _by_prefix[key] = remaining
    else:
        _by_prefix.pop(key, None)


def _mask_registered(text: str) -> str:
    if not _by_prefix or len(text) < MIN_SECRET_LENGTH:
        return text
    parts: list[str] = []
    start = index = 0
    last = len(text) - MIN_SECRET_LENGTH
    while index <= last:
        candidates = _by_prefix.get(text[index : index + MIN_SECRET_LENGTH])
        match = (
            next((c for c in candidates if text.startswith(c, index)), None) if candidates else None
        )
        if match is None:
            index += 1
            continue
        parts.append(text[start:index])
        parts.append(MASK)
        index += len(match)
        start = index
    if not parts:
        return text
    parts.append(text[start:])
    return "".join(parts)


def redact_text(text: str) -> str:
    """Return ``text`` with registered secrets and JWT-shaped substrings replaced by MASK."""
    return _JWT.sub(MASK, _mask_registered(text))

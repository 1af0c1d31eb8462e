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

__all__ = [
    "MASK",
    "MAX_SERVER_TEXT",
    "MIN_SECRET_LENGTH",
    "forget_secrets",
    "redact_text",
    "register_secret",
    "server_text",
    "single_line",
    "strip_userinfo",
]

MASK = "***"
MIN_SECRET_LENGTH = 8
"""Shorter values are not registered: they would mask ordinary words, and no credential azauth
handles (job tokens, JWTs) is that short."""
# Bounded so a watch process running for weeks does not grow without limit.
_MAX_SECRETS = 4096
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*")

# ``scheme://user:password@host``: the user-info of any URL inside a text (RFC 3986 3.2.1).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]*@")
# C0 and C1 controls, DEL, line and paragraph separators, bidirectional overrides and isolates:
# anything that could start a new log line (``##vso[`` commands) or disguise what is shown.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
MAX_SERVER_TEXT = 400
"""Characters of a server's own text (an error description, an id) azauth shows at most."""

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


def strip_userinfo(url: str) -> str:
    """Return ``url`` (or any text holding URLs) without the ``user:password@`` of each URL.

    ``http://user:pw@proxy:3128`` becomes ``http://proxy:3128``. Used on every URL before it
    reaches a message, a log line, a summary or an HTTP answer (proxies, SYSTEM_OIDCREQUESTURI,
    authorities alike).
    """
    if "@" not in url or "://" not in url:
        return url
    return _USERINFO.sub(r"\1", url)


def redact_text(text: str) -> str:
    """Return ``text`` with registered secrets, JWT-shaped substrings and URL user-info removed.

    Every line azauth writes to stderr and every answer of ``azauth serve`` goes through this.
    """
    return strip_userinfo(_JWT.sub(MASK, _mask_registered(text)))


def single_line(text: str) -> str:
    """``text`` with each run of control characters (newlines included) replaced by a space."""
    return _CONTROL.sub(" ", text)


def server_text(value: object, *, limit: int = MAX_SERVER_TEXT) -> str:
    """Text a server chose (an error description, an id, a key), made safe to show.

    Redacted as :func:`redact_text`, each run of control characters (newlines included)
    replaced by one space, surrounding blanks removed, and cut to ``limit`` characters
    (an ellipsis marks the cut). The one function for every server-controlled string azauth
    prints, logs or forwards.
    """
    text = value if isinstance(value, str) else str(value)
    text = single_line(redact_text(text)).strip()
    if len(text) > limit:
        text = text[:limit].rstrip() + "…"
    return text

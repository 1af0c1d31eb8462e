"""The one registry of secret values this process has handled, and redaction of text.

The credential registers every system access token, OIDC token and access token it sees; log
rendering (:mod:`agent.logs`) and error formatting (:mod:`agent.exchange`) mask any registered
value wherever it appears, and anything shaped like a JWT. Stdlib only, because the
``azauth token`` fast path may use it.
"""

from __future__ import annotations

import bisect
import operator
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


class _Bucket:
    """The registered values sharing one ``MIN_SECRET_LENGTH``-character prefix.

    ``values`` answers "is this exact slice a secret" in O(1); ``lengths`` lists the distinct
    lengths present, longest first, with ``counts`` telling when one disappears. Registering or
    forgetting a value is O(1) unless it brings a new length (a bisect into the few distinct
    lengths). JWTs of one issuer share their first characters (``eyJ0eXAi``), so one bucket can
    hold thousands of values: nothing here walks or re-sorts them.
    """

    __slots__ = ("counts", "lengths", "values")

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.counts: dict[int, int] = {}
        self.lengths: list[int] = []  # distinct lengths, longest first

    def add(self, value: str) -> None:
        self.values.add(value)
        size = len(value)
        count = self.counts.get(size, 0)
        self.counts[size] = count + 1
        if not count:
            # ``lengths`` is descending; bisect on the negated values.
            position = bisect.bisect_left(self.lengths, -size, key=operator.neg)
            self.lengths.insert(position, size)

    def discard(self, value: str) -> None:
        if value not in self.values:
            return
        self.values.remove(value)
        size = len(value)
        count = self.counts[size] - 1
        if count:
            self.counts[size] = count
        else:
            del self.counts[size]
            self.lengths.remove(size)

    def longest_at(self, text: str, index: int) -> int:
        """Length of the longest value found at ``text[index:]``, or 0."""
        room = len(text) - index
        values = self.values
        for size in self.lengths:
            if size <= room and text[index : index + size] in values:
                return size
        return 0


# Values indexed by their first MIN_SECRET_LENGTH characters. A scan costs one dict lookup per
# character of the text however many secrets a long run registered (one regex alternation of
# all of them grows too slow to compile and match), plus one set lookup per distinct length
# where a prefix matches.
_by_prefix: dict[str, _Bucket] = {}


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears from now on (also inside longer text).

    O(1) per call (amortised; a value of a length not seen before in its bucket costs a bisect
    into the distinct lengths). At most 4096 values are kept: the oldest registered is
    forgotten first, and registering a known value again makes it the newest.
    """
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
    bucket = _by_prefix.get(key)
    if bucket is None:
        bucket = _by_prefix[key] = _Bucket()
    bucket.add(value)


def _unindex(value: str) -> None:
    key = value[:MIN_SECRET_LENGTH]
    bucket = _by_prefix.get(key)
    if bucket is None:
        return
    bucket.discard(value)
    if not bucket.values:
        del _by_prefix[key]


def _mask_registered(text: str) -> str:
    if not _by_prefix or len(text) < MIN_SECRET_LENGTH:
        return text
    parts: list[str] = []
    start = index = 0
    last = len(text) - MIN_SECRET_LENGTH
    while index <= last:
        bucket = _by_prefix.get(text[index : index + MIN_SECRET_LENGTH])
        # Longest first, so a secret that starts like a shorter one is masked whole.
        size = bucket.longest_at(text, index) if bucket is not None else 0
        if not size:
            index += 1
            continue
        parts.append(text[start:index])
        parts.append(MASK)
        index += size
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

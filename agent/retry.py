"""Which answers are worth retrying, and how long to wait: pure policy, no I/O.

The Azure SDK retries 408, 429, 500, 502, 503, 504 and every status of 506 and above, plus any
status of 400 and above that carries ``Retry-After``; we retry the same set (Azure DevOps and Entra
are known to fail transiently) but add jitter, a cap, and a total deadline so a job never hangs.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "exponential_backoff",
    "is_retryable_status",
    "parse_http_date",
    "parse_retry_after",
]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Retried statuses below 506 (every status from 506 up is retried too)."""


def is_retryable_status(status: int) -> bool:
    """Whether an answer with ``status`` is transient: 408, 429, 500, 502-504 or 506 and above.

    The one rule for every exchange (OIDC, Entra, ACR); a ``Retry-After`` on another 4xx is
    :meth:`RetryPolicy.is_retryable_status`'s addition for the HTTP retry loop.
    """
    return status in RETRYABLE_STATUSES or status >= 506


def exponential_backoff(
    attempt: int, *, initial: float, cap: float, rng: random.Random, jitter: float = 0.5
) -> float:
    """Delay after the ``attempt``-th consecutive failure (1 for the first), in seconds.

    ``initial x 2^(attempt-1)``, capped at ``cap``, then scaled by a random factor in
    ``[1 - jitter, 1.0]`` so that many jobs failing together do not retry in lockstep. The one
    backoff formula of azauth: the HTTP retry loop and the refresh engine both use it.
    """
    exponent = min(max(0, attempt - 1), 30)
    base = min(cap, initial * 2.0**exponent)
    return base * (1.0 - jitter + jitter * rng.random())


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Return the delay in seconds a ``Retry-After`` value asks for, or ``None`` if unusable.

    Accepts delta-seconds (``"3"``, ``"1.5"``) and HTTP dates; negative delays become 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    when = parse_http_date(value)
    return None if when is None else max(0.0, when - now)


def parse_http_date(value: str | None) -> float | None:
    """Return an HTTP date (``Date``, ``Retry-After``) as epoch seconds, ``None`` if unusable."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp()


@dataclass(frozen=True)
class RetryPolicy:
    """Retry rules for one HTTP exchange (one OIDC request or one Entra request).

    Attributes:
        max_attempts: attempts in total, the first included (the Azure SDK makes 4).
        backoff_initial: delay before the second attempt, in seconds.
        backoff_max: cap of one delay.
        retry_after_max: cap of a server's ``Retry-After`` request; longer asks are not honoured
            and end the retries (a job should not sleep ten minutes on one token).
        deadline: total seconds one exchange may take, all attempts and delays included.
        rng: source of jitter (injected so tests are deterministic).
    """

    max_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 60.0
    deadline: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def is_retryable_status(self, status: int, headers: Mapping[str, str]) -> bool:
        """Tell whether an HTTP answer with ``status`` should be tried again."""
        if is_retryable_status(status):
            return True
        return status >= 400 and _header(headers, "retry-after") is not None

    def backoff(self, retry_number: int) -> float:
        """Delay before retry number ``retry_number`` (1 for the first retry), with jitter.

        Exponential (initial x 2^(n-1)), capped, then scaled by a random factor in [0.5, 1.0] so
        that many jobs failing together do not retry in lockstep.
        """
        return exponential_backoff(
            retry_number, initial=self.backoff_initial, cap=self.backoff_max, rng=self.rng
        )

    def delay(
        self, retry_number: int, headers: Mapping[str, str] | None, *, now: float
    ) -> float | None:
        """Delay before the next attempt, or ``None`` when the server asks for too long a wait."""
        retry_after = parse_retry_after(_header(headers or {}, "retry-after"), now=now)
        if retry_after is None:
            return self.backoff(retry_number)
        if retry_after > self.retry_after_max:
            return None
        return retry_after


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None

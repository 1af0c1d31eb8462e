"""The refresh engine: when to renew each token, how to retry, and the loop that does it.

One rule, used by ``azauth run --watch``, ``azauth exec`` and the credential's proactive refresh:

- **Independent schedules.** Every token (one per connection and scope, one OIDC token per
  connection) is an :class:`Item` with its own state and its own task; one failing item never
  delays, blocks or un-writes another. A token is delivered as soon as it arrives.
- **Lifetimes from the token, times from the local clock.** A token's life is its *issued*
  lifetime (Entra: ``expires_in``; OIDC: ``exp - iat``, see :func:`oidc_lifetime`) counted from
  the local monotonic time it was received, so a skewed wall clock changes nothing.
- **Renewal** at :meth:`RefreshPolicy.renew_delay`: ``refresh_margin`` before expiry but not
  before half the life (so short-lived tokens renew at half-life), or at the issuer's
  ``refresh_in`` when that is sooner.
- **Retries that know the deadline** (:meth:`RefreshPolicy.retry_delay`): transient failures
  back off exponentially (1 s, 2 s, 4 s ... 60 s, jitter x0.5-1.0) but never sleep past half the
  time the held token has left; once the held token has expired (or there is none), every
  ``expired_retry`` (2-3 s, jittered) until the cloud answers. Permanent failures
  (:func:`is_permanent`) back off 30 s, 60 s ... 300 s (also never past half the held token's
  remaining life) and count for ``fail_fast``.
- **A floor on every loop.** Two attempts of one item never start less than
  ``min_interval`` (2 s) apart, whatever the answers: at most 30 attempts per token per minute.
  A token with no usable life is an error (:class:`NoUsableLifeError`), never delivered, and a
  token with less life than the one held never replaces it.
- **Never silent.** State changes (delivered, stale, recovered, failing) are logged; an
  unexpected exception in an item is logged with its connection and the item keeps running.

Time: ``clock.monotonic()`` for every schedule; the wall clock only for the fields of files
that hold absolute times (those keep the server's values).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.clock import Clock
from agent.exceptions import (
    AuthenticationError,
    AzauthError,
    ConfigError,
    NoUsableLifeError,
    OidcRequestError,
)
from agent.logs import get_logger
from agent.retry import exponential_backoff

__all__ = [
    "MAX_ATTEMPTS_PER_MINUTE",
    "Acquired",
    "Item",
    "ItemState",
    "NoUsableLifeError",
    "RefreshEngine",
    "RefreshPolicy",
    "acquired_access",
    "acquired_oidc",
    "describe_offset",
    "is_permanent",
    "oidc_lifetime",
]


_log = get_logger(__name__)

# AADSTS codes that no retry heals: the configuration must change.
PERMANENT_AADSTS = frozenset(
    {
        700016,  # application not found in the tenant
        7002138,  # federated credential matching is case-sensitive
        700211,  # no matching federated identity record for the issuer
        700212,  # no matching federated identity record for the audience
        700213,  # no matching federated identity record for the subject
        90002,  # tenant not found
        900023,  # tenant id malformed
        1002012,  # invalid scope form
        70011,  # invalid scope
        7000215,  # invalid client secret (wrong credential type)
    }
)
# AADSTS codes that a later attempt can heal although the OAuth error name sounds final.
TRANSIENT_AADSTS = frozenset({700024})  # assertion outside its time window: a fresh one heals
PERMANENT_OAUTH_ERRORS = frozenset({"invalid_scope", "unauthorized_client", "invalid_client"})
MAX_ISSUED_LIFETIME = 7 * 24 * 3600  # a longer "lifetime" is a malformed answer
MAX_ATTEMPTS_PER_MINUTE = 30
"""The documented request-rate bound: attempts per token per sliding minute (60 / min_interval).
In watch mode one attempt is one Entra request for an access token (plus one Azure DevOps
request when the cached OIDC token has less than a minute left) or one Azure DevOps request for
an OIDC token."""


def is_permanent(exc: BaseException) -> bool:
    """Tell whether retrying ``exc`` soon cannot help (a configuration problem).

    Permanent: Entra refusals with a configuration AADSTS code or ``invalid_scope``/
    ``unauthorized_client``/``invalid_client``; Azure DevOps refusals 400/401/403/404 and a
    sign-in page instead of JSON (the system access token is not valid). Everything else
    (network, 408/429/5xx, malformed answers, expired assertions) is transient.
    """
    if isinstance(exc, ConfigError):
        return True  # the profile or the environment must change
    if not isinstance(exc, AuthenticationError) or getattr(exc, "retryable", False):
        return False
    codes = getattr(exc, "error_codes", ()) or ()
    if codes:  # the AADSTS code decides (AADSTS50000 under invalid_client is a service fault)
        return any(code in PERMANENT_AADSTS for code in codes)
    if getattr(exc, "error", None) in PERMANENT_OAUTH_ERRORS:
        return True
    return isinstance(exc, OidcRequestError) and exc.status_code in (
        200,
        203,
        302,
        400,
        401,
        403,
        404,
    )


def oidc_lifetime(
    exp: float | None, iat: float | None, *, server_now: float | None, local_now: float
) -> float | None:
    """Seconds an OIDC token lives from the moment it was received, or ``None`` if unknown.

    ``exp - iat`` when both are sane (both stamped by Azure DevOps' clock, so the agent's clock
    does not matter), shortened to ``exp - server_now`` when the answer's ``Date`` header says
    part of that life is already gone. Without ``iat``: ``exp - server_now``, else
    ``exp - local_now`` (the skew guard: the local clock is all there is).
    """
    if exp is None or not math.isfinite(exp):
        return None
    lifetimes = []
    if iat is not None and math.isfinite(iat) and iat <= exp:
        lifetimes.append(exp - iat)
    if server_now is not None:
        lifetimes.append(exp - server_now)
    if not lifetimes:
        lifetimes.append(exp - local_now)
    return min(lifetimes)


def describe_offset(local: float, remote: float, remote_name: str) -> str | None:
    """A one-line warning when the local clock is more than a minute off ``remote``, else None."""
    offset = local - remote
    if abs(offset) <= 60:
        return None
    from agent.credential_helpers.protocols import rfc3339 as iso  # noqa: PLC0415 - rarely needed
    from agent.report import format_delta  # noqa: PLC0415 - the one duration format

    direction = "ahead of" if offset > 0 else "behind"
    return (
        f"this machine's clock ({iso(local)}) is {format_delta(abs(offset))} {direction} "
        f"{remote_name}'s clock ({iso(remote)}); token lifetimes are measured from their "
        "issue time, so refreshing is not affected, but fix the clock (NTP): other tools judge "
        "expiry by it"
    )


@dataclass(frozen=True)
class RefreshPolicy:
    """When to renew and how to retry. All values are seconds.

    Attributes:
        refresh_margin: renew at least this long before expiry.
        min_interval: two attempts of one token never start closer than this (the floor).
        backoff_initial: first retry delay after a transient failure (doubles each time).
        backoff_max: cap of the transient backoff.
        expired_retry: retry cadence once the held token has expired (or none is held),
            jittered up to 1.5x.
        permanent_initial: first retry delay after a permanent failure (doubles each time).
        permanent_max: cap of the permanent backoff.
        retry_after_max: longest ``Retry-After`` honoured.
    """

    refresh_margin: float = 300.0
    min_interval: float = 2.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    expired_retry: float = 2.0
    permanent_initial: float = 30.0
    permanent_max: float = 300.0
    retry_after_max: float = 60.0

    def renew_delay(self, lifetime: float, refresh_in: float | None = None) -> float:
        """Seconds after receipt at which a token of ``lifetime`` is renewed."""
        # refresh_margin before expiry, but not before half the life (short-lived tokens).
        delay = max(lifetime - self.refresh_margin, lifetime / 2)
        if refresh_in is not None and refresh_in > 0:
            delay = min(delay, refresh_in)
        return max(self.min_interval, delay)

    def retry_delay(
        self,
        failures: int,
        *,
        remaining: float | None,
        permanent: bool,
        rng: random.Random,
        retry_after: float | None = None,
    ) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure.

        ``remaining`` is the life left in the held token (``None``: none held).
        """
        if permanent:
            delay = exponential_backoff(
                failures,
                initial=self.permanent_initial,
                cap=self.permanent_max,
                rng=rng,
                jitter=0.25,
            )
        elif remaining is None or remaining <= 0:
            delay = self.expired_retry * (1.0 + 0.5 * rng.random())
        else:
            delay = exponential_backoff(
                failures, initial=self.backoff_initial, cap=self.backoff_max, rng=rng
            )
        if remaining is not None and remaining > 0:
            # No sleep past expiry (permanent failures too): at most half of what is left.
            delay = min(delay, max(remaining / 2, min(remaining, self.min_interval)))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max))
        return max(self.min_interval, delay)


@dataclass(frozen=True)
class Acquired:
    """A token as the engine sees it: the value, and when it was received and expires.

    ``value`` is what the deliverer writes (an access token info or an OIDC token);
    ``received`` is ``clock.monotonic()`` on arrival; ``lifetime`` its issued life in seconds;
    ``refresh_in`` the issuer's renewal hint (seconds after receipt), if any.
    """

    value: Any = field(repr=False)
    received: float
    lifetime: float
    refresh_in: float | None = None

    @property
    def expires(self) -> float:
        """Monotonic time of expiry."""
        return self.received + self.lifetime


Status = Literal["pending", "fresh", "failing", "stale"]


@dataclass
class ItemState:
    """What the engine knows of one token; read by reports and summaries."""

    held: Acquired | None = None
    status: Status = "pending"
    error: AzauthError | None = None
    permanent: bool = False
    failures: int = 0
    attempts: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    next_at: float = 0.0
    attempted_once: bool = False
    undelivered: bool = False  # the held token's last delivery failed (retried without a request)

    def remaining(self, now: float) -> float | None:
        """Life left in the held token (monotonic seconds), ``None`` if none is held."""
        return None if self.held is None else self.held.expires - now


@dataclass
class Item:
    """One token to keep fresh.

    Attributes:
        connection: the connection's name (logs).
        key: the scope, or ``"oidc"``.
        fetch: asks the cloud for a new token; raises :class:`AzauthError` on failure.
        deliver: writes the outputs that show this token; raises on failure (retried).
        due: given the next renewal (monotonic), returns it or an earlier time, when something
            derived from the token must be renewed sooner (ACR refresh tokens of docker_config).
    """

    connection: str
    key: str
    fetch: Callable[[], Awaitable[Acquired]]
    deliver: Callable[[Acquired], Awaitable[None]]
    state: ItemState = field(default_factory=ItemState)
    due: Callable[[float], float] | None = None

    @property
    def label(self) -> str:
        """``connection/scope`` for logs."""
        return f"{self.connection}/{'OIDC token' if self.key == 'oidc' else self.key}"


def acquired_oidc(token: Any, now: float) -> Acquired:
    """An OIDC token (:class:`agent.credential.OidcToken`) received at monotonic ``now``.

    Raises:
        NoUsableLifeError: its lifetime is unknown (no readable ``exp``).
    """
    if token.lifetime is None:
        raise NoUsableLifeError("the OIDC token has no readable exp claim; it was not used")
    return Acquired(token, token.received or now, float(token.lifetime))


def acquired_access(info: Any, now: float, wall_now: float) -> Acquired:
    """An access token (``AccessTokenInfo``) received at monotonic ``now``.

    Its life is the parsed ``expires_in`` (``lifetime``) when known, else ``expires_on`` read
    against the wall clock ``wall_now`` (another credential's token).
    """
    lifetime = getattr(info, "lifetime", None)
    if lifetime is None:
        lifetime = info.expires_on - wall_now
    return Acquired(info, now, float(lifetime), getattr(info, "refresh_in", None))


def _check_usable(item: Item, acquired: Acquired, now: float) -> None:
    """Refuse a token with no life left, or with less life than the one held (never written)."""
    if acquired.lifetime <= 0 or acquired.expires <= now:
        raise NoUsableLifeError(
            f"{item.label}: the token that arrived has no usable life left "
            f"(issued lifetime {acquired.lifetime:.0f} s); not written, retrying"
        )
    held = item.state.held
    if held is not None and acquired.expires < held.expires:
        raise NoUsableLifeError(
            f"{item.label}: the token that arrived expires before the one held; "
            "not written, retrying"
        )


class RefreshEngine:
    """Runs one task per :class:`Item`, each renewing and retrying by :class:`RefreshPolicy`.

    Args:
        clock: time source (monotonic for schedules).
        policy: the renewal and retry rules.
        rng: jitter source.
        on_change: called (synchronously) after every state change of an item.
        on_permanent: called when an item fails permanently (``fail_fast`` hooks in here).
        log: a structlog-style logger (default ``agent.refresh``'s).
    """

    def __init__(
        self,
        clock: Clock,
        policy: RefreshPolicy | None = None,
        *,
        rng: random.Random | None = None,
        on_change: Callable[[Item], None] | None = None,
        on_permanent: Callable[[Item], None] | None = None,
        log: Any = None,
    ) -> None:
        self.clock = clock
        self._log = log if log is not None else _log
        self.policy = policy or RefreshPolicy()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.items: list[Item] = []
        self._on_change = on_change
        self._on_permanent = on_permanent

    def add(self, item: Item) -> Item:
        """Register ``item`` (due now)."""
        item.state.next_at = self.clock.monotonic()
        self.items.append(item)
        return item

    # ----------------------------------------------------------------------------------------

    async def attempt(self, item: Item) -> None:
        """Make one attempt for ``item`` now, update its state and schedule its next one.

        Never raises except ``CancelledError``: every failure becomes item state.
        """
        state = item.state
        now = self.clock.monotonic()
        state.attempts.append(now)
        state.attempted_once = True
        held = state.held
        if state.undelivered and held is not None and held.expires - now > self.policy.min_interval:
            acquired = held  # only writing failed last time: write again, ask nobody
        else:
            try:
                acquired = await item.fetch()
                _check_usable(item, acquired, self.clock.monotonic())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is state; the task lives on
                self._failed(item, exc)
                return
        state.held = acquired
        recovered = state.status in ("failing", "stale")
        first = state.status == "pending"
        state.error = None  # before delivering: a summary taken meanwhile must not show it
        try:
            await item.deliver(acquired)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an output failure is retried like any other
            state.undelivered = True
            self._failed(item, exc)
            return
        state.undelivered = False
        state.status = "fresh"
        state.permanent = False
        state.failures = 0
        state.next_at = acquired.received + self.policy.renew_delay(
            acquired.lifetime, acquired.refresh_in
        )
        if item.due is not None:
            state.next_at = item.due(state.next_at)
        log = self._log.warning if recovered else self._log.info
        log(
            "oidc_token_acquired" if item.key == "oidc" else "token_acquired",
            connection=item.connection,
            scope=item.key,
            state="recovered" if recovered else ("delivered" if first else "renewed"),
            expires_in=int(acquired.expires - now),
            next_refresh_in=round(state.next_at - now, 1),
        )
        self._changed(item)

    def _failed(self, item: Item, exc: BaseException) -> None:
        state = item.state
        now = self.clock.monotonic()
        if not isinstance(exc, AzauthError):
            # A bug, not a cloud failure: say where, keep going.
            self._log.error(
                "refresh_crashed",
                connection=item.connection,
                scope=item.key,
                error=f"{type(exc).__name__}: {exc}",
            )
            error: AzauthError = AuthenticationError(
                f"{item.label}: internal error ({type(exc).__name__}); retrying"
            )
        else:
            error = exc
        permanent = is_permanent(exc)
        state.failures += 1
        state.error = error
        state.permanent = permanent
        remaining = state.remaining(now)
        retry_after = getattr(exc, "retry_after", None)
        delay = self.policy.retry_delay(
            state.failures,
            remaining=remaining,
            permanent=permanent,
            rng=self.rng,
            retry_after=retry_after if isinstance(retry_after, int | float) else None,
        )
        state.next_at = now + delay
        stale = remaining is not None and remaining <= 0
        old = state.status
        state.status = "stale" if stale else "failing"
        fields: dict[str, Any] = {
            "connection": item.connection,
            "scope": item.key,
            "error": str(error),
            "attempt": state.failures,
            "retry_in": round(delay, 1),
        }
        if permanent:
            self._log.error("refresh_failed_permanently", **fields)
            if self._on_permanent is not None:
                self._on_permanent(item)
        elif old != state.status or state.failures == 1:
            self._log.warning("token_stale" if stale else "refresh_failed", **fields)
        else:
            self._log.info("refresh_failed", **fields)
        self._changed(item)

    def _check_expiry(self, item: Item) -> None:
        state = item.state
        remaining = state.remaining(self.clock.monotonic())
        if remaining is not None and remaining <= 0 and state.status == "failing":
            state.status = "stale"
            self._log.warning("token_stale", connection=item.connection, scope=item.key)
            self._changed(item)

    def _changed(self, item: Item) -> None:
        if self._on_change is not None:
            try:
                self._on_change(item)
            except Exception as exc:  # noqa: BLE001 - a reporting bug must not stop refreshing
                self._log.error("report_failed", connection=item.connection, error=repr(exc))

    # ----------------------------------------------------------------------------------------

    async def keep_fresh(self, item: Item) -> None:
        """Renew ``item`` for ever (until cancelled), sleeping only on the clock."""
        state = item.state
        while True:
            now = self.clock.monotonic()
            due = state.next_at
            # The floor: whatever the schedule says, never two attempts within min_interval.
            if state.attempts:
                due = max(due, state.attempts[-1] + self.policy.min_interval)
            remaining = state.remaining(now)
            if state.status == "failing" and remaining is not None and 0 < remaining < due - now:
                due = now + remaining  # wake at expiry to report it stale
            if due > now:
                await self.clock.sleep(due - now)
                self._check_expiry(item)
                continue
            await self.attempt(item)

    async def run(self, items: list[Item] | None = None) -> None:
        """Keep every item fresh until cancelled (the tasks are cancelled with it)."""
        tasks = [
            asyncio.create_task(self.keep_fresh(item), name=f"refresh:{item.label}")
            for item in (items if items is not None else self.items)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

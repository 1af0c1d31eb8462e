"""A deterministic fault simulator for the refresh engine: scripted clouds on simulated time.

:func:`simulate` runs the real :class:`agent.refresh.RefreshEngine` (the one ``azauth run --watch``
and ``azauth exec`` use) for hours of simulated time in milliseconds, against an in-process
stand-in of Azure DevOps and Entra that follows a :class:`Schedule` of faults: outages, 5xx and
429 answers, one scope or one connection refused (permanently), malformed numbers, tokens with
no life left, OIDC tokens whose ``exp`` is past, and a local clock off by hours. Every answer is
an :class:`agent.exchange.HttpResponse` read by the production parsers, so what is simulated is
the cloud, never azauth.

Time: :class:`SimClock` moves only when every engine task is asleep, straight to the earliest
wake-up, so a run is a pure function of its schedule (jitter comes from ``schedule.seed``).
:func:`check_properties` returns the violated properties of a run (empty when all hold):

- P1 no output holds an expired token while a valid one for it is held in memory;
- P2 within 5 s of the cloud serving a token again every output showing it is fresh (after a
  permanent refusal: within the permanent backoff's cap plus 5 s);
- P3 no token gets more than :data:`~agent.refresh.MAX_ATTEMPTS_PER_MINUTE` requests in any
  minute;
- P4 no output is replaced by a token with less remaining life;
- P5 the engine never stops: every token is attempted again within its renewal time or the
  longest backoff, and every task is alive at the end.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import heapq
import itertools
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.credential import oidc_token_from_response
from agent.exceptions import TransportError
from agent.exchange import HttpResponse, parse_token_response
from agent.refresh import (
    MAX_ATTEMPTS_PER_MINUTE,
    Acquired,
    Item,
    RefreshEngine,
    RefreshPolicy,
    acquired_access,
    acquired_oidc,
)

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "Run",
    "Schedule",
    "SimClock",
    "check_properties",
    "simulate",
]

FaultKind = Literal[
    "outage",  # connections dropped (no answer)
    "http_5xx",  # 503 with the service's error body
    "http_429",  # 429 throttling
    "refused",  # permanent: Entra 400 invalid_scope / Azure DevOps 401
    "malformed",  # 200 with a malformed number (see MALFORMED) or an unreadable token
    "no_life",  # expires_in 0 / -5; OIDC exp already past
    "short_life",  # valid tokens of 3-10 s
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "outage",
    "http_5xx",
    "http_429",
    "refused",
    "malformed",
    "no_life",
    "short_life",
)
PERMANENT_KINDS = frozenset({"refused"})
MALFORMED = ("Infinity", "NaN", '"inf"', '"soon"', "1e300", "-1e300", "nested", "true")
START = 1_800_000_000.0  # true time at the start of every run
P2_WINDOW = 5.0


@dataclass(frozen=True)
class Fault:
    """From ``start`` to ``end`` (simulated seconds), ``kind`` for requests of ``target``.

    ``target``: an item key (``"c0/scope1"``, ``"c1/oidc"``), a connection (``"c0"``), or
    ``None`` for every request. ``variant`` picks the malformed value or no-life flavour.
    """

    start: float
    end: float
    kind: FaultKind
    target: str | None = None
    variant: int = 0

    def hits(self, key: str, t: float) -> bool:
        """Whether a request for item ``key`` at time ``t`` meets this fault."""
        if not self.start <= t < self.end:
            return False
        return self.target is None or key == self.target or key.startswith(f"{self.target}/")


@dataclass(frozen=True)
class Schedule:
    """One scripted run: the job's shape, the cloud's behaviour, the local clock."""

    duration: float = 900.0
    connections: int = 1
    scopes: int = 2
    access_lifetime: int = 60
    oidc_lifetime: int = 40
    clock_offset: float = 0.0  # local wall clock minus true time
    clock_jump: tuple[float, float] | None = None  # (at, new offset): the wall clock is stepped
    latency: float = 0.0
    oidc_iat: bool = True  # whether OIDC tokens carry iat
    refresh_margin: float = 300.0
    faults: tuple[Fault, ...] = ()
    seed: int = 0

    def reproduction(self) -> str:
        """Python that replays this run."""
        return (
            "from agent.testing.faults import *\n"
            f"run = simulate({self!r})\n"
            "print(check_properties(run))"
        )


@dataclass
class Written:
    """What one output holds: per item key, the token written (engine view)."""

    tokens: dict[str, Acquired] = field(default_factory=dict)
    true_expiry: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    """The trace of a simulated run."""

    schedule: Schedule
    requests: dict[str, list[float]] = field(default_factory=dict)  # key -> true times
    violations: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    outputs: dict[str, Written] = field(default_factory=dict)
    alive_at_end: bool = False
    steps: int = 0


class SimClock:
    """A :class:`agent.clock.Clock` on simulated time, advanced by :meth:`drive` only."""

    def __init__(self, offset: float = 0.0) -> None:
        self._mono = 0.0
        self.offset = offset
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def true_time(self) -> float:
        """What the cloud's clock says."""
        return START + self._mono

    def time(self) -> float:
        """This machine's (possibly wrong) wall clock."""
        return START + self._mono + self.offset

    def monotonic(self) -> float:
        """Simulated monotonic seconds."""
        return self._mono

    async def sleep(self, seconds: float) -> None:
        """Wait until simulated time reaches now + ``seconds``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + max(0.0, seconds), next(self._order), future))
        await future

    def _asleep(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def drive(
        self, until: float, tasks: Callable[[], int], on_step: Callable[[], None]
    ) -> int:
        """Advance to ``until``, each time once all ``tasks()`` (live tasks) are asleep.

        Returns the number of steps.
        """
        steps = 0
        while True:
            spins = 0
            while self._asleep() < tasks():
                await asyncio.sleep(0)
                spins += 1
                if spins > 10_000:
                    raise RuntimeError("an engine task neither sleeps nor ends")
            on_step()
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers or self._sleepers[0][0] > until:
                self._mono = until
                return steps
            deadline = self._sleepers[0][0]
            self._mono = deadline
            while self._sleepers and self._sleepers[0][0] <= deadline:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            steps += 1


# --------------------------------------------------------------------------------------------
# The stand-in cloud: answers as HTTP responses, read by the production parsers


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(claims: dict[str, Any]) -> str:
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.c2lnbmF0dXJl"


def _headers(now: float) -> dict[str, str]:
    return {
        "date": email.utils.formatdate(now, usegmt=True),
        "content-type": "application/json",
    }


class _Cloud:
    def __init__(self, schedule: Schedule, clock: SimClock) -> None:
        self.schedule = schedule
        self.clock = clock
        self.serial = itertools.count()

    def fault(self, key: str) -> Fault | None:
        now = self.clock.monotonic()
        return next((f for f in self.schedule.faults if f.hits(key, now)), None)

    def entra(self, key: str) -> HttpResponse:
        now = self.clock.true_time()
        fault = self.fault(key)
        lifetime: Any = self.schedule.access_lifetime
        if fault is not None:
            if fault.kind == "outage":
                raise TransportError("Could not reach login.microsoftonline.com: dropped")
            if fault.kind in ("http_5xx", "http_429"):
                status = 503 if fault.kind == "http_5xx" else 429
                body = {"error": "temporarily_unavailable", "error_codes": [50196]}
                return HttpResponse(status, "", _headers(now), json.dumps(body).encode())
            if fault.kind == "refused":
                body = {
                    "error": "invalid_scope",
                    "error_description": "AADSTS70011: The provided value for scope is not valid.",
                    "error_codes": [70011],
                }
                return HttpResponse(400, "Bad Request", _headers(now), json.dumps(body).encode())
            if fault.kind == "no_life":
                lifetime = (0, -5)[fault.variant % 2]
            if fault.kind == "short_life":
                lifetime = 3 + fault.variant
            if fault.kind == "malformed":
                raw = MALFORMED[fault.variant % len(MALFORMED)]
                if raw == "nested":
                    body_text = "[" * 50_000 + "]" * 50_000
                    return HttpResponse(200, "OK", _headers(now), body_text.encode())
                text = (
                    f'{{"token_type":"Bearer","expires_in":{raw},'
                    f'"access_token":"{_jwt({"n": next(self.serial)})}"}}'
                )
                return HttpResponse(200, "OK", _headers(now), text.encode())
        body = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": _jwt({"exp": now + lifetime, "n": next(self.serial)}),
        }
        return HttpResponse(200, "OK", _headers(now), json.dumps(body).encode())

    def devops(self, key: str) -> HttpResponse:
        now = self.clock.true_time()
        fault = self.fault(key)
        iat = int(now)
        exp: Any = iat + self.schedule.oidc_lifetime
        if fault is not None:
            if fault.kind == "outage":
                raise TransportError("Could not reach dev.azure.com: dropped")
            if fault.kind in ("http_5xx", "http_429"):
                status = 503 if fault.kind == "http_5xx" else 429
                body = {"message": "Service unavailable", "typeKey": "ServiceUnavailable"}
                return HttpResponse(status, "", _headers(now), json.dumps(body).encode())
            if fault.kind == "refused":
                body = {"message": "TF400813: The user is not authorized to access this resource."}
                return HttpResponse(401, "Unauthorized", _headers(now), json.dumps(body).encode())
            if fault.kind == "short_life":
                exp = iat + 3 + fault.variant
            if fault.kind == "no_life":
                # issued long ago (exp past by the server's clock), or exp before iat
                iat, exp = ((iat - 700, iat - 100), (iat, iat - 1))[fault.variant % 2]
            if fault.kind == "malformed":
                exp = ("Infinity", "never", None, 1e300)[fault.variant % 4]
                if exp == "Infinity":
                    exp = float("inf")
        claims: dict[str, Any] = {
            "sub": "sc://contoso/azauth/sim",
            "exp": exp,
            "n": next(self.serial),
        }
        if self.schedule.oidc_iat:
            claims["iat"] = iat
        token = _jwt(claims)
        return HttpResponse(200, "OK", _headers(now), json.dumps({"oidcToken": token}).encode())


# --------------------------------------------------------------------------------------------
# The run


def _items(schedule: Schedule) -> list[str]:
    keys: list[str] = []
    for c in range(schedule.connections):
        keys.extend(f"c{c}/scope{s}" for s in range(schedule.scopes))
        keys.append(f"c{c}/oidc")
    return keys


def _outputs(schedule: Schedule) -> dict[str, list[str]]:
    """One output per token, plus one env file per connection showing scope0 and its OIDC."""
    outputs = {f"file:{key}": [key] for key in _items(schedule)}
    for c in range(schedule.connections):
        outputs[f"env:c{c}"] = [f"c{c}/scope0", f"c{c}/oidc"]
    return outputs


class _Simulation:
    """One run: the engine, the stand-in cloud, the outputs, and the property checks."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.clock = SimClock(schedule.clock_offset)
        self.cloud = _Cloud(schedule, self.clock)
        self.run = Run(schedule)
        self.engine = RefreshEngine(
            self.clock,
            RefreshPolicy(refresh_margin=schedule.refresh_margin),
            rng=random.Random(schedule.seed),  # noqa: S311 - jitter
            log=_Quiet(),
        )
        self.outputs = _outputs(schedule)
        self.run.outputs = {name: Written() for name in self.outputs}
        self.held: dict[str, Acquired] = {}
        self.true_expiry: dict[int, float] = {}  # id(Acquired.value) -> true expiry
        self.healthy_since: dict[str, float] = {}
        self.permanent_at: dict[str, float] = {}
        for key in _items(schedule):
            connection = key.partition("/")[0]
            item = Item(connection, key, self._fetcher(key), self._deliverer(key))
            self.engine.add(item)
            self.run.items.append(item)

    def _fetcher(self, key: str) -> Callable[[], Awaitable[Acquired]]:
        clock, cloud = self.clock, self.cloud

        async def fetch() -> Acquired:
            self.run.requests.setdefault(key, []).append(clock.monotonic())
            answer = cloud.devops(key) if key.endswith("/oidc") else cloud.entra(key)
            issued = clock.true_time()
            if self.schedule.latency:
                await clock.sleep(self.schedule.latency)
            now = clock.monotonic()
            if key.endswith("/oidc"):
                token = oidc_token_from_response(
                    answer, "sim", local_now=clock.time(), received=now
                )
                acquired = acquired_oidc(token, now)
            else:
                info = parse_token_response(answer, request_time=int(clock.time()))
                acquired = acquired_access(info, now, clock.time())
            # What is true of this token, for P2: its lifetime from the moment it was issued.
            self.true_expiry[id(acquired.value)] = issued + acquired.lifetime
            return acquired

        return fetch

    def _deliverer(self, key: str) -> Callable[[Acquired], Awaitable[None]]:
        async def deliver(acquired: Acquired) -> None:
            self.held[key] = acquired
            for name, keys in self.outputs.items():
                if key in keys and all(k in self.held for k in keys):
                    self._write(name, keys)

        return deliver

    def _write(self, name: str, keys: list[str]) -> None:
        written = self.run.outputs[name]
        for k in keys:
            old, new = written.tokens.get(k), self.held[k]
            if old is not None and new.expires < old.expires:
                self.run.violations.append(
                    f"P4 at {self.clock.monotonic():.1f}s: {name} got {k} expiring at "
                    f"{new.expires:.1f}, replacing one expiring at {old.expires:.1f}"
                )
            written.tokens[k] = new
            written.true_expiry[k] = self.true_expiry.get(id(new.value), new.expires + START)

    def on_step(self) -> None:
        now = self.clock.monotonic()
        jump = self.schedule.clock_jump
        if jump is not None and now >= jump[0]:
            self.clock.offset = jump[1]  # NTP (or a person) steps the wall clock
        for item in self.run.items:
            fault = self.cloud.fault(item.key)
            if fault is None:
                self.healthy_since.setdefault(item.key, now)
            else:
                self.healthy_since.pop(item.key, None)
                if fault.kind in PERMANENT_KINDS:
                    self.permanent_at[item.key] = now
        for name, keys in self.outputs.items():
            self._check_p1(name, keys, now)
            if self._served_well(keys, now):
                self._check_p2(name, keys, now)
        if len(self.run.violations) > 20:
            raise _TooManyError

    def _check_p1(self, name: str, keys: list[str], now: float) -> None:
        """P1 (engine view): an output holds an expired token while a valid one is held."""
        written = self.run.outputs[name]
        for k in keys:
            token, in_memory = written.tokens.get(k), self.held.get(k)
            if token is None or in_memory is None:
                continue
            if token.expires <= now < in_memory.expires:
                self.run.violations.append(
                    f"P1 at {now:.1f}s: {name} holds an expired {k} while a valid one is held"
                )

    def _served_well(self, keys: list[str], now: float) -> bool:
        """Whether the cloud has served every token of an output for long enough (P2)."""
        wait = P2_WINDOW + self.schedule.latency
        for k in keys:
            since = self.healthy_since.get(k)
            if since is None or now - since < wait:
                return False
            refused = self.permanent_at.get(k)
            if refused is not None and now - refused < self.engine.policy.permanent_max + wait:
                return False
        return True

    def _check_p2(self, name: str, keys: list[str], now: float) -> None:
        written = self.run.outputs[name]
        for k in keys:
            expiry = written.true_expiry.get(k)
            if expiry is None or expiry <= self.clock.true_time():
                self.run.violations.append(
                    f"P2 at {now:.1f}s: {name} is not fresh ({k}) although the cloud "
                    f"has served it since {self.healthy_since[k]:.1f}s"
                )

    async def __call__(self) -> Run:
        clock = self.clock

        async def ticker() -> None:
            # Properties are checked at every wake-up; this makes it at least every second.
            while True:
                await clock.sleep(1.0)

        tasks = [asyncio.create_task(self.engine.keep_fresh(item)) for item in self.run.items]
        tasks.append(asyncio.create_task(ticker()))
        try:
            self.run.steps = await clock.drive(
                self.schedule.duration, lambda: sum(not t.done() for t in tasks), self.on_step
            )
        except _TooManyError:
            pass
        finally:
            self.run.alive_at_end = all(not t.done() for t in tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.run


def _ignore(*_args: object, **_kwargs: object) -> None:
    return None


class _Quiet:
    """A logger that drops everything (a simulated hour would log thousands of lines)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _ignore


class _TooManyError(Exception):
    """Enough violations seen: stop the run early."""


def simulate(schedule: Schedule) -> Run:
    """Run ``schedule`` to its end (a fresh event loop; no real time passes)."""
    return asyncio.run(_Simulation(schedule)())


def check_properties(run: Run) -> list[str]:
    """The properties P1-P5 that ``run`` violates, as readable lines (empty: all hold)."""
    problems = list(run.violations)
    schedule = run.schedule
    for key, times in run.requests.items():
        window: list[float] = []
        for t in times:
            window.append(t)
            # A minute is half-open, (t - 60, t]; 1 µs absorbs float rounding of the sums.
            while window and window[0] <= t - 60.0 + 1e-6:
                window.pop(0)
            if len(window) > MAX_ATTEMPTS_PER_MINUTE:
                problems.append(
                    f"P3: {key} got {len(window)} requests in the minute before {t:.1f}s "
                    f"(bound {MAX_ATTEMPTS_PER_MINUTE})"
                )
                break
    policy = RefreshPolicy(refresh_margin=schedule.refresh_margin)
    longest = max(schedule.access_lifetime, schedule.oidc_lifetime, policy.permanent_max) + 5
    if not run.alive_at_end:
        problems.append("P5: an engine task ended")
    for item in run.items:
        times = [*run.requests.get(item.key, []), schedule.duration]
        gaps = [b - a for a, b in itertools.pairwise([0.0, *times])]
        if any(gap > longest for gap in gaps):
            problems.append(f"P5: {item.key} went {max(gaps):.1f}s without an attempt")
    return problems

"""azauth's AzurePipelinesCredential against azure-identity's aio one, side by side.

Both run in this process against one emulator (a child process, https, 50 ms per request):

(a) 50 concurrent cold ``get_token`` calls for one scope on one new credential
    target: 2 requests, wall <= 1.5 x two round trips;
(b) 10 new credentials (10 service connections) x 3 scopes, all 30 calls concurrent
    target: 40 requests, wall <= 1.5 x two round trips;
(c) cached ``get_token``: N sequential awaits on a warm credential
    target: azauth <= 1/4 of azure-identity's time per call (fastest repetitions compared).

Extra rows, labelled as such: (b) with every azauth credential given one shared
``aiohttp.ClientSession``, and (full mode) (b) again while trusting a full-size CA bundle.

Every repetition uses new credential objects (cold caches, new HTTP sessions); the two sides take
turns going first. One untimed call per side runs first, so imports and other one-time costs of
the process are not charged to the first repetition. Request counts come from the emulator.

Usage: ``python bench/bench_credential.py [--quick] [--json FILE]``. Exit status 0 unless the
benchmark itself fails; a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import _common
from _common import Counts, EmulatorProcess, Summary

LATENCY = 0.05
IDEAL = 2 * LATENCY  # one OIDC round trip, then one Entra round trip
WALL_FACTOR = 1.5
CACHED_FACTOR = 4.0
CALLERS = 50
SCOPES = (
    "https://management.azure.com/.default",
    "https://vault.azure.net/.default",
    "https://storage.azure.com/.default",
)
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CONNECTIONS = tuple(
    (f"00000000-aaaa-bbbb-cccc-{i:012d}", TENANT, f"11111111-2222-3333-4444-{i:012d}")
    for i in range(1, 11)
)
OURS = "azauth"
OURS_SHARED = "azauth, shared session"
REFERENCE = "azure-identity"


@dataclass(frozen=True)
class Mode:
    """How much to run: repetitions of (a) and (b), the size of (c), the extra variant of (b)."""

    name: str
    repetitions: int
    cached_calls: int
    cached_repetitions: int
    full_bundle: bool


FULL = Mode("full", repetitions=5, cached_calls=20_000, cached_repetitions=9, full_bundle=True)
QUICK = Mode("quick", repetitions=1, cached_calls=2_000, cached_repetitions=1, full_bundle=False)


# ------------------------------------------------------------------------------------------------
# The two credentials


Credential = Any  # either class: both have get_token() and close()
Factory = Callable[[EmulatorProcess, tuple[str, str, str], Any], Credential]


def make_ours(emu: EmulatorProcess, connection: tuple[str, str, str], session: Any) -> Credential:
    from agent import AzurePipelinesCredential  # noqa: PLC0415 - imported once, in warm-up

    sc, tenant, client = connection
    return AzurePipelinesCredential(
        tenant_id=tenant,
        client_id=client,
        service_connection_id=sc,
        system_access_token=emu.system_access_token,
        authority=emu.authority,
        session=session,
    )


def make_reference(
    emu: EmulatorProcess, connection: tuple[str, str, str], _session: Any
) -> Credential:
    from azure.identity.aio import AzurePipelinesCredential  # noqa: PLC0415

    sc, tenant, client = connection
    return AzurePipelinesCredential(
        tenant_id=tenant,
        client_id=client,
        service_connection_id=sc,
        system_access_token=emu.system_access_token,
        authority=emu.authority,
    )


@dataclass(frozen=True)
class Side:
    """One contestant: a label, a factory, and whether its credentials share one session."""

    label: str
    make: Factory
    shared_session: bool = False


SIDES = (Side(OURS, make_ours), Side(REFERENCE, make_reference))


async def _new_session(emu: EmulatorProcess) -> Any:
    import aiohttp  # noqa: PLC0415

    context = ssl.create_default_context(cafile=emu.ca_file)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), trust_env=False)


# ------------------------------------------------------------------------------------------------
# One run of a scenario


@dataclass
class Run:
    """What one repetition of (a) or (b) measured.

    ``cpu`` is this process's CPU time during the calls, ``emulator_cpu`` the emulator child's
    during the whole run: on a 2-core machine both compete for the cores the wall time is
    measured on. ``setup`` is the time the constructors took, before the calls.
    """

    wall: float
    counts: Counts
    cpu: float
    emulator_cpu: float
    setup: float


async def run_cold(
    emu: EmulatorProcess, side: Side, connections: Sequence[tuple[str, str, str]], calls: int
) -> Run:
    """New credentials for ``connections``; ``calls`` concurrent get_token per scope set.

    (a) is one connection, one scope, ``calls=50``; (b) is ten connections, three scopes, one
    call each. ``setup`` times building the credentials (and the shared session); ``wall``
    times the calls, from the first call to the last token, HTTP sessions created on first use
    included.
    """
    await emu.reset_counts()
    scopes = SCOPES if len(connections) > 1 else SCOPES[:1]
    emulator_cpu = await emu.cpu_time()
    started = time.perf_counter()
    session = await _new_session(emu) if side.shared_session else None
    credentials = [side.make(emu, connection, session) for connection in connections]
    setup = time.perf_counter() - started
    try:
        gc.collect()  # the previous run's garbage is not this run's cost
        cpu = time.process_time()
        started = time.perf_counter()
        tokens = await asyncio.gather(
            *(
                credential.get_token(scope)
                for credential in credentials
                for scope in scopes
                for _ in range(calls)
            )
        )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        for credential in credentials:
            await credential.close()
        if session is not None:
            await session.close()
    if not all(token.token and token.expires_on > time.time() for token in tokens):
        raise RuntimeError(f"{side.label}: a call returned no valid token")
    emulator_cpu = await emu.cpu_time() - emulator_cpu
    return Run(wall, await emu.counts(), cpu, emulator_cpu, setup)


async def run_cached(emu: EmulatorProcess, side: Side, calls: int) -> float:
    """Seconds per call of ``calls`` sequential get_token awaits on a warm credential."""
    credential = side.make(emu, CONNECTIONS[0], None)
    scope = SCOPES[0]
    try:
        await credential.get_token(scope)
        await emu.reset_counts()
        get_token = credential.get_token
        gc.collect()
        started = time.perf_counter()
        for _ in range(calls):
            await get_token(scope)
        elapsed = time.perf_counter() - started
    finally:
        await credential.close()
    counts = await emu.counts()
    if counts.total:
        raise RuntimeError(f"{side.label}: the cached loop made {counts} requests")
    return elapsed / calls


async def run_floor(calls: int) -> float:
    """Seconds per await of a coroutine that returns at once: the loop's own cost."""

    async def noop(scope: str) -> str:
        return scope

    started = time.perf_counter()
    for _ in range(calls):
        await noop(SCOPES[0])
    return (time.perf_counter() - started) / calls


# ------------------------------------------------------------------------------------------------
# Scenarios, repetitions, reporting


def _median(values: Sequence[float]) -> float:
    return Summary.of(values).median


@dataclass
class ColdResult:
    """Every repetition of (a) or (b), per side label."""

    key: str
    title: str
    target_requests: int
    note: str = ""
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def walls(self, label: str) -> Summary:
        return Summary.of([run.wall for run in self.runs[label]])

    def requests(self, label: str) -> list[int]:
        return [run.counts.total for run in self.runs[label]]

    def counts_text(self, label: str) -> str:
        return " / ".join(sorted({str(run.counts) for run in self.runs[label]}))

    def cpu_text(self, label: str) -> str:
        runs = self.runs[label]
        ours = _median([run.cpu for run in runs])
        emulator = _median([run.emulator_cpu for run in runs])
        return f"{ours * 1000:.0f} + {emulator * 1000:.0f} ms"

    def passes(self, label: str = OURS) -> tuple[bool, bool]:
        requests_ok = all(total == self.target_requests for total in self.requests(label))
        wall_ok = self.walls(label).median <= WALL_FACTOR * IDEAL
        return requests_ok, wall_ok

    def ratios(self) -> tuple[float, float]:
        """azure-identity over azauth: median requests, median wall."""
        requests = _common.ratio(_median(self.requests(REFERENCE)), _median(self.requests(OURS)))
        wall = _common.ratio(self.walls(REFERENCE).median, self.walls(OURS).median)
        return requests, wall

    def as_dict(self) -> dict[str, Any]:
        requests_ratio, wall_ratio = self.ratios()
        requests_ok, wall_ok = self.passes()
        return {
            "title": self.title,
            "note": self.note,
            "latency_s": LATENCY,
            "ideal_s": IDEAL,
            "target": {"requests": self.target_requests, "wall_max_s": WALL_FACTOR * IDEAL},
            "sides": {
                label: {
                    "requests": [
                        {"oidc": run.counts.oidc, "token": run.counts.token} for run in runs
                    ],
                    "wall_s": [run.wall for run in runs],
                    "wall_summary_s": self.walls(label).as_dict(),
                    "wall_over_ideal": self.walls(label).median / IDEAL,
                    "cpu_s": [run.cpu for run in runs],
                    "emulator_cpu_s": [run.emulator_cpu for run in runs],
                    "setup_s": [run.setup for run in runs],
                }
                for label, runs in self.runs.items()
            },
            "ratio_reference_over_ours": {"requests": requests_ratio, "wall": wall_ratio},
            "pass": {"requests": requests_ok, "wall": wall_ok},
        }


def render_cold(result: ColdResult, repetitions: int) -> str:
    limit = WALL_FACTOR * IDEAL
    rows = [
        [
            label,
            result.counts_text(label),
            _common.ms_range(result.walls(label)),
            _common.times(result.walls(label).median / IDEAL),
            result.cpu_text(label),
            _common.ms(_median([run.setup for run in result.runs[label]])),
        ]
        for label in result.runs
    ]
    ours = result.walls(OURS).median
    requests_ratio, wall_ratio = result.ratios()
    requests_ok, wall_ok = result.passes()
    note = f"    {result.note}\n" if result.note else ""
    return (
        f"({result.key}) {result.title}\n{note}"
        f"    latency {_common.ms(LATENCY)} per request; ideal = two round trips = "
        f"{_common.ms(IDEAL)}; {repetitions} repetition(s); wall = median [min-max];\n"
        "    CPU = median CPU time of this process (during the calls) + of the emulator process;\n"
        "    setup = median time to construct the credentials, before the calls (not in wall)\n\n"
        + _indent(
            _common.render_table(
                ["side", "requests (oidc+token)", "wall", "wall/ideal", "CPU", "setup"], rows
            )
        )
        + f"\n    {REFERENCE}/{OURS}: requests {_common.times(requests_ratio)}, "
        f"wall {_common.times(wall_ratio)}\n"
        f"    target requests = {result.target_requests}: {_common.verdict(requests_ok)}\n"
        f"    target wall <= {_common.ms(limit)}: {_common.verdict(wall_ok)} "
        f"(median {_common.ms(ours)} = {ours / limit:.2f} x the limit)\n"
    )


@dataclass
class CachedResult:
    """Per-call times of (c), per side label, plus the loop floor.

    The verdict compares the *fastest* repetition of each side: in a loop of microsecond calls,
    slower repetitions measure other processes preempting this one, not the code (the reasoning
    of ``timeit``). The ratio of medians is reported next to it.
    """

    calls: int
    per_call: dict[str, list[float]] = field(default_factory=dict)
    floor: list[float] = field(default_factory=list)

    def summary(self, label: str) -> Summary:
        return Summary.of(self.per_call[label])

    def speedup(self) -> float:
        """Fastest azure-identity repetition over fastest azauth repetition."""
        return _common.ratio(self.summary(REFERENCE).minimum, self.summary(OURS).minimum)

    def median_speedup(self) -> float:
        return _common.ratio(self.summary(REFERENCE).median, self.summary(OURS).median)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls_per_repetition": self.calls,
            "sides": {
                label: {"per_call_s": samples, "summary_s": self.summary(label).as_dict()}
                for label, samples in self.per_call.items()
            },
            "floor_per_await_s": Summary.of(self.floor).as_dict(),
            "ratio_reference_over_ours": self.speedup(),
            "ratio_reference_over_ours_medians": self.median_speedup(),
            "target_ratio_min": CACHED_FACTOR,
            "pass": self.speedup() >= CACHED_FACTOR,
        }


def render_cached(result: CachedResult, repetitions: int) -> str:
    rows = [[label, _common.us_range(result.summary(label))] for label in result.per_call]
    rows.append(["(floor: await of a no-op coroutine)", _common.us_range(Summary.of(result.floor))])
    speedup = result.speedup()
    limit = result.summary(REFERENCE).minimum / CACHED_FACTOR
    return (
        f"(c) cached get_token: {result.calls} sequential awaits on a warm credential\n"
        f"    {repetitions} repetition(s); per call = median [min-max]\n\n"
        + _indent(_common.render_table(["side", "per call"], rows))
        + f"\n    {REFERENCE}/{OURS}: {_common.times(speedup)} (fastest repetitions), "
        f"{_common.times(result.median_speedup())} (medians)\n"
        f"    target {OURS} <= 1/{CACHED_FACTOR:.0f} of {REFERENCE} "
        f"({limit * 1e6:.2f} us), fastest repetitions: "
        f"{_common.verdict(speedup >= CACHED_FACTOR)}\n"
    )


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


async def repeat(
    sides: Sequence[Side], repetitions: int, once: Callable[[Side], Awaitable[Any]]
) -> dict[str, list[Any]]:
    """Run ``once(side)`` ``repetitions`` times per side, alternating which side goes first."""
    results: dict[str, list[Any]] = {side.label: [] for side in sides}
    for repetition in range(repetitions):
        order = sides if repetition % 2 == 0 else tuple(reversed(sides))
        for side in order:
            results[side.label].append(await once(side))
    return results


async def benchmark(mode: Mode) -> dict[str, Any]:
    emu = await EmulatorProcess.start(latency=LATENCY, tls=True)
    try:
        assert emu.ca_file is not None
        _common.isolate_environment(emu.client_environment())
        for connection in CONNECTIONS:
            await emu.add_connection(*connection)
        one = CONNECTIONS[:1]
        with_shared = (*SIDES, Side(OURS_SHARED, make_ours, shared_session=True))

        # Imports, first TLS context, first connection: one-time costs kept out of the figures.
        for side in with_shared:
            await run_cold(emu, side, one, 1)

        a = ColdResult("a", f"{CALLERS} concurrent cold get_token calls, one scope", 2)
        a.runs = await repeat(SIDES, mode.repetitions, lambda s: run_cold(emu, s, one, CALLERS))
        print(render_cold(a, mode.repetitions), flush=True)

        title_b = f"{len(CONNECTIONS)} credentials x {len(SCOPES)} scopes, all calls concurrent"
        target_b = len(CONNECTIONS) * (1 + len(SCOPES))
        b = ColdResult("b", title_b, target_b)
        b.runs = await repeat(
            with_shared, mode.repetitions, lambda s: run_cold(emu, s, CONNECTIONS, 1)
        )
        print(render_cold(b, mode.repetitions), flush=True)

        figures: dict[str, Any] = {"a": a.as_dict(), "b": b.as_dict()}
        if mode.full_bundle:
            bundle = ColdResult(
                "b, full CA bundle",
                title_b,
                target_b,
                note="extra: SSL_CERT_FILE / REQUESTS_CA_BUNDLE name the system CA bundle plus "
                "the emulator's CA, as on a build agent that trusts its system store",
            )
            with _common.trusting_full_bundle(emu.ca_file):
                bundle.runs = await repeat(
                    SIDES, mode.repetitions, lambda s: run_cold(emu, s, CONNECTIONS, 1)
                )
            print(render_cold(bundle, mode.repetitions), flush=True)
            figures["b_full_ca_bundle"] = bundle.as_dict()

        c = CachedResult(mode.cached_calls)
        c.per_call = await repeat(
            SIDES, mode.cached_repetitions, lambda s: run_cached(emu, s, mode.cached_calls)
        )
        c.floor = [await run_floor(mode.cached_calls) for _ in range(mode.cached_repetitions)]
        print(render_cached(c, mode.cached_repetitions), flush=True)
        figures["c"] = c.as_dict()
    finally:
        await emu.close()
    return figures


def render_summary(figures: dict[str, Any]) -> str:
    rows = []
    for key in ("a", "b"):
        figure = figures[key]
        ours = figure["sides"][OURS]
        ref = figure["sides"][REFERENCE]
        rows.append(
            [
                f"({key}) requests",
                str(figure["target"]["requests"]),
                str(int(_median([r["oidc"] + r["token"] for r in ours["requests"]]))),
                str(int(_median([r["oidc"] + r["token"] for r in ref["requests"]]))),
                _common.verdict(figure["pass"]["requests"]),
            ]
        )
        rows.append(
            [
                f"({key}) wall",
                f"<= {_common.ms(figure['target']['wall_max_s'])}",
                _common.ms(ours["wall_summary_s"]["median"]),
                _common.ms(ref["wall_summary_s"]["median"]),
                _common.verdict(figure["pass"]["wall"]),
            ]
        )
    cached = figures["c"]
    rows.append(
        [
            "(c) cached call",
            f">= {CACHED_FACTOR:.0f}x faster",
            f"{cached['sides'][OURS]['summary_s']['median'] * 1e6:.2f} us",
            f"{cached['sides'][REFERENCE]['summary_s']['median'] * 1e6:.2f} us",
            f"{_common.verdict(cached['pass'])} ({_common.times(cached['ratio_reference_over_ours'])})",
        ]
    )
    return "summary\n\n" + _indent(
        _common.render_table(["figure", "target", OURS, REFERENCE, "verdict"], rows)
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one repetition, 2,000 cached calls, no full-CA-bundle variant (a few seconds)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    mode = QUICK if args.quick else FULL
    # azure-identity logs every get_token at INFO; neither side should pay for log output.
    logging.disable(logging.CRITICAL)
    facts = _common.machine_facts()
    print(f"bench_credential ({mode.name} mode)\n{_common.render_machine_facts(facts)}", flush=True)
    figures = asyncio.run(benchmark(mode))
    print(render_summary(figures), flush=True)
    if args.json:
        _common.write_json(
            args.json,
            {"benchmark": "bench_credential", "mode": mode.name, "machine": facts, **figures},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

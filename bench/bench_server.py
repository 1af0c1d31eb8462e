"""``azauth serve``: cached-token latency and throughput of the loopback token server.

The server is the real command, ``python -m agent serve --emulate`` in a child process (its own
core, as in a pipeline); this process is the client: aiohttp, keep-alive connections, the App
Service protocol (``X-IDENTITY-HEADER``) exactly as azure-identity's async client sends it.
After one warm-up request (the only one that reaches the emulated Entra), it measures:

(a) sequential: one client, one request at a time: latency p50 / p99;
(b) concurrent: 50 clients sharing the load of N requests: latency p50 / p99 and requests/s.

Every answer must be 200 and carry the same token (the credential's cache served them all).
Traffic stays on 127.0.0.1. Numbers on a shared 2-core machine are noisy: compare runs on one
machine, not across machines.

Usage: ``python bench/bench_server.py [--quick] [--json FILE]`` (default 20,000 concurrent
requests; ``--quick``: 3,000).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
import aiohttp

CLIENTS = 50
RESOURCE = "https://management.azure.com"
PROFILE = """
[connections.prod]
tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
client_id = "11111111-2222-3333-4444-555555555555"
service_connection_id = "00000000-aaaa-bbbb-cccc-000000000001"

[profiles.bench]
connections = ["prod"]
"""


@dataclass(frozen=True)
class Mode:
    name: str
    sequential: int
    concurrent: int


FULL = Mode("full", sequential=2_000, concurrent=20_000)
QUICK = Mode("quick", sequential=500, concurrent=3_000)


@dataclass
class Result:
    scenario: str
    requests: int
    wall: float
    latencies: list[float]

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]

    @property
    def rps(self) -> float:
        return self.requests / self.wall

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "wall_s": self.wall,
            "p50_ms": self.percentile(50) * 1000,
            "p99_ms": self.percentile(99) * 1000,
            "max_ms": max(self.latencies) * 1000,
            "requests_per_s": self.rps,
        }


async def start_server(workdir: Path) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    (workdir / "azauth.toml").write_text(PROFILE)
    env = _common._child_environment()  # noqa: SLF001 - the shared isolation of bench children
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "serve", "--emulate", "-q",
        "--max-requests", str(CLIENTS * 2),
        cwd=workdir, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    line = await asyncio.wait_for(process.stdout.readline(), _common.CONTROL_TIMEOUT)
    words = shlex.split(line.decode())
    if not words or words[0] != "export":
        stderr = await process.stderr.read()
        raise RuntimeError(f"azauth serve did not start: {stderr.decode(errors='replace')}")
    exported = dict(word.split("=", 1) for word in words[1:])
    return process, exported


async def stop_server(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), _common.CONTROL_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -9


class Client:
    """Requests one token the way azure-identity's App Service client does."""

    def __init__(self, session: Any, exported: dict[str, str]) -> None:
        self.session = session
        self.url = exported["IDENTITY_ENDPOINT"]
        self.headers = {"X-IDENTITY-HEADER": exported["IDENTITY_HEADER"]}
        self.params = {"api-version": "2019-08-01", "resource": RESOURCE}
        self.tokens: set[str] = set()

    async def one(self) -> float:
        start = time.perf_counter()
        async with self.session.get(self.url, params=self.params, headers=self.headers) as response:
            body = await response.json()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"status {response.status}: {body}")
        self.tokens.add(body["access_token"])
        return elapsed


async def sequential(client: Client, count: int) -> Result:
    start = time.perf_counter()
    latencies = [await client.one() for _ in range(count)]
    return Result("sequential, 1 client", count, time.perf_counter() - start, latencies)


async def concurrent(client: Client, count: int, clients: int) -> Result:
    latencies: list[float] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latencies.append(await client.one())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - start
    return Result(f"concurrent, {clients} clients", count, wall, latencies)


async def run(mode: Mode) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="azauth-bench-serve-") as directory:
        process, exported = await start_server(Path(directory))
        try:
            connector = aiohttp.TCPConnector(limit=CLIENTS)
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
                client = Client(session, exported)
                warm_up = await client.one()  # mints the token: OIDC + Entra via the emulator
                results = [
                    await sequential(client, mode.sequential),
                    await concurrent(client, mode.concurrent, CLIENTS),
                ]
        finally:
            code = await stop_server(process)
    if len(client.tokens) != 1:
        raise RuntimeError(f"expected one cached token, got {len(client.tokens)}")
    if code != 0:
        raise RuntimeError(f"azauth serve exited {code} on SIGTERM")
    return {"mode": mode.name, "warm_up_s": warm_up, "results": results}


def render(outcome: dict[str, Any]) -> str:
    rows = [
        (
            r.scenario,
            f"{r.requests:,}",
            f"{r.percentile(50) * 1000:.2f} ms",
            f"{r.percentile(99) * 1000:.2f} ms",
            f"{max(r.latencies) * 1000:.1f} ms",
            f"{r.rps:,.0f}",
        )
        for r in outcome["results"]
    ]
    table = _common.render_table(("scenario", "requests", "p50", "p99", "max", "req/s"), rows)
    first = f"warm-up (first request, mints via the emulator): {outcome['warm_up_s'] * 1000:.1f} ms"
    return f"{table}{first}\nevery answer 200, one distinct token; server exited 0 on SIGTERM\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 concurrent requests")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    mode = QUICK if args.quick else FULL
    os.chdir(_common.REPO)
    outcome = asyncio.run(run(mode))
    facts = _common.machine_facts()
    print(_common.render_machine_facts(facts), end="")
    print(f"azauth serve benchmark ({mode.name}): App Service protocol, cached token\n")
    print(render(outcome), end="")
    if args.json:
        payload = {
            "machine": facts,
            "mode": mode.name,
            "warm_up_ms": outcome["warm_up_s"] * 1000,
            "results": {r.scenario: r.as_dict() for r in outcome["results"]},
        }
        _common.write_json(args.json, payload)


if __name__ == "__main__":
    main()

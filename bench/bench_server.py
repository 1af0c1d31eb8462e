"""``azauth serve``: cached-token latency and throughput of the loopback token server.

The server is the real command, ``python -m agent serve --emulate`` in a child process (its own
core, as in a pipeline); this process is the client: aiohttp, keep-alive connections, the App
Service protocol (``X-IDENTITY-HEADER``) exactly as azure-identity's async client sends it.
After one warm-up request (the only one that reaches the emulated Entra), it measures:

(a) sequential: one client, one request at a time: latency p50 / p99;
(b) concurrent: 50 clients sharing the load of N requests: latency p50 / p99 and requests/s;
(c) CPU per cached answer, side by side with ``bench/bare_token_server.py`` (a bare aiohttp
    handler doing the same secret check and answering the same JSON): the same load (10 clients,
    keep-alive) goes to each server in turns, and each server's CPU time (``/proc/PID/stat``) over
    its rounds is divided by the answers; the verdict compares the medians against the target
    azauth <= 1.4 x bare.

Every answer must be 200 and carry the same token (the credential's cache served them all).
Traffic stays on 127.0.0.1. Numbers on a shared 2-core machine are noisy: compare runs on one
machine, not across machines.

Usage: ``python bench/bench_server.py [--quick] [--json FILE]`` (default 20,000 concurrent
requests and 7 rounds of 5,000 answers per server for (c); ``--quick``: 3,000 and 3 rounds of
1,500).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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


CPU_CLIENTS = 1
CPU_TARGET = 1.4
BARE_SERVER = Path(__file__).resolve().parent / "bare_token_server.py"


@dataclass(frozen=True)
class Mode:
    name: str
    sequential: int
    concurrent: int
    cpu_rounds: int
    cpu_answers: int


FULL = Mode("full", sequential=2_000, concurrent=20_000, cpu_rounds=7, cpu_answers=5_000)
QUICK = Mode("quick", sequential=500, concurrent=3_000, cpu_rounds=3, cpu_answers=1_500)


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


async def start_bare_server() -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """The bare aiohttp handler in a child process, announced like ``azauth serve``."""
    env = _common._child_environment()  # noqa: SLF001
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(BARE_SERVER), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), _common.CONTROL_TIMEOUT)
    words = shlex.split(line.decode())
    if not words or words[0] != "export":
        raise RuntimeError("the bare token server did not start")
    return process, dict(word.split("=", 1) for word in words[1:])


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_per_answer(
    mode: Mode, azauth: tuple[Any, dict[str, str]], clients_count: int = CPU_CLIENTS
) -> dict[str, Any]:
    """(c): the same load to azauth serve and the bare handler in turns; CPU per answer each."""
    bare = await start_bare_server()
    servers = {"azauth serve": azauth, "bare aiohttp handler": bare}
    samples: dict[str, list[float]] = {name: [] for name in servers}
    try:
        connector = aiohttp.TCPConnector(limit=clients_count * 2)
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            clients = {name: Client(session, exported) for name, (_, exported) in servers.items()}
            for client in clients.values():  # warm both: connections, the token, caches
                await concurrent(client, 200, clients_count)
            order = list(servers)
            for _ in range(mode.cpu_rounds):
                for name in order:
                    pid = servers[name][0].pid
                    before = process_cpu(pid)
                    await concurrent(clients[name], mode.cpu_answers, clients_count)
                    samples[name].append((process_cpu(pid) - before) / mode.cpu_answers)
                order.reverse()  # take turns going first
    finally:
        await stop_server(bare[0])
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratio = medians["azauth serve"] / medians["bare aiohttp handler"]
    return {
        "answers_per_round": mode.cpu_answers,
        "rounds": mode.cpu_rounds,
        "clients": clients_count,
        "samples_s": samples,
        "median_s": medians,
        "ratio": ratio,
        "target": CPU_TARGET,
        "pass": ratio <= CPU_TARGET,
    }


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


async def run(mode: Mode, cpu_clients: int = CPU_CLIENTS) -> dict[str, Any]:
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
            cpu = await cpu_per_answer(mode, (process, exported), cpu_clients)
        finally:
            code = await stop_server(process)
    if len(client.tokens) != 1:
        raise RuntimeError(f"expected one cached token, got {len(client.tokens)}")
    if code != 0:
        raise RuntimeError(f"azauth serve exited {code} on SIGTERM")
    return {"mode": mode.name, "warm_up_s": warm_up, "results": results, "cpu": cpu}


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
    cpu = outcome["cpu"]
    cpu_rows = [
        (
            name,
            f"{statistics.median(values) * 1e6:.1f} us",
            f"{min(values) * 1e6:.1f}-{max(values) * 1e6:.1f} us",
        )
        for name, values in cpu["samples_s"].items()
    ]
    cpu_table = _common.render_table(("server", "CPU per answer", "range"), cpu_rows)
    return (
        f"{table}{first}\nevery answer 200, one distinct token; server exited 0 on SIGTERM\n\n"
        f"(c) CPU per cached answer, {cpu['rounds']} rounds of {cpu['answers_per_round']:,} "
        f"answers per server in turns, {cpu['clients']} clients, median [range]\n\n{cpu_table}"
        f"azauth / bare: {cpu['ratio']:.2f}x (target <= {cpu['target']}x): "
        f"{_common.verdict(cpu['pass'])}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 concurrent requests")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--cpu-answers", type=int, help="answers per server and round in (c)")
    parser.add_argument(
        "--cpu-clients", type=int, default=CPU_CLIENTS, help="concurrent clients in (c)"
    )
    args = parser.parse_args()
    mode = QUICK if args.quick else FULL
    if args.cpu_answers:
        mode = dataclasses.replace(mode, cpu_answers=args.cpu_answers)
    os.chdir(_common.REPO)
    outcome = asyncio.run(run(mode, args.cpu_clients))
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
            "cpu_per_answer": outcome["cpu"],
        }
        _common.write_json(args.json, payload)


if __name__ == "__main__":
    main()

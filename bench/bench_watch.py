"""Benchmark the steady-state cost of `azauth run --watch`: 20 connections x 3 scopes, 8 hours.

The real runner and refresh engine run on a FakeClock (8 simulated hours in seconds) against the
emulator in a child process (real HTTP on 127.0.0.1, Entra lifetime 3599 s, OIDC lifetime 300 s).
Lifetimes are measured from `expires_in` and `exp - iat` on the runner's monotonic clock, so the
emulator's real clock and the runner's fake one need not agree.

Reported per simulated hour, after the first delivery:
- Entra and Azure DevOps requests, beside the minimum: one request per token per renewal that
  falls inside the window (an access token is renewed `refresh_margin` = 300 s before expiry,
  every 3299 s; a connection's assertion is shared by its scopes, renewed with them);
- CPU seconds of the azauth process (runner, engine, file writes, its default info logs as JSON
  lines; an upper bound: it includes the FakeClock driver's polling) and of the emulator process.
Scenario B adds a federated token file per connection: its OIDC token is renewed at half-life
(every 150 s), the minimum then being 24 OIDC requests per connection per hour.

Usage: .venv/bin/python bench/bench_watch.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    TENANT,
    EmulatorProcess,
    machine_facts,
    profile_outputs_and_connections,
    render_machine_facts,
    render_table,
    write_json,
)

from agent.config import load_config
from agent.logs import configure_logging
from agent.runner import Runner
from agent.testing.fakes import FakeClock

CONNECTIONS = 20
SCOPES = (
    "https://management.azure.com/.default",
    "https://vault.azure.net/.default",
    "https://storage.azure.com/.default",
)
HOURS = 8.0
ENTRA_LIFETIME = 3599
OIDC_LIFETIME = 300
MARGIN = 300


def profile_text(*, federated: bool) -> str:
    names = ", ".join(f'"c{i}"' for i in range(CONNECTIONS))
    outputs, connections = profile_outputs_and_connections(CONNECTIONS, SCOPES, federated=federated)
    return "\n".join(
        [
            f"[settings]\nrefresh_margin = {MARGIN}\n",
            "[profiles.bench]",
            f"connections = [{names}]",
            "",
            *outputs,
            *connections,
        ]
    )


async def scenario(emu: EmulatorProcess, *, federated: bool, hours: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="azauth-bench-watch-") as tmp:
        cwd = Path(tmp)
        (cwd / "azauth.toml").write_text(profile_text(federated=federated))
        env = dict(os.environ) | emu.client_environment()
        env["SYSTEM_ACCESSTOKEN"] = emu.system_access_token
        env["AZURE_AUTHORITY_HOST"] = emu.authority
        old = Path.cwd()
        os.chdir(cwd)
        try:
            profile = load_config(str(cwd / "azauth.toml")).profile("bench")
            clock = FakeClock()
            clock.quiet_period = 0.1  # 60 file writes (two fsyncs each) settle before time jumps
            stop = asyncio.Event()
            async with Runner(profile, env=env, clock=clock, stdout=io.StringIO()) as runner:
                task = asyncio.create_task(runner.watch(stop))
                await runner.delivered.wait()
                assert runner.first_report is not None
                assert runner.first_report.exit_code == 0, runner.first_report
                await emu.reset_counts()
                start_mono = clock.monotonic()
                cpu0, emu_cpu0, wall0 = (
                    time.process_time(),
                    await emu.cpu_time(),
                    time.perf_counter(),
                )
                # A sleeper due exactly at the end, so the clock stops there.
                end = asyncio.create_task(clock.sleep(hours * 3600))
                while not end.done():
                    await asyncio.sleep(0.01)
                counts = await emu.counts()
                cpu, emu_cpu = time.process_time() - cpu0, await emu.cpu_time() - emu_cpu0
                wall = time.perf_counter() - wall0
                fresh = runner.all_fresh()
                stop.set()
                await task
        finally:
            os.chdir(old)
    simulated = (clock.monotonic() - start_mono) / 3600
    window = simulated * 3600
    # The minimum: one request per token per renewal that falls inside the window.
    renewals = int(window // (ENTRA_LIFETIME - MARGIN))
    minimum_token = CONNECTIONS * len(SCOPES) * renewals / simulated
    oidc_renewals = int(window // (OIDC_LIFETIME / 2)) if federated else renewals
    minimum_oidc = CONNECTIONS * oidc_renewals / simulated
    return {
        "simulated_hours": simulated,
        "token_requests": counts.token,
        "oidc_requests": counts.oidc,
        "token_per_hour": counts.token / simulated,
        "oidc_per_hour": counts.oidc / simulated,
        "min_token_per_hour": minimum_token,
        "min_oidc_per_hour": minimum_oidc,
        "cpu_per_hour": cpu / simulated,
        "emulator_cpu_per_hour": emu_cpu / simulated,
        "real_seconds": wall,
        "all_fresh_at_end": float(fresh),
    }


async def main_async(quick: bool, json_path: str | None) -> None:
    hours = 1.0 if quick else HOURS
    # As `azauth run --watch` logs by default (info, JSON lines), into a file nobody reads.
    configure_logging(fmt="json", level="info", stream=open(os.devnull, "w"))  # noqa: SIM115
    facts = machine_facts()
    print(render_machine_facts(facts))
    emu = await EmulatorProcess.start(latency=0.0, tls=False)
    results = {}
    try:
        for i in range(CONNECTIONS):
            await emu.add_connection(
                f"{i:08d}-aaaa-bbbb-cccc-000000000000",
                TENANT,
                f"{i:08d}-1111-2222-3333-444444444444",
            )
        results["A: 20 x 3 token files"] = await scenario(emu, federated=False, hours=hours)
        if not quick:
            results["B: A + 20 federated token files"] = await scenario(
                emu, federated=True, hours=hours
            )
    finally:
        await emu.close()
    print(
        f"run --watch, {CONNECTIONS} connections x {len(SCOPES)} scopes, {hours:g} simulated hours"
    )
    rows = []
    for name, r in results.items():
        rows.append(
            (
                name,
                f"{r['token_per_hour']:.1f} (min {r['min_token_per_hour']:.1f})",
                f"{r['oidc_per_hour']:.1f} (min {r['min_oidc_per_hour']:.1f})",
                f"{r['cpu_per_hour'] * 1000:.0f} ms",
                f"{r['emulator_cpu_per_hour'] * 1000:.0f} ms",
                "yes" if r["all_fresh_at_end"] else "NO",
                f"{r['real_seconds']:.1f} s",
            )
        )
    print(
        render_table(
            (
                "scenario",
                "Entra req/h",
                "DevOps req/h",
                "azauth CPU/h",
                "emulator CPU/h",
                "fresh at end",
                "real time",
            ),
            rows,
        )
    )
    if json_path:
        write_json(json_path, {"machine": facts, "hours": hours, "results": results})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 simulated hour, scenario A only")
    parser.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    args = parser.parse_args()
    asyncio.run(main_async(args.quick, args.json))


if __name__ == "__main__":
    main()

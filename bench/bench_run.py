"""Benchmark `azauth run`: 20 connections x 3 scopes at 50 ms emulator latency.

Measures, in one run on this machine:
- `azauth run --once` wall time (median), split into start-up (process spawn until the first
  request reaches the emulator: interpreter, imports, profile, credentials) and the rest
  (network, writes, exit), against the target "<= 1.5 x two round trips + start-up"; with the
  default concurrency (64: every request in flight at once) and with --concurrency 8;
- the imports alone, for reference;
- `azauth run --watch`: resident memory with 20 connections once everything is delivered
  (target <= 80 MB), and CPU time used while idle over a 10 s window (it sleeps until the next
  refresh: no polling), plus wake-ups seen as voluntary context switches.

Usage: .venv/bin/python bench/bench_run.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import profile_outputs_and_connections

from agent.testing.emulator import Emulator

CONNECTIONS = 20
SCOPES = (
    "https://management.azure.com/.default",
    "https://vault.azure.net/.default",
    "https://storage.azure.com/.default",
)
LATENCY = 0.05


def profile_text() -> str:
    names = ", ".join(f'"c{i}"' for i in range(CONNECTIONS))
    outputs, connections = profile_outputs_and_connections(CONNECTIONS, SCOPES)
    return "\n".join(["[profiles.bench]", f"connections = [{names}]", "", *outputs, *connections])


async def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return elapsed


async def phased(
    args: list[str], cwd: Path, env: dict[str, str], emu: Emulator
) -> tuple[float, float]:
    """Run once; return (wall, start-up) where start-up ends when the first request arrives."""
    emu.reset_counts()
    started = time.time()
    wall = await timed(args, cwd, env)
    first = min(r.time for r in emu.requests)
    return wall, first - started


def proc_stats(pid: int) -> tuple[float, int, int]:
    """CPU seconds (user+system), RSS in KiB and voluntary context switches of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = switches = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("voluntary_ctxt_switches:"):
            switches = int(line.split()[1])
    return cpu, rss, switches


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions, shorter idle window"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    idle_window = 3.0 if args.quick else 10.0
    python = sys.executable

    async with Emulator(latency=LATENCY, trust_any_app=True) as emu:
        work = Path(tempfile.mkdtemp(prefix="azauth-bench-run-"))
        (work / "azauth.toml").write_text(profile_text())
        env = dict(os.environ)
        env.update(
            SYSTEM_OIDCREQUESTURI=emu.oidc_request_uri,
            SYSTEM_ACCESSTOKEN=emu.system_access_token,
            AZURE_AUTHORITY_HOST=emu.authority,
        )
        imports_cmd = [
            python,
            "-c",
            "import agent.cli.main, agent.cli.run, agent.runner, agent.config.loading",
        ]
        imports = [await timed(imports_cmd, work, env) for _ in range(repeats)]

        results: dict[str, dict[str, float]] = {}
        for label, extra in (
            ("default (concurrency 64)", []),
            ("--concurrency 8", ["--concurrency", "8"]),
        ):
            walls, startups, counts = [], [], []
            for _ in range(repeats):
                wall, startup = await phased(
                    [python, "-m", "agent", "run", "--once", "-q", *extra], work, env, emu
                )
                walls.append(wall)
                startups.append(startup)
                counts.append(emu.counts["oidc"] + emu.counts["token"])
            results[label] = {
                "wall": statistics.median(walls),
                "startup": statistics.median(startups),
                "after_startup": statistics.median(
                    w - s for w, s in zip(walls, startups, strict=True)
                ),
                "requests": statistics.median(counts),
            }

        # Watch mode: memory and idle CPU.
        proc = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "agent",
            "run",
            "--watch",
            "-q",
            cwd=work,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        expected = CONNECTIONS * len(SCOPES)
        for _ in range(600):
            out = work / "out"
            if out.exists() and len([p for p in out.iterdir() if p.suffix == ".token"]) == expected:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(3.0)  # let delivery settle: the window must hold no delivery work
        cpu0, rss0, sw0 = proc_stats(proc.pid)
        await asyncio.sleep(idle_window)
        cpu1, rss1, sw1 = proc_stats(proc.pid)
        proc.terminate()
        await proc.wait()

    ideal = 2 * LATENCY
    print(
        f"azauth run --once: {CONNECTIONS} connections x {len(SCOPES)} scopes, emulator latency {LATENCY * 1000:.0f} ms, median of {repeats}"
    )
    print(f"  imports alone (python -c 'import ...')  {statistics.median(imports) * 1000:7.1f} ms")
    print(f"  two round trips (ideal network time)    {ideal * 1000:7.1f} ms")
    print(
        "  start-up = process spawn until the first request reaches the emulator (imports, profile, credentials)"
    )
    print("  target: wall <= 1.5 x two round trips + start-up")
    for label, figures in results.items():
        target_wall = 1.5 * ideal + figures["startup"]
        verdict = "PASS" if figures["wall"] <= target_wall else "MISS"
        print(
            f"  {label:<26} wall {figures['wall'] * 1000:6.1f} ms = start-up {figures['startup'] * 1000:6.1f} ms"
            f" + {figures['after_startup'] * 1000:6.1f} ms ({figures['after_startup'] / ideal:.2f} x two round trips)"
            f"  requests {figures['requests']:.0f}  {verdict}"
        )
    idle_cpu = cpu1 - cpu0
    print(f"azauth run --watch with {CONNECTIONS} connections:")
    print(
        f"  resident memory  {rss1 / 1024:6.1f} MB   target <= 80 MB  {'PASS' if rss1 / 1024 <= 80 else 'MISS'}"
    )
    print(
        f"  CPU while idle   {idle_cpu * 1000:6.1f} ms over {idle_window:.0f} s; {sw1 - sw0} wake-ups"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "imports_s": statistics.median(imports),
                    "once": results,
                    "watch_rss_mb": rss1 / 1024,
                    "watch_idle_cpu_s": idle_cpu,
                    "watch_idle_window_s": idle_window,
                    "watch_idle_wakeups": sw1 - sw0,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

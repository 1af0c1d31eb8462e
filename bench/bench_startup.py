"""Start-up of the one-shot commands, next to ``python -c pass``, in turns.

Series (one of each per round, so a noisy neighbour slows all of them alike):

- ``python -c pass`` with this interpreter: the floor;
- ``azauth --help`` and ``azauth validate`` (20 connections x 3 scopes profile);
  target: median <= 5 x the floor;
- ``azauth run --once -q`` on the same profile against the emulator (https, 50 ms per request,
  a full trust store: the system bundle plus the emulator's CA in ``SSL_CERT_FILE``); reported
  as wall time and start-up, the time from spawning the process until the first request reaches
  the emulator; target: start-up <= 150 ms.

Bytecode: ``PYTHONDONTWRITEBYTECODE`` is dropped and ``PYTHONPYCACHEPREFIX`` points at a temporary
directory, so the children run from cached bytecode as an installed package does. Warm-up rounds
fill that cache and azauth's profile cache (``AZAUTH_PROFILE_CACHE``), as for every call of a
job after its first. The ``cache off`` series set ``AZAUTH_PROFILE_CACHE=0``: every call validates
the profile with pydantic, as a job's first call does (reported, not a target).

Usage: ``python bench/bench_startup.py [--runs N] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

from agent.testing.emulator import Emulator

CONNECTIONS = 20
SCOPES = (
    "https://management.azure.com/.default",
    "https://vault.azure.net/.default",
    "https://storage.azure.com/.default",
)
LATENCY = 0.05
HELP_FACTOR = 5.0
VALIDATE_COLD = "validate, cache off"
RUN_COLD = "run --once, cache off"
STARTUP_TARGET = 0.150


def profile_text() -> str:
    names = ", ".join(f'"c{i}"' for i in range(CONNECTIONS))
    outputs, connections = _common.profile_outputs_and_connections(CONNECTIONS, SCOPES)
    return "\n".join(["[profiles.bench]", f"connections = [{names}]", "", *outputs, *connections])


async def spawn(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``args``; return (wall seconds, wall-clock start time)."""
    started_at = time.time()
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return wall, started_at


async def benchmark(runs: int, warmups: int) -> dict[str, Any]:
    emu = Emulator(latency=LATENCY, trust_any_app=True)
    await emu.start(tls=True)
    work = Path(tempfile.mkdtemp(prefix="azauth-bench-startup-"))
    try:
        assert emu.ca_file is not None
        bundle = work / "ca-bundle.pem"
        system = _common.system_ca_bundle().read_text(encoding="ascii", errors="replace")
        bundle.write_text(system.rstrip("\n") + "\n" + Path(emu.ca_file).read_text("ascii"))
        (work / "azauth.toml").write_text(profile_text())
        (work / "home").mkdir()
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.upper().startswith(("AZAUTH_", "AZURE", "SYSTEM_", "SSL_", "REQUESTS_"))
            and name.upper() not in {"PYTHONDONTWRITEBYTECODE", "HTTP_PROXY", "HTTPS_PROXY"}
        }
        env.update(
            HOME=str(work / "home"),
            PYTHONPYCACHEPREFIX=str(work / "pycache"),
            SYSTEM_OIDCREQUESTURI=emu.oidc_request_uri,
            SYSTEM_ACCESSTOKEN=emu.system_access_token,
            AZURE_AUTHORITY_HOST=emu.authority,
            SSL_CERT_FILE=str(bundle),
            NO_PROXY="127.0.0.1,localhost",
        )
        azauth = str(_common.installed_script("azauth", "bench_startup"))
        cold = {**env, "AZAUTH_PROFILE_CACHE": "0"}
        commands = {
            _common.BASELINE_NAME: (list(_common.BASELINE), env),
            "azauth --help": ([azauth, "--help"], env),
            "azauth validate": ([azauth, "validate"], env),
            "azauth run --once": ([azauth, "run", "--once", "-q"], env),
            VALIDATE_COLD: ([azauth, "validate"], cold),
            RUN_COLD: ([azauth, "run", "--once", "-q"], cold),
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        startups: dict[str, list[float]] = {"azauth run --once": [], RUN_COLD: []}
        for round_ in range(warmups + runs):
            for name, (args, environment) in commands.items():
                emu.reset_counts()
                wall, started_at = await spawn(args, work, environment)
                if round_ < warmups:
                    continue
                walls[name].append(wall)
                if name in startups:
                    startups[name].append(min(r.time for r in emu.requests) - started_at)
                    shutil.rmtree(work / "out", ignore_errors=True)
        medians = {name: statistics.median(values) for name, values in walls.items()}
        floor = medians[_common.BASELINE_NAME]
        return {
            "runs": runs,
            "load_average": os.getloadavg(),
            "median_s": medians,
            "ratio_to_floor": {name: value / floor for name, value in medians.items()},
            "run_once_startup_s": statistics.median(startups["azauth run --once"]),
            "run_once_startups_s": startups["azauth run --once"],
            "run_once_cold_startup_s": statistics.median(startups[RUN_COLD]),
        }
    finally:
        await emu.close()
        shutil.rmtree(work, ignore_errors=True)


def render(result: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.2f}" for x in result["load_average"])
    lines = [f"median of {result['runs']} runs in turns; load average {load}"]
    for name, value in result["median_s"].items():
        ratio = result["ratio_to_floor"][name]
        target = ""
        if name in ("azauth --help", "azauth validate"):
            target = f"  target <= {HELP_FACTOR:.0f} x: {_common.verdict(ratio <= HELP_FACTOR)}"
        lines.append(f"  {name:<20} {value * 1000:7.1f} ms  {ratio:5.2f} x floor{target}")
    startup = result["run_once_startup_s"]
    lines.append(
        f"  run --once start-up (spawn -> first request) {startup * 1000:6.1f} ms  target <= "
        f"{STARTUP_TARGET * 1000:.0f} ms: {_common.verdict(startup <= STARTUP_TARGET)}"
    )
    cold = result["run_once_cold_startup_s"]
    lines.append(f"  run --once start-up, profile cache off              {cold * 1000:6.1f} ms")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    result = asyncio.run(benchmark(args.runs, args.warmups))
    print(render(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark `azauth run --once` side by side with its peers: 20 connections x 3 scopes.

One run measures, in turns against one emulator (a child process, https on 127.0.0.1, 50 ms of
latency per request) while every side trusts a full CA bundle (the system bundle plus the
emulator's CA, through ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``):

- ``azauth run --once -q``: the installed console script, with a profile of 20 connections and
  60 ``token_file`` outputs (80 requests: 20 OIDC + 60 Entra); its profile cache is warm
  (the untimed warm-up run fills it), as for every run of a job after the first;
- the same with ``AZAUTH_PROFILE_CACHE=0``: every run validates the profile with pydantic, as
  the first run of a job does (reported, not a target);
- the reference, ``bench/reference_run.py``: the same requests and the same durable 0600 writes,
  hand-written with asyncio + ssl (the target: azauth <= 1.3 x its wall time);
- ``bench/peer_run.py``: azure-identity's aio credential, one per connection, all calls in one
  ``asyncio.gather``; the same one call after another; the sync credential (120 requests each:
  azure-identity asks for an OIDC token per call);
- ``bench/curl_run.sh``: a bash loop of curl and jq, sequential (80 requests).

Every side is a process timed from spawn to exit, and its CPU time (user + system, from
``wait4``) is recorded; *start-up* is from spawn until its first request reaches the emulator.
Each run starts with no token files. Children run from compiled bytecode, as an installed tool
does: ``PYTHONDONTWRITEBYTECODE`` is removed from their environment, bytecode goes to a private
``PYTHONPYCACHEPREFIX`` and one untimed warm-up run of each side compiles it before anything is
timed. The ratios compare medians with the reference's, from this one run; the load average is
printed at the start and at the end.

Then `azauth run --watch` with the same profile: resident memory once everything is delivered
(target <= 80 MB), and CPU time and wake-ups (voluntary context switches) over an idle window.

Usage: .venv/bin/python bench/bench_run.py [--quick] [--runs N] [--peer-runs N]
       [--sides NAME,...] [--no-watch] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    TENANT,
    EmulatorProcess,
    installed_script,
    isolate_environment,
    machine_facts,
    process_environment,
    profile_outputs_and_connections,
    render_machine_facts,
    render_table,
    trusting_full_bundle,
    verdict,
    write_json,
)

BENCH = Path(__file__).resolve().parent
CONNECTIONS = 20
SCOPES = (
    "https://management.azure.com/.default",
    "https://vault.azure.net/.default",
    "https://storage.azure.com/.default",
)
LATENCY = 0.05
TARGET_RATIO = 1.3
TARGET_STARTUP = 0.150
REFERENCE = "stdlib reference (asyncio + ssl)"
AZAUTH = "azauth run --once"
AZAUTH_COLD = "azauth run --once, profile cache off"


@dataclass(frozen=True)
class Side:
    name: str
    command: tuple[str, ...]
    slow: bool  # a sequential peer: fewer repetitions
    env: tuple[tuple[str, str], ...] = ()  # added to the side's environment


def connection_ids(i: int) -> tuple[str, str]:
    """Service connection id and client id of connection ``i`` (as in the profile)."""
    return f"{i:08d}-aaaa-bbbb-cccc-000000000000", f"{i:08d}-1111-2222-3333-444444444444"


def write_job(work: Path) -> None:
    """The profile for azauth, the JSON job of the Python peers and the TSV of the curl loop."""
    names = ", ".join(f'"c{i}"' for i in range(CONNECTIONS))
    outputs, connections = profile_outputs_and_connections(CONNECTIONS, SCOPES)
    (work / "azauth.toml").write_text(
        "\n".join(["[profiles.bench]", f"connections = [{names}]", "", *outputs, *connections])
    )
    jobs, lines = [], []
    for i in range(CONNECTIONS):
        sc, client = connection_ids(i)
        files = [(scope, f"out/c{i}-{j}.token") for j, scope in enumerate(SCOPES)]
        jobs.append(
            {
                "tenant_id": TENANT,
                "client_id": client,
                "service_connection_id": sc,
                "outputs": [{"scope": scope, "path": path} for scope, path in files],
            }
        )
        lines += [f"{sc}\t{TENANT}\t{client}\t{scope}\t{path}" for scope, path in files]
    (work / "job.json").write_text(json.dumps(jobs))
    (work / "job.tsv").write_text("\n".join(lines) + "\n")


def sides() -> list[Side]:
    python = sys.executable
    azauth = str(installed_script("azauth", "bench_run"))
    return [
        Side(AZAUTH, (azauth, "run", "--once", "-q"), slow=False),
        # Every run validates the profile with pydantic, as the first run of a job does.
        Side(
            AZAUTH_COLD,
            (azauth, "run", "--once", "-q"),
            slow=False,
            env=(("AZAUTH_PROFILE_CACHE", "0"),),
        ),
        Side(REFERENCE, (python, str(BENCH / "reference_run.py"), "job.json"), slow=False),
        Side(
            "azure-identity aio, gather",
            (python, str(BENCH / "peer_run.py"), "aio-gather", "job.json"),
            slow=True,
        ),
        Side(
            "azure-identity aio, sequential",
            (python, str(BENCH / "peer_run.py"), "aio-sequential", "job.json"),
            slow=True,
        ),
        Side(
            "azure-identity sync, sequential",
            (python, str(BENCH / "peer_run.py"), "sync", "job.json"),
            slow=True,
        ),
        Side("bash curl | jq loop", ("bash", str(BENCH / "curl_run.sh"), "job.tsv"), slow=True),
    ]


def run_child(command: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Run ``command``; return (wall, CPU) seconds; raise unless it exits 0."""
    spawned = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - spawned
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {process.returncode}: "
            f"{errors.decode(errors='replace')[-2000:]}"
        )
    return wall, usage.ru_utime + usage.ru_stime


async def one_run(emu: EmulatorProcess, side: Side, env: dict[str, str], work: Path) -> dict:
    """One timed run of ``side`` with no token file present; its figures."""
    shutil.rmtree(work / "out", ignore_errors=True)
    await emu.reset_counts()
    spawned_at = time.time()
    wall, cpu = run_child(side.command, {**env, **dict(side.env)}, work)
    first = await emu.first_request_time()
    counts = await emu.counts()
    files = sorted(p.name for p in (work / "out").iterdir())
    expected = CONNECTIONS * len(SCOPES)
    if len(files) != expected:
        raise RuntimeError(f"{side.name}: {len(files)} token files, expected {expected}")
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "startup_s": None if first is None else first - spawned_at,
        "oidc": counts.oidc,
        "token": counts.token,
    }


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


async def watch_figures(env: dict[str, str], work: Path, idle_window: float) -> dict[str, float]:
    """`azauth run --watch`: memory once delivered, CPU and wake-ups over an idle window."""
    shutil.rmtree(work / "out", ignore_errors=True)
    azauth = str(installed_script("azauth", "bench_run"))
    proc = await asyncio.create_subprocess_exec(
        azauth, "run", "--watch", "-q", cwd=work, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        expected = CONNECTIONS * len(SCOPES)
        for _ in range(600):
            out = work / "out"
            if out.exists() and len([p for p in out.iterdir() if p.suffix == ".token"]) == expected:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(3.0)  # let delivery settle: the window must hold no delivery work
        cpu0, _, switches0 = proc_stats(proc.pid)
        await asyncio.sleep(idle_window)
        cpu1, rss, switches1 = proc_stats(proc.pid)
    finally:
        proc.terminate()
        await proc.wait()
    return {
        "rss_mb": rss / 1024,
        "idle_cpu_s": cpu1 - cpu0,
        "idle_window_s": idle_window,
        "idle_wakeups": switches1 - switches0,
    }


def summarize(runs: list[dict]) -> dict[str, Any]:
    startups = [r["startup_s"] for r in runs if r["startup_s"] is not None]
    return {
        "runs": len(runs),
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "wall_min_s": min(r["wall_s"] for r in runs),
        "wall_max_s": max(r["wall_s"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "startup_s": statistics.median(startups) if startups else None,
        "oidc": runs[-1]["oidc"],
        "token": runs[-1]["token"],
        "samples": runs,
    }


def render(figures: dict[str, dict[str, Any]], load_end: float) -> str:
    reference = figures.get(REFERENCE)
    rows = []
    for name, f in figures.items():
        ratio = f"{f['wall_s'] / reference['wall_s']:.2f}x" if reference else "-"
        cpu_ratio = f"{f['cpu_s'] / reference['cpu_s']:.2f}x" if reference else "-"
        startup = "-" if f["startup_s"] is None else f"{f['startup_s'] * 1000:.0f} ms"
        rows.append(
            (
                name,
                f"{f['oidc'] + f['token']} ({f['oidc']}+{f['token']})",
                (
                    f"{f['wall_s'] * 1000:.0f} ms [{f['wall_min_s'] * 1000:.0f}-"
                    f"{f['wall_max_s'] * 1000:.0f}]"
                ),
                startup,
                f"{f['cpu_s'] * 1000:.0f} ms",
                ratio,
                cpu_ratio,
                str(f["runs"]),
            )
        )
    headers = (
        "side",
        "requests (OIDC+Entra)",
        "wall, median [min-max]",
        "start-up",
        "CPU",
        "wall / reference",
        "CPU / reference",
        "runs",
    )
    text = render_table(headers, rows)
    lines = [text]
    if reference and AZAUTH in figures:
        azauth = figures[AZAUTH]
        ratio = azauth["wall_s"] / reference["wall_s"]
        lines.append(
            f"azauth / reference wall: {ratio:.2f}x (target <= {TARGET_RATIO}x): "
            f"{verdict(ratio <= TARGET_RATIO)}"
        )
    if AZAUTH in figures and figures[AZAUTH]["startup_s"] is not None:
        startup = figures[AZAUTH]["startup_s"]
        lines.append(
            f"azauth start-up (spawn -> first request): {startup * 1000:.0f} ms "
            f"(target <= {TARGET_STARTUP * 1000:.0f} ms): {verdict(startup <= TARGET_STARTUP)}"
        )
    lines.append(f"load average at the end: {load_end:.2f}")
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> int:
    runs = args.runs or (3 if args.quick else 7)
    peer_runs = args.peer_runs or (1 if args.quick else 3)
    chosen = sides()
    if args.sides:
        wanted = [name.strip() for name in args.sides.split(",")]
        chosen = [s for s in chosen if any(w.lower() in s.name.lower() for w in wanted)]
    facts = machine_facts()
    print(render_machine_facts(facts), flush=True)
    emu = await EmulatorProcess.start(latency=LATENCY, tls=True)
    samples: dict[str, list[dict]] = {side.name: [] for side in chosen}
    watch: dict[str, float] | None = None
    try:
        for i in range(CONNECTIONS):
            sc, client = connection_ids(i)
            await emu.add_connection(sc, TENANT, client)
        isolate_environment(emu.client_environment())
        assert emu.ca_file is not None
        with (
            trusting_full_bundle(emu.ca_file) as bundle,
            tempfile.TemporaryDirectory(prefix="azauth-bench-run-") as directory,
        ):
            work = Path(directory)
            write_job(work)
            trust = str(bundle)
            env = process_environment(
                emu,
                work,
                {
                    "AZURE_AUTHORITY_HOST": emu.authority,
                    "SSL_CERT_FILE": trust,
                    "REQUESTS_CA_BUNDLE": trust,
                    "CURL_CA_BUNDLE": trust,
                },
            )
            for side in chosen:  # untimed: compiles the bytecode, fills the page cache
                await one_run(emu, side, env, work)
            for number in range(max(runs, peer_runs)):
                order = chosen if number % 2 == 0 else chosen[::-1]  # take turns going first
                for side in order:
                    if number < (peer_runs if side.slow else runs):
                        samples[side.name].append(await one_run(emu, side, env, work))
            if not args.no_watch:
                watch = await watch_figures(env, work, 3.0 if args.quick else 10.0)
    finally:
        await emu.close()
    load_end = os.getloadavg()[0]
    figures = {name: summarize(runs) for name, runs in samples.items()}
    print(
        f"{CONNECTIONS} connections x {len(SCOPES)} scopes, https, {LATENCY * 1000:.0f} ms "
        f"per request, full CA bundle trusted; medians, in turns\n"
    )
    print(render(figures, load_end), flush=True)
    if watch is not None:
        print(f"azauth run --watch with {CONNECTIONS} connections:")
        print(
            f"  resident memory  {watch['rss_mb']:6.1f} MB   target <= 80 MB  "
            f"{verdict(watch['rss_mb'] <= 80)}"
        )
        print(
            f"  CPU while idle   {watch['idle_cpu_s'] * 1000:6.1f} ms over "
            f"{watch['idle_window_s']:.0f} s; {watch['idle_wakeups']} wake-ups"
        )
    if args.json:
        write_json(
            args.json,
            {"machine": facts, "load_average_end": load_end, "sides": figures, "watch": watch},
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs (peers 1), 3 s idle window")
    parser.add_argument("--runs", type=int, help="runs of azauth and the reference (default 7)")
    parser.add_argument("--peer-runs", type=int, help="runs of the sequential peers (default 3)")
    parser.add_argument("--sides", help="comma-separated parts of side names to run (default all)")
    parser.add_argument("--no-watch", action="store_true", help="skip the --watch figures")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())

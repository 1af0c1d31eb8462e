"""Linear cost of `azauth run --once`: CPU per request at 50 x 3 and at 200 x 10, side by side.

The real profile loading, ``Runner`` and ``run_once`` run in this process (warm: imports are done
before anything is timed) against the emulator in a child process (``bench/_common.py``), over
https with 50 ms of latency per request. Each size writes its token files into one fresh
directory (50 x 3: 150 files; 200 x 10: 2,000 files), as a profile with many outputs does.

Timed region of one repetition: loading and validating the profile file, building the runner
(planning), acquiring every token and writing every file. *CPU* is this process's CPU time over
that region (every thread: the writes run in worker threads), the emulator's separately. *CPU per
request* divides it by the requests the emulator served (N OIDC + N x S Entra). The two sizes
take turns; the figure of each is the median of the repetitions, and the verdict compares
200 x 10 against 1.2 x the 50 x 3 figure (the issue's target for linear cost).

``--agent-src DIR`` imports ``agent`` from another source tree (for example ``git archive`` of
an older commit) so a change can be measured before and after on one machine.

Usage: .venv/bin/python bench/bench_scale.py [--quick] [--repeats N] [--agent-src DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES = ((50, 3), (200, 10))
SCOPES = tuple(f"api://azauth-bench-scope-{j}/.default" for j in range(10))
LATENCY = 0.05
TARGET = 1.2


def profile_text(connections: int, scopes: int) -> str:
    from _common import profile_outputs_and_connections  # noqa: PLC0415 - after --agent-src

    names = ", ".join(f'"c{i}"' for i in range(connections))
    outputs, entries = profile_outputs_and_connections(connections, SCOPES[:scopes])
    return "\n".join(
        [
            "[settings]",
            "concurrency = 64",
            "",
            "[profiles.bench]",
            f"connections = [{names}]",
            "",
            *outputs,
            *entries,
        ]
    )


async def one_run(emu: Any, connections: int, scopes: int, env: dict[str, str]) -> dict[str, Any]:
    """One timed repetition in a fresh directory; returns CPU, wall and requests."""
    from agent.config import load_config  # noqa: PLC0415
    from agent.runner import Runner  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="azauth-bench-scale-"))
    try:
        (work / "azauth.toml").write_text(profile_text(connections, scopes))
        old = Path.cwd()
        os.chdir(work)
        try:
            await emu.reset_counts()
            emu_cpu0 = await emu.cpu_time()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            profile = load_config(str(work / "azauth.toml"), env=env).profile("bench")
            async with Runner(profile, env=env, stdout=io.StringIO()) as runner:
                report = await runner.run_once()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            emu_cpu = await emu.cpu_time() - emu_cpu0
            counts = await emu.counts()
        finally:
            os.chdir(old)
        if report.exit_code != 0:
            raise RuntimeError(f"run failed: {report}")
        files = len(list((work / "out").iterdir()))
        if files != connections * scopes:
            raise RuntimeError(f"expected {connections * scopes} files, found {files}")
        return {
            "cpu_s": cpu,
            "wall_s": wall,
            "emulator_cpu_s": emu_cpu,
            "requests": counts.total,
            "oidc": counts.oidc,
            "token": counts.token,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def main_async(repeats: int, json_path: str | None) -> int:
    from _common import (  # noqa: PLC0415
        TENANT,
        EmulatorProcess,
        isolate_environment,
        machine_facts,
        render_machine_facts,
        render_table,
        trusting_full_bundle,
        write_json,
    )

    from agent.logs import configure_logging  # noqa: PLC0415

    # As `azauth run --once` logs by default (info, JSON lines), into a file nobody reads.
    configure_logging(fmt="json", level="info", stream=open(os.devnull, "w"))  # noqa: SIM115
    facts = machine_facts()
    print(render_machine_facts(facts), flush=True)
    emu = await EmulatorProcess.start(latency=LATENCY, tls=True)
    samples: dict[str, list[dict[str, Any]]] = {}
    try:
        for i in range(max(c for c, _ in SIZES)):
            await emu.add_connection(
                f"{i:08d}-aaaa-bbbb-cccc-000000000000",
                TENANT,
                f"{i:08d}-1111-2222-3333-444444444444",
            )
        isolate_environment(emu.client_environment())
        assert emu.ca_file is not None
        with trusting_full_bundle(emu.ca_file):
            env = dict(os.environ)
            env.update(
                SYSTEM_ACCESSTOKEN=emu.system_access_token, AZURE_AUTHORITY_HOST=emu.authority
            )
            await one_run(emu, 5, 2, env)  # warm-up: imports, TLS context, emulator keys
            for _ in range(repeats):
                for connections, scopes in SIZES:
                    label = f"{connections} x {scopes}"
                    result = await one_run(emu, connections, scopes, env)
                    samples.setdefault(label, []).append(result)
    finally:
        await emu.close()

    figures: dict[str, dict[str, float]] = {}
    for label, runs in samples.items():
        per_request = [r["cpu_s"] / r["requests"] for r in runs]
        figures[label] = {
            "requests": runs[0]["requests"],
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "emulator_cpu_s": statistics.median(r["emulator_cpu_s"] for r in runs),
            "cpu_per_request_s": statistics.median(per_request),
            "cpu_per_request_min_s": min(per_request),
            "cpu_per_request_max_s": max(per_request),
        }
    small, large = (figures[f"{c} x {s}"] for c, s in SIZES)
    ratio = large["cpu_per_request_s"] / small["cpu_per_request_s"]
    rows = [
        (
            label,
            f"{f['requests']:.0f}",
            f"{f['wall_s'] * 1000:.0f} ms",
            f"{f['cpu_s'] * 1000:.0f} ms",
            (
                f"{f['cpu_per_request_s'] * 1e6:.0f} us "
                f"[{f['cpu_per_request_min_s'] * 1e6:.0f}-{f['cpu_per_request_max_s'] * 1e6:.0f}]"
            ),
            f"{f['emulator_cpu_s'] * 1000:.0f} ms",
        )
        for label, f in figures.items()
    ]
    print(
        f"azauth run --once in process (load + plan + acquire + write), https, "
        f"{LATENCY * 1000:.0f} ms latency, full CA bundle; median of {repeats}, in turns\n"
    )
    print(
        render_table(
            ("connections x scopes", "requests", "wall", "CPU", "CPU/request", "emulator CPU"),
            rows,
        )
    )
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(
        f"CPU per request, 200 x 10 / 50 x 3: {ratio:.2f}x (target <= {TARGET}x): {verdict}",
        flush=True,
    )
    if json_path:
        write_json(
            json_path,
            {"machine": facts, "repeats": repeats, "sizes": figures, "ratio": ratio},
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition of each size")
    parser.add_argument("--repeats", type=int, help="repetitions of each size (default 5)")
    parser.add_argument("--agent-src", metavar="DIR", help="import agent from DIR")
    parser.add_argument("--json", metavar="FILE", help="also save the figures as JSON")
    args = parser.parse_args()
    if args.agent_src:
        sys.path.insert(0, str(Path(args.agent_src).resolve()))
    repeats = args.repeats or (1 if args.quick else 5)
    return asyncio.run(main_async(repeats, args.json))


if __name__ == "__main__":
    raise SystemExit(main())

"""Wall time of one ``docker-credential-azauth get``: warm and cold, next to ``python -c pass``.

skopeo, podman, buildah and the Docker CLI start the credential helper for every registry
operation, so what matters is the whole process. Three series, run in turns:

- ``python -c pass`` with this interpreter (``sys.executable``): the floor;
- warm: the installed helper finding a fresh ACR refresh token in the on-disk cache;
  target: median <= 3 x the floor;
- cold: the same with the cache directory removed before each run, against the emulator (a
  child process on 127.0.0.1 over TLS): one OIDC, one Entra and one ``/oauth2/exchange``
  request each.

Bytecode runs from a private ``PYTHONPYCACHEPREFIX`` filled by warm-up runs, as in
``bench_token.py``.

Usage: ``python bench/bench_docker_credential.py [--quick] [--runs N] [--json FILE]``. Exit
status 0 unless the benchmark itself fails; a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common
from _common import EmulatorProcess, Summary

TARGET_RATIO = 3.0
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SC = "00000000-aaaa-bbbb-cccc-000000000001"
SERIES = ("python -c pass", "helper get (warm)", "helper get (cold)")


def helper_script() -> Path:
    candidate = Path(sys.executable).parent / "docker-credential-azauth"
    if candidate.is_file():
        return candidate
    found = shutil.which("docker-credential-azauth")
    if found is None:
        raise SystemExit("bench_docker_credential: docker-credential-azauth is not installed")
    return Path(found)


def child_environment(emu: EmulatorProcess, work: Path, config: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("AZAUTH_", "AZURE", "SYSTEM_", "ARM_"))
        and name.upper()
        not in {"PYTHONDONTWRITEBYTECODE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
    }
    assert emu.ca_file is not None
    env.update(
        {
            "HOME": str(work / "home"),
            "AZAUTH_CONFIG": str(config),
            "AZAUTH_CACHE_DIR": str(work / "cache"),
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "SYSTEM_OIDCREQUESTURI": emu.oidc_request_uri,
            "SYSTEM_ACCESSTOKEN": emu.system_access_token,
            "SSL_CERT_FILE": emu.ca_file,
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return env


def timed(command: Sequence[str], env: dict[str, str], cwd: Path, stdin: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(
        command, env=env, cwd=cwd, input=stdin, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stdout}")
    return elapsed, result.stdout


async def benchmark(runs: int, warmups: int) -> dict[str, Any]:
    emu = await EmulatorProcess.start(latency=0.0, tls=True)
    work = Path(tempfile.mkdtemp(prefix="azauth-bench-docker-"))
    try:
        await emu.add_connection(SC, TENANT, CLIENT)
        (work / "home").mkdir()
        registry = emu.url.removeprefix("https://")
        config = work / "azauth.toml"
        config.write_text(
            f'[connections.acr]\ntenant_id = "{TENANT}"\nclient_id = "{CLIENT}"\n'
            f'service_connection_id = "{SC}"\nauthority = "{emu.authority}"\n'
            f'[profiles.ci]\nconnections = ["acr"]\n'
            f'[profiles.ci.registries."{registry}"]\nconnection = "acr"\n',
            encoding="utf-8",
        )
        env = child_environment(emu, work, config)
        cache = work / "cache"
        helper = [str(helper_script()), "get"]
        baseline = [sys.executable, "-c", "pass"]

        def cold() -> tuple[float, str]:
            shutil.rmtree(cache, ignore_errors=True)
            return timed(helper, env, work, registry)

        steps = {
            SERIES[0]: lambda: timed(baseline, env, work, ""),
            SERIES[1]: lambda: timed(helper, env, work, registry),
            SERIES[2]: cold,
        }
        for _ in range(warmups):
            for name in (SERIES[0], SERIES[2], SERIES[1]):
                steps[name]()
        samples: dict[str, list[float]] = {name: [] for name in SERIES}
        previous = steps[SERIES[2]]()[1]
        await emu.reset_counts()
        hits = 0
        for _ in range(runs):
            for name in SERIES:
                elapsed, out = steps[name]()
                samples[name].append(elapsed)
                if name == SERIES[1]:
                    hits += out == previous and bool(json.loads(out)["Secret"])
                elif name == SERIES[2]:
                    previous = out
        counts = await emu.counts()
    finally:
        await emu.close()
        shutil.rmtree(work, ignore_errors=True)
    summaries = {name: Summary.of(values) for name, values in samples.items()}
    ratio = _common.ratio(summaries[SERIES[1]].median, summaries[SERIES[0]].median)
    return {
        "runs": runs,
        "warmups": warmups,
        "series": {
            name: {"samples_s": samples[name], "summary_s": summaries[name].as_dict()}
            for name in SERIES
        },
        "ratio_warm_over_python": ratio,
        "target_ratio_max": TARGET_RATIO,
        "pass": ratio <= TARGET_RATIO,
        "requests": {"oidc": counts.oidc, "token": counts.token},
        "requests_ok": counts.oidc == runs and counts.token == runs,
        "warm_hits": hits,
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        [name, _common.ms_range(_summary(result["series"][name]["summary_s"]))] for name in SERIES
    ]
    ratio = result["ratio_warm_over_python"]
    requests = result["requests"]
    return (
        f"{result['runs']} runs of each (after {result['warmups']} warm-up rounds), in turns; "
        "median [min-max]\n\n"
        + _common.render_table(["process", "wall time"], rows)
        + f"\nwarm / python -c pass: {ratio:.2f}x (target <= {TARGET_RATIO:.0f}x): "
        f"{_common.verdict(result['pass'])}\n"
        f"emulator requests during the timed runs: {requests['oidc']} OIDC + "
        f"{requests['token']} Entra for {result['runs']} cold runs "
        f"({'as expected' if result['requests_ok'] else 'UNEXPECTED'}); warm runs that "
        f"printed the cached refresh token: {result['warm_hits']}/{result['runs']}\n"
    )


def _summary(summary: dict[str, float]) -> Summary:
    return Summary(median=summary["median"], minimum=summary["min"], maximum=summary["max"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 runs of each, 1 warm-up round")
    parser.add_argument("--runs", type=int, help="runs of each series (default 30; quick 10)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args(argv)
    runs = args.runs or (10 if args.quick else 30)
    warmups = 1 if args.quick else 3
    facts = _common.machine_facts()
    print(
        f"bench_docker_credential ({'quick' if args.quick else 'full'} mode)\n"
        f"{_common.render_machine_facts(facts)}",
        flush=True,
    )
    result = asyncio.run(benchmark(runs, warmups))
    print(render(result), flush=True)
    if args.json:
        _common.write_json(args.json, {"machine": facts, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())

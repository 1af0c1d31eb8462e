"""Wall time of one ``keyring get`` process answering a feed URL through azauth's backend.

pip's and uv's subprocess keyring providers run ``keyring get URL USER`` for each host they
authenticate to, so what matters is the whole process. Four series, run in turns (one of each
per round, so a noisy neighbour slows all alike):

- ``python -c pass`` with this interpreter: the floor;
- ``keyring get`` for a URL that is not a feed (pypi.org): keyring's own start-up, entry points
  included; azauth's backend declines after its stdlib checks and one read of the routing record;
- warm: ``keyring get`` for the feed's index URL with the routing record and the token in the
  shared cache; target: median <= 1.25 x the not-a-feed series;
- cold: the same with the cache directory removed before each run, against the emulator (a child
  process on 127.0.0.1, plain http): the profile is loaded, one OIDC and one Entra request.

Then, in one process (as ``pip --keyring-provider import`` calls it), the time per warm
``keyring.get_password`` call for the feed URL and for a URL that is not a feed.

Usage: ``python bench/bench_feeds.py [--quick] [--runs N] [--json FILE]``. Exit status 0 unless
the benchmark itself fails; a missed target is reported, not an error.
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

TARGET_RATIO = 1.25
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SC = "00000000-aaaa-bbbb-cccc-000000000001"
FEED = "https://pkgs.dev.azure.com/contoso/azauth/_packaging/shared"
INDEX = f"{FEED}/pypi/simple/"
SERIES = (
    "python -c pass",
    "keyring get, not a feed",
    "keyring get, feed (warm)",
    "keyring get, feed (cold)",
)
IN_PROCESS = f"""
import json, time, keyring
calls = 2000
result = {{}}
for name, url in (("feed (warm)", "{INDEX}"), ("not a feed", "https://pypi.org/simple/")):
    keyring.get_password(url, "u")
    start = time.perf_counter()
    for _ in range(calls):
        keyring.get_password(url, "u")
    result[name] = (time.perf_counter() - start) / calls * 1e6
print(json.dumps(result))
"""
PROFILE = f"""
[connections.artifacts]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
service_connection_id = "{SC}"

[profiles.ci]
connections = ["artifacts"]

[[profiles.ci.feeds]]
name = "shared"
url = "{FEED}"
"""


def keyring_script() -> str:
    candidate = Path(sys.executable).parent / "keyring"
    if not candidate.is_file():
        raise SystemExit("bench_feeds: keyring is not installed (pip install -e '.[test]')")
    return str(candidate)


def child_environment(emu: EmulatorProcess, work: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("AZAUTH_", "AZURE", "SYSTEM_", "ARM_", "KEYRING", "XDG_"))
        and name.upper()
        not in {"PYTHONDONTWRITEBYTECODE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
    }
    env.update(
        {
            "HOME": str(work / "home"),
            "AZAUTH_CONFIG": str(work / "azauth.toml"),
            "AZAUTH_CACHE_DIR": str(work / "cache"),
            "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            "SYSTEM_OIDCREQUESTURI": emu.oidc_request_uri,
            "SYSTEM_ACCESSTOKEN": emu.system_access_token,
            "AZURE_AUTHORITY_HOST": emu.authority,
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return env


def timed(
    command: Sequence[str], env: dict[str, str], cwd: Path, code: int = 0
) -> tuple[float, str]:
    """Run ``command``; return its wall time and stdout (raise unless it exits ``code``)."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != code:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr}")
    return elapsed, result.stdout


async def benchmark(runs: int, warmups: int) -> dict[str, Any]:
    emu = await EmulatorProcess.start(latency=0.0, tls=False)
    work = Path(tempfile.mkdtemp(prefix="azauth-bench-feeds-"))
    try:
        await emu.add_connection(SC, TENANT, CLIENT)
        (work / "home").mkdir()
        (work / "azauth.toml").write_text(PROFILE)
        env = child_environment(emu, work)
        cache = work / "cache"
        keyring = keyring_script()
        feed = [keyring, "get", INDEX, "VssSessionToken"]

        def cold() -> tuple[float, str]:
            shutil.rmtree(cache, ignore_errors=True)
            return timed(feed, env, work)

        steps = {
            SERIES[0]: lambda: timed([sys.executable, "-c", "pass"], env, work),
            SERIES[1]: lambda: timed(
                [keyring, "get", "https://pypi.org/simple/", "u"], env, work, 1
            ),
            SERIES[2]: lambda: timed(feed, env, work),
            SERIES[3]: cold,
        }
        for _ in range(warmups):
            for name in (SERIES[0], SERIES[3], SERIES[1], SERIES[2]):
                steps[name]()
        samples: dict[str, list[float]] = {name: [] for name in SERIES}
        previous = steps[SERIES[3]]()[1]
        await emu.reset_counts()
        hits = 0
        for _ in range(runs):
            for name in SERIES:
                elapsed, out = steps[name]()
                samples[name].append(elapsed)
                if name == SERIES[2]:
                    hits += out == previous and out.count(".") == 2
                elif name == SERIES[3]:
                    previous = out
        counts = await emu.counts()
        in_process = json.loads(timed([sys.executable, "-c", IN_PROCESS], env, work)[1])
    finally:
        await emu.close()
        shutil.rmtree(work, ignore_errors=True)
    summaries = {name: Summary.of(values) for name, values in samples.items()}
    ratio = _common.ratio(summaries[SERIES[2]].median, summaries[SERIES[1]].median)
    return {
        "runs": runs,
        "warmups": warmups,
        "series": {
            name: {"samples_s": samples[name], "summary_s": summaries[name].as_dict()}
            for name in SERIES
        },
        "ratio_warm_over_not_a_feed": ratio,
        "target_ratio_max": TARGET_RATIO,
        "pass": ratio <= TARGET_RATIO,
        "requests": {"oidc": counts.oidc, "token": counts.token},
        "requests_ok": counts.oidc == runs and counts.token == runs,
        "warm_hits": hits,
        "in_process_us_per_call": in_process,
    }


def render(result: dict[str, Any]) -> str:
    rows = []
    for name in SERIES:
        summary = result["series"][name]["summary_s"]
        rows.append(
            [name, _common.ms_range(Summary(summary["median"], summary["min"], summary["max"]))]
        )
    requests = result["requests"]
    return (
        f"{result['runs']} runs of each (after {result['warmups']} warm-up rounds), in turns; "
        "median [min-max]\n\n"
        + _common.render_table(["process", "wall time"], rows)
        + f"\nwarm / not a feed: {result['ratio_warm_over_not_a_feed']:.2f}x (target <= "
        f"{TARGET_RATIO}x): {_common.verdict(result['pass'])}\n"
        f"emulator requests during the timed runs: {requests['oidc']} OIDC + "
        f"{requests['token']} Entra for {result['runs']} cold runs "
        f"({'as expected' if result['requests_ok'] else 'UNEXPECTED'}); warm runs that "
        f"printed the cached token: {result['warm_hits']}/{result['runs']}\n"
        "in one process, per keyring.get_password call: "
        + ", ".join(f"{k} {v:.0f} us" for k, v in result["in_process_us_per_call"].items())
        + "\n"
    )


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
        f"bench_feeds ({'quick' if args.quick else 'full'} mode)\n"
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

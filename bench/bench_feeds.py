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

import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common
from _common import BASELINE, BASELINE_NAME, CLIENT, SC, TENANT, EmulatorProcess, timed

TARGET_RATIO = 1.25
FEED = "https://pkgs.dev.azure.com/contoso/azauth/_packaging/shared"
INDEX = f"{FEED}/pypi/simple/"
SERIES = (
    BASELINE_NAME,
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
    return _common.process_environment(
        emu,
        work,
        {"AZAUTH_CONFIG": str(work / "azauth.toml"), "AZURE_AUTHORITY_HOST": emu.authority},
        cleared_prefixes=("KEYRING", "XDG_"),
    )


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
            SERIES[0]: lambda: timed(BASELINE, env, work),
            SERIES[1]: lambda: timed(
                [keyring, "get", "https://pypi.org/simple/", "u"], env, work, code=1
            ),
            SERIES[2]: lambda: timed(feed, env, work),
            SERIES[3]: cold,
        }
        samples, hits, counts = await _common.measure(
            emu,
            steps,
            runs=runs,
            warmups=warmups,
            warmup_order=(SERIES[0], SERIES[3], SERIES[1], SERIES[2]),
            warm=SERIES[2],
            cold=SERIES[3],
            hit=lambda out, previous: out == previous and out.count(".") == 2,
        )
        in_process = json.loads(timed([sys.executable, "-c", IN_PROCESS], env, work)[1])
    finally:
        await emu.close()
        shutil.rmtree(work, ignore_errors=True)
    return {
        **_common.process_result(
            samples,
            counts,
            hits,
            runs=runs,
            warmups=warmups,
            ratio_key="ratio_warm_over_not_a_feed",
            numerator=SERIES[2],
            denominator=SERIES[1],
            target=TARGET_RATIO,
        ),
        "in_process_us_per_call": in_process,
    }


def render(result: dict[str, Any]) -> str:
    return (
        _common.runs_header(result)
        + _common.series_table(result["series"])
        + f"\nwarm / not a feed: {result['ratio_warm_over_not_a_feed']:.2f}x (target <= "
        f"{TARGET_RATIO}x): {_common.verdict(result['pass'])}\n"
        + _common.requests_line(result, "token")
        + "in one process, per keyring.get_password call: "
        + ", ".join(f"{k} {v:.0f} us" for k, v in result["in_process_us_per_call"].items())
        + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return _common.process_bench_main("bench_feeds", __doc__, argv, benchmark, render)


if __name__ == "__main__":
    sys.exit(main())

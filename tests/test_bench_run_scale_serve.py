"""The benchmarks of issue 15 run (quick modes) and count what they must count.

Times and ratios are the benchmarks' report, not assertions on a shared machine; the request
counts and the files written are deterministic, so they are asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_run_once_and_the_reference_make_the_same_80_requests(tmp_path):
    """bench_run.py: azauth (profile cache warm, and off) and the stdlib reference each make
    20 OIDC + 60 Entra requests and write the 60 files (checked by the script) over https with
    the full CA bundle."""
    out = tmp_path / "run.json"
    done = run_bench(
        "bench_run.py", "--quick", "--runs", "1", "--sides", "azauth,reference", "--no-watch",
        "--json", str(out),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    sides = json.loads(out.read_text())["sides"]
    assert set(sides) == {
        "azauth run --once",
        "azauth run --once, profile cache off",  # --sides names parts: "azauth" picks both
        "stdlib reference (asyncio + ssl)",
    }
    for figures in sides.values():
        assert (figures["oidc"], figures["token"]) == (20, 60)
        assert figures["startup_s"] is not None and figures["startup_s"] > 0
    assert "load average at the end" in done.stdout


def test_scale_bench_counts_both_sizes(tmp_path):
    """bench_scale.py: 50 x 3 is 200 requests, 200 x 10 is 2,200, and a ratio is printed."""
    out = tmp_path / "scale.json"
    done = run_bench("bench_scale.py", "--quick", "--json", str(out))

    assert done.returncode == 0, done.stderr[-3000:]
    sizes = json.loads(out.read_text())["sizes"]
    assert sizes["50 x 3"]["requests"] == 200
    assert sizes["200 x 10"]["requests"] == 2200
    assert "CPU per request, 200 x 10 / 50 x 3" in done.stdout


def test_serve_bench_compares_cpu_with_the_bare_handler(tmp_path):
    """bench_server.py (c): both servers answered every request; a ratio is printed."""
    out = tmp_path / "serve.json"
    done = run_bench("bench_server.py", "--quick", "--cpu-answers", "300", "--json", str(out))

    assert done.returncode == 0, done.stderr[-3000:]
    cpu = json.loads(out.read_text())["cpu_per_answer"]
    assert set(cpu["median_s"]) == {"azauth serve", "bare aiohttp handler"}
    assert "azauth / bare:" in done.stdout

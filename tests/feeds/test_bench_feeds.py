"""bench/bench_feeds.py runs, and its warm keyring calls are answered from the cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_feeds_quick(tmp_path):
    out = tmp_path / "feeds.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bench_feeds.py"),
            "--quick",
            "--runs",
            "3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["requests_ok"]  # one OIDC and one Entra request per cold run, none warm
    assert figures["warm_hits"] == 3
    assert set(figures["in_process_us_per_call"]) == {"feed (warm)", "not a feed"}

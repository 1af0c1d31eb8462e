"""bench/bench_startup.py runs and reports every series (times are the benchmark's business)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "bench_startup.py"


def test_one_round_reports_every_series_and_the_start_up(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "1", "--warmups", "1", "--json", str(figures)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(figures.read_text())
    assert set(result["median_s"]) == {
        "python -c pass",
        "azauth --help",
        "azauth validate",
        "azauth run --once",
        "validate, cache off",  # AZAUTH_PROFILE_CACHE=0: a job's first call
        "run --once, cache off",
    }
    # The first request arrives after the process started and before it ended.
    assert 0 < result["run_once_startup_s"] < result["median_s"]["azauth run --once"]
    assert 0 < result["run_once_cold_startup_s"] < result["median_s"]["run --once, cache off"]
    assert "start-up (spawn -> first request)" in done.stdout

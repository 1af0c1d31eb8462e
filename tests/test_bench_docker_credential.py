"""bench/bench_docker_credential.py runs, and its warm runs print the cached refresh token.

Times are not asserted (the benchmark reports them); request counts and cache hits are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "bench_docker_credential.py"


def test_quick_run_hits_the_cache_on_every_warm_call(tmp_path):
    out = tmp_path / "figures.json"

    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["warm_hits"] == 2
    assert figures["requests_ok"]
    assert "warm / python -c pass:" in result.stdout

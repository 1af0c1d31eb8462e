"""The OIDC request benchmark runs (quick mode) and its request counts are what they must be.

Times are the benchmark's report, not a test's; the counts are deterministic: every direct
request reaches Azure DevOps, and azauth's endpoint makes one fetch for all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "bench_oidc_request.py"


def test_quick_run_counts_upstream_requests(tmp_path):
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--latency", "0.01", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads(report.read_text())
    requests = figures["tools"] * figures["rounds"]
    assert figures["Azure DevOps directly"]["upstream"] == requests
    assert figures["azauth endpoint"]["upstream"] == 1
    assert figures["azauth endpoint"]["requests"] == requests
    assert "wall-time ratio" in result.stdout

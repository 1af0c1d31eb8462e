"""The watch-mode benchmark runs (quick mode) and steady state costs exactly the minimum.

Request counts are deterministic (FakeClock, no faults), so they are asserted; CPU is not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_one_simulated_hour_makes_one_request_per_token_per_renewal(tmp_path):
    out = tmp_path / "watch.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_watch.py"), "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())["results"]["A: 20 x 3 token files"]
    # 60 access tokens renewed once (at 3299 s) in the hour; one assertion per connection.
    assert figures["token_requests"] == 60
    assert figures["oidc_requests"] == 20
    assert figures["all_fresh_at_end"] == 1.0

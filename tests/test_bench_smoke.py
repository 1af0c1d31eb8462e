"""The credential benchmark runs (quick mode) and azauth makes exactly the requests it should.

Times are not asserted (they belong to the benchmark's report, not to a test on a shared
machine); request counts are deterministic, so they are.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "bench_credential.py"
# A table row: label, then "TOTAL (OIDC+TOKEN)".
ROW = re.compile(r"^\s+(?P<label>\S.*?)\s{2,}(?P<total>\d+) \((?P<oidc>\d+)\+(?P<token>\d+)\)\s")


def sections(stdout: str) -> dict[str, str]:
    """Split the report at its scenario headings: "(a) ...", "(b) ...", "(c) ..."."""
    found: dict[str, str] = {}
    key = None
    for line in stdout.splitlines():
        heading = re.match(r"^\((\w)\) ", line)
        if heading:
            key = heading.group(1)
            found[key] = ""
        elif line.startswith("summary"):
            key = None
        elif key is not None:
            found[key] += line + "\n"
    return found


def request_rows(section: str) -> dict[str, tuple[int, int, int]]:
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            rows[match["label"]] = (int(match["total"]), int(match["oidc"]), int(match["token"]))
    return rows


class TestBenchCredentialQuick:
    def test_quick_run_exits_0_and_azauth_needs_2_then_40_requests(self, tmp_path):
        """--quick completes; azauth's counts are 2 (1+1) for (a) and 40 (10+30) for (b)."""
        figures = tmp_path / "figures.json"

        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--quick", "--json", str(figures)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )

        assert done.returncode == 0, done.stderr
        report = sections(done.stdout)
        assert set(report) == {"a", "b", "c"}
        a_rows = request_rows(report["a"])
        b_rows = request_rows(report["b"])
        assert a_rows["azauth"] == (2, 1, 1)
        assert b_rows["azauth"] == (40, 10, 30)
        assert b_rows["azauth, shared session"] == (40, 10, 30)
        assert "azure-identity" in a_rows
        assert "azure-identity" in b_rows
        dumped = json.loads(figures.read_text(encoding="utf-8"))
        assert dumped["mode"] == "quick"
        assert dumped["a"]["sides"]["azauth"]["requests"] == [{"oidc": 1, "token": 1}]
        assert dumped["b"]["sides"]["azauth"]["requests"] == [{"oidc": 10, "token": 30}]
        assert dumped["a"]["pass"]["requests"] is True
        assert dumped["b"]["pass"]["requests"] is True

"""Wall time of one ``azauth token`` process: warm (cache hit) and cold, next to ``python -c pass``.

kubectl and git start the credential process once per invocation, so what matters is the whole
process: interpreter start-up, imports, the cache read, the output. Three series, run in turns
(one of each per round, so a noisy neighbour slows all three alike):

- ``python -c pass`` with this interpreter (``sys.executable``): the floor;
- warm: the installed console script (``azauth`` next to ``sys.executable``) finding a valid
  token in the on-disk cache; target: median <= 2 x the floor (issue 15);
- cold: the same command with the cache directory removed before each run, against the
  emulator (a child process on 127.0.0.1, plain http): one OIDC and one Entra request each.

Bytecode: ``PYTHONDONTWRITEBYTECODE`` is dropped and ``PYTHONPYCACHEPREFIX`` points at a
temporary directory, so the children run from cached bytecode as an installed package does
(and the work tree gets no ``__pycache__``). Warm-up runs fill that cache.

Usage: ``python bench/bench_token.py [--quick] [--runs N] [--json FILE]``. Exit status 0 unless
the benchmark itself fails; a missed target is reported, not an error.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _common
from _common import BASELINE, BASELINE_NAME, CLIENT, SC, TENANT, EmulatorProcess, timed

TARGET_RATIO = 2.0
SERIES = (BASELINE_NAME, "azauth token (warm)", "azauth token (cold)")


def child_environment(emu: EmulatorProcess, work: Path) -> dict[str, str]:
    """The environment of every measured process: a pipeline step of the emulator's job."""
    return _common.process_environment(
        emu,
        work,
        {
            "AZURE_AUTHORITY_HOST": emu.authority,
            "AZURESUBSCRIPTION_TENANT_ID": TENANT,
            "AZURESUBSCRIPTION_CLIENT_ID": CLIENT,
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": SC,
        },
        cleared_prefixes=("KUBERNETES_",),
    )


async def benchmark(runs: int, warmups: int) -> dict[str, Any]:
    emu = await EmulatorProcess.start(latency=0.0, tls=False)
    work = Path(tempfile.mkdtemp(prefix="azauth-bench-token-"))
    try:
        await emu.add_connection(SC, TENANT, CLIENT)
        (work / "home").mkdir()
        env = child_environment(emu, work)
        token = [str(_common.installed_script("azauth", "bench_token")), "token"]
        return await _common.warm_and_cold(
            emu,
            runs=runs,
            warmups=warmups,
            series=SERIES,
            floor=lambda: timed(BASELINE, env, work),
            warm=lambda: timed(token, env, work),
            cache=work / "cache",
            hit=lambda out, previous: out == previous and out.count(".") == 2,
            target=TARGET_RATIO,
        )
    finally:
        await emu.close()
        shutil.rmtree(work, ignore_errors=True)


def render(result: dict[str, Any]) -> str:
    return _common.render_warm_and_cold(result, "token")


def main(argv: Sequence[str] | None = None) -> int:
    return _common.process_bench_main("bench_token", __doc__, argv, benchmark, render)


if __name__ == "__main__":
    sys.exit(main())

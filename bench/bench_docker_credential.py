"""Wall time of one ``docker-credential-azauth get``: warm and cold, next to ``python -c pass``.

skopeo, podman, buildah and the Docker CLI start the credential helper for every registry
operation, so what matters is the whole process. Three series, run in turns:

- ``python -c pass`` with this interpreter (``sys.executable``): the floor;
- warm: the installed helper finding a fresh ACR refresh token in the on-disk cache;
  target: median <= 3 x the floor;
- cold: the same with the cache directory removed before each run, against the emulator (a
  child process on 127.0.0.1 over TLS): one OIDC, one Entra and one ``/oauth2/exchange``
  request each.

Bytecode runs from a private ``PYTHONPYCACHEPREFIX`` filled by warm-up runs, as in
``bench_token.py``.

Usage: ``python bench/bench_docker_credential.py [--quick] [--runs N] [--json FILE]``. Exit
status 0 unless the benchmark itself fails; a missed target is reported, not an error.
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
from _common import BASELINE, BASELINE_NAME, CLIENT, SC, TENANT, EmulatorProcess

TARGET_RATIO = 3.0
SERIES = (BASELINE_NAME, "helper get (warm)", "helper get (cold)")


def child_environment(emu: EmulatorProcess, work: Path, config: Path) -> dict[str, str]:
    assert emu.ca_file is not None
    return _common.process_environment(
        emu, work, {"AZAUTH_CONFIG": str(config), "SSL_CERT_FILE": emu.ca_file}
    )


def timed(command: Sequence[str], env: dict[str, str], cwd: Path, stdin: str) -> tuple[float, str]:
    # The helper reports errors on stdout (the credential-helper protocol).
    return _common.timed(command, env, cwd, stdin=stdin, error_output="stdout")


async def benchmark(runs: int, warmups: int) -> dict[str, Any]:
    emu = await EmulatorProcess.start(latency=0.0, tls=True)
    work = Path(tempfile.mkdtemp(prefix="azauth-bench-docker-"))
    try:
        await emu.add_connection(SC, TENANT, CLIENT)
        (work / "home").mkdir()
        registry = emu.url.removeprefix("https://")
        config = work / "azauth.toml"
        config.write_text(
            f'[connections.acr]\ntenant_id = "{TENANT}"\nclient_id = "{CLIENT}"\n'
            f'service_connection_id = "{SC}"\nauthority = "{emu.authority}"\n'
            f'[profiles.ci]\nconnections = ["acr"]\n'
            f'[profiles.ci.registries."{registry}"]\nconnection = "acr"\n',
            encoding="utf-8",
        )
        env = child_environment(emu, work, config)
        script = _common.installed_script("docker-credential-azauth", "bench_docker_credential")
        helper = [str(script), "get"]
        return await _common.warm_and_cold(
            emu,
            runs=runs,
            warmups=warmups,
            series=SERIES,
            floor=lambda: timed(BASELINE, env, work, ""),
            warm=lambda: timed(helper, env, work, registry),
            cache=work / "cache",
            hit=lambda out, previous: out == previous and bool(json.loads(out)["Secret"]),
            target=TARGET_RATIO,
        )
    finally:
        await emu.close()
        shutil.rmtree(work, ignore_errors=True)


def render(result: dict[str, Any]) -> str:
    return _common.render_warm_and_cold(result, "refresh token")


def main(argv: Sequence[str] | None = None) -> int:
    return _common.process_bench_main("bench_docker_credential", __doc__, argv, benchmark, render)


if __name__ == "__main__":
    sys.exit(main())

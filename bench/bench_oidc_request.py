"""The OIDC request endpoint vs. Azure DevOps directly: what tools in the request flow cost.

Terraform, Pulumi and ``AzurePipelinesCredential`` fetch a fresh OIDC token before each exchange
with Entra. Without azauth they call Azure DevOps' ``oidctoken`` endpoint with the
System.AccessToken; with azauth they call the local endpoint with its per-run secret, which
reuses one Azure DevOps token while it has a minute left (single-flight).

Setup (one process, one event loop): the emulator with ``--latency`` seconds per answer (Azure
DevOps' own latency; default 0.05) and the azauth token server, both on 127.0.0.1; ``TOOLS``
concurrent clients each make ``ROUNDS`` sequential OIDC requests, in the Azure DevOps shape
(POST ``?api-version=7.1&serviceConnectionId=…``), first straight to the emulated Azure DevOps,
then to azauth. Reported: wall time, p50/p99 latency, requests that reached Azure DevOps.

Usage: ``python bench/bench_oidc_request.py [--quick] [--latency SECONDS] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import CLIENT, SC, TENANT

from agent.config import Connection
from agent.logs import configure_logging
from agent.testing.emulator import Emulator
from agent.tokenserver.server import TokenServer


async def drive(url: str, bearer: str, tools: int, rounds: int) -> dict[str, Any]:
    params = {"api-version": "7.1", "serviceConnectionId": SC}
    headers = {"Authorization": f"Bearer {bearer}", "X-TFS-FedAuthRedirect": "Suppress"}
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:

        async def tool() -> None:
            for _ in range(rounds):
                start = time.perf_counter()
                async with session.post(url, params=params, headers=headers) as response:
                    body = await response.json()
                latencies.append(time.perf_counter() - start)
                if response.status != 200 or "oidcToken" not in body:
                    raise RuntimeError(f"status {response.status}: {body}")

        start = time.perf_counter()
        await asyncio.gather(*(tool() for _ in range(tools)))
        wall = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "wall_s": wall,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="10 tools x 5 rounds (default 50 x 20)"
    )
    parser.add_argument("--latency", type=float, default=0.05, help="Azure DevOps latency, s")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    tools, rounds = (10, 5) if args.quick else (50, 20)
    configure_logging(level="warning")

    emu = Emulator(latency=args.latency)
    await emu.start()
    emu.add_connection(SC, TENANT, CLIENT)
    env = {
        "SYSTEM_OIDCREQUESTURI": emu.oidc_request_uri,
        "SYSTEM_ACCESSTOKEN": emu.system_access_token,
        "AZURE_AUTHORITY_HOST": emu.authority,
    }
    connection = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC)
    results: dict[str, Any] = {}
    try:
        direct = await drive(emu.oidc_request_uri, emu.system_access_token, tools, rounds)
        direct["upstream"] = emu.counts["oidc"]
        results["Azure DevOps directly"] = direct
        emu.reset_counts()
        async with TokenServer({"prod": connection}, env=env) as server:
            served = await drive(server.oidc_request_url, server.oidc_request_token, tools, rounds)
        served["upstream"] = emu.counts["oidc"]
        results["azauth endpoint"] = served
    finally:
        await emu.close()

    print(f"{tools} tools x {rounds} OIDC requests each; Azure DevOps latency {args.latency} s")
    print(f"{'scenario':<24}{'requests':>9}{'wall':>10}{'p50':>10}{'p99':>10}{'upstream':>10}")
    for name, row in results.items():
        print(
            f"{name:<24}{row['requests']:>9}{row['wall_s']:>9.2f}s{row['p50_ms']:>8.1f}ms"
            f"{row['p99_ms']:>8.1f}ms{row['upstream']:>10}"
        )
    ratio = results["Azure DevOps directly"]["wall_s"] / results["azauth endpoint"]["wall_s"]
    print(f"wall-time ratio direct/azauth: {ratio:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"tools": tools, "rounds": rounds, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""azure-identity doing the job of `azauth run --once`: the peers of ``bench/bench_run.py``.

The same job file and environment as ``bench/reference_run.py``; each token is written with its
``write_private`` (0600 temporary file, fsync, rename, directory fsync), so only the way tokens
are acquired differs. ``AzurePipelinesCredential`` reads ``SYSTEM_OIDCREQUESTURI``; the
authority comes from ``AZURE_AUTHORITY_HOST`` and the trust store from ``REQUESTS_CA_BUNDLE`` /
``SSL_CERT_FILE``, as in a pipeline job.

Modes:
  aio-gather      azure.identity.aio, one credential per connection, every get_token in one
                  asyncio.gather (what an async tool fetching all its tokens at once does);
  aio-sequential  the same credentials, one get_token after another;
  sync            azure.identity (sync), one credential per connection, one call after another.

Each get_token makes its own OIDC request (azure-identity does not share one between scopes):
N x S OIDC + N x S Entra requests.

Usage: python bench/peer_run.py MODE JOB.json
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from reference_run import write_private


def credential_arguments(job: dict) -> dict[str, str]:
    return {
        "tenant_id": job["tenant_id"],
        "client_id": job["client_id"],
        "service_connection_id": job["service_connection_id"],
        "system_access_token": os.environ["SYSTEM_ACCESSTOKEN"],
    }


async def run_aio(jobs: list[dict], *, gather: bool) -> None:
    from azure.identity.aio import AzurePipelinesCredential  # noqa: PLC0415

    credentials = [AzurePipelinesCredential(**credential_arguments(job)) for job in jobs]

    async def one(credential: AzurePipelinesCredential, output: dict) -> None:
        token = await credential.get_token(output["scope"])
        await asyncio.to_thread(write_private, output["path"], token.token.encode())

    calls = [(c, o) for c, job in zip(credentials, jobs, strict=True) for o in job["outputs"]]
    try:
        if gather:
            await asyncio.gather(*(one(c, o) for c, o in calls))
        else:
            for credential, output in calls:
                await one(credential, output)
    finally:
        for credential in credentials:
            await credential.close()


def run_sync(jobs: list[dict]) -> None:
    from azure.identity import AzurePipelinesCredential  # noqa: PLC0415

    for job in jobs:
        credential = AzurePipelinesCredential(**credential_arguments(job))
        for output in job["outputs"]:
            write_private(output["path"], credential.get_token(output["scope"]).token.encode())
        credential.close()


def main(mode: str, job_file: str) -> int:
    logging.disable(logging.INFO)  # azure-identity logs every call at INFO
    with open(job_file, encoding="utf-8") as handle:
        jobs = json.load(handle)
    if mode == "aio-gather":
        asyncio.run(run_aio(jobs, gather=True))
    elif mode == "aio-sequential":
        asyncio.run(run_aio(jobs, gather=False))
    elif mode == "sync":
        run_sync(jobs)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

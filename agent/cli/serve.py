"""``azauth serve``: serve a profile's tokens over the managed-identity protocols until stopped.

stdout carries exactly one line, ``export IDENTITY_ENDPOINT='…' IDENTITY_HEADER='…' …``, written
once the server listens, so a script can read one line and ``eval`` it. Logs go to stderr.
SIGTERM and SIGINT stop the server (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import TYPE_CHECKING

from agent.cli import numbers
from agent.cli.run import add_logging_arguments, configure_logging_from_args, start_emulator
from agent.cli.validate import add_config_argument
from agent.exceptions import ExitCode

if TYPE_CHECKING:
    from agent.config import ResolvedProfile

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the profile's tokens to local programs as a managed-identity endpoint",
        description=(
            "Serve the profile's tokens on loopback over the App Service managed-identity "
            "protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER, and the legacy MSI_ENDPOINT + "
            "MSI_SECRET) and, with --imds, the IMDS shape Terraform uses with ARM_USE_MSI. "
            "Prints one `export ...` line on stdout, then serves until SIGTERM or SIGINT. "
            "Tokens are minted on demand and cached: clients get fresh tokens for as long as "
            "the job runs, and never see the OIDC token."
        ),
    )
    add_config_argument(parser)
    parser.add_argument("--profile", metavar="NAME", help="the profile (default: AZAUTH_PROFILE)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to listen on: 127.0.0.1 (default), ::1 or localhost",
    )
    parser.add_argument(
        "--port", type=numbers.port, default=0, help="port (default 0: any free port)"
    )
    parser.add_argument(
        "--imds",
        action="store_true",
        help=(
            "also serve the IMDS shape and export ARM_USE_MSI/ARM_MSI_ENDPOINT; it has no "
            "secret, so any local process can get tokens from it"
        ),
    )
    parser.add_argument(
        "--connection",
        metavar="NAME",
        help="the connection used by requests that name none (default: the only connection)",
    )
    parser.add_argument(
        "--max-requests",
        type=numbers.count(1, 65536),
        default=None,
        metavar="N",
        help="requests handled at once; more are answered 429 (default 128)",
    )
    parser.add_argument(
        "--emulate",
        action="store_true",
        help="mint tokens from the built-in emulator of Azure DevOps and Entra (azauth[emulator])",
    )
    add_logging_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``azauth serve``."""
    from agent.config import load_config  # noqa: PLC0415 - keep --help fast
    from agent.server import check_loopback_host  # noqa: PLC0415

    check_loopback_host(args.host)
    loaded = load_config(args.config, settings_overrides={"log_format": args.log_format})
    profile = loaded.profile(args.profile)
    configure_logging_from_args(args, profile.settings)
    return asyncio.run(_serve(args, profile))


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows event loops
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))


async def _serve(args: argparse.Namespace, profile: ResolvedProfile) -> int:
    from agent.logs import get_logger  # noqa: PLC0415
    from agent.mi_protocol import render_export_line  # noqa: PLC0415
    from agent.server import DEFAULT_MAX_CONCURRENCY, serve_profile  # noqa: PLC0415

    log = get_logger("agent.cli.serve")
    stop = asyncio.Event()
    _install_stop(stop)
    env: dict[str, str] = dict(os.environ)
    emulator = await start_emulator(profile, env) if args.emulate else None
    try:
        async with serve_profile(
            profile,
            env=env,
            host=args.host,
            port=args.port,
            imds=args.imds,
            default_connection=args.connection,
            max_concurrency=(
                DEFAULT_MAX_CONCURRENCY if args.max_requests is None else args.max_requests
            ),
        ) as server:
            sys.stdout.write(render_export_line(server.env))
            sys.stdout.flush()
            log.info(
                "serving",
                profile=profile.name,
                url=server.url,
                connections=list(profile.connections),
                imds=args.imds,
                emulated=emulator is not None,
            )
            await stop.wait()
    finally:
        if emulator is not None:
            await emulator.close()
    log.info("stopped")
    return int(ExitCode.OK)

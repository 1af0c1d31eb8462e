"""``azauth serve``: serve a profile's tokens over the managed-identity protocols until stopped.

stdout carries exactly one line, ``export IDENTITY_ENDPOINT='…' IDENTITY_HEADER='…' …``, written
once the server listens, so a script can read one line and ``eval`` it. Logs go to stderr.
SIGTERM and SIGINT stop the server (exit 0), and so does ``--max-lifetime``.

``--background`` starts it detached for the rest of the job and prints ``##vso`` variables
instead; ``--stop`` ends it (see :mod:`agent.tokenserver.background`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli import numbers
from agent.cli.options import (
    add_logging_arguments,
    add_profile_arguments,
    choose_connection_flag,
    configure_logging_from_args,
    install_stop_signals,
    start_emulator,
)
from agent.exceptions import ExitCode, UsageError

if TYPE_CHECKING:
    from agent.config import ResolvedProfile
    from agent.tokenserver.server import TokenServer

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
    add_profile_arguments(
        parser,
        connection_help="the connection used by requests that name none (default: the only one)",
    )
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
    parser.add_argument(
        "--preset",
        action="append",
        choices=("terraform", "pulumi"),
        help=(
            "also export this consumer's OIDC request-flow variables (ARM_OIDC_REQUEST_URL, "
            "ARM_OIDC_REQUEST_TOKEN, ...) for --connection; repeatable"
        ),
    )
    parser.add_argument(
        "--oidc-audience",
        action="append",
        metavar="AUDIENCE",
        help=(
            "an audience the OIDC request endpoint also accepts besides "
            "api://AzureADTokenExchange (the token is Azure DevOps' either way); repeatable"
        ),
    )
    lifetime = parser.add_mutually_exclusive_group()
    lifetime.add_argument(
        "--background",
        action="store_true",
        help=(
            "start the server detached for the rest of the job (or reuse the one running), "
            "print its variables as ##vso logging commands, secrets with issecret=true, and exit"
        ),
    )
    lifetime.add_argument(
        "--stop",
        action="store_true",
        help="stop the background server of this profile and remove its state file",
    )
    parser.add_argument(
        "--state-file",
        metavar="PATH",
        help=(
            "the background server's state file (default: "
            "$AGENT_TEMPDIRECTORY/azauth/serve-<profile>.json)"
        ),
    )
    parser.add_argument(
        "--max-lifetime",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds (default with --background: 21600, six hours)",
    )
    add_logging_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``azauth serve``."""
    from agent.config import load_config  # noqa: PLC0415 - keep --help fast
    from agent.tokenserver.server import check_loopback_host  # noqa: PLC0415

    try:
        check_loopback_host(args.host)
    except UsageError as exc:
        raise UsageError(f"--host {exc}") from None
    if args.max_lifetime is not None and args.max_lifetime <= 0:
        raise UsageError("--max-lifetime must be a positive number of seconds")
    if args.state_file:
        args.state_file = str(Path(args.state_file).resolve())
    loaded = load_config(args.config, settings_overrides={"log_format": args.log_format})
    profile = loaded.profile(args.profile)
    if args.connection is not None or args.preset:
        _connection(args, profile)  # refused in terms of the flags, before anything starts
    configure_logging_from_args(args, profile.settings)
    if args.stop or args.background:
        return _detached(args, profile, str(loaded.source.resolve()) if loaded.source else None)
    return asyncio.run(_serve(args, profile))


def _state_path(args: argparse.Namespace, profile: ResolvedProfile) -> Path:
    from agent.tokenserver.background import default_state_file  # noqa: PLC0415

    if args.state_file:
        return Path(args.state_file)
    return default_state_file(os.environ, profile.name)


def _detached(args: argparse.Namespace, profile: ResolvedProfile, config: str | None) -> int:
    """``--background`` and ``--stop``."""
    from agent.tokenserver.background import (  # noqa: PLC0415
        DEFAULT_MAX_LIFETIME,
        check_private_directory,
        find_running,
        render_variables,
        start_background,
        stop_server,
    )

    path = _state_path(args, profile)
    try:
        check_private_directory(path.parent)
    except UsageError as exc:
        raise UsageError(f"{exc} (choose another with --state-file)") from None
    if args.stop:
        stopped = stop_server(path)
        message = f"stopped (pid {stopped.pid})" if stopped else "no server was running"
        sys.stderr.write(f"azauth: serve: {message}; state file {path} removed\n")
        return int(ExitCode.OK)
    state = find_running(path)
    if state is None:
        child = _child_arguments(args, config, args.max_lifetime or DEFAULT_MAX_LIFETIME)
        state = start_background(child, path)
        what = f"started (pid {state.pid})"
    else:
        what = f"already running (pid {state.pid}), reused"
    sys.stdout.write(render_variables(state.variables))
    sys.stdout.flush()
    sys.stderr.write(f"azauth: serve: {what} at {state.url}; stop it with azauth serve --stop\n")
    return int(ExitCode.OK)


def _child_arguments(args: argparse.Namespace, config: str | None, lifetime: float) -> list[str]:
    """The options of the detached ``azauth serve`` (the same server, in the foreground)."""
    child = ["--host", args.host, "--port", str(args.port), "--max-lifetime", str(lifetime)]
    if config is not None:
        child += ["--config", config]
    if args.profile:
        child += ["--profile", args.profile]
    if args.connection:
        child += ["--connection", args.connection]
    if args.max_requests is not None:
        child += ["--max-requests", str(args.max_requests)]
    for preset in args.preset or ():
        child += ["--preset", preset]
    for audience in args.oidc_audience or ():
        child += ["--oidc-audience", audience]
    if args.imds:
        child.append("--imds")
    if args.emulate:
        child.append("--emulate")
    child += ["--log-format", "json"]
    return child


def _preset_variables(
    args: argparse.Namespace, profile: ResolvedProfile, server: TokenServer, env: dict[str, str]
) -> dict[str, str]:
    """The request-flow variables of ``--preset`` for ``--connection`` (or the only one)."""
    if not args.preset:
        return {}
    from agent.outputs.presets import RequestFlow  # noqa: PLC0415
    from agent.supervisor import preset_environment  # noqa: PLC0415

    connection = _connection(args, profile)
    flow = RequestFlow(server.oidc_request_url, server.oidc_request_token)
    presets = tuple(dict.fromkeys(args.preset))
    return preset_environment(profile, connection, presets, "", env, request_flow=flow)


def _record(
    path: Path,
    profile: ResolvedProfile,
    url: str,
    variables: dict[str, str],
    lifetime: float | None,
) -> None:
    import time  # noqa: PLC0415

    from agent.tokenserver.background import ServerState, write_state  # noqa: PLC0415

    now = time.time()
    deadline = now + lifetime if lifetime is not None else 0.0
    write_state(path, ServerState(os.getpid(), url, profile.name, now, deadline, variables))


def _connection(args: argparse.Namespace, profile: ResolvedProfile) -> str:
    """``--connection``, or the only connection (the one ``--preset`` variables describe)."""
    return choose_connection_flag(
        profile,
        args.connection,
        several="choose the one the --preset variables describe with --connection NAME",
    )


async def _serve(args: argparse.Namespace, profile: ResolvedProfile) -> int:
    from agent.logs import get_logger  # noqa: PLC0415
    from agent.tokenserver.managed_identity import render_export_line  # noqa: PLC0415
    from agent.tokenserver.server import DEFAULT_MAX_CONCURRENCY, serve_profile  # noqa: PLC0415

    log = get_logger("agent.cli.serve")
    stop = asyncio.Event()
    install_stop_signals(stop)
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
            oidc_audiences=tuple(args.oidc_audience or ()),
        ) as server:
            variables = {**server.env, **_preset_variables(args, profile, server, env)}
            if args.state_file:
                _record(Path(args.state_file), profile, server.url, variables, args.max_lifetime)
            sys.stdout.write(render_export_line(variables))
            sys.stdout.flush()
            log.info(
                "serving",
                profile=profile.name,
                url=server.url,
                connections=list(profile.connections),
                imds=args.imds,
                emulated=emulator is not None,
            )
            try:
                await asyncio.wait_for(stop.wait(), args.max_lifetime)
            except TimeoutError:
                log.info("max_lifetime_reached", seconds=args.max_lifetime)
    finally:
        if args.state_file:
            from agent.tokenserver.background import remove_state  # noqa: PLC0415

            remove_state(Path(args.state_file), os.getpid())
        if emulator is not None:
            await emulator.close()
    log.info("stopped")
    return int(ExitCode.OK)

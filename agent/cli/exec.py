"""``azauth exec``: run a command with a profile's credentials, kept fresh while it runs.

The supervision (files, signals, exit status) is :mod:`agent.supervisor`; this module turns the
command line into an :class:`agent.supervisor.ExecRequest`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING

from agent.cli.options import (
    add_logging_arguments,
    add_profile_arguments,
    add_refresh_margin_argument,
    choose_connection_flag,
    configure_logging_from_args,
    start_emulator,
)
from agent.exceptions import AuthenticationError, UsageError

if TYPE_CHECKING:
    from agent.config import LoadedConfig, ResolvedProfile
    from agent.supervisor import EnvProvider, ExecContext, ExecOutcome

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``exec`` command."""
    from agent.outputs.presets import PRESETS  # noqa: PLC0415 - light, but only when registering

    parser = subparsers.add_parser(
        "exec",
        help="run a command with a profile's credentials, kept fresh while it runs",
        usage="azauth exec [OPTIONS] -- COMMAND [ARGS...]",
        description=(
            "Deliver the profile, then run COMMAND with preset variables (default: "
            "azure-identity) pointing at a federated token file in a private temporary "
            "directory. Every file is kept fresh while COMMAND runs; SIGINT, SIGTERM and SIGHUP "
            "are forwarded to it; azauth exits with its exit status (128+N when it dies of "
            "signal N, 127 when it is not found, 126 when it cannot be executed) and removes "
            "the temporary files. The command is not started when a token cannot be delivered "
            "(exit status 3 to 6)."
        ),
    )
    add_profile_arguments(
        parser,
        connection_help="the connection the preset variables describe (default: the only one)",
    )
    presets = parser.add_mutually_exclusive_group()
    presets.add_argument(
        "--preset",
        action="append",
        choices=PRESETS,
        help="variables to set for COMMAND; repeatable (default: azure-identity)",
    )
    presets.add_argument(
        "--no-preset",
        action="store_true",
        help="set no preset variable (the profile's outputs are still delivered)",
    )
    parser.add_argument(
        "--no-outputs",
        action="store_true",
        help="do not write the profile's own outputs, only the temporary federated token file",
    )
    parser.add_argument(
        "--clear-env",
        action="store_true",
        help=(
            "remove ambient Azure credential variables that would compete with the preset "
            "(AZURE_CLIENT_SECRET, ARM_CLIENT_SECRET, ARM_USE_MSI, IDENTITY_ENDPOINT, ...)"
        ),
    )
    parser.add_argument(
        "--keep-system-token",
        action="store_true",
        help="pass the system access token variable to COMMAND (removed by default)",
    )
    parser.add_argument(
        "--allow-nested",
        action="store_true",
        help="run even inside another azauth exec (AZAUTH_EXEC_PROFILE is set)",
    )
    parser.add_argument(
        "--emulate",
        action="store_true",
        help="run against the built-in emulator of Azure DevOps and Entra (needs azauth[emulator])",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help=(
            "also run the managed-identity token server for COMMAND's life and give it "
            "IDENTITY_ENDPOINT, IDENTITY_HEADER, MSI_ENDPOINT and MSI_SECRET"
        ),
    )
    parser.add_argument(
        "--az-login",
        action="store_true",
        help=(
            "sign the Azure CLI in to every connection through the token server (implies "
            "--serve): az login --identity in a private AZURE_CONFIG_DIR, removed afterwards"
        ),
    )
    parser.add_argument(
        "--imds",
        action="store_true",
        help="with --serve: also the IMDS endpoint, as ARM_USE_MSI and ARM_MSI_ENDPOINT",
    )
    parser.add_argument(
        "--registry",
        action="append",
        metavar="HOST",
        help=(
            "give COMMAND a private DOCKER_CONFIG and REGISTRY_AUTH_FILE holding this container "
            "registry's ACR refresh token, kept fresh; repeatable (from the profile's registries)"
        ),
    )
    parser.add_argument(
        "--feeds",
        action="store_true",
        help=(
            "also configure the profile's Azure Artifacts feeds for COMMAND, privately: the "
            "keyring backend (pip, uv, twine), an npmrc (NPM_CONFIG_USERCONFIG), and NuGet and "
            "uv variables"
        ),
    )
    parser.add_argument(
        "--remove-on-exit",
        action="store_true",
        default=None,
        help="also delete the profile's outputs when COMMAND exits",
    )
    add_refresh_margin_argument(parser)
    add_logging_arguments(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run COMMAND under supervision; return its exit code (:func:`agent.supervisor.supervise`)."""
    from agent.supervisor import NESTING_VARIABLE, nested_profile  # noqa: PLC0415 - keep --help fast

    outer = nested_profile(os.environ)
    if outer and not args.allow_nested:
        raise UsageError(
            f"already inside `azauth exec` (profile {outer!r}, {NESTING_VARIABLE} is set); "
            "run the command directly, or pass --allow-nested"
        )
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command given: azauth exec [OPTIONS] -- COMMAND [ARGS...]")
    loaded, profile = _load(args)
    # The command's output is the product: azauth says only warnings unless asked (-v).
    settings = SimpleNamespace(log_level="warning", log_format=profile.settings.log_format)
    configure_logging_from_args(args, settings)
    return asyncio.run(_main(args, command, loaded, profile))


def _load(args: argparse.Namespace) -> tuple[LoadedConfig, ResolvedProfile]:
    from agent.config import load_config  # noqa: PLC0415 - keep --help fast

    overrides = {
        "remove_on_exit": args.remove_on_exit,
        "refresh_margin": args.refresh_margin,
        "log_format": args.log_format,
    }
    loaded = load_config(args.config, settings_overrides=overrides)
    return loaded, loaded.profile(args.profile)


async def _main(
    args: argparse.Namespace, command: list[str], loaded: LoadedConfig, profile: ResolvedProfile
) -> int:
    from agent.supervisor import DEFAULT_PRESETS, ExecRequest, supervise  # noqa: PLC0415

    az_login = args.az_login or profile.az_login
    presets: tuple[str, ...] = ()
    if not args.no_preset:
        presets = tuple(dict.fromkeys(args.preset or DEFAULT_PRESETS))
    if presets or args.connection is not None:
        # Refused here, in terms of the flags, before anything is started.
        choose_connection_flag(
            profile,
            args.connection,
            several="choose the one the preset variables describe with --connection NAME, "
            "or pass --no-preset",
        )
    request = ExecRequest(
        command=command,
        connection=args.connection,
        presets=presets,
        outputs=not args.no_outputs,
        clear_env=args.clear_env,
        keep_system_token=args.keep_system_token,
        config_file=str(loaded.source.resolve()) if loaded.source is not None else None,
        quiet=args.quiet,
        providers=(
            (_token_server(profile, imds=args.imds, az_login=az_login),)
            if args.serve or az_login
            else ()
        ),
    )
    env: dict[str, str] = dict(os.environ)
    registries = None
    if args.registry:
        from agent.registries.exec_env import registry_setup  # noqa: PLC0415

        try:
            registries = registry_setup(profile, args.registry, env, outputs=not args.no_outputs)
        except UsageError as exc:
            # The library's messages start with "registry": name the flag, add the advice.
            advice = (
                "; run one azauth exec per connection" if str(exc).startswith("registry:") else ""
            )
            raise UsageError(f"--{exc}{advice}") from None
        profile = registries.profile
        request = dataclasses.replace(
            request, outputs=True, providers=(*request.providers, registries.provider)
        )
    feeds = None
    if args.feeds:
        from agent.feeds.execenv import prepare  # noqa: PLC0415 - only with --feeds

        feeds = prepare(profile, env, outputs=request.outputs)
        profile = feeds.profile
        request = dataclasses.replace(
            request, outputs=True, providers=(*request.providers, feeds.provide)
        )
    emulator = await start_emulator(profile, env, tls=True) if args.emulate else None
    try:
        outcome = await supervise(profile, request, env=env)
    finally:
        if emulator is not None:
            await emulator.close()
        if registries is not None:
            registries.remove()
        if feeds is not None:
            feeds.cleanup()
    return _tell(args, command, outcome)


def _tell(args: argparse.Namespace, command: list[str], outcome: ExecOutcome) -> int:
    """Say on stderr why the command did not run or could not be started; its exit status."""
    import sys  # noqa: PLC0415

    lines = {
        "not_found": f"{command[0]}: command not found",
        "cannot_execute": f"{command[0]}: cannot execute: {outcome.detail}",
        "not_delivered": "the command was not started: tokens could not be delivered",
        "interrupted": f"{outcome.detail} before the command started",
    }
    if outcome.report is not None and not args.quiet:
        import time  # noqa: PLC0415

        from agent.report import render_summary  # noqa: PLC0415

        sys.stderr.write(render_summary(outcome.report, time.time()))
    if outcome.end in lines:
        sys.stderr.write(f"azauth: exec: {lines[outcome.end]}\n")
        sys.stderr.flush()
    return outcome.status


def _token_server(profile: ResolvedProfile, *, imds: bool, az_login: bool = False) -> EnvProvider:
    """An env provider running ``azauth serve`` for the command's life (``--serve``).

    It serves every connection of the profile; a client that names none gets the connection
    the command runs as. With ``az_login``, az is signed in through it (:mod:`agent.azlogin`).
    """

    @asynccontextmanager
    async def provide(context: ExecContext) -> AsyncIterator[Mapping[str, str]]:
        from agent.tokenserver.server import serve_profile  # noqa: PLC0415 - only with --serve

        async with serve_profile(
            profile, env=context.env, imds=imds, default_connection=context.connection
        ) as server:
            if not az_login:
                yield server.env
                return
            from agent.azlogin import az_session  # noqa: PLC0415 - only with --az-login
            from agent.supervisor import SYSTEM_TOKEN_VARIABLE  # noqa: PLC0415

            hidden = {SYSTEM_TOKEN_VARIABLE}
            hidden.update(c.system_access_token_env for c in profile.connections.values())
            base = {k: v for k, v in context.env.items() if k not in hidden}
            async with contextlib.AsyncExitStack() as stack:
                try:
                    az_env = await stack.enter_async_context(
                        az_session(
                            profile,
                            server_env=server.env,
                            env=base,
                            directory=context.directory,
                            default=context.connection,
                        )
                    )
                except UsageError as exc:
                    raise UsageError(f"--az-login: {exc}") from None
                except AuthenticationError as exc:
                    raise AuthenticationError(f"--az-login: {exc.message}") from None
                yield {**server.env, **az_env}

    return provide

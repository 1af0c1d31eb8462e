"""``azauth run``: deliver a profile's tokens once, or keep them fresh until stopped.

Signals in watch mode: SIGTERM and SIGINT stop cleanly, outputs left in place unless
``remove_on_exit``: exit 0 when every output was fresh at that moment, else PARTIAL (5) with the
summary on stderr; SIGHUP reloads the profile file and re-delivers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent._pipelines import pipeline_safe
from agent.cli import numbers
from agent.cli.options import (
    add_logging_arguments,
    add_profile_arguments,
    add_refresh_margin_argument,
    configure_logging_from_args,
    start_emulator,
)
from agent.exceptions import ExitCode

if TYPE_CHECKING:
    from agent.config import ResolvedProfile
    from agent.config.compiled import CompiledProfile
    from agent.report import RunReport
    from agent.runner import Runner

# add_logging_arguments and configure_logging_from_args live in agent.cli.options now; they stay
# importable from here for the callers of the old place.
__all__ = ["add_logging_arguments", "configure_logging_from_args", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` command."""
    parser = subparsers.add_parser(
        "run",
        help="acquire every token of a profile and write its outputs",
        description=(
            "Acquire every token of the profile concurrently and write every output. --once "
            "(the default) exits when done; --watch keeps the outputs fresh until SIGTERM or "
            "SIGINT, and reloads the profile file on SIGHUP."
        ),
    )
    add_profile_arguments(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="deliver once and exit (default)")
    mode.add_argument("--watch", action="store_true", help="keep outputs fresh until stopped")
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (connections, scopes, files, variables; secrets masked) on stdout "
        "without contacting anything or writing any file",
    )
    parser.add_argument(
        "--emulate",
        action="store_true",
        help="run against the built-in emulator of Azure DevOps and Entra (needs azauth[emulator])",
    )
    parser.add_argument(
        "--fail-fast", action="store_true", default=None, help="stop at the first failure"
    )
    parser.add_argument(
        "--remove-on-exit",
        action="store_true",
        default=None,
        help="watch mode: delete the written outputs when stopped",
    )
    parser.add_argument(
        "--concurrency", type=numbers.count(1, 256), metavar="N", help="token requests in flight"
    )
    add_refresh_margin_argument(parser)
    add_logging_arguments(parser)
    parser.set_defaults(handler=run)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    found = {
        "fail_fast": args.fail_fast,
        "remove_on_exit": args.remove_on_exit,
        "concurrency": args.concurrency,
        "refresh_margin": args.refresh_margin,
        "log_format": args.log_format,
    }
    return {key: value for key, value in found.items() if value is not None}


def _load(args: argparse.Namespace) -> tuple[CompiledProfile, ResolvedProfile]:
    """The profile, from the profile cache when its inputs are unchanged (no pydantic then)."""
    from agent.config.compiled import load_profile  # noqa: PLC0415 - keep --help fast

    compiled = load_profile(args.config, args.profile, _overrides(args))
    return compiled, compiled.profile


def run(args: argparse.Namespace) -> int:
    """Run the profile; return the exit code of the run (see the README's exit-code table)."""
    loaded, profile = _load(args)
    if args.dry_run:
        from agent.plan import render_plan  # noqa: PLC0415

        sys.stdout.write(pipeline_safe(render_plan(profile, os.environ)))
        return int(ExitCode.OK)
    _check_stdout(profile)
    from agent._trust import prewarm  # noqa: PLC0415

    prewarm(os.environ)  # the trust store loads on a thread while the runner imports aiohttp
    configure_logging_from_args(args, profile.settings)
    return asyncio.run(_main(args, loaded, profile))


def _check_stdout(profile: ResolvedProfile) -> None:
    """Refuse before any work when pipeline variables would be printed on a closed stdout."""
    from agent._stdio import stdout_was_closed  # noqa: PLC0415
    from agent.exceptions import UsageError  # noqa: PLC0415

    if stdout_was_closed() and any(o.on_stdout for o in profile.outputs):
        raise UsageError(
            f"standard output is closed, and profile {profile.name!r} sets pipeline variables "
            "with ##vso lines printed there (remove `>&-`; redirect to /dev/null to drop them)"
        )


def _install_signals(stop: asyncio.Event, reload: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        if hasattr(signal, "SIGHUP"):

            def on_hup() -> None:
                reload.set()
                stop.set()

            loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows event loops
        signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(stop.set))


async def _main(args: argparse.Namespace, loaded: CompiledProfile, profile: ResolvedProfile) -> int:
    from agent.logs import get_logger  # noqa: PLC0415
    from agent.runner import Runner  # noqa: PLC0415 - imports aiohttp

    log = get_logger("agent.cli.run")
    env: dict[str, str] = dict(os.environ)
    for name, where in competing_present(profile, env).items():
        log.warning(
            "competing_variable",
            variable=name,
            outputs=where,
            hint=f"{name} is set here and the output cannot unset it; its consumer may pick it "
            "over the preset's credential: unset it in the step that reads the output",
        )
    emulator = await start_emulator(profile, env) if args.emulate else None
    if emulator is not None:
        log.info("emulator_started", url=emulator.url)
    try:
        if not args.watch:
            async with Runner(profile, env=env) as runner:
                report = await runner.run_once()
            _print_summary(args, report)
            return int(report.exit_code)
        stop, reload = asyncio.Event(), asyncio.Event()
        _install_signals(stop, reload)
        while True:
            async with Runner(profile, env=env) as runner:
                report = await runner.watch(stop, on_summary=lambda r: _print_summary(args, r))
                if not stop.is_set():  # fail_fast ended the watch
                    _print_summary(args, report)
                    return int(report.exit_code)
                if not reload.is_set():
                    return _stopped(args, runner, log)
            stop.clear()
            reload.clear()
            loaded, profile = _reload(args, loaded, profile, log)
            if emulator is not None:
                await emulator.close()
                emulator = await start_emulator(profile, env)
    finally:
        if emulator is not None:
            await emulator.close()


def _stopped(args: argparse.Namespace, runner: Runner, log: Any) -> int:
    """SIGTERM/SIGINT in watch mode: 0 when every output is fresh, else PARTIAL and the summary."""
    fresh = runner.all_fresh()
    if not fresh:
        _print_summary(args, runner.report())
    if runner.profile.settings.remove_on_exit:
        removed = runner.remove_outputs()
        log.info("outputs_removed", count=len(removed))
    log.info("stopped", all_fresh=fresh)
    return int(ExitCode.OK if fresh else ExitCode.PARTIAL)


def competing_present(profile: ResolvedProfile, env: Mapping[str, str]) -> dict[str, list[str]]:
    """Variables competing with a preset, set in ``env``, that an output cannot unset.

    ``sh`` and ``pwsh`` env files unset them themselves; ``dotenv``, ``docker`` and ``systemd``
    files and pipeline variables can only add. Returns each name with the paths of the outputs
    concerned, so that ``run`` warns once per variable.
    """
    found: dict[str, list[str]] = {}
    for output in profile.outputs:
        for name in output.competing_kept():
            if env.get(name):
                found.setdefault(name, []).append(output.target)
    return found


def _reload(
    args: argparse.Namespace, loaded: CompiledProfile, profile: ResolvedProfile, log: Any
) -> tuple[CompiledProfile, ResolvedProfile]:
    """Reload the file on SIGHUP; a broken file keeps the running profile."""
    from agent.exceptions import ConfigError  # noqa: PLC0415

    try:
        new_loaded, new_profile = _load(args)
    except ConfigError as exc:
        log.error("reload_failed", error=str(exc))  # noqa: TRY400 - the message is the story
        return loaded, profile
    log.info("reloaded", profile=new_profile.name, source=str(new_loaded.source))
    return new_loaded, new_profile


def _print_summary(args: argparse.Namespace, report: RunReport) -> None:
    if args.quiet:
        return
    import time  # noqa: PLC0415

    from agent.logs import active_format  # noqa: PLC0415
    from agent.report import render_summary  # noqa: PLC0415

    text = pipeline_safe(render_summary(report, time.time()))
    if active_format() == "azure-pipelines":  # a collapsible section in the job log
        text = f"##[group]azauth summary\n{text}##[endgroup]\n"
    sys.stderr.write(text)
    sys.stderr.flush()

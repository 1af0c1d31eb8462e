"""The flags several commands share, and what the CLI adds to the library: flag names and prose.

Argument groups (profile selection, logging, refresh margin, ``--emulate``) are declared here
once; :func:`choose_connection_flag` turns the library's neutral choice of a connection
(:func:`agent.pool.choose_connection`) into a message naming ``--connection``;
:func:`start_emulator` is ``--emulate`` (:func:`agent.testing.pipeline.emulate_profile`, with
the hint to install the emulator extra); :func:`install_stop_signals` is how long-running
commands stop on SIGTERM and SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from agent.cli import numbers
from agent.cli.validate import add_config_argument
from agent.exceptions import UsageError

if TYPE_CHECKING:
    from agent.config import ResolvedProfile
    from agent.pool import ConnectionChoiceError
    from agent.testing.emulator import Emulator

__all__ = [
    "add_logging_arguments",
    "add_profile_arguments",
    "add_refresh_margin_argument",
    "choose_connection_flag",
    "configure_logging_from_args",
    "connection_flag_error",
    "install_stop_signals",
    "start_emulator",
]

PROFILE_HELP = "the profile (default: AZAUTH_PROFILE)"


def add_profile_arguments(
    parser: argparse.ArgumentParser,
    *,
    profile_help: str = PROFILE_HELP,
    connection_help: str | None = None,
) -> None:
    """Add ``--config`` and ``--profile``, and ``--connection`` when ``connection_help`` is set."""
    add_config_argument(parser)
    parser.add_argument("--profile", metavar="NAME", help=profile_help)
    if connection_help is not None:
        parser.add_argument("--connection", metavar="NAME", help=connection_help)


def add_refresh_margin_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--refresh-margin SECONDS`` (overrides ``settings.refresh_margin``)."""
    parser.add_argument(
        "--refresh-margin",
        type=numbers.seconds(),
        metavar="SECONDS",
        help="renew this long before expiry",
    )


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-format``, ``-v`` and ``-q``."""
    from agent.logs import LOG_FORMATS  # noqa: PLC0415 - only when the parser is built

    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help=(
            "log format on stderr (default: settings.log_format; auto = azure-pipelines under "
            "TF_BUILD, else console on a terminal, else json)"
        ),
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logs (-v info, -vv debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only, no summary")


def configure_logging_from_args(args: argparse.Namespace, settings: Any = None) -> None:
    """Configure logging from flags, falling back to the profile file's settings."""
    from agent.logs import LOG_FORMATS, configure_logging  # noqa: PLC0415 - keep --help fast

    level = getattr(settings, "log_level", "info") if settings is not None else "warning"
    if args.verbose >= 2:
        level = "debug"
    elif args.verbose == 1:
        level = "info"
    if args.quiet:
        level = "error"
    chosen = args.log_format or (getattr(settings, "log_format", "auto") if settings else "auto")
    fmt = chosen if chosen in LOG_FORMATS else "auto"
    configure_logging(fmt=fmt, level=level)


def choose_connection_flag(
    profile: ResolvedProfile,
    name: str | None,
    *,
    several: str = "choose one with --connection",
) -> str:
    """The connection ``--connection NAME`` names, or the profile's only one.

    ``several`` ends the message when the profile has several connections and none is named.

    Raises:
        UsageError: naming ``--connection``: it names no connection of the profile, or it is
            missing and the profile has several.
        ConfigError: the profile has no connection.
    """
    from agent.pool import ConnectionChoiceError, choose_connection  # noqa: PLC0415

    try:
        return choose_connection(profile, name)
    except ConnectionChoiceError as exc:
        raise connection_flag_error(exc, several=several) from None


def connection_flag_error(
    exc: ConnectionChoiceError, *, several: str = "choose one with --connection"
) -> UsageError:
    """``exc`` (the library's) told in terms of ``--connection``."""
    if exc.name is None:
        return UsageError(f"{exc.summary}: {several}")
    return UsageError(f"--connection {exc.summary}")


async def start_emulator(
    profile: ResolvedProfile, env: MutableMapping[str, str], *, tls: bool = False
) -> Emulator:
    """``--emulate``: the emulated pipeline of ``profile`` (see :mod:`agent.testing.pipeline`).

    Raises:
        UsageError: the emulator extra (``cryptography``) is not installed.
    """
    try:
        from agent.testing.pipeline import emulate_profile  # noqa: PLC0415 - the emulator extra
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise UsageError(
            f"--emulate needs the emulator extra ({exc}): pip install cryptography (or "
            "pip install '.[emulator]' in a checkout of azauth)"
        ) from None
    return await emulate_profile(profile, env, tls=tls)


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGTERM and SIGINT (call inside the running event loop)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows event loops
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))

"""Argument parsing, dispatch, and the single mapping from exceptions to exit codes.

Each command lives in ``agent/cli/<name>.py`` and exposes ``register(subparsers)``, which adds its
parser and sets ``handler`` (a callable taking the parsed ``argparse.Namespace`` and returning an
exit code). Command modules import heavy libraries inside their handler, so ``azauth --help``
stays fast. No other module calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent.exceptions import AzauthError, ExitCode

__all__ = ["COMMANDS", "build_parser", "main"]

# Order is the order of `azauth --help`.
COMMANDS: tuple[str, ...] = (
    "run",
    "exec",
    "serve",
    "token",
    "git-credential",
    "validate",
    "schema",
    "init",
    "profiles",
    "env",
    "status",
    "emulator",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with ExitCode.USAGE through our own path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def build_parser() -> argparse.ArgumentParser:
    """Return the full ``azauth`` parser with every command registered."""
    parser = _Parser(
        prog="azauth",
        description=(
            "Microsoft Entra tokens for Azure Pipelines jobs, from a declarative profile file."
        ),
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"agent.cli.{name.replace('-', '_')}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``azauth`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version  # noqa: PLC0415 - only for --version

        print(f"azauth {version('azauth')}")
        return ExitCode.OK
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        return int(handler(args))
    except AzauthError as exc:
        # One line, no traceback: the message is written for the user and holds no secret.
        print(f"azauth: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130

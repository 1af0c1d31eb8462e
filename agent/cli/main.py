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

from agent._pipelines import in_pipeline, pipeline_safe
from agent._secrets import redact_text
from agent._stdio import guard_standard_streams, quiet_broken_pipe
from agent.exceptions import AzauthError, ExitCode

__all__ = ["COMMANDS", "build_parser", "main"]

# Order is the order of `azauth --help`; the line each command shows there. Each module
# registers its command with the same line (tests/test_startup.py checks): `azauth --help` lists
# the commands from here without importing the twelve modules (asyncio and more).
COMMAND_HELP: dict[str, str] = {
    "run": "acquire every token of a profile and write its outputs",
    "exec": "run a command with a profile's credentials, kept fresh while it runs",
    "serve": "serve the profile's tokens to local programs as a managed-identity endpoint",
    "token": "print an access token (raw, json, azure-cli or a kubectl ExecCredential)",
    "git-credential": "git credential helper: Entra tokens for Azure Repos",
    "validate": "check a profile file and exit",
    "schema": "print the JSON Schema of the profile file",
    "init": "write a starter profile file",
    "profiles": "list the profiles, their connections and outputs",
    "env": "print shell statements that select a profile in this shell only",
    "status": "show the active profile and the identity of its connections",
    "emulator": "serve an offline emulator of the Azure DevOps OIDC and Entra token endpoints",
}
COMMANDS: tuple[str, ...] = tuple(COMMAND_HELP)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with ExitCode.USAGE through our own path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE)


def build_parser(command: str | None = None, *, listing: bool = False) -> argparse.ArgumentParser:
    """Return the ``azauth`` parser: every command registered, or only ``command``.

    ``main`` passes the command named first on its command line, so one invocation imports and
    builds one command's parser; parsing with only that command registered gives the same
    result (the first word selects the subparser; nothing else could have matched it). With
    ``listing`` and no known ``command`` (``azauth``, ``azauth --help``, ``--version``, a typo),
    the commands are listed from :data:`COMMAND_HELP` without importing their modules.
    """
    parser = _Parser(
        prog="azauth",
        description=(
            "Microsoft Entra tokens for Azure Pipelines jobs, from a declarative profile file."
        ),
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    if command not in COMMANDS and listing:
        for name, text in COMMAND_HELP.items():
            sub.add_parser(name, help=text, add_help=False)
        return parser
    for name in (command,) if command in COMMANDS else COMMANDS:
        module = importlib.import_module(f"agent.cli.{name.replace('-', '_')}")
        module.register(sub)
    return parser


# Commands whose answer is printed on stdout: with stdout closed (`>&-`) they have nowhere to
# put it, which is a mistake in the command line, not something to discover after the work.
_STDOUT_COMMANDS = frozenset(
    {"token", "git-credential", "profiles", "env", "status", "serve", "emulator"}
)


# Modes that keep running: garbage collection back on (agent._entry turns it off for start-up).
_LONG_RUNNING = frozenset({"exec", "serve", "emulator"})


def _collect_garbage() -> None:
    """Turn garbage collection on, sparing what start-up built (``gc.freeze``) from its scans."""
    import gc  # noqa: PLC0415

    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one return per outcome
    """Run ``azauth`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Every outcome is one line on stderr and an exit code: :class:`AzauthError` maps to its
    ``exit_code``; a reader that went away (``| head -c1``) ends quietly with 141; anything else
    is a bug, reported as ``azauth: internal error: ... (please report)`` with exit 1 (the
    traceback only with ``-vv``).
    """
    closed = guard_standard_streams()
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words[0] if words else None, listing=True)
    args = parser.parse_args(words)
    if args.version:
        from agent._version import __version__  # noqa: PLC0415

        print(f"azauth {__version__}")
        return ExitCode.OK
    # The command's name (``args.command`` is `exec`'s own command line once exec parsed).
    chosen = words[0] if words and words[0] in COMMANDS else None
    if chosen in _LONG_RUNNING or getattr(args, "watch", False):
        _collect_garbage()
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    if "stdout" in closed and (
        chosen in _STDOUT_COMMANDS or (chosen == "schema" and not getattr(args, "output", None))
    ):
        print(
            f"azauth: error: standard output is closed: `azauth {chosen}` prints its "
            "answer there (remove `>&-`, or redirect to a file or /dev/null)",
            file=sys.stderr,
        )
        return int(ExitCode.USAGE)
    try:
        return int(handler(args))
    except AzauthError as exc:
        # One line, no traceback: the message is written for the user and holds no secret.
        print(
            f"{error_prefix()}azauth: error: {pipeline_safe(redact_text(str(exc)))}",
            file=sys.stderr,
        )
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return quiet_broken_pipe()
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug, never a traceback
        return _internal_error(exc, verbose=getattr(args, "verbose", 0) or 0)


def error_prefix() -> str:
    """``##[error]`` in an Azure Pipelines job (``TF_BUILD``): the log shows the line in red."""
    return "##[error]" if in_pipeline() else ""


def _internal_error(exc: BaseException, *, verbose: int) -> int:
    """One line for an unexpected exception (secrets masked); the traceback only with -vv."""
    if verbose >= 2:
        import traceback  # noqa: PLC0415

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(redact_text(text))
    detail = pipeline_safe(redact_text(str(exc)).replace("\n", " ").strip())
    name = type(exc).__name__
    print(
        f"{error_prefix()}azauth: internal error: {name}{': ' + detail if detail else ''} "
        "(please report; -vv shows the traceback)",
        file=sys.stderr,
    )
    return int(ExitCode.INTERNAL)

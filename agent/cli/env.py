"""``azauth env``: print the statements that select a profile in the current shell only.

``eval "$(azauth env --profile prod)"`` exports ``AZAUTH_PROFILE`` (and ``AZAUTH_CONFIG``, the
absolute path of the profile file) in this shell; other shells and terminals are unaffected and
nothing is written to disk. ``--unset`` prints the statements that undo it. PowerShell:
``azauth env --shell pwsh --profile prod | Invoke-Expression``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from agent import envvars
from agent.cli.validate import add_config_argument
from agent.exceptions import ExitCode

__all__ = ["SHELLS", "VARIABLES", "register", "render_exports", "render_unset", "run"]

SHELLS = ("sh", "pwsh")
VARIABLES = (envvars.AZAUTH_PROFILE, envvars.AZAUTH_CONFIG)
"""What ``azauth env`` sets (``agent.config`` PROFILE_ENV and discovery CONFIG_ENV)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``env`` command."""
    parser = subparsers.add_parser(
        "env",
        help="print shell statements that select a profile in this shell only",
        description=(
            "Print the statements that select the profile (and its file) in the current shell: "
            'eval "$(azauth env --profile NAME)" in sh, bash or zsh; '
            "azauth env --shell pwsh --profile NAME | Invoke-Expression in PowerShell. "
            "Nothing is written to disk; other shells are unaffected. The profile must exist."
        ),
    )
    add_config_argument(parser)
    parser.add_argument(
        "--profile", metavar="NAME", help="the profile to select (default: the active one)"
    )
    parser.add_argument(
        "--shell", choices=SHELLS, default="sh", help="statement syntax (default: sh)"
    )
    parser.add_argument(
        "--unset", action="store_true", help="print the statements that clear the selection"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the statements on stdout (a hint on stderr when stdout is a terminal)."""
    if args.unset:
        sys.stdout.write(render_unset(VARIABLES, args.shell))
        return ExitCode.OK
    from agent.config import load_config  # noqa: PLC0415 - keep --help fast

    loaded = load_config(args.config)
    profile = loaded.profile(args.profile)  # raises ConfigError for an unknown profile
    values = {VARIABLES[0]: profile.name}
    if loaded.source is not None:
        values[VARIABLES[1]] = str(loaded.source.resolve())
    sys.stdout.write(render_exports(values, args.shell))
    if sys.stdout.isatty():
        how = (
            f'eval "$(azauth env --profile {profile.name})"'
            if args.shell == "sh"
            else f"azauth env --shell pwsh --profile {profile.name} | Invoke-Expression"
        )
        print(
            f"azauth: note: these lines change nothing by themselves; run: {how}", file=sys.stderr
        )
    return ExitCode.OK


def render_exports(values: Mapping[str, str], shell: str) -> str:
    """Return statements setting ``values`` in ``shell`` (``sh`` or ``pwsh``), one per line.

    The quoting is that of the ``sh`` and ``pwsh`` env-file dialects
    (:func:`agent.outputs.env_file.render_env_file`), without the file's header comment and
    byte-order mark, which mean nothing to ``eval`` or ``Invoke-Expression``.

    Raises:
        ValueError: unknown shell, or a value no environment can hold (NUL).
    """
    from agent.outputs.env_file import HEADER, render_env_file  # noqa: PLC0415

    if shell not in SHELLS:
        raise ValueError(f"unknown shell {shell!r} (expected one of {', '.join(SHELLS)})")
    text = render_env_file(values, shell)
    return text.removeprefix("\ufeff").removeprefix(HEADER + "\n")


def render_unset(names: Sequence[str], shell: str) -> str:
    """Return statements removing ``names`` from ``shell``'s environment.

    Raises:
        ValueError: unknown shell.
    """
    if shell == "sh":
        return f"unset {' '.join(names)}\n"
    if shell == "pwsh":
        return "".join(
            f"Remove-Item -Path Env:{name} -ErrorAction SilentlyContinue\n" for name in names
        )
    raise ValueError(f"unknown shell {shell!r} (expected one of {', '.join(SHELLS)})")

"""``azauth schema``: print or write the JSON Schema of the profile file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.exceptions import ExitCode, OutputError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``schema`` command."""
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of the profile file",
        description=(
            "Print the JSON Schema of the profile file (generated from azauth's models), for "
            "editor completion: `#:schema PATH` in TOML, "
            "`# yaml-language-server: $schema=PATH` in YAML."
        ),
    )
    parser.add_argument(
        "--output", "-o", metavar="FILE", help="write the schema to FILE instead of stdout"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the schema to ``--output`` or stdout."""
    from agent.config.schema import render_json_schema  # noqa: PLC0415 - keep --help fast

    text = render_json_schema()
    if args.output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return ExitCode.OK
    path = Path(args.output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(
            f"cannot write the schema: {exc.strerror or exc}", path=str(path)
        ) from None
    print(f"azauth: wrote {path}", file=sys.stderr)
    return ExitCode.OK

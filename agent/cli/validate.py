"""``azauth validate``: load and check a profile file without acquiring any token."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from agent._pipelines import in_pipeline, pipeline_safe
from agent.exceptions import ExitCode

if TYPE_CHECKING:
    from typing import Any

    from agent.config import LoadedConfig

__all__ = ["add_config_argument", "register", "run", "summarize", "verdict"]

CONFIG_HELP = (
    "the profile file (default: $AZAUTH_CONFIG, else ./azauth.toml, ./azauth.yaml, ./azauth.yml, "
    "then $XDG_CONFIG_HOME/azauth/ or ~/.config/azauth/; without a file, the AZURESUBSCRIPTION_* "
    "variables)"
)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` (the shared meaning: see :mod:`agent.config.discovery`)."""
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` command."""
    parser = subparsers.add_parser(
        "validate",
        help="check a profile file and exit",
        description=(
            "Load and validate the profile file (syntax, types, references, extends, duplicate "
            "output paths, literal tokens). Exit status 0 when valid, 3 when not."
        ),
    )
    add_config_argument(parser)
    parser.add_argument(
        "--profile", metavar="NAME", help="also check that NAME can be selected (or AZAUTH_PROFILE)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate, print a one-line summary on stderr, return 0 (errors raise ConfigError).

    A passing verdict is memoised by the profile cache (:mod:`agent.config.compiled`): the same
    inputs print the same lines without validating again.
    """
    from agent.config.compiled import validated  # noqa: PLC0415 - keep --help fast

    result = validated(args.config, args.profile, lambda loaded: verdict(loaded, args.profile))
    for warning in result["warnings"]:
        prefix = "##[warning]" if in_pipeline() else ""
        print(f"{prefix}azauth: warning: {pipeline_safe(warning)}", file=sys.stderr)
    print(f"azauth: OK: {pipeline_safe(result['line'])}", file=sys.stderr)
    return ExitCode.OK


def verdict(loaded: LoadedConfig, profile_name: str | None) -> dict[str, Any]:
    """What ``validate`` prints for ``loaded``: ``{"line": summary, "warnings": [...]}``.

    Raises:
        ConfigError: the profile named by ``profile_name`` (or ``AZAUTH_PROFILE``) cannot be
            selected.
    """
    from agent.config import PROFILE_ENV  # noqa: PLC0415

    line = summarize(loaded)
    if profile_name or os.environ.get(PROFILE_ENV):
        profile = loaded.profile(profile_name)
        line += (
            f"; profile {profile.name!r}: {_count(len(profile.connections), 'connection')}, "
            f"{_count(len(profile.outputs), 'output')}"
        )
    return {"line": line, "warnings": warnings(loaded)}


def warnings(loaded: LoadedConfig) -> list[str]:
    """What is valid but probably not meant: ``secret = true`` over public values."""
    from agent.config.resolution import resolve_profile  # noqa: PLC0415

    found = []
    prefix = f"{loaded.source}: " if loaded.source is not None else ""
    config = loaded.config
    for name, profile in config.profiles.items():
        for index, output in enumerate(profile.outputs):
            if not output.unmasked_under_secret_true(None):  # any connection's, before its own
                continue
            connection = config.connections.get(
                output.connection or next(iter(resolve_profile(config, name).connections))
            )
            public = output.unmasked_under_secret_true(connection)
            if public:
                found.append(
                    f"{prefix}profiles.{name}.outputs[{index}].secret: secret = true does not "
                    f"mask {', '.join(public)}: their values are public or well known (ids, "
                    "paths, true) and masking them would hide that text everywhere in the job "
                    "log; name any that must be secret in secret_variables"
                )
    return found


def summarize(loaded: LoadedConfig) -> str:
    """Return ``<source>: N profiles, N connections, N outputs`` for ``loaded``."""
    config = loaded.config
    source = str(loaded.source) if loaded.source is not None else "AZURESUBSCRIPTION_* (no file)"
    outputs = sum(len(profile.outputs) for profile in config.profiles.values())
    return (
        f"{source}: {_count(len(config.profiles), 'profile')}, "
        f"{_count(len(config.connections), 'connection')}, {_count(outputs, 'output')}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"

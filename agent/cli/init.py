"""``azauth init``: write a starter profile file for one service connection.

The connection comes from flags or, for each flag not given, from the ``AZURESUBSCRIPTION_*``
variables that AzureCLI@2 exports. The starter profile writes an azure-identity env file and keeps
the federated token file it points to fresh. The file is validated with the real loader before it
replaces anything, and an existing file is replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent import envvars
from agent.exceptions import ConfigError, ExitCode, OutputError, UsageError

__all__ = ["DEFAULT_SCHEMA_REF", "register", "render_starter", "run", "starter_data"]

DEFAULT_SCHEMA_REF = "./schemas/azauth.schema.json"

# flag dest -> (connection key, variable that provides it when the flag is absent)
_SOURCES = envvars.AZURESUBSCRIPTION_FIELDS
_REQUIRED = ("tenant_id", "client_id", "service_connection_id")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``init`` command."""
    parser = subparsers.add_parser(
        "init",
        help="write a starter profile file",
        description=(
            "Write a starter profile file for one service connection, from the flags or the "
            "AZURESUBSCRIPTION_* variables. Refuses to replace an existing file unless --force "
            "(exit status 2)."
        ),
    )
    parser.add_argument(
        "--format",
        choices=("toml", "yaml"),
        help="file format (default: from the --output suffix, else toml)",
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="where to write (default: azauth.toml or azauth.yaml in the current directory)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    for dest, variable in _SOURCES.items():
        parser.add_argument(
            f"--{dest.replace('_', '-')}", dest=dest, metavar="ID", help=f"default: ${variable}"
        )
    parser.add_argument(
        "--name",
        default="default",
        help="name of the connection and of the profile (default: default)",
    )
    parser.add_argument(
        "--schema-ref",
        default=DEFAULT_SCHEMA_REF,
        metavar="REF",
        help=f"path or URL of the JSON Schema named in the file (default: {DEFAULT_SCHEMA_REF})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the starter file; errors raise UsageError (exit 2) or OutputError (exit 6)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.name):
        raise UsageError(f"--name {args.name!r}: use letters, digits, '_', '.' and '-'")
    syntax, path = _destination(args.format, args.output)
    if path.exists() and not args.force:
        raise UsageError(f"{path} already exists; pass --force to replace it, or choose --output")
    values = {
        key: getattr(args, key) or os.environ.get(variable) for key, variable in _SOURCES.items()
    }
    missing = [key for key in _REQUIRED if not values[key]]
    if missing:
        flags = ", ".join(f"--{key.replace('_', '-')} (or ${_SOURCES[key]})" for key in missing)
        raise UsageError(f"missing {flags}")
    connection = {key: value for key, value in values.items() if value}
    text = render_starter(starter_data(args.name, connection), syntax, args.schema_ref)
    _write_checked(path, text)
    print(f"azauth: wrote {path}", file=sys.stderr)
    if not args.schema_ref.startswith(("http://", "https://")):
        schema = (path.parent / args.schema_ref).resolve()
        if not schema.exists():
            print(
                f"azauth: for editor completion, run `azauth schema --output {schema}`",
                file=sys.stderr,
            )
    return ExitCode.OK


def starter_data(name: str, connection: dict[str, str]) -> dict[str, Any]:
    """Return the starter configuration for ``connection`` (tenant, client, service connection)."""
    return {
        "version": 1,
        "default_profile": name,
        "connections": {name: connection},
        "profiles": {
            name: {
                "description": f"Azure Identity environment for service connection {name}",
                "connections": [name],
                "outputs": [
                    {
                        "kind": "env_file",
                        "path": "out/azure-identity.env",
                        "dialect": "sh",
                        "preset": "azure-identity",
                        "federated_token_path": f"out/{name}.jwt",
                    }
                ],
            }
        },
    }


def render_starter(data: dict[str, Any], syntax: str, schema_ref: str) -> str:
    """Return ``data`` as a commented TOML or YAML document naming its JSON Schema."""
    header = [
        "# azauth profile file, written by `azauth init`; check it with `azauth validate`.",
        "# Every option is described in azauth.toml.example and the README.",
        "# The profile writes out/azure-identity.env (`. out/azure-identity.env` in a step) and",
        "# keeps the federated token file it names fresh while `azauth run --watch` runs.",
    ]
    if syntax == "yaml":
        import yaml  # noqa: PLC0415 - only for YAML

        lines = [f"# yaml-language-server: $schema={schema_ref}", *header, ""]
        return "\n".join(lines) + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    import tomli_w  # noqa: PLC0415 - only for TOML

    # tomli-w writes arrays of tables inline; [[...]] sections read better, so outputs are
    # written one table at a time.
    tables = {key: value for key, value in data.items() if key != "profiles"}
    profiles = {
        name: {key: value for key, value in profile.items() if key != "outputs"}
        for name, profile in data["profiles"].items()
    }
    text = tomli_w.dumps({**tables, "profiles": profiles})
    for name, profile in data["profiles"].items():
        for output in profile.get("outputs", []):
            text += f"\n[[profiles.{name}.outputs]]\n" + tomli_w.dumps(output)
    return "\n".join([f"#:schema {schema_ref}", *header, ""]) + "\n" + text


def _destination(syntax: str | None, output: str | None) -> tuple[str, Path]:
    if output is None:
        chosen = syntax or "toml"
        return chosen, Path(f"azauth.{chosen}")
    path = Path(output)
    suffix = path.suffix.lower()
    implied = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}.get(suffix)
    if implied is None:
        raise UsageError(f"--output {output}: the name must end in .toml, .yaml or .yml")
    if syntax is not None and syntax != implied:
        raise UsageError(f"--format {syntax} does not match --output {output}")
    return implied, path


def _write_checked(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` only if it loads; through a temporary file and a rename."""
    from agent.config import load_config  # noqa: PLC0415 - keep --help fast

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(
            prefix=".azauth-init-", suffix=path.suffix, dir=path.parent
        )
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(path)) from None
    try:
        load_config(temporary, env={})
        os.chmod(temporary, 0o644)  # noqa: PTH101 - mkstemp made it 0600; it holds no secret
        os.replace(temporary, path)  # noqa: PTH105
    except ConfigError as exc:
        expected = f" (expected {exc.expected})" if exc.expected else ""
        where = f"{exc.key_path}: " if exc.key_path else ""
        raise UsageError(f"the values given are not valid: {where}{exc.detail}{expected}") from None
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(path)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)  # noqa: PTH108

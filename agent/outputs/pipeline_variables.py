r"""Render Azure Pipelines logging commands that set pipeline variables and register secrets.

The agent reads ``##vso[area.action key=value;...]data`` lines from a step's stdout. Escaping
follows azure-pipelines-task-lib, which the agent decodes:

* property values: ``%`` -> ``%AZP25``, ``\r`` -> ``%0D``, ``\n`` -> ``%0A``, ``]`` -> ``%5D``,
  ``;`` -> ``%3B`` (``%`` first, so an escape sequence already in the value survives);
* data (the part after ``]``): ``%`` -> ``%AZP25``, ``\r`` -> ``%0D``, ``\n`` -> ``%0A``.

The agent turns ``%AZP25`` back into ``%`` unless a job opts out with ``DECODE_PERCENTS=false``
(then values containing ``%`` would arrive with ``%AZP25`` in them).

Secrets: :func:`render_pipeline_variables` emits ``##vso[task.setsecret]`` for every secret
value *before* any line that carries it, so the agent masks it from then on, and marks the
variables holding it ``issecret=true``. Secret variables are not exported to the environment of
later steps; each consuming step maps them explicitly (``env: NAME: $(NAME)``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet

__all__ = [
    "escape_data",
    "escape_property",
    "looks_public",
    "render_pipeline_variables",
    "render_set_secret",
    "render_set_variable",
]

_NAME = re.compile(r"[A-Za-z0-9_.]+")
# Variables whose names start with these are not available to tasks and scripts (Azure
# Pipelines reserves them), so setting one would silently deliver nothing.
_RESERVED_PREFIXES = ("endpoint", "input", "secret", "path", "securefile")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Lines of a multi-line secret are masked one by one (the agent masks each log line on its own),
# but a very short line ("}", "--") would mask ordinary text everywhere; such lines carry no
# secret on their own.
_MIN_LINE_MASK = 8


_PUBLIC = re.compile(
    r"(?i)true|false|yes|no|on|off|[-+]?\d+(\.\d+)?"  # flags and numbers
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # GUIDs: public ids
    r"|\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)"  # timestamps
    r"|[a-z][a-z0-9+.-]*://\S*|[/\\~.]\S*|[a-z]:[/\\]\S*"  # URLs and paths
)
_MIN_PRIVATE_LENGTH = 16


def looks_public(value: str) -> bool:
    """Whether ``value`` is public or well known: a flag, number, GUID, URL, path, or short.

    Registering such a value as a secret masks that text everywhere in the job's log (every
    ``true``, every tenant id), so ``secret = true`` leaves them alone unless a variable is
    listed by name.
    """
    return len(value) < _MIN_PRIVATE_LENGTH or _PUBLIC.fullmatch(value.strip()) is not None


def escape_data(text: str) -> str:
    """Escape the data part of a logging command."""
    return text.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value of a logging command."""
    return escape_data(text).replace("]", "%5D").replace(";", "%3B")


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid pipeline variable name {name!r} (expected letters, digits, '.' and '_')"
        )
    if name.lower().startswith(_RESERVED_PREFIXES):
        reserved = ", ".join(_RESERVED_PREFIXES)
        raise ValueError(
            f"pipeline variable name {name!r} starts with a reserved prefix ({reserved}); "
            "Azure Pipelines would not pass it to tasks"
        )


def render_set_variable(name: str, value: str, *, secret: bool, is_output: bool = False) -> str:
    """Return ``##vso[task.setvariable variable=NAME[;issecret=true][;isoutput=true]]VALUE``.

    No trailing newline. ``secret`` has no default on purpose: every caller decides.

    Raises:
        ValueError: ``name`` is not a usable pipeline variable name.
    """
    _check_name(name)
    properties = [f"variable={escape_property(name)}"]
    if secret:
        properties.append("issecret=true")
    if is_output:
        properties.append("isoutput=true")
    return f"##vso[task.setvariable {';'.join(properties)}]{escape_data(value)}"


def render_set_secret(value: str) -> str:
    """Return ``##vso[task.setsecret]VALUE``: mask ``value`` in every later log line."""
    return f"##vso[task.setsecret]{escape_data(value)}"


def render_pipeline_variables(
    values: Mapping[str, str], *, secret_names: AbstractSet[str], is_output: bool
) -> str:
    """Return the logging commands that set ``values`` as pipeline variables, one per line.

    A variable is secret when its name is in ``secret_names`` or its value contains the value of
    such a variable (a derived value, e.g. ``Bearer <token>``). First comes one
    ``task.setsecret`` per distinct secret value (and, for a multi-line value, per line of at
    least 8 characters, since the agent masks log lines one at a time), then the
    ``task.setvariable`` lines in ``values`` order. Names in ``secret_names`` that ``values``
    lacks are ignored. Ends with a newline (empty string for no values).

    Raises:
        ValueError: a name is not a usable pipeline variable name.
    """
    for name in values:
        _check_name(name)
    secret_values = [values[name] for name in values if name in secret_names and values[name]]
    is_secret = {
        name: name in secret_names or any(s in value for s in secret_values)
        for name, value in values.items()
    }
    masks: dict[str, None] = {}
    for name, value in values.items():
        if not is_secret[name] or not value:
            continue
        masks[value] = None
        lines = _LINE_BREAK.split(value)
        if len(lines) > 1:
            masks.update(dict.fromkeys(line for line in lines if len(line) >= _MIN_LINE_MASK))
    commands = [render_set_secret(mask) for mask in masks]
    commands.extend(
        render_set_variable(name, value, secret=is_secret[name], is_output=is_output)
        for name, value in values.items()
    )
    return "".join(f"{command}\n" for command in commands)

"""Output paths in a profile file: ``~`` and ``${VAR}`` / ``$VAR`` from the environment.

A path is expanded once, when the file is loaded, from the environment azauth runs in:

* ``~`` or ``~/...`` at the start: ``$HOME``; ``~user/...``: that user's home directory;
* ``${NAME}`` and ``$NAME`` (``NAME`` = letters, digits and ``_``, not starting with a digit):
  the variable's value; ``$$`` is a literal ``$``.

An unset or empty variable is a configuration error naming it, never an empty string (``/x``
instead of ``${AGENT_TEMPDIRECTORY}/x``). The Azure Pipelines macro form
``$(Agent.TempDirectory)`` is refused with the variable to use instead: macros are expanded in
the pipeline's YAML, never in a file a step reads, so taken literally it would create a
directory named ``$(Agent.TempDirectory)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from agent import envvars
from agent.config.discovery import note_outside_environment
from agent.config.problems import KeyPath, Problem

__all__ = ["PATH_KEYS", "expand_output_paths", "expand_path"]

PATH_KEYS = ("path", "federated_token_path")
"""The output keys that hold paths."""

_TOKEN = re.compile(
    r"\$\$|\$\((?P<macro>[^)]*)\)?|\$\{(?P<braced>[^}]*)\}?|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|\$"
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPECTED = (
    "a path; `~`, `${NAME}` and `$NAME` are expanded from the environment, `$$` is a literal `$`"
)


class PathProblemError(ValueError):
    """Why a path cannot be expanded (the message names the variable, macro or user)."""

    def __init__(self, message: str, expected: str = _EXPECTED) -> None:
        super().__init__(message)
        self.expected = expected


def _variable(name: str, env: Mapping[str, str], shown: str) -> str:
    value = env.get(name)
    if value is None:
        raise PathProblemError(f"{shown}: environment variable {name} is not set")
    if value == "":
        raise PathProblemError(f"{shown}: environment variable {name} is empty")
    return value


def _replace(match: re.Match[str], env: Mapping[str, str]) -> str:
    text = match.group(0)
    if text == "$$":
        return "$"
    macro = match.group("macro")
    if macro is not None:
        variable = re.sub(r"[^A-Za-z0-9_]", "_", macro).upper() or "NAME"
        raise PathProblemError(
            f"{text} is an Azure Pipelines macro, which the agent expands only in the pipeline's "
            "YAML, never in a file a step reads",
            expected=f"the environment variable the agent sets for it: ${{{variable}}}",
        )
    braced = match.group("braced")
    if braced is not None:
        if not text.endswith("}") or not _NAME.fullmatch(braced):
            raise PathProblemError(f"{text!r} is not a variable reference")
        return _variable(braced, env, text)
    plain = match.group("plain")
    if plain is not None:
        return _variable(plain, env, text)
    raise PathProblemError("a lone `$` (write `$$` for a literal `$`)")


def expand_path(value: str, env: Mapping[str, str]) -> str:
    """Return ``value`` with ``~`` and environment variables expanded.

    Raises:
        PathProblemError: an unset or empty variable, a macro ``$(...)``, an unknown user, or
            a lone ``$``.
    """
    if "$" not in value and not value.startswith("~"):
        return value
    expanded = _TOKEN.sub(lambda match: _replace(match, env), value)
    if value.startswith("~"):
        head, sep, rest = expanded.partition("/")
        if head == "~":
            home = _variable(envvars.HOME, env, "~")
        else:
            note_outside_environment(env, "the password database (~user)")
            home = os.path.expanduser(head)  # noqa: PTH111 - ~user, through the password database
            if home == head:
                raise PathProblemError(f"{head}: no such user")
        expanded = home + sep + rest if sep else home
    return expanded


def _outputs(data: Mapping[str, Any]) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    profiles = data.get("profiles")
    if not isinstance(profiles, dict):
        return
    for name, profile in profiles.items():
        outputs = profile.get("outputs") if isinstance(profile, dict) else None
        if not isinstance(outputs, list):
            continue
        for index, output in enumerate(outputs):
            if isinstance(output, dict):
                yield ("profiles", name, "outputs", index), output


def expand_output_paths(data: dict[str, Any], env: Mapping[str, str]) -> list[Problem]:
    """Expand every output path of a parsed profile file in place; return the problems."""
    problems: list[Problem] = []
    for where, output in _outputs(data):
        for key in PATH_KEYS:
            value = output.get(key)
            if not isinstance(value, str):
                continue
            try:
                output[key] = expand_path(value, env)
            except PathProblemError as exc:
                problems.append(Problem((*where, key), str(exc), exc.expected))
    return problems

r"""Render environment files in the dialect of the program that will read them.

Each dialect is written so that its reader gets back exactly the intended value, or the value is
refused with :class:`ValueError` (naming the variable, never the value) when that reader cannot
hold it. The rules follow what each consumer actually parses:

``dotenv`` (python-dotenv 1.x ``dotenv_values``/``load_dotenv``)
    ``NAME=value`` when the value is plain (letters, digits, ``_@%+=:,./-``), otherwise
    ``NAME="..."`` with ``\\``, ``\"``, ``\n`` and ``\r`` escapes. python-dotenv expands
    ``${NAME}`` inside every value (quoted or not) and has no escape for it, so each ``${`` of a
    value is written as ``${=:-$}{``: the expansion of a variable that cannot exist (``=``
    is not a legal name) with the default ``$``, which reads back as ``${``. Readers that turn
    interpolation off (``interpolate=False``) would see that spelling for such values.
``docker`` (``docker run --env-file``)
    ``NAME=value`` verbatim: docker strips no quotes, expands nothing and keeps surrounding
    spaces. Newlines and carriage returns cannot be represented; a line longer than 65535 bytes
    is rejected by docker's line scanner, so it is refused here.
``systemd`` (``EnvironmentFile=``)
    ``NAME=value`` when plain, otherwise ``NAME="..."`` with ``\`` before ``"``, ``\``, the
    backtick and ``$``. Control characters other than tab (newlines included) are refused: older
    systemd releases reject values holding them, so such a file would not load everywhere.
``sh`` (``. file`` or ``set -a; . file`` in bash, dash or any POSIX shell)
    ``export NAME='value'`` with ``'`` written as ``'\''``. Any value but NUL is representable.
``pwsh`` (dot-sourced by PowerShell 7 or Windows PowerShell 5.1)
    ``$env:NAME = 'value'`` with every single-quote character doubled (PowerShell also treats
    the typographic quotes U+2018 to U+201B as single quotes). The text starts with a byte-order
    mark so that Windows PowerShell 5.1 reads it as UTF-8. PowerShell removes a variable that is
    assigned an empty string, so an empty value reads back as unset.

Every file starts with the comment line :data:`HEADER` (all five dialects allow comments), keeps
the mapping's order and ends with a newline. Variable names must match
``[A-Za-z_][A-Za-z0-9_]*``; no environment variable can hold NUL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, get_args

__all__ = [
    "DIALECTS",
    "HEADER",
    "UNSETTING_DIALECTS",
    "Dialect",
    "check_variable_name",
    "render_env_file",
]

Dialect = Literal["dotenv", "docker", "systemd", "sh", "pwsh"]
"""An env file's syntax; the config models validate ``dialect`` (and the schema) against it."""
DIALECTS: tuple[str, ...] = get_args(Dialect)

HEADER = "# written by azauth; do not edit"

DOCKER_MAX_LINE_BYTES = 65535
"""docker's env-file reader uses Go's bufio.Scanner, whose default token limit is 64 KiB."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_CONTROL_BUT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SYSTEMD_ESCAPED = re.compile(r'([\\"`$])')
_PWSH_QUOTES = re.compile("(['\u2018\u2019\u201a\u201b])")
_BOM = "\ufeff"


def check_variable_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a portable environment variable name."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid environment variable name {name!r} (expected letters, digits and _, "
            "not starting with a digit)"
        )


UNSETTING_DIALECTS = ("sh", "pwsh")
"""Dialects whose files can remove a variable (``unset NAME``, ``Remove-Item Env:NAME``); the
others are read into an environment that starts from the reader's own and can only add."""


def render_env_file(values: Mapping[str, str], dialect: str, *, unset: Sequence[str] = ()) -> str:
    """Return the text of an environment file defining ``values`` for ``dialect``'s reader.

    Args:
        values: variable name to value, rendered in iteration order.
        dialect: one of :data:`DIALECTS`.
        unset: names the file removes before it sets ``values`` (the variables competing with
            a preset); only for :data:`UNSETTING_DIALECTS`.

    Raises:
        ValueError: the dialect is unknown, a name is invalid, or a value cannot be represented
            in the dialect (the message names the variable, never the value).
    """
    render_line = _RENDERERS.get(dialect)
    if render_line is None:
        raise ValueError(
            f"unknown env file dialect {dialect!r} (expected one of {', '.join(DIALECTS)})"
        )
    lines = [HEADER]
    if unset:
        if dialect not in UNSETTING_DIALECTS:
            raise ValueError(f"{dialect} env files cannot unset variables")
        for name in unset:
            check_variable_name(name)
        if dialect == "sh":
            lines.append(f"unset {' '.join(unset)}")
        else:
            lines.extend(f"Remove-Item Env:{name} -ErrorAction SilentlyContinue" for name in unset)
    for name, value in values.items():
        check_variable_name(name)
        _check_value(name, value)
        lines.append(render_line(name, value))
    text = "\n".join(lines) + "\n"
    return _BOM + text if dialect == "pwsh" else text


def _check_value(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"variable {name}: the value is not text")  # noqa: TRY004
    if "\0" in value:
        raise ValueError(f"variable {name}: the value contains NUL, which no environment can hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"variable {name}: the value is not valid Unicode text") from None


def _dotenv_line(name: str, value: str) -> str:
    if _PLAIN.fullmatch(value):
        return f"{name}={value}"
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("${", "${=:-$}{")
    )
    return f'{name}="{escaped}"'


def _docker_line(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"variable {name}: docker env files cannot hold a line break")
    line = f"{name}={value}"
    if len(line.encode("utf-8")) > DOCKER_MAX_LINE_BYTES:
        raise ValueError(
            f"variable {name}: longer than the {DOCKER_MAX_LINE_BYTES} bytes per line docker reads"
        )
    return line


def _systemd_line(name: str, value: str) -> str:
    if _CONTROL_BUT_TAB.search(value):
        raise ValueError(
            f"variable {name}: systemd environment files cannot hold control characters"
        )
    if not value or _PLAIN.fullmatch(value):
        # An empty value is written ``NAME=``, the form systemd.exec(5) uses for "empty".
        return f"{name}={value}"
    escaped = _SYSTEMD_ESCAPED.sub(r"\\\1", value)
    return f'{name}="{escaped}"'


def _sh_line(name: str, value: str) -> str:
    quoted = value.replace("'", "'\\''")
    return f"export {name}='{quoted}'"


def _pwsh_line(name: str, value: str) -> str:
    quoted = _PWSH_QUOTES.sub(r"\1\1", value)
    return f"$env:{name} = '{quoted}'"


_RENDERERS: dict[str, Callable[[str, str], str]] = {
    "dotenv": _dotenv_line,
    "docker": _docker_line,
    "systemd": _systemd_line,
    "sh": _sh_line,
    "pwsh": _pwsh_line,
}

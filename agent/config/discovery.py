"""Where the configuration comes from: which profile file, or the pipeline environment.

Order, first match wins:

1. the path given (``--config``), which must exist;
2. ``AZAUTH_CONFIG``, which must exist;
3. ``./azauth.toml``, ``./azauth.yaml``, ``./azauth.yml``;
4. the user config directory: ``$XDG_CONFIG_HOME/azauth/`` (default ``~/.config/azauth/``),
   the same three names;
5. no file: an implicit configuration built from the ``AZURESUBSCRIPTION_*`` variables that
   Azure Pipelines tasks such as AzureCLI@2 export for a service connection.

Stdlib only at import time: the ``azauth token`` fast path finds the profile file with this
module (:func:`find_config_path`, ``str`` paths) without loading pydantic, azure-core or even
:mod:`pathlib` (the error class and pathlib are imported when needed).
"""

# os, not pathlib: importing pathlib would cost the warm path of `azauth token` milliseconds.
# ruff: noqa: PTH109, PTH111, PTH116, PTH118, PTH119

from __future__ import annotations

import errno
import os
import stat

from agent import envvars

TYPE_CHECKING = False  # not from typing: see agent/__init__.py
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from agent.exceptions import ConfigError

__all__ = [
    "CONFIG_ENV",
    "FILE_NAMES",
    "IMPLICIT_NAME",
    "IMPLICIT_VARIABLES",
    "SUFFIXES",
    "candidate_paths",
    "find_config_file",
    "find_config_path",
    "implicit_config_data",
    "note_outside_environment",
    "syntax_of",
    "working_directory",
]

CONFIG_ENV = envvars.AZAUTH_CONFIG
FILE_NAMES = ("azauth.toml", "azauth.yaml", "azauth.yml")
SUFFIXES = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}
IMPLICIT_NAME = "default"
"""Name of the connection and of the profile of the implicit configuration."""

# Connection key -> variable; the first three are required.
IMPLICIT_VARIABLES = envvars.AZURESUBSCRIPTION_FIELDS
_REQUIRED = ("tenant_id", "client_id", "service_connection_id")


def _config_error(message: str, **kwargs: str) -> ConfigError:
    from agent.exceptions import ConfigError  # noqa: PLC0415 - keeps this module import-light

    return ConfigError(message, **kwargs)


def working_directory() -> Path:
    """The current working directory, which relative paths are resolved against.

    Raises:
        ConfigError: it no longer exists (deleted or moved away while the shell stayed in it).
    """
    from pathlib import Path  # noqa: PLC0415 - the fast path uses _getcwd

    return Path(_getcwd())


def _getcwd() -> str:
    try:
        return os.getcwd()
    except OSError as exc:
        raise _config_error(
            f"the current working directory cannot be used: {exc.strerror or exc} "
            "(it was probably deleted or moved after the shell entered it)",
            expected="azauth started from an existing directory (`cd` to one first)",
        ) from None


def _suffixes(path: str | os.PathLike[str]) -> list[str]:
    """``pathlib.PurePath.suffixes`` of ``path``, without pathlib."""
    name = os.path.basename(os.fspath(path).rstrip(os.sep))
    if name.endswith("."):
        return []
    return ["." + suffix for suffix in name.lstrip(".").split(".")[1:]]


def syntax_of(path: str | os.PathLike[str]) -> str | None:
    """Return ``"toml"`` or ``"yaml"`` from ``path``'s suffix (``.example`` is looked through)."""
    suffixes = [suffix.lower() for suffix in _suffixes(path)]
    if suffixes and suffixes[-1] == ".example":
        suffixes.pop()
    return SUFFIXES.get(suffixes[-1]) if suffixes else None


def candidate_paths(env: Mapping[str, str], cwd: Path) -> list[Path]:
    """Return the paths searched when neither ``--config`` nor ``AZAUTH_CONFIG`` is set."""
    from pathlib import Path  # noqa: PLC0415 - the fast path uses _candidates

    return [Path(candidate) for candidate in _candidates(env, os.fspath(cwd))]


def note_outside_environment(env: Mapping[str, str], what: str) -> None:
    """Tell ``env`` that a result also depends on ``what``, which is not in the environment.

    A recording environment (:mod:`agent.config.compiled`) then does not cache the result;
    any other mapping is left alone.
    """
    note = getattr(env, "note_outside_environment", None)
    if note is not None:
        note(what)


def _candidates(env: Mapping[str, str], cwd: str) -> list[str]:
    config_home = env.get(envvars.XDG_CONFIG_HOME)
    if config_home:
        user_dir = os.path.join(config_home, "azauth")
    else:
        home = env.get(envvars.HOME) or env.get(envvars.USERPROFILE)
        if not home:
            note_outside_environment(env, "the password database (no HOME)")
            home = os.path.expanduser("~")
        user_dir = os.path.join(home, ".config", "azauth")
    return [os.path.join(cwd, name) for name in FILE_NAMES] + [
        os.path.join(user_dir, name) for name in FILE_NAMES
    ]


def find_config_file(
    path: str | os.PathLike[str] | None, env: Mapping[str, str], cwd: Path | None = None
) -> Path | None:
    """Return the profile file to load, or ``None`` when there is none.

    Raises:
        ConfigError: the path given (or ``AZAUTH_CONFIG``) does not exist, is not a file, or has
            a suffix other than ``.toml``, ``.yaml`` or ``.yml``.
    """
    from pathlib import Path  # noqa: PLC0415 - the fast path uses find_config_path

    given = None if path is None else os.fspath(Path(path))
    found = find_config_path(given, env, None if cwd is None else os.fspath(cwd))
    return None if found is None else Path(found)


# Errors that pathlib's exists() and is_file() take as "no such file" rather than raise.
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _stat(path: str) -> os.stat_result | None:
    """``os.stat(path)``, ``None`` where pathlib's ``exists()`` says False; else OSError."""
    try:
        return os.stat(path)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise
    except ValueError:  # an embedded NUL byte: pathlib says False too
        return None


def find_config_path(
    path: str | None, env: Mapping[str, str], cwd: str | None = None
) -> str | None:
    """:func:`find_config_file` with ``str`` paths: the same search, without pathlib.

    Raises:
        ConfigError: as :func:`find_config_file`.
    """
    if path is not None:
        return _explicit(path, "--config")
    from_env = env.get(CONFIG_ENV)
    if from_env:
        return _explicit(from_env, f"environment variable {CONFIG_ENV}")
    for candidate in _candidates(env, _getcwd() if cwd is None else cwd):
        try:
            info = _stat(candidate)
        except OSError:  # a name too long ($HOME, $XDG_CONFIG_HOME): not a candidate
            continue
        if info is not None and stat.S_ISREG(info.st_mode):
            return candidate
    return None


def _explicit(path: str, origin: str) -> str:
    try:
        info = _stat(path or ".")
    except OSError as exc:  # a name too long, no permission
        raise _config_error(
            f"cannot use this path (named by {origin}): {exc.strerror or exc}",
            file=path,
            expected="an existing profile file (azauth init writes one)",
        ) from None
    if info is None:
        raise _config_error(
            f"no such file (named by {origin})",
            file=path,
            expected="an existing profile file (azauth init writes one)",
        )
    if not stat.S_ISREG(info.st_mode):
        raise _config_error(f"not a file (named by {origin})", file=path, expected="a file")
    if syntax_of(path) is None:
        suffix = (_suffixes(path) or [""])[-1]
        raise _config_error(
            f"unsupported file type {suffix or '(no suffix)'!r}",
            file=path,
            expected="a .toml, .yaml or .yml file (optionally followed by .example)",
        )
    return path


def implicit_config_data(env: Mapping[str, str], searched: list[Path]) -> dict[str, object]:
    """Return the configuration implied by the ``AZURESUBSCRIPTION_*`` variables.

    One connection and one profile, both named ``default``; the profile has no outputs (commands
    such as ``azauth token`` print what they acquire).

    Raises:
        ConfigError: there is no profile file and the required variables are not all set.
    """
    # Ids have no use for surrounding whitespace (a CRLF .env file adds "\r"): trimmed.
    values = {
        key: (env.get(variable) or "").strip() or None
        for key, variable in IMPLICIT_VARIABLES.items()
    }
    missing = [IMPLICIT_VARIABLES[key] for key in _REQUIRED if not values[key]]
    if missing:
        looked = ", ".join(str(candidate) for candidate in searched)
        raise _config_error(
            f"no profile file found (looked for {looked}) and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set",
            expected=(
                "a profile file (write one with `azauth init`, choose one with --config or "
                f"{CONFIG_ENV}), or a step where the AZURESUBSCRIPTION_* variables of a service "
                "connection are set (AzureCLI@2 exports them)"
            ),
        )
    connection = {key: value for key, value in values.items() if value}
    return {
        "connections": {IMPLICIT_NAME: connection},
        "profiles": {
            IMPLICIT_NAME: {
                "description": "implicit: the service connection in AZURESUBSCRIPTION_*",
                "connections": [IMPLICIT_NAME],
            }
        },
    }

"""What is wrong where in a profile file, in words: key paths, problems, suggestions. No pydantic.

The shapes every check of :mod:`agent.config` reports with (:class:`Problem` at a
:data:`KeyPath`), shared by the validators (:mod:`agent.config.models`), the checks that span a
file (:mod:`agent.config.resolution`) and the behaviour of the models (:mod:`agent.config.rules`),
which the run path imports without pydantic. :mod:`agent.config.errors` turns them into
:class:`~agent.exceptions.ConfigError` messages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

TYPE_CHECKING = False  # not from typing: see agent/__init__.py
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "KeyPath",
    "Problem",
    "connection_problems",
    "did_you_mean",
    "format_key_path",
    "looks_like_jwt",
]

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Problem:
    """One thing wrong, at ``path`` relative to the object that found it.

    Attributes:
        path: keys and list indexes below the validating object; empty for the object itself.
        message: what is wrong, in words.
        expected: what would have been accepted, in words (``None`` when the message says it).
    """

    path: KeyPath
    message: str
    expected: str | None = None


def format_key_path(path: Iterable[str | int]) -> str:
    """Format ``path`` as a TOML-style key path: ``profiles.ci.outputs[1].path``.

    Keys that are not bare TOML keys (a dot, a space) are quoted: ``connections."my.conn"``.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
        text += f".{key}" if text else key
    return text


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of ``choices``, or an empty string."""
    import difflib  # noqa: PLC0415 - only when a name is wrong

    if not isinstance(word, str):
        return ""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not matches:
        lowered = {choice.lower(): choice for choice in choices}
        match = lowered.get(word.lower())
        matches = [match] if match else []
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def looks_like_jwt(value: object) -> bool:
    """Whether ``value`` is a string holding something shaped like a JWT."""
    return isinstance(value, str) and _JWT.search(value) is not None


def connection_problems(
    name: str, where: KeyPath, connection: str | None, connections: list[str]
) -> Iterator[Problem]:
    """A ``connection`` missing where profile ``name`` has several, or not one of them."""
    if connection is None:
        yield Problem(
            (*where, "connection"),
            f"missing required key: profile {name!r} uses several connections",
            f"one of: {', '.join(connections)}",
        )
    elif connection not in connections:
        yield Problem(
            (*where, "connection"),
            f"connection {connection!r} is not used by profile {name!r}"
            f"{did_you_mean(connection, connections)}",
            f"one of: {', '.join(connections)} (or add it to profiles.{name}.connections)",
        )

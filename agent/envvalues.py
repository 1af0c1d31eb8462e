"""Values azauth reads from the environment: one place that trims them and says what is wrong.

A token read from a file or a CRLF ``.env`` file arrives as ``"eyJ...<CR><LF>"``; sent as it is, it
becomes an HTTP header injection that aiohttp refuses without naming the variable. Every variable
azauth reads goes through here instead:

* surrounding whitespace is trimmed where the value's grammar has no use for it (tokens, URLs);
* anything else that cannot be right (a control character or a space inside a token or a URL,
  an unset or empty required variable) is a :class:`~agent.exceptions.ConfigError` (exit 3) that
  names the variable and what is wrong — never the value of a secret. ``ConfigError`` is also a
  ``ValueError``, the type the Azure SDK raises for bad credential arguments.

The "job environment" messages (:func:`missing_job_variable`) say what is missing, where Azure
Pipelines normally provides it, and that ``--emulate`` exists for runs outside a pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.exceptions import ConfigError

__all__ = [
    "EMULATE_HINT",
    "clean_token",
    "clean_url",
    "missing_job_variable",
    "oidc_request_uri",
]

EMULATE_HINT = "outside a pipeline, `--emulate` runs against the built-in emulator"

_WHERE = {
    "SYSTEM_OIDCREQUESTURI": (
        "Azure Pipelines sets it in every job (a `script:` or task step on an agent); the service "
        "connection must also be referenced in the stage (by a task input such as "
        "`azureSubscription:`) for Azure DevOps to hand out its OIDC token"
    ),
}


def _is_clean(value: str) -> bool:
    """The common case, at C speed: printable ASCII without spaces."""
    return bool(value) and value.isascii() and value.isprintable() and " " not in value


def _first_bad(value: str) -> tuple[int, str] | None:
    for index, char in enumerate(value):
        if char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F:
            return index, f"U+{ord(char):04X}"
    return None


def clean_token(value: str, *, source: str, expected: str | None = None) -> str:
    """Return ``value`` without surrounding whitespace; refuse anything else a header can't hold.

    ``source`` names where the value came from (``environment variable SYSTEM_ACCESSTOKEN``);
    the value itself is never shown.

    Raises:
        ConfigError: empty after trimming, or a control character or space inside.
    """
    if _is_clean(value):
        return value
    stripped = value.strip()
    if not stripped:
        raise ConfigError(f"{source} is empty or only whitespace", expected=expected)
    bad = _first_bad(stripped)
    if bad is not None:
        raise ConfigError(
            f"{source} holds a control character or space ({bad[1]}) at position {bad[0] + 1} "
            "of its trimmed value (the value is not shown)",
            expected=expected or "a token: visible ASCII characters only",
        )
    return stripped


def clean_url(value: str, *, source: str, expected: str | None = None) -> str:
    """Return URL ``value`` without surrounding whitespace.

    Raises:
        ConfigError: empty after trimming, or a control character or space inside.
    """
    if _is_clean(value):
        return value
    stripped = value.strip()
    if not stripped:
        raise ConfigError(f"{source} is empty or only whitespace", expected=expected)
    bad = _first_bad(stripped)
    if bad is not None:
        raise ConfigError(
            f"{source}={stripped!r} holds a control character or space ({bad[1]}) at position "
            f"{bad[0] + 1}",
            expected=expected or "a URL without spaces or control characters",
        )
    return stripped


def missing_job_variable(name: str, state: str = "is not set") -> ConfigError:
    """The error for a variable every Azure Pipelines job has and this environment lacks."""
    where = _WHERE.get(name, "Azure Pipelines sets it in every job")
    return ConfigError(
        f"environment variable {name} {state}: this does not look like an Azure Pipelines job "
        f"step; {where}",
        expected=f"a pipeline step, or {EMULATE_HINT}",
    )


def oidc_request_uri(env: Mapping[str, str]) -> str:
    """``SYSTEM_OIDCREQUESTURI`` from ``env``, trimmed.

    Raises:
        ConfigError: it is unset, empty, or holds spaces or control characters.
    """
    value = env.get("SYSTEM_OIDCREQUESTURI")
    if value is None or not value.strip():
        raise missing_job_variable(
            "SYSTEM_OIDCREQUESTURI", "is not set" if value is None else "is empty"
        )
    return clean_url(value, source="environment variable SYSTEM_OIDCREQUESTURI")

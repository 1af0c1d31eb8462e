r"""Text azauth writes into an Azure Pipelines job log, made unable to carry a logging command.

The agent runs a ``##vso[...]`` command found *anywhere* in a line of a step's stdout or stderr,
formats lines that start with ``##[...]``, and splits lines at ``\n``, ``\r`` and ``\r\n``
(.NET ``ReadLine``). Text that holds input — a path, a profile name, a server's message — is
passed through :func:`neutralize` before azauth adds its own ``##[error]`` or ``##[group]``:

* every ``#`` directly followed by another ``#`` gets a space (``###vso[`` → ``# # #vso[``), so no
  ``##`` survives, whatever the number of ``#`` in a row;
* a carriage return is written ``\r`` (two characters), so it cannot start a new line.

Line feeds are kept: they separate the lines of a table or a plan. Stdlib only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from agent import envvars

__all__ = ["in_pipeline", "neutralize", "pipeline_safe"]

_HASH_BEFORE_HASH = re.compile(r"#(?=#)")


def in_pipeline(env: Mapping[str, str] | None = None) -> bool:
    """Whether this is an Azure Pipelines job step (``TF_BUILD`` is set and not empty)."""
    return bool((os.environ if env is None else env).get(envvars.TF_BUILD))


def neutralize(text: str) -> str:
    """Return ``text`` without ``##`` and without carriage returns (see the module docstring)."""
    if "#" not in text and "\r" not in text:
        return text
    return _HASH_BEFORE_HASH.sub("# ", text.replace("\r", "\\r"))


def pipeline_safe(text: str, env: Mapping[str, str] | None = None) -> str:
    """:func:`neutralize` in an Azure Pipelines job, ``text`` unchanged elsewhere."""
    return neutralize(text) if in_pipeline(env) else text

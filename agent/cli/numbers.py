"""Numeric command-line values: one checker per shape, so every command refuses alike.

A bad number on the command line is a usage error (exit 2) from argparse, with the flag named:
``inf`` and ``nan`` are refused everywhere, ports must be 0-65535, counts and durations have the
same bounds as the profile keys they override (``[settings]`` values in a file are checked by
the model instead, as configuration errors, exit 3).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["MAX_SECONDS", "count", "port", "seconds"]

MAX_SECONDS = 86_400.0
"""The largest duration any flag or setting takes: a day, longer than any token lives."""


def _number(text: str, *, integer: bool) -> float:
    try:
        value = float(int(text, 10)) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    value = int(_number(text, integer=True))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (expected 0 to 65535)")
    return value


def count(low: int, high: int) -> Callable[[str], int]:
    """An integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        value = int(_number(text, integer=True))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range (expected {low} to {high})")
        return value

    parse.__name__ = "integer"
    return parse


def seconds(
    *, low: float = 0.0, high: float = MAX_SECONDS, positive: bool = False
) -> Callable[[str], float]:
    """A finite duration in seconds, ``low`` (exclusive when ``positive``) to ``high``."""

    def parse(text: str) -> float:
        value = _number(text, integer=False)
        if value < low or (positive and value == low) or value > high:
            bound = f"more than {low:g}" if positive else f"{low:g}"
            raise argparse.ArgumentTypeError(
                f"{text} is out of range (expected {bound} to {high:g} seconds)"
            )
        return value

    parse.__name__ = "seconds"
    return parse

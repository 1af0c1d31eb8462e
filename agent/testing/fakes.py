"""Test doubles that users of azauth can use too (like ``structlog.testing``)."""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`agent.clock.Clock` that only moves when told to, or when slept on.

    ``sleep()`` advances time instantly (and yields to the loop once), so refresh and backoff
    schedules run in microseconds and deterministically.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self.slept: list[float] = []

    def time(self) -> float:
        """Current fake wall-clock time."""
        return self._now

    def monotonic(self) -> float:
        """Current fake monotonic time."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        self._now += seconds
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, advance the clocks, and let other tasks run."""
        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)

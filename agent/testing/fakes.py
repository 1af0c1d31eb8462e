"""Test doubles that users of azauth can use too (like ``structlog.testing``)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from pathlib import Path

__all__ = ["FakeClock", "skewed_clock_environment"]

_LIBFAKETIME = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)


def skewed_clock_environment(offset: str) -> dict[str, str] | None:
    """Environment variables that shift a child process's wall clock by ``offset``.

    ``offset`` is libfaketime's relative form (``"+10m"``, ``"-2h"``). The monotonic clock is
    left alone, as on a real agent whose wall clock is wrong. Returns ``None`` when libfaketime
    (Debian's ``faketime`` package) is not installed. The library is preloaded directly
    (``LD_PRELOAD``), not through the ``faketime`` wrapper, which does not pass signals on.
    """
    library = next((path for path in _LIBFAKETIME if Path(path).exists()), None)
    if library is None:
        return None
    return {"LD_PRELOAD": library, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


class FakeClock:
    """A :class:`agent.clock.Clock` whose time moves only when told to or slept on.

    Sleepers are woken in order of their deadlines, and time jumps straight to the earliest
    deadline, so hours of refresh schedule run in milliseconds while concurrent sleepers still
    observe a consistent timeline (two tasks sleeping 150 s each wake together at +150 s, not
    at +300 s). Time moves on only after the sleepers have been left alone for a few real
    milliseconds, so work on loopback sockets (the emulator) completes before it does.
    """

    quiet_period = 0.01  # real seconds without a new sleeper before fake time jumps

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def time(self) -> float:
        """Current fake wall-clock time."""
        return self._now

    def monotonic(self) -> float:
        """Current fake monotonic time."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` and wake the sleepers that are due."""
        self._now += seconds
        self._mono += seconds
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def sleep(self, seconds: float) -> None:
        """Wait until fake time reaches now + ``seconds`` (recorded in :attr:`slept`)."""
        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._order), future))
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive())
        await future

    async def _drive(self) -> None:
        while self._sleepers:
            seen = -1
            while seen != len(self.slept):  # quiet: nobody went to sleep during the pause
                seen = len(self.slept)
                await asyncio.sleep(self.quiet_period)
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # a cancelled sleeper
            if not self._sleepers:
                return
            target = self._sleepers[0][0]
            self.advance(max(0.0, target - self._mono))

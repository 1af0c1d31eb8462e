"""Test helpers shipped with azauth (like ``structlog.testing``): the emulator and fakes.

``Emulator`` serves Azure DevOps' ``oidctoken`` endpoint and Microsoft Entra's token endpoint on
loopback, so code that uses azauth (or any Azure SDK credential) can be tested without a network.
It needs the ``emulator`` extra (``pip install 'azauth[emulator]'``, for ``cryptography``).
Names are imported lazily: importing ``agent.testing`` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent._lazy import lazy_exports

if TYPE_CHECKING:
    from agent.testing.emulator import (
        Emulator,
        IssuedToken,
        RecordedRequest,
        ServiceConnection,
    )
    from agent.testing.fakes import FakeClock
    from agent.testing.pipeline import emulate_profile

__all__ = [
    "Emulator",
    "FakeClock",
    "IssuedToken",
    "RecordedRequest",
    "ServiceConnection",
    "emulate_profile",
]

_LOCATIONS: dict[str, str] = {
    "Emulator": "agent.testing.emulator",
    "FakeClock": "agent.testing.fakes",
    "IssuedToken": "agent.testing.emulator",
    "RecordedRequest": "agent.testing.emulator",
    "ServiceConnection": "agent.testing.emulator",
    "emulate_profile": "agent.testing.pipeline",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LOCATIONS)

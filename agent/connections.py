"""Folded into :mod:`agent.pool` (kept until the module rename removes this file)."""

from __future__ import annotations

from agent.pool import credential_for

__all__ = ["credential_for"]

"""Shared support of the trust-boundary tests: the one profile file they run against.

The connection uses the ids of ``tests/support.py`` (``connected_emulator`` registers them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import PROD_CI, PROD_CI_TOKEN_FILE


@pytest.fixture
def write_profile() -> Callable[..., Path]:
    """``write_profile(directory, outputs=False)`` writes ``azauth.toml`` with profile ``ci``.

    Profile ``ci`` uses connection ``prod`` (TENANT/CLIENT/SC); with ``outputs`` it also writes
    the ARM token to ``out/arm.token``. Returns the file's path.
    """

    def write(directory: Path, *, outputs: bool = False) -> Path:
        path = directory / "azauth.toml"
        path.write_text(PROD_CI_TOKEN_FILE if outputs else PROD_CI)
        return path

    return write

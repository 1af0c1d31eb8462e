"""Shared support of the trust-boundary tests: the one profile file they run against.

The connection uses the ids of ``tests/conftest.py`` (``connected_emulator`` registers them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SC = "00000000-aaaa-bbbb-cccc-000000000001"

_CONNECTION = f"""
[connections.prod]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
service_connection_id = "{SC}"

[profiles.ci]
connections = ["prod"]
"""
_OUTPUT = """
[[profiles.ci.outputs]]
kind = "token_file"
path = "out/arm.token"
"""


@pytest.fixture
def write_profile() -> Callable[..., Path]:
    """``write_profile(directory, outputs=False)`` writes ``azauth.toml`` with profile ``ci``.

    Profile ``ci`` uses connection ``prod`` (TENANT/CLIENT/SC); with ``outputs`` it also writes
    the ARM token to ``out/arm.token``. Returns the file's path.
    """

    def write(directory: Path, *, outputs: bool = False) -> Path:
        path = directory / "azauth.toml"
        path.write_text(_CONNECTION + (_OUTPUT if outputs else ""))
        return path

    return write

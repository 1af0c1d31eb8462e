"""Fixtures every test can use: a hermetic environment and running emulators.

``TENANT``, ``CLIENT`` and ``SC`` (from ``tests/support.py``, where tests import them) are the ids
the ``connected_emulator`` fixture registers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import CLIENT, CLIENT2, SC, SC2, TENANT, enter_pipeline

if TYPE_CHECKING:
    # Imported inside the fixture: tests that check what `import agent` loads must not find
    # aiohttp and cryptography already imported by this file.
    from agent.testing.emulator import Emulator

# Variables that would let the developer's shell (or a CI agent) leak into a test.
_PREFIXES = ("AZAUTH_", "SYSTEM_", "AZURE_", "ARM_", "AZURESUBSCRIPTION_", "IDENTITY_", "MSI_")
_NAMES = frozenset(
    {
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "KUBERNETES_EXEC_INFO",
        "AGENT_PROXYURL",
        "AGENT_PROXYUSERNAME",
        "AGENT_PROXYPASSWORD",
        "AGENT_PROXYBYPASSLIST",
    }
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Remove azauth, Azure Pipelines, Azure SDK, proxy and CA variables for every test.

    The user's config and cache directories are replaced by empty ones, so a developer's own
    ~/.config/azauth or ~/.cache/azauth never leaks into a test.
    """
    for name in list(os.environ):
        if name.upper().startswith(_PREFIXES) or name.upper() in _NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty ``tmp_path/work`` with an empty ``HOME`` (``tmp_path/home``); return work.

    ``XDG_CONFIG_HOME`` is unset too, so profile discovery finds only what the test writes.
    """
    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return work


StartEmulator = Callable[..., Awaitable["Emulator"]]


@pytest.fixture
async def start_emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartEmulator]:
    """``await start_emulator(*(sc, tenant, client), tls=False, **options)``: a pipeline emulator.

    Starts an ``Emulator(**options)`` on 127.0.0.1, registers each ``(service connection,
    tenant, client)`` triple, points the pipeline variables at it (``enter_pipeline``) and
    closes it after the test.
    """
    from agent.testing.emulator import Emulator  # noqa: PLC0415

    started: list[Emulator] = []

    async def start(
        *connections: tuple[str, str, str], tls: bool = False, **options: Any
    ) -> Emulator:
        emu = Emulator(**options)
        await emu.start(tls=tls)
        started.append(emu)
        for service_connection, tenant, client in connections:
            emu.add_connection(service_connection, tenant, client)
        enter_pipeline(monkeypatch, emu)
        return emu

    try:
        yield start
    finally:
        for emu in started:
            await emu.close()


@pytest.fixture
async def emulator(start_emulator: StartEmulator) -> Emulator:
    """A started emulator on 127.0.0.1, with the pipeline variables pointing at it."""
    return await start_emulator()


@pytest.fixture
def connected_emulator(emulator: Emulator) -> Emulator:
    """The ``emulator`` with service connection ``SC`` of app ``CLIENT`` in ``TENANT``."""
    emulator.add_connection(SC, TENANT, CLIENT)
    return emulator


@pytest.fixture
def two_connection_emulator(connected_emulator: Emulator) -> Emulator:
    """``connected_emulator`` plus ``SC2`` of app ``CLIENT2`` (``PROD_OTHER_CI``'s ``other``)."""
    connected_emulator.add_connection(SC2, TENANT, CLIENT2)
    return connected_emulator


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Undo configure_logging() after each test, so later tests start from the defaults."""
    yield
    import logging  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__name__ == "_StdlibBridge":
            root.removeHandler(handler)

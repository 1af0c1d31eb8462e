"""Fixtures every test can use: a hermetic environment and a running emulator.

``TENANT``, ``CLIENT`` and ``SC`` are the ids the ``connected_emulator`` fixture registers; tests
can copy them (pytest's importlib mode does not make this module importable by name).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    # Imported inside the fixture: tests that check what `import agent` loads must not find
    # aiohttp and cryptography already imported by this file.
    from agent.testing.emulator import Emulator

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SC = "00000000-aaaa-bbbb-cccc-000000000001"

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
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Emulator]:
    """A started emulator on 127.0.0.1, with the pipeline variables pointing at it."""
    from agent.testing.emulator import Emulator  # noqa: PLC0415

    emu = Emulator()
    await emu.start()
    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emu.oidc_request_uri)
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", emu.system_access_token)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", emu.authority)
    try:
        yield emu
    finally:
        await emu.close()


@pytest.fixture
def connected_emulator(emulator: Emulator) -> Emulator:
    """The ``emulator`` with service connection ``SC`` of app ``CLIENT`` in ``TENANT``."""
    emulator.add_connection(SC, TENANT, CLIENT)
    return emulator


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

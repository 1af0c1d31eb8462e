"""Console-script entry point.

Kept tiny on purpose: ``azauth token`` answers from the on-disk cache without importing aiohttp,
pydantic, structlog or azure-core, so this module imports nothing heavy before it knows it must.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the ``azauth`` command."""
    from agent.cli.main import main as cli_main  # noqa: PLC0415 - keep start-up lazy

    sys.exit(cli_main(sys.argv[1:]))

"""Fixtures of the profile-file tests: a private working directory and home for every test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def workdir(empty_home: Path) -> Path:
    """Run each test in an empty directory, with a home and config dir that hold nothing."""
    return empty_home

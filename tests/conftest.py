"""Shared fixtures: the real data beside the checkout and an isolated signal cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository (real data for tests)."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """A signal cache shared by the tests of one session (models are scored once)."""
    return tmp_path_factory.mktemp("winnow-cache")

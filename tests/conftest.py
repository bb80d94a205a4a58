"""Shared fixtures: the real data beside the checkout and an isolated signal cache.

The real data lives in ``../shared/data`` next to the checkout. Where it is absent the tests
that need it are skipped on a developer's machine, but under ``CI=true`` the run stops
with an error: a CI that skips them would be green without testing anything real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config):
    if _in_ci() and not SHARED_DATA.is_dir():
        raise pytest.UsageError(
            f"CI=true but the shared test data is missing: expected the folder {SHARED_DATA} "
            "(the project's ../shared/data beside the checkout). Put it there and run again.")


def pytest_collection_modifyitems(config, items):
    """Skip ``native_bf16`` tests on a CPU without AVX512-BF16 or AMX: there bf16 matrix
    products are emulated (hundreds of times slower than fp32), and dtype ``auto`` never
    picks bf16."""
    from winnow.models.device import cpu_has_bf16

    if cpu_has_bf16():
        return
    skip = pytest.mark.skip(reason="this CPU has no native bf16 (AVX512-BF16 or AMX)")
    for item in items:
        if "native_bf16" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository (real data for tests)."""
    if not SHARED_DATA.is_dir():
        message = f"shared data not found at {SHARED_DATA}"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


# A few Alpaca records written by the tests themselves, for tests that only need a small
# valid input file (not the real data).
TINY_ALPACA = [
    {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "2 + 3 = 5."},
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour."},
    {"instruction": "Give the opposite word.", "input": "hot", "output": "Cold."},
    {"instruction": "What is the capital of Italy?", "input": "", "output": "Rome."},
    {"instruction": "Sort the list.", "input": "3, 1, 2", "output": "1, 2, 3"},
    {"instruction": "Write a haiku about rain.", "input": "",
     "output": "Soft rain on the roof\nwhispers to the sleeping town\npuddles hold the sky"},
    {"instruction": "Is 7 a prime number?", "input": "", "output": "Yes, 7 is prime."},
    {"instruction": "Summarise the sentence.", "input": "The cat sat on the mat all day.",
     "output": "A cat stayed on a mat."},
    {"instruction": "Spell 'cat' backwards.", "input": "", "output": "tac"},
]


@pytest.fixture
def tiny_alpaca(tmp_path) -> Path:
    """A 10-record Alpaca JSON file in the test's own folder."""
    path = tmp_path / "tiny_alpaca.json"
    path.write_text(json.dumps(TINY_ALPACA, indent=1), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def alpaca80(shared_data, tmp_path_factory) -> Path:
    """The first 80 records of the real Alpaca demo and a copy of the 11th (an exact
    duplicate), as a JSON file shared by the tests that score a real pool with the model."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    path = tmp_path_factory.mktemp("alpaca80") / "alpaca80.json"
    path.write_text(json.dumps(records[:80] + [records[10]], ensure_ascii=False, indent=1),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """A signal cache shared by the tests of one session (models are scored once)."""
    return tmp_path_factory.mktemp("winnow-cache")

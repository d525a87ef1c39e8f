# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by every pytest suite: the myriad binary, from $MYR_CLI or else
build/release/myriad. A missing binary fails every test with instructions; it never skips."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/pyhelpers.py

import pyhelpers  # noqa: E402


@pytest.fixture(scope="session")
def cli() -> Path:
    try:
        return pyhelpers.find_cli()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)

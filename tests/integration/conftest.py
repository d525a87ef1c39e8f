# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the CLI integration tests: the myriad binary (from $MYR_CLI, else
build/release/myriad; a missing binary fails every test with instructions, it never skips)
and small generated data sets, written under pytest's tmp directories."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/pyhelpers.py

import pyhelpers  # noqa: E402


@pytest.fixture(scope="session")
def cli() -> Path:
    try:
        return pyhelpers.find_cli()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def small_data(cli, tmp_path_factory) -> Path:
    """60 groups x 40 rows x 4 features, equal sizes."""
    d = tmp_path_factory.mktemp("small")
    return pyhelpers.gen(cli, d / "data.csv", groups=60, rows=40, features=4, noise=0.3,
                         seed=11)


@pytest.fixture(scope="module")
def zipf_data(cli, tmp_path_factory) -> Path:
    """400 Zipf-sized groups (mean 25 rows, some of 1 row) x 4 features."""
    d = tmp_path_factory.mktemp("zipf")
    return pyhelpers.gen(cli, d / "data.csv", groups=400, rows=25, features=4, noise=0.3,
                         seed=12, skew="zipf")

# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the scikit-learn comparison tests: the myriad binary (from $MYR_CLI, else
build/release/myriad; a missing binary fails every test with instructions, it never skips)
and the generated data sets, written under pytest's tmp directories."""
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


@pytest.fixture(scope="session")
def uniform_data(cli, tmp_path_factory) -> Path:
    """300 groups x 30 rows x 5 features."""
    d = tmp_path_factory.mktemp("uniform")
    return pyhelpers.gen(cli, d / "data.csv", groups=300, rows=30, features=5, noise=0.2,
                         seed=7)


@pytest.fixture(scope="session")
def zipf_data(cli, tmp_path_factory) -> Path:
    """300 Zipf-sized groups (mean 30 rows; many tiny, a few large) x 5 features."""
    d = tmp_path_factory.mktemp("zipf")
    return pyhelpers.gen(cli, d / "data.csv", groups=300, rows=30, features=5, noise=0.2,
                         seed=8, skew="zipf")

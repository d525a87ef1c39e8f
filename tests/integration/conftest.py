# SPDX-License-Identifier: Apache-2.0
"""Data sets for the CLI integration tests (small, generated under pytest's tmp
directories); the `cli` fixture comes from tests/conftest.py."""
from pathlib import Path

import pytest

import pyhelpers


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

# SPDX-License-Identifier: Apache-2.0
"""Data sets for the scikit-learn comparison tests (generated under pytest's tmp
directories); the `cli` fixture comes from tests/conftest.py."""
from pathlib import Path

import pytest

import pyhelpers


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

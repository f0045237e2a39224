"""Fixtures shared by every test package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator so every random test is repeatable."""
    return np.random.default_rng(20261123)


@pytest.fixture(scope="session")
def diamonds() -> pd.DataFrame:
    """The shipped diamonds data set, loaded once per session (do not mutate)."""
    from dethrone.slices.datasets import load_diamonds

    return load_diamonds()

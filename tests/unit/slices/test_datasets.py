"""The public tables shipped with dethrone load with the documented shapes and dtypes."""

import pandas as pd
import pytest

from dethrone.slices import datasets


@pytest.mark.parametrize(
    "loader,shape,categorical",
    [
        (datasets.load_txhousing, (8602, 9), ["city"]),
        (datasets.load_midwest, (437, 28), ["county", "state", "category"]),
        (datasets.load_msleep, (83, 11), ["name", "genus", "vore", "order", "conservation"]),
    ],
)
def test_shipped_table_shape_and_categoricals(loader, shape, categorical):
    frame = loader()
    assert frame.shape == shape
    assert [
        c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)
    ] == categorical
    assert all(
        pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns if c not in categorical
    )


def test_txhousing_has_the_documented_missing_values():
    missing = datasets.load_txhousing().isna().mean()
    assert missing[["city", "year", "month", "date"]].max() == 0.0
    assert missing[["sales", "volume", "median", "listings", "inventory"]].between(0.06, 0.18).all()


def test_many_level_columns():
    assert datasets.load_midwest()["county"].nunique() == 320
    assert datasets.load_msleep()["genus"].nunique() == 77


def test_docstring_examples():
    import doctest

    result = doctest.testmod(datasets)
    assert result.attempted >= 3 and result.failed == 0

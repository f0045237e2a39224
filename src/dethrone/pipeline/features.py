"""The model's input columns: which are numeric or categorical, how they are prepared
and preprocessed. Shared by the default training and user trainers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def split_columns(frame: pd.DataFrame, target: str) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns of ``frame`` (target excluded)."""
    if target not in frame.columns:
        raise ValueError(f"target column {target!r} not in data (columns: {list(frame.columns)})")
    numeric, categorical = [], []
    for col in frame.columns:
        if col == target:
            continue
        s = frame[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            numeric.append(col)
        else:
            categorical.append(col)
    if not numeric and not categorical:
        raise ValueError("no feature columns besides the target")
    return numeric, categorical


def build_preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Impute and scale numeric columns; one-hot encode categoricals, ignoring unseen ones."""
    num = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    cat = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            # Unseen categories in new data (drift!) must not crash scoring.
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer([("num", num, numeric), ("cat", cat, categorical)])


def _to_model_input(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    # Categorical dtypes become plain strings so the model signature, the encoder and
    # Parquet round trips all see the same type.
    out = frame.copy()
    for col in categorical:
        values = out[col].astype(object)
        out[col] = values.map(lambda v: str(v) if pd.notna(v) else np.nan).astype(object)
    return out


def prepare_features(
    frame: pd.DataFrame, features: list[str], categorical: list[str]
) -> pd.DataFrame:
    """Select ``features`` and normalise categorical columns to strings for scoring.

    Raises
    ------
    ValueError
        If a feature column is missing (schema mismatch), naming the columns.
    """
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"data is missing feature columns {missing}")
    return _to_model_input(frame[features], categorical)

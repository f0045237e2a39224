"""Fast random slices of a data set, encoded as pandas ``orient="split"`` JSON.

The router answers every data request with thousands of rows, so encoding is the
hot path. ``DataFrame.to_json`` needs about 12 ms for 5,000 diamonds rows; here
every cell of the data set is formatted once at start-up (per distinct value), a
request only gathers pre-formatted byte strings and joins them, and only drifted
columns are formatted per request (with orjson). The output parses back with
``pandas.read_json(..., orient="split")`` to the same values as ``to_json`` gives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import orjson
import pandas as pd

from dethrone.injection import (DriftSpec, applicable_kinds, default_kind, drift_codes,
                                drift_numbers, drift_series, intensity_of)

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _format_values(series: pd.Series) -> tuple[list[bytes], np.ndarray]:
    """JSON text of each distinct value of ``series`` and each row's code into it.

    The last entry of the table is ``null``; missing values point at it.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        table = [orjson.dumps(str(c)) for c in cats]
        codes = series.cat.codes.to_numpy().astype(np.int64)
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        values = np.asarray(uniques)
        if values.dtype.kind == "f" and values.dtype.itemsize not in (4, 8):
            values = values.astype(np.float64)  # orjson writes float32/64 only
        if values.dtype.kind in "biuf":
            # orjson writes the shortest repr that round-trips, and null for nan/inf.
            text = orjson.dumps(values, option=_NUMPY)[1:-1]
            table = text.split(b",") if len(values) else []
        else:
            table = [orjson.dumps(v if isinstance(v, str | int | float | bool) else str(v))
                     for v in values.tolist()]
        codes = codes.astype(np.int64)
    table.append(b"null")
    codes[codes < 0] = len(table) - 1
    return table, codes


class Slicer:
    """Draw random slices of ``frame`` and encode them as split JSON.

    Parameters
    ----------
    frame : DataFrame
        The data set; its positional row number is used as the ``index`` of the
        slices (as the seed's ``DataFrame.sample`` did on a default index).
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.reset_index(drop=True)
        for col in self.frame.columns:
            dtype = self.frame[col].dtype
            # Nullable extension numbers (Int64, Float64 from Parquet) become float64 with
            # NaN, so drift and encoding see one kind of missing value.
            if (isinstance(dtype, pd.api.extensions.ExtensionDtype)
                    and not isinstance(dtype, pd.CategoricalDtype)
                    and pd.api.types.is_numeric_dtype(dtype)
                    and not pd.api.types.is_bool_dtype(dtype)):
                self.frame[col] = self.frame[col].astype("float64")
        self.columns: list[str] = [str(c) for c in self.frame.columns]
        self.n_rows = len(self.frame)
        k = len(self.columns)
        self._tables: list[list[bytes]] = []
        self._codes: list[np.ndarray] = []
        self._arrays = [self.frame[c].array for c in self.frame.columns]
        for j, col in enumerate(self.frame.columns):
            table, codes = _format_values(self.frame[col])
            # Separators are baked into each cell so that a row is a plain join.
            self._tables.append([self._affix(j, k, t) for t in table])
            self._codes.append(codes)
        self._columns_json = orjson.dumps(self.columns)
        self._table_arrays = [np.asarray(t, dtype=object) for t in self._tables]
        # Array views for the drift kernels: numbers as float64 (NaN = missing);
        # categoricals use their codes, whose last table entry is null.
        self._floats = {j: self.frame[c].to_numpy(dtype=np.float64)
                        for j, c in enumerate(self.frame.columns)
                        if default_kind(self.frame[c]) == "scale"}
        self._categorical = {j for j, c in enumerate(self.frame.columns)
                             if isinstance(self.frame[c].dtype, pd.CategoricalDtype)}
        self._default_kinds = [default_kind(self.frame[c]) for c in self.frame.columns]
        self._fits = [applicable_kinds(self.frame[c]) for c in self.frame.columns]
        self._segment = lru_cache(maxsize=32)(self._build_segment)
        if k:
            # Undrifted rows are the common case: pre-join them once, not on a request.
            self._segment(0, k)

    @staticmethod
    def _affixes(j: int, k: int) -> tuple[bytes, bytes]:
        return (b"[" if j == 0 else b""), (b"," if j < k - 1 else b"],")

    def _affix(self, j: int, k: int, text: bytes) -> bytes:
        prefix, suffix = self._affixes(j, k)
        return prefix + text + suffix

    def _format_numbers(self, j: int, values: np.ndarray) -> list[bytes]:
        """Affixed JSON text of the numbers of column ``j``, in row order."""
        if len(values) == 0:
            return []
        prefix, suffix = self._affixes(j, len(self.columns))
        # Numbers contain no commas and orjson escapes NUL, so the separators can be
        # put in place on the whole text at C speed, then split per value.
        text = orjson.dumps(values, option=_NUMPY)[1:-1]
        return (prefix + text.replace(b",", suffix + b"\x00" + prefix) + suffix).split(b"\x00")

    def _build_segment(self, start: int, stop: int) -> np.ndarray:
        """Pre-joined text of columns ``start:stop`` for every row of the data set."""
        cells = [self._table_arrays[j][self._codes[j]]
                 for j in range(start, stop)]
        if len(cells) == 1:
            return cells[0]
        return np.array([b"".join(row) for row in zip(*cells)], dtype=object)

    def sample_index(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Row positions of a slice: without replacement up to the data set's size,
        with replacement beyond it."""
        if size <= self.n_rows:
            return rng.choice(self.n_rows, size=size, replace=False)
        return rng.integers(0, self.n_rows, size=size)

    def draw(self, size: int, drift: Mapping[str, DriftSpec | None] | None,
             rng: np.random.Generator) -> Slice:
        """Draw ``size`` rows and apply ``drift`` to them.

        Parameters
        ----------
        size : int
            Number of rows.
        drift : mapping of column -> DriftSpec or None
            Columns to drift; ``None`` means the seed's kind (see
            :mod:`dethrone.injection`).
        rng : numpy.random.Generator
            The only source of randomness, so a seeded generator gives the same slice.

        Returns
        -------
        Slice
        """
        index = self.sample_index(size, rng)
        drifted: dict[int, np.ndarray] = {}
        if drift:
            positions = {c: i for i, c in enumerate(self.columns)}
            for col, spec in drift.items():
                j = positions[col]
                drifted[j] = self._drift_column(j, index, spec, rng)
        return Slice(index, *self._rows(index, drifted), self._columns_json)

    def _drift_column(self, j: int, index: np.ndarray, spec: DriftSpec | None,
                      rng: np.random.Generator) -> list[bytes]:
        """Affixed JSON text of column ``j`` at ``index`` after drift.

        Numbers and categoricals go straight through the array kernels of
        :mod:`dethrone.injection` (a pandas Series per request costs more than the
        drift itself); other types take the Series path. Both draw the same random
        numbers as :func:`dethrone.injection.apply_drift`.
        """
        if j not in self._floats and j not in self._categorical:
            series = pd.Series(self._arrays[j].take(index), name=self.columns[j], copy=False)
            drifted = drift_series(series, spec, rng)
            if drifted.dtype.kind in "biuf":
                return self._format_numbers(j, drifted.to_numpy())
            table, codes = _format_values(drifted)
            affixed = [self._affix(j, len(self.columns), t) for t in table]
            return [affixed[c] for c in codes.tolist()]
        spec = spec or DriftSpec(self._default_kinds[j])
        if spec.kind not in self._fits[j]:
            raise ValueError(f"drift kind {spec.kind!r} does not apply to column "
                             f"{self.columns[j]!r}")
        if j in self._floats:
            values = drift_numbers(self._floats[j][index], spec.kind, intensity_of(spec), rng)
            return self._format_numbers(j, values)
        null = len(self._tables[j]) - 1
        codes = drift_codes(self._codes[j][index], null, spec.kind, intensity_of(spec), rng)
        codes[codes < 0] = null
        return self._table_arrays[j][codes].tolist()

    def frame_of(self, index: np.ndarray) -> pd.DataFrame:
        """The undrifted rows at ``index`` as a DataFrame (for checks and the library)."""
        return self.frame.take(index)

    def _rows(self, index: np.ndarray, drifted: dict[int, list[bytes]]) -> tuple[list, int]:
        """Row pieces as one flat list (``width`` pieces per row) and ``width``.

        Interleaving through strided list assignment is C-speed and avoids building
        a 2-D object array only to flatten it again.
        """
        k = len(self.columns)
        parts: list[list[bytes]] = []
        start = 0
        for j in [*sorted(drifted), k]:
            if j > start:
                parts.append(self._segment(start, j)[index].tolist())
            if j < k:
                parts.append(drifted[j])
            start = j + 1
        if len(parts) == 1:
            return parts[0], 1
        width = len(parts)
        flat: list = [None] * (len(index) * width)
        for i, part in enumerate(parts):
            flat[i::width] = part
        return flat, width


@dataclass(frozen=True)
class Slice:
    """One drawn slice: row positions and the pre-formatted pieces of its rows."""

    index: np.ndarray
    pieces: list[bytes]
    width: int
    columns_json: bytes

    def __len__(self) -> int:
        return len(self.index)

    def split_json(self, start: int = 0, stop: int | None = None) -> bytes:
        """Rows ``start:stop`` as pandas ``orient="split"`` JSON."""
        stop = len(self.index) if stop is None else stop
        index = self.index[start:stop]
        if len(index) == 0:
            data = b"[]"
        else:
            # Every row ends with "],"; drop the last comma and close the list.
            pieces = self.pieces[start * self.width:stop * self.width]
            data = b"[" + b"".join(pieces)[:-1] + b"]"
        return b"".join((b'{"columns":', self.columns_json, b',"index":',
                         orjson.dumps(index, option=_NUMPY), b',"data":', data, b"}"))

    def ab_json(self, a: float) -> bytes:
        """``{"a_data": split, "b_data": split}``: the first ``ab_sizes`` rows go to A."""
        n_a, _ = ab_sizes(len(self.index), a)
        return b"".join((b'{"a_data":', self.split_json(0, n_a), b',"b_data":',
                         self.split_json(n_a), b"}"))


def ab_sizes(n: int, a: float) -> tuple[int, int]:
    """Rows for arm A and B when ``n`` rows are split in the ratio ``a : 1 - a``.

    The rows of a slice are already in random order, so taking the first
    ``round(a * n)`` rows for A is a uniformly random split with exact sizes.
    """
    n_a = min(n, max(0, math.floor(a * n + 0.5)))
    return n_a, n - n_a

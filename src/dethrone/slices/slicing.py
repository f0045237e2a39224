"""Fast random slices of a data set, encoded as pandas ``orient="split"`` JSON.

The router answers every data request with thousands of rows, so encoding is the
hot path. ``DataFrame.to_json`` needs about 12 ms for 5,000 diamonds rows; here
every cell of the data set is formatted once at start-up (per distinct value), a
request only gathers pre-joined byte strings and joins them. Each piece of a row
costs a gather and a join per row, so drift adds as few pieces as it can: drifted
codes (categories, numbers set missing) are joined into a run of their neighbours
per code combination, and only drifted numbers are formatted per request (orjson),
without separators. The output parses back with
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

from dethrone.slices.injection import (
    DriftSpec,
    applicable_kinds,
    default_kind,
    drift_codes,
    drift_numbers_where,
    drift_series,
    intensity_of,
)

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: Most code combinations pre-joined for a run of columns with drifted codes: small
#: enough to build in milliseconds, large enough to absorb a few category columns.
_MIX_BUDGET = 1 << 14


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
            table = [
                orjson.dumps(v if isinstance(v, str | int | float | bool) else str(v))
                for v in values.tolist()
            ]
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
            if (
                isinstance(dtype, pd.api.extensions.ExtensionDtype)
                and not isinstance(dtype, pd.CategoricalDtype)
                and pd.api.types.is_numeric_dtype(dtype)
                and not pd.api.types.is_bool_dtype(dtype)
            ):
                self.frame[col] = self.frame[col].astype("float64")
        self.columns: list[str] = [str(c) for c in self.frame.columns]
        self.n_rows = len(self.frame)
        self._arrays = [self.frame[c].array for c in self.frame.columns]
        # Cell texts without separators, so any run of columns can be joined from them.
        self._raw: list[np.ndarray] = []
        self._codes: list[np.ndarray] = []
        for col in self.frame.columns:
            table, codes = _format_values(self.frame[col])
            self._raw.append(np.asarray(table, dtype=object))
            self._codes.append(codes)
        self._columns_json = orjson.dumps(self.columns)
        # Array views for the drift kernels: numbers as float64 (NaN = missing);
        # categoricals use their codes, whose last table entry is null.
        self._floats = {
            j: self.frame[c].to_numpy(dtype=np.float64)
            for j, c in enumerate(self.frame.columns)
            if default_kind(self.frame[c]) == "scale"
        }
        self._categorical = {
            j
            for j, c in enumerate(self.frame.columns)
            if isinstance(self.frame[c].dtype, pd.CategoricalDtype)
        }
        self._default_kinds = [default_kind(self.frame[c]) for c in self.frame.columns]
        self._fits = [applicable_kinds(self.frame[c]) for c in self.frame.columns]
        self._rowseg = lru_cache(maxsize=32)(self._build_rowseg)
        self._mixed = lru_cache(maxsize=32)(self._build_mixed)
        self._layout = lru_cache(maxsize=64)(self._build_layout)
        if self.columns:
            # Undrifted rows are the common case: pre-join them once, not on a request.
            self._rowseg(0, len(self.columns), b"[", b"],")

    def _build_rowseg(self, a: int, b: int, prefix: bytes, suffix: bytes) -> np.ndarray:
        """Text of columns ``a:b`` of every row of the data set, with the affixes."""
        cells = [self._raw[c][self._codes[c]] for c in range(a, b)]
        return np.asarray(
            [prefix + b",".join(row) + suffix for row in zip(*cells, strict=True)], dtype=object
        )

    def _build_mixed(
        self, a: int, b: int, prefix: bytes, suffix: bytes, coded: tuple[int, ...]
    ) -> tuple[np.ndarray, dict[int, int], np.ndarray]:
        """Text of columns ``a:b`` for every combination of their codes (mixed radix),
        the radix of each column, and each row's key from its undrifted columns."""
        texts = [prefix]
        for c in range(a, b):
            sep = b"," if c > a else b""
            texts = [t + sep + v for t in texts for v in self._raw[c].tolist()]
        strides, step = {}, 1
        for c in reversed(range(a, b)):
            strides[c], step = step, step * len(self._raw[c])
        fixed = np.zeros(self.n_rows, dtype=np.int64)
        for c in range(a, b):
            if c not in coded:
                fixed += self._codes[c] * strides[c]
        return np.asarray([t + suffix for t in texts], dtype=object), strides, fixed

    def _groups(self, start: int, stop: int, coded: set[int]) -> list[tuple[int, int]]:
        """Split columns ``start:stop`` into runs that are pre-joined per row (no drifted
        codes) or per code combination (at most ``_MIX_BUDGET`` of them)."""
        groups, a, size, mixed = [], start, 1, False
        for c in range(start, stop):
            n, is_coded = len(self._raw[c]), c in coded
            if c > a and (mixed or is_coded) and size * n > _MIX_BUDGET:
                groups.append((a, c))
                a, size, mixed = c, 1, False
            size, mixed = size * n, mixed or is_coded
        groups.append((a, stop))
        return groups

    def _build_layout(self, raw: tuple[int, ...], coded: tuple[int, ...]) -> tuple:
        """The pieces of a row, the text opening the data and how much to strip at its end.

        Freshly formatted (``raw``) cells carry no separators, so their neighbours do:
        a run carries the separator before it and, before a raw cell, after it; a raw
        first column gets its ``[`` from the end of the previous row.
        """
        k, raw_set, coded_set = len(self.columns), set(raw), set(coded)
        closer = b"],[" if 0 in raw_set else b"],"
        pieces: list[tuple] = []
        j = 0
        while j < k:
            if j in raw_set:
                if j > 0 and j - 1 in raw_set:
                    pieces.append(("const", b","))
                pieces.append(("raw", j))
                j += 1
                continue
            stop = j
            while stop < k and stop not in raw_set:
                stop += 1
            for a, b in self._groups(j, stop, coded_set):
                prefix = b"[" if a == 0 else b","
                suffix = closer if b == k else (b"," if b == stop else b"")
                in_group = tuple(c for c in range(a, b) if c in coded_set)
                pieces.append(
                    ("mix", a, b, prefix, suffix, in_group)
                    if in_group
                    else ("rows", a, b, prefix, suffix)
                )
            j = stop
        if k - 1 in raw_set:
            pieces.append(("const", closer))
        return tuple(pieces), (b"[" if 0 in raw_set else b""), len(closer) - 1

    def sample_index(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Row positions of a slice: without replacement up to the data set's size,
        with replacement beyond it."""
        if size <= self.n_rows:
            return rng.choice(self.n_rows, size=size, replace=False)
        return rng.integers(0, self.n_rows, size=size)

    def draw(
        self, size: int, drift: Mapping[str, DriftSpec | None] | None, rng: np.random.Generator
    ) -> Slice:
        """Draw ``size`` rows and apply ``drift`` to them.

        ``drift`` maps columns to a :class:`DriftSpec` or ``None`` (the seed's kind,
        see :mod:`dethrone.slices.injection`); ``rng`` is the only source of randomness, so a
        seeded generator gives the same slice.
        """
        return self.draw_at(self.sample_index(size, rng), drift, rng)

    def draw_at(
        self,
        index: np.ndarray,
        drift: Mapping[str, DriftSpec | None] | None,
        rng: np.random.Generator,
    ) -> Slice:
        """The rows at ``index`` with ``drift`` applied (see :meth:`draw`); a caller that
        streams a huge slice draws its index once and the rows in pieces."""
        raw: dict[int, list[bytes]] = {}
        coded: dict[int, np.ndarray] = {}
        if drift:
            positions = {c: i for i, c in enumerate(self.columns)}
            # In the mapping's order: that is the order apply_drift draws in.
            for col, spec in drift.items():
                j = positions[col]
                texts, codes = self._drift_column(j, index, spec, rng)
                if codes is None:
                    assert texts is not None  # one of the two, the other None
                    raw[j] = texts
                else:
                    coded[j] = codes
        layout, lead, strip = self._layout(tuple(sorted(raw)), tuple(sorted(coded)))
        parts = []
        for piece in layout:
            if piece[0] == "rows":
                parts.append(self._rowseg(*piece[1:])[index].tolist())
            elif piece[0] == "raw":
                parts.append(raw[piece[1]])
            elif piece[0] == "const":
                parts.append([piece[1]] * len(index))
            else:
                table, strides, fixed = self._mixed(*piece[1:])
                key = fixed[index]
                for c in piece[5]:
                    key += coded[c] * strides[c]
                parts.append(table[key].tolist())
        return Slice(index, *_interleave(parts, len(index)), self._columns_json, lead, strip)

    def _drift_column(
        self, j: int, index: np.ndarray, spec: DriftSpec | None, rng: np.random.Generator
    ) -> tuple[list[bytes] | None, np.ndarray | None]:
        """Column ``j`` at ``index`` after drift: ``(texts, None)`` for fresh values
        (JSON text without separators) or ``(None, codes)`` into its cell table.

        Numbers and categoricals go straight through the array kernels of
        :mod:`dethrone.slices.injection` (a pandas Series per request costs more than the
        drift itself); other types take the Series path. Both draw the same random
        numbers as :func:`dethrone.slices.injection.apply_drift`.
        """
        if j not in self._floats and j not in self._categorical:
            series = pd.Series(self._arrays[j].take(index), name=self.columns[j], copy=False)
            drifted = drift_series(series, spec, rng)
            if drifted.dtype.kind in "biuf":
                return _number_texts(drifted.to_numpy()), None
            table, codes = _format_values(drifted)
            return np.asarray(table, dtype=object)[codes].tolist(), None
        spec = spec or DriftSpec(self._default_kinds[j])
        if spec.kind not in self._fits[j]:
            raise ValueError(
                f"drift kind {spec.kind!r} does not apply to column {self.columns[j]!r}"
            )
        null = len(self._raw[j]) - 1
        if j in self._categorical:
            codes = drift_codes(self._codes[j][index], null, spec.kind, intensity_of(spec), rng)
            codes[codes < 0] = null
            return None, codes
        values, hit = drift_numbers_where(
            self._floats[j][index], spec.kind, intensity_of(spec), rng
        )
        if spec.kind == "missing":
            # Nothing new to format: untouched cells keep their text, the rest are null.
            codes = self._codes[j][index]
            codes[hit] = null
            return None, codes
        return _number_texts(values), None

    def frame_of(self, index: np.ndarray) -> pd.DataFrame:
        """The undrifted rows at ``index`` as a DataFrame (for checks and the library)."""
        return self.frame.take(index)


def _number_texts(values: np.ndarray) -> list[bytes]:
    """JSON text of each number (orjson: shortest round-trip repr, null for nan/inf)."""
    if len(values) == 0:
        return []
    # Numbers contain no commas, so one C-speed split separates them.
    return orjson.dumps(values, option=_NUMPY)[1:-1].split(b",")


def _interleave(parts: list[list[bytes]], n: int) -> tuple[list[bytes], int]:
    """Row pieces as one flat list (``width`` pieces per row) and ``width``; strided
    list assignment is C-speed, unlike building and flattening a 2-D object array."""
    if len(parts) == 1:
        return parts[0], 1
    width = len(parts)
    flat: list = [None] * (n * width)
    for i, part in enumerate(parts):
        flat[i::width] = part
    return flat, width


@dataclass(frozen=True)
class Slice:
    """One drawn slice: row positions and the pre-formatted pieces of its rows.

    Every row's last piece ends with ``,`` (and ``[`` opening the next row when the
    first column was formatted fresh): ``lead`` opens the data, ``strip`` bytes go.
    """

    index: np.ndarray
    pieces: list[bytes]
    width: int
    columns_json: bytes
    lead: bytes = b""
    strip: int = 1

    def __len__(self) -> int:
        return len(self.index)

    def split_json(self, start: int = 0, stop: int | None = None) -> bytes:
        """Rows ``start:stop`` as pandas ``orient="split"`` JSON."""
        n = len(self.index)
        stop = n if stop is None else stop
        index = self.index[start:stop]
        if len(index) == 0:
            data: bytes | memoryview = b""
        else:
            whole = start == 0 and stop == n
            pieces = self.pieces if whole else self.pieces[start * self.width : stop * self.width]
            # A view, not a copy, of the joined rows without the trailing separator.
            data = memoryview(b"".join(pieces))[: -self.strip]
        return b"".join(
            (
                b'{"columns":',
                self.columns_json,
                b',"index":',
                orjson.dumps(index, option=_NUMPY),
                b',"data":[',
                self.lead if len(index) else b"",
                data,
                b"]}",
            )
        )

    def rows_json(self) -> bytes:
        """The rows as the inside of a JSON array (``[...],[...]``; empty: ``b""``)."""
        if len(self.index) == 0:
            return b""
        return self.lead + memoryview(b"".join(self.pieces))[: -self.strip].tobytes()

    def ab_json(self, a: float) -> bytes:
        """``{"a_data": split, "b_data": split}``: the first ``ab_sizes`` rows go to A."""
        n_a, _ = ab_sizes(len(self.index), a)
        return b"".join(
            (b'{"a_data":', self.split_json(0, n_a), b',"b_data":', self.split_json(n_a), b"}")
        )


def ab_sizes(n: int, a: float) -> tuple[int, int]:
    """Rows for arm A and B when ``n`` rows are split in the ratio ``a : 1 - a``.

    The rows of a slice are already in random order, so taking the first
    ``round(a * n)`` rows for A is a uniformly random split with exact sizes.
    """
    n_a = min(n, max(0, math.floor(a * n + 0.5)))
    return n_a, n - n_a

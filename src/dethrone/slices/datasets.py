"""Data sets shipped with dethrone and a loader for the user's own files."""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pandas as pd

#: ggplot2's level order of the three ordered factors of ``diamonds``.
DIAMONDS_CATEGORIES: dict[str, list[str]] = {
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
    "color": ["D", "E", "F", "G", "H", "I", "J"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
}
DIAMONDS_TARGET = "price"


def load_diamonds() -> pd.DataFrame:
    """Load the ggplot2 ``diamonds`` data set (53,940 rows, 10 columns).

    The copy ships gzip-compressed inside the package; it comes from plotnine's
    wheel (``plotnine/data/diamonds.csv``, MIT licence), see ``dethrone/data/README.md``.

    Returns
    -------
    pandas.DataFrame
        ``carat, cut, color, clarity, depth, table, price, x, y, z`` with ``cut``,
        ``color`` and ``clarity`` as ordered categoricals in ggplot2's level order.
    """
    ref = resources.files("dethrone") / "data" / "diamonds.csv.gz"
    with resources.as_file(ref) as path:
        frame = pd.read_csv(path, compression="gzip")
    for col, levels in DIAMONDS_CATEGORIES.items():
        frame[col] = pd.Categorical(frame[col], categories=levels, ordered=True)
    return frame


def _shipped(name: str, categorical: list[str]) -> pd.DataFrame:
    ref = resources.files("dethrone") / "data" / f"{name}.csv.gz"
    with resources.as_file(ref) as path:
        frame = pd.read_csv(path, compression="gzip")
    for col in categorical:
        frame[col] = frame[col].astype("category")
    return frame


def load_txhousing() -> pd.DataFrame:
    """Load ggplot2's ``txhousing``: Texas housing sales per MLS area and month.

    8,602 rows: ``city`` (categorical, 46 levels), ``year``, ``month``, ``sales``,
    ``volume``, ``median``, ``listings``, ``inventory``, ``date``; ``sales`` to
    ``inventory`` have 7-17 % missing values (NaN). Shipped from plotnine's wheel
    (MIT), see ``dethrone/data/README.md``.

    >>> load_txhousing().shape
    (8602, 9)
    """
    return _shipped("txhousing", ["city"])


def load_midwest() -> pd.DataFrame:
    """Load ggplot2's ``midwest``: 2000 US census figures of 437 Midwest counties.

    28 columns; ``county`` (320 distinct names), ``state`` and ``category`` are
    categorical. Shipped from plotnine's wheel (MIT), see ``dethrone/data/README.md``.

    >>> load_midwest()["county"].nunique()
    320
    """
    return _shipped("midwest", ["county", "state", "category"])


def load_msleep() -> pd.DataFrame:
    """Load ggplot2's ``msleep``: sleep times and weights of 83 mammals.

    ``name``, ``genus`` (77 levels), ``vore``, ``order`` and ``conservation`` are
    categorical; the numeric columns have many missing values. Shipped from
    plotnine's wheel (MIT), see ``dethrone/data/README.md``.

    >>> load_msleep()["genus"].nunique()
    77
    """
    return _shipped("msleep", ["name", "genus", "vore", "order", "conservation"])


#: Bytes of a CSV looked at before pandas reads it, and the longest first line allowed.
SNIFF_BYTES = 64 * 1024
MAX_FIRST_LINE = 1 << 20


def _open_text(path: Path, name: str):
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    if name.endswith(".zip"):
        archive = zipfile.ZipFile(path)
        return archive.open(archive.namelist()[0])
    return open(path, "rb")


def _sniff_csv(path: Path, name: str) -> None:
    """Refuse binary content before pandas reads it (a file of NUL bytes without a line
    break would otherwise be read whole into memory as one line)."""
    try:
        with _open_text(path, name) as fh:
            head = fh.read(SNIFF_BYTES)
            first_break = head.find(b"\n")
            while first_break < 0 and len(head) < MAX_FIRST_LINE:
                more = fh.read(SNIFF_BYTES)
                if not more:
                    break
                head += more
                first_break = head.find(b"\n")
    except (OSError, EOFError, IndexError, ValueError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise ValueError(f"cannot read {path} as CSV: {exc}") from exc
    if b"\0" in head[:SNIFF_BYTES]:
        raise ValueError(f"{path} is not a CSV file: it contains NUL bytes (binary content)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head[:SNIFF_BYTES], final=False)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not a CSV file: not UTF-8 text (byte {exc.start}: binary content?)"
        ) from None
    if first_break < 0 and len(head) >= MAX_FIRST_LINE:
        raise ValueError(
            f"{path} is not a CSV file: no line break in the first {MAX_FIRST_LINE >> 20} MiB"
        )


def _sniff_parquet(path: Path) -> None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if head != b"PAR1" or tail != b"PAR1" or size < 12:
        raise ValueError(f"{path} is not a Parquet file (no PAR1 magic bytes)")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by suffix; ``.csv.gz`` works too).

    The first bytes are checked before the file is parsed, so binary content (NUL
    bytes, not UTF-8, no line break in the first MiB, no Parquet magic) is refused at
    once with bounded memory.

    Raises
    ------
    ValueError
        If the suffix is not a known table format, or the file cannot be parsed.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a CSV or Parquet file")
    name = path.name.lower()
    reader: Callable[..., pd.DataFrame]
    if name.endswith((".parquet", ".pq")):
        _sniff_parquet(path)
        reader = pd.read_parquet
    elif name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")):
        _sniff_csv(path, name)
        reader = pd.read_csv
    else:
        raise ValueError(f"unsupported file type {path.name!r}: use .csv or .parquet")
    try:
        return reader(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def load_dataset(path: str | Path | None = None) -> pd.DataFrame:
    """Load ``path`` (CSV or Parquet), or diamonds when ``path`` is empty."""
    if not path:
        return load_diamonds()
    frame = read_table(path)
    # Text columns become categoricals so that drift and sampling treat them alike.
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].astype("category")
    return frame

"""Drift profiles computed by Spark: the same statistics as in memory, per partition.

Each Spark task profiles its rows with :meth:`ReferenceProfile.from_frame` (a batch at a
time, merged) and sends back the profile's bytes; the driver merges the parts
(:meth:`ReferenceProfile.merge`) and :func:`~dethrone.drift.detect_drift` compares two
profiles. So the numbers are those of the in-memory path: exact columns are identical,
sketched ones (above ``exact_max_unique`` distinct values) stay within the sketches'
stated rank error.

Sources:

* a local Parquet file or folder (``date=YYYY-MM-DD/part-*.parquet`` included),
  ``file://`` URIs, and any URI Spark's own reader knows (``hdfs://``, ``s3a://``):
  ``spark.read.parquet`` and ``mapInPandas`` over its Arrow batches;
* ``s3://bucket/prefix`` on the S3 store (MinIO, seaweedfs): PySpark's wheel ships no
  ``hadoop-aws`` (Spark's ``s3a://`` file system) and Maven Central is not reachable
  from every machine this project runs on, so the driver lists the Parquet objects and
  Spark distributes them: each task reads its objects straight from the S3 server with
  pyarrow's S3 file system (endpoint and keys from :class:`~dethrone.settings.Settings`),
  batch by batch. Nothing is copied to the driver. On a cluster with ``hadoop-aws`` on
  Spark's classpath, ``s3a://`` URIs use Spark's reader, with the endpoint, path-style
  access and keys set by :func:`spark_session`.

PySpark is imported lazily: the rest of dethrone works without it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs

from dethrone.drift.detect import detect_drift
from dethrone.drift.profile import EXACT_MAX_UNIQUE, SKETCH_K, ReferenceProfile
from dethrone.settings import Settings

__all__ = ["detect_drift_spark", "profile_spark", "read_columns", "s3_filesystem", "spark_session"]

#: rows per Arrow batch handed to a task's profiler (spark.sql.execution.arrow.*)
BATCH_ROWS = 200_000
#: Spark settings of the sessions started here (small: the default machine has 2 cores)
DEFAULT_CONF = {
    "spark.driver.memory": "1g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.execution.arrow.maxRecordsPerBatch": str(BATCH_ROWS),
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.python.worker.reuse": "true",
}
#: pandas index columns pyarrow writes; never a feature
_INDEX_COLUMNS = ("__index_level_0__",)


def _s3_endpoint(settings: Settings) -> str:
    endpoint = settings.s3_endpoint_url or settings.mlflow_s3_endpoint_url
    if not endpoint:
        raise ValueError("reading s3:// needs S3_ENDPOINT_URL or MLFLOW_S3_ENDPOINT_URL")
    return endpoint if "://" in endpoint else f"http://{endpoint}"


def spark_session(settings: Settings | None = None, conf: dict[str, str] | None = None):
    """A SparkSession on ``settings.spark_master`` (``SPARK_MASTER``, default ``local[2]``).

    Python workers run this interpreter (``PYSPARK_PYTHON`` unless set); on a cluster,
    dethrone must be installed on the executors. The S3 store's endpoint, path-style
    access and keys are set for ``s3a://`` (used where ``hadoop-aws`` is on the
    classpath). ``conf`` overrides :data:`DEFAULT_CONF`. Stop the session when done.
    """
    try:
        from pyspark.sql import SparkSession  # lazy: pyspark is optional (DRIFT_ENGINE=spark)
    except ImportError as exc:
        raise RuntimeError(
            "the Spark drift engine needs PySpark (pip install 'dethrone[spark]') and Java 17+"
        ) from exc

    settings = settings or Settings()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.spark_master).appName("dethrone-drift")
    options = dict(DEFAULT_CONF)
    if settings.spark_master.startswith("local"):  # stay on the loopback interface
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        options["spark.driver.host"] = "127.0.0.1"
        options["spark.driver.bindAddress"] = "127.0.0.1"
    endpoint = settings.s3_endpoint_url or settings.mlflow_s3_endpoint_url
    if endpoint:
        url = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        options.update(
            {
                "spark.hadoop.fs.s3a.endpoint": f"{url.scheme}://{url.netloc}",
                "spark.hadoop.fs.s3a.path.style.access": "true",
                "spark.hadoop.fs.s3a.connection.ssl.enabled": str(url.scheme == "https").lower(),
                "spark.hadoop.fs.s3a.endpoint.region": settings.aws_default_region or "us-east-1",
            }
        )
    if settings.aws_access_key_id:
        options["spark.hadoop.fs.s3a.access.key"] = settings.aws_access_key_id
        options["spark.hadoop.fs.s3a.secret.key"] = settings.aws_secret_access_key
    options.update(conf or {})
    for key, value in options.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _session(spark: Any, settings: Settings) -> tuple[Any, bool]:
    """``(session, stop it when done)``: the given one, the active one, or a new one."""
    if spark is not None:
        return spark, False
    try:
        from pyspark.sql import SparkSession  # lazy: pyspark is optional (DRIFT_ENGINE=spark)
    except ImportError:
        return spark_session(settings), True  # raises, naming what to install

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    return spark_session(settings), True


def _profile_batches(
    frames: Iterator[pd.DataFrame], kwargs: dict[str, Any]
) -> ReferenceProfile | None:
    """One profile of every frame of ``frames`` (profiled one at a time and merged)."""
    merged = None
    for frame in frames:
        if len(frame) == 0:
            continue
        part = ReferenceProfile.from_frame(frame, allow_empty=True, **kwargs)
        merged = part if merged is None else merged.merge(part)
    return merged


def s3_filesystem(settings: Settings):
    """pyarrow's S3 file system on the S3 store of ``settings`` (path-style addressing)."""
    url = urlparse(_s3_endpoint(settings))
    return fs.S3FileSystem(
        access_key=settings.aws_access_key_id or None,
        secret_key=settings.aws_secret_access_key or None,
        endpoint_override=url.netloc,
        scheme=url.scheme,
        region=settings.aws_default_region or "us-east-1",
        force_virtual_addressing=False,
    )


def _s3_objects(uri: str, settings: Settings) -> list[str]:
    """``bucket/key`` of every Parquet object at or under ``uri`` (sorted)."""
    parsed = urlparse(uri)
    root = f"{parsed.netloc}/{parsed.path.lstrip('/')}".rstrip("/")
    s3 = s3_filesystem(settings)
    info = s3.get_file_info(root)
    if info.type == fs.FileType.File:
        return [root]
    if info.type == fs.FileType.NotFound:
        raise ValueError(f"{uri}: no such object or prefix")
    found = s3.get_file_info(fs.FileSelector(root, recursive=True))
    keys = sorted(
        f.path
        for f in found
        if f.type == fs.FileType.File
        and not Path(f.path).name.startswith(("_", "."))
        and not f.path.endswith((".partial", ".tmp"))
    )
    if not keys:
        raise ValueError(f"{uri}: no Parquet objects under this prefix")
    return keys


def _s3_schema(key: str, settings: Settings):
    with s3_filesystem(settings).open_input_file(key) as f:
        return pq.ParquetFile(f).schema_arrow


def _categorical_of(schema_fields: list[tuple[str, str]]) -> list[str]:
    """Columns whose type is text, boolean or dictionary: what pandas profiles as
    categorical (names of ``(name, type string)`` pairs)."""
    text = ("string", "large_string", "bool", "boolean", "dictionary", "utf8", "large_utf8")
    return [name for name, kind in schema_fields if kind.split("<")[0] in text]


def profile_spark(
    source: Any,
    *,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    settings: Settings | None = None,
    spark: Any = None,
    exact_max_unique: int | None = EXACT_MAX_UNIQUE,
    sketch_k: int = SKETCH_K,
) -> ReferenceProfile:
    """The :class:`ReferenceProfile` of Parquet data, computed by Spark.

    Parameters
    ----------
    source : str, Path or pyspark DataFrame
        A Parquet file or folder (local, ``file://``, or any URI Spark reads), an
        ``s3://bucket/prefix`` on the S3 store (see the module's docstring), or a Spark
        DataFrame.
    features : list of str, optional
        Columns to profile (default: every column but pandas' index column).
    categorical : list of str, optional
        Categorical columns (default: text, boolean and dictionary columns of the
        schema); fixed on the driver so that every partition profiles a column alike.
    settings : Settings, optional
        ``psi_bins``, ``spark_master`` and the S3 endpoint and keys.
    spark : SparkSession, optional
        A session to use (default: one from :func:`spark_session`, stopped at the end).
    exact_max_unique, sketch_k
        As :meth:`ReferenceProfile.from_frame`.

    Raises
    ------
    ValueError
        On a missing source, a named column absent from it, or no rows at all.
    """
    settings = settings or Settings()
    spark, own = _session(spark, settings)
    try:
        return _profile(spark, source, features, categorical, settings, exact_max_unique, sketch_k)
    finally:
        if own:
            spark.stop()


def _profile(spark, source, features, categorical, settings, cap, k) -> ReferenceProfile:
    s3 = isinstance(source, str) and source.startswith("s3://")
    if s3:
        keys = _s3_objects(source, settings)
        schema = _s3_schema(keys[0], settings)
        fields_ = [(f.name, str(f.type)) for f in schema]
    else:
        if isinstance(source, str | Path):
            text = str(source)
            path = text.removeprefix("file://") if text.startswith("file://") else text
            if "://" not in path and not Path(path).exists():
                raise ValueError(f"{source}: no such file or folder")
            if Path(path).suffix.lower() in (".csv", ".gz"):
                raise ValueError(f"{source}: the Spark engine reads Parquet, not CSV")
            frame = spark.read.parquet(path if "://" not in path else text)
        else:
            frame = source
        fields_ = [(f.name, f.dataType.simpleString()) for f in frame.schema.fields]
    hidden = {*_INDEX_COLUMNS, *_partition_columns(source, keys if s3 else None)}
    names = [n for n, _ in fields_ if n not in hidden]
    feats = list(features) if features is not None else names
    missing = [f for f in feats if f not in names]
    if missing:
        raise ValueError(f"{source}: no column {', '.join(map(repr, missing))}")
    cats = list(categorical) if categorical is not None else _categorical_of(fields_)
    cats = [c for c in cats if c in feats]
    kwargs = {
        "categorical": cats,
        "features": feats,
        "settings": settings,
        "exact_max_unique": cap,
        "sketch_k": k,
    }
    if s3:
        blobs = _s3_parts(spark, keys, feats, settings, kwargs)
    else:
        blobs = _frame_parts(frame.select(*feats), kwargs)
    profiles = [ReferenceProfile.from_bytes(b) for b in blobs]
    if not profiles:
        raise ValueError(f"{source}: no rows")
    return profiles[0].merge(*profiles[1:])


def _partition_columns(source: Any, keys: list[str] | None) -> set[str]:
    """Names of Hive partition folders (``date=2026-12-04``) under a path source: by
    default not features (a day is not a property of the rows' distribution)."""
    if keys is not None:
        paths = keys
    elif isinstance(source, str | Path) and "://" not in str(source).removeprefix("file://"):
        root = Path(str(source).removeprefix("file://"))
        paths = [str(p.relative_to(root)) for p in root.rglob("*=*")] if root.is_dir() else []
    else:
        return set()
    return {seg.split("=", 1)[0] for p in paths for seg in Path(p).parts if "=" in seg}


def _frame_parts(frame, kwargs: dict[str, Any]) -> list[bytes]:
    def per_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        merged = _profile_batches(batches, kwargs)
        if merged is not None:
            yield pd.DataFrame({"profile": [merged.to_bytes()]})

    out = frame.mapInPandas(per_partition, "profile binary")
    return [bytes(row["profile"]) for row in out.collect()]


def _s3_parts(spark, keys: list[str], feats, settings: Settings, kwargs) -> list[bytes]:
    def per_partition(part: Iterator[str]) -> Iterator[bytes]:
        import pyarrow.parquet as pq  # here: this runs in a Spark executor's interpreter

        s3 = s3_filesystem(settings)

        def frames() -> Iterator[pd.DataFrame]:
            for key in part:
                with s3.open_input_file(key) as f:
                    for batch in pq.ParquetFile(f).iter_batches(BATCH_ROWS, columns=feats):
                        yield batch.to_pandas()

        merged = _profile_batches(frames(), kwargs)
        if merged is not None:
            yield merged.to_bytes()

    slices = max(1, min(len(keys), spark.sparkContext.defaultParallelism * 4))
    rdd = spark.sparkContext.parallelize(keys, slices).mapPartitions(per_partition)
    return rdd.collect()


def detect_drift_spark(
    reference: Any,
    current: Any,
    *,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    settings: Settings | None = None,
    spark: Any = None,
    **overrides: Any,
):
    """:func:`~dethrone.drift.detect_drift` with both sides profiled by Spark.

    ``reference`` is a :class:`ReferenceProfile` (e.g. the champion's, saved at
    training) or a source of :func:`profile_spark`; ``current`` is a source. Features and
    categorical columns default to the reference profile's; ``overrides`` are
    thresholds, as for ``detect_drift``.
    """
    settings = (settings or Settings()).replace(**overrides)
    spark, own = _session(spark, settings)
    try:
        if not isinstance(reference, ReferenceProfile):
            reference = profile_spark(
                reference,
                features=features,
                categorical=categorical,
                settings=settings,
                spark=spark,
            )
        feats = list(features) if features is not None else list(reference.features)
        cats = list(categorical) if categorical is not None else reference.categorical
        cur = profile_spark(
            current,
            features=[f for f in feats if f in _columns(spark, current, settings)],
            categorical=cats,
            settings=settings,
            spark=spark,
            exact_max_unique=reference.exact_max_unique,
            sketch_k=reference.sketch_k,
        )
    finally:
        if own:
            spark.stop()
    return detect_drift(reference, cur, features=feats, categorical=cats, settings=settings)


def _columns(spark, source: Any, settings: Settings) -> set[str]:
    """Column names of a source (a feature absent from current is reported, not an error)."""
    if isinstance(source, str) and source.startswith("s3://"):
        return set(_s3_schema(_s3_objects(source, settings)[0], settings).names)
    if isinstance(source, str | Path):
        text = str(source)
        path = text.removeprefix("file://") if text.startswith("file://") else text
        if "://" not in path and not Path(path).exists():
            raise ValueError(f"{source}: no such file or folder")
        return set(spark.read.parquet(path if "://" not in path else text).columns)
    return set(source.columns)


def read_columns(uri: str, columns: list[str], settings: Settings) -> pd.DataFrame:
    """The named columns of a Parquet file or folder (local, ``file://`` or ``s3://``)
    that it has, as one frame: the small part of a staged frame the driver needs."""
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        data = ds.dataset(
            f"{parsed.netloc}/{parsed.path.lstrip('/')}",
            format="parquet",
            filesystem=s3_filesystem(settings),
        )
    else:
        data = ds.dataset(urlparse(uri).path if uri.startswith("file://") else uri)
    present = [c for c in columns if c in data.schema.names]
    return data.to_table(columns=present).to_pandas()

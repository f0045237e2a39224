"""The log's Parquet export on the stack's S3 server (seaweedfs), read back by Spark.

Served rows (features included) are logged to the stack's router database (PostgreSQL),
exported by day to ``s3://dethrone-staging/...`` with ``dethrone predictions export
--by-day --features``, and profiled by Spark in local mode: each task reads its objects
from the S3 server (see :mod:`dethrone.drift.spark`). The profile equals the in-memory
profile of the same rows, and a drift check between two days finds the drift injected
into the second day's traffic only.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time

import numpy as np
import pytest

from dethrone.settings import Settings

DAY = 86_400.0
FEATURES = ["carat", "depth", "color", "cut"]
CATS = ["color", "cut"]


def log_two_days(engine, experiment: str, n: int = 2_000) -> float:
    """``n`` served rows a day on two UTC days; the second day's carat and color drift.
    Returns the first day's start (epoch seconds)."""
    from dethrone.store import PredictionLogWriter

    g = np.random.default_rng(7)
    day0 = (time.time() // DAY - 3) * DAY
    rows = []
    for day in (0, 1):
        carat = np.round(g.lognormal(-0.4, 0.5, n), 2)
        color = g.choice(list("DEFGHIJ"), n, p=[0.12, 0.18, 0.18, 0.21, 0.15, 0.1, 0.06])
        if day == 1:  # the seed's drift: half the carats scaled, every color redrawn
            hit = g.random(n) < 0.5
            carat[hit] *= g.uniform(0.1, 2.0, int(hit.sum()))
            color = g.choice(list("DEFGHIJ"), n)
        depth = np.round(g.normal(61.7, 1.4, n), 1)
        cut = g.choice(["Fair", "Good", "Very Good", "Premium", "Ideal"], n)
        for i in range(n):
            rows.append(
                {
                    "request_id": f"{experiment}-{day}-{i}",
                    "row": 0,
                    "unit": f"u{i}",
                    "ts": day0 + day * DAY + i * 30.0,
                    "arm": "champion",
                    "experiment_id": experiment,
                    "model_name": "spark-s3",
                    "model_version": "1",
                    "prediction": float(carat[i] * 4000),
                    "features": {
                        "carat": float(carat[i]),
                        "depth": float(depth[i]),
                        "color": str(color[i]),
                        "cut": str(cut[i]),
                    },
                }
            )
    log = PredictionLogWriter(engine, flush_seconds=0.05, batch_rows=1_000)
    log.append(rows)
    assert log.close() == 0
    return day0


def check_export_read_by_spark(engine, db_url: str, settings: Settings, bucket: str) -> None:
    """The whole check, on any database and S3 server (the stack's, or a developer's)."""
    pytest.importorskip("pyspark", reason="PySpark is not installed")
    if shutil.which("java") is None:
        pytest.skip("no Java: run scripts/stack/ensure-java.sh")
    from dethrone.cli import main
    from dethrone.drift import ReferenceProfile, detect_drift
    from dethrone.drift.spark import profile_spark, read_columns, spark_session

    experiment = "spark-s3-" + secrets.token_hex(4)
    day0 = log_two_days(engine, experiment)
    prefix = f"s3://{bucket}/log-export/{experiment}"
    env = {
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key,
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        code = main(
            [
                "predictions",
                "--database-url",
                db_url,
                "export",
                "--experiment",
                experiment,
                "--out",
                prefix,
                "--by-day",
                "--features",
            ]
        )
    assert code == 0
    days = [time.strftime("%Y-%m-%d", time.gmtime(day0 + d * DAY)) for d in (0, 1)]
    spark = spark_session(settings, conf={"spark.driver.memory": "512m"})
    try:
        whole = profile_spark(
            prefix, features=FEATURES, categorical=CATS, settings=settings, spark=spark
        )
        first = profile_spark(
            f"{prefix}/date={days[0]}",
            features=FEATURES,
            categorical=CATS,
            settings=settings,
            spark=spark,
        )
        second = profile_spark(
            f"{prefix}/date={days[1]}",
            features=FEATURES,
            categorical=CATS,
            settings=settings,
            spark=spark,
        )
    finally:
        spark.stop()
    # the same rows read by pyarrow from the same objects, profiled in memory
    rows = read_columns(prefix, FEATURES, settings)
    assert whole.n_rows == len(rows) == 4_000 and first.n_rows == second.n_rows == 2_000
    memory = ReferenceProfile.from_frame(rows, categorical=CATS)
    for name, f in memory.features.items():
        g = whole.features[name]
        assert (g.kind, g.n, g.n_missing) == (f.kind, f.n, f.n_missing), name
        if f.kind == "numeric":
            np.testing.assert_array_equal(g.unique, f.unique)
            np.testing.assert_array_equal(g.cum, f.cum)
        else:
            assert dict(zip(g.categories, g.counts.tolist(), strict=True)) == dict(
                zip(f.categories, f.counts.tolist(), strict=True)
            )
    report = detect_drift(first, second, settings=Settings())
    assert report.drifted_features == ["carat", "color"], json.dumps(report.to_dict())[:2000]
    merged = first.merge(second)
    assert merged.features["carat"].cum.tolist() == whole.features["carat"].cum.tolist()


def test_the_log_export_on_s3_is_read_by_spark(stack):
    from dethrone.store import make_engine, upgrade

    engine = make_engine(stack.router_database_url)
    upgrade(engine)
    settings = Settings(
        s3_endpoint_url=stack.s3_url,
        aws_access_key_id=stack.creds.s3_access_key,
        aws_secret_access_key=stack.creds.s3_secret_key,
    )
    try:
        check_export_read_by_spark(
            engine, stack.router_database_url, settings, stack.staging_bucket
        )
    finally:
        engine.dispose()

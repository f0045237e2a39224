"""The Spark engine computes the in-memory profiles: per partition, then merged.

Exact columns equal the in-memory profile value for value; sketched ones stay within the
sketches' stated rank error; the drift verdicts are the same. One local[2] session for
the module, stopped at the end.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from dethrone.drift import ReferenceProfile, detect_drift
from dethrone.drift.stattests import ks_between
from dethrone.settings import Settings
from dethrone.slices.injection import apply_drift

pytestmark = pytest.mark.slow

if shutil.which("java") is None:
    pytest.skip(
        "no Java on this machine: Spark needs a JRE (scripts/stack/ensure-java.sh installs it)",
        allow_module_level=True,
    )
pytest.importorskip("pyspark", reason="PySpark is not installed (pip install '.[spark]')")

from dethrone.drift.spark import (  # noqa: E402
    detect_drift_spark,
    profile_spark,
    read_columns,
    spark_session,
)

CATS = ["cut", "color", "clarity"]
#: a small cap, so that 40,000 rows have sketched columns
CAP = 2_000


@pytest.fixture(scope="module")
def spark():
    session = spark_session(Settings(), conf={"spark.driver.memory": "512m"})
    yield session
    session.stop()


def diamonds_like(diamonds: pd.DataFrame, n: int, seed: int, drift: bool) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    frame = diamonds.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    frame["price"] = frame["price"] * np.exp(g.normal(0, 0.02, n))  # ~n distinct: sketched
    for c in CATS:
        frame[c] = frame[c].astype(str)
    if drift:
        frame = apply_drift(frame, ["carat", "color"], g)
    frame.loc[g.random(n) < 0.01, "depth"] = np.nan  # missing values count too
    return frame


@pytest.fixture(scope="module")
def tables(tmp_path_factory, diamonds):
    root = tmp_path_factory.mktemp("spark")
    ref = diamonds_like(diamonds, 40_000, 1, drift=False)
    cur = diamonds_like(diamonds, 40_000, 2, drift=True)
    # several files (and so several Spark partitions), one of them empty
    for name, frame in (("ref", ref), ("cur", cur)):
        folder = root / name
        folder.mkdir()
        for i, start in enumerate(range(0, len(frame), 8_000)):
            frame.iloc[start : start + 8_000].to_parquet(folder / f"part-{i}.parquet", index=False)
        frame.iloc[:0].to_parquet(folder / "part-empty.parquet", index=False)
    return root, ref, cur


def _assert_same(spark_profile: ReferenceProfile, memory: ReferenceProfile) -> None:
    assert spark_profile.n_rows == memory.n_rows
    assert list(spark_profile.features) == list(memory.features)
    for name, f in memory.features.items():
        g = spark_profile.features[name]
        assert (g.kind, g.n, g.n_missing, g.exact) == (f.kind, f.n, f.n_missing, f.exact), name
        if f.kind == "categorical":
            assert dict(zip(g.categories, g.counts.tolist(), strict=True)) == dict(
                zip(f.categories, f.counts.tolist(), strict=True)
            )
        elif f.exact:
            np.testing.assert_array_equal(g.unique, f.unique)
            np.testing.assert_array_equal(g.cum, f.cum)
            np.testing.assert_array_equal(g.edge_index, f.edge_index)
        else:  # two sketches of the same rows: their CDFs differ by at most both errors
            assert ks_between(f, g) <= f.rank_error + g.rank_error, name


def test_spark_profile_equals_the_in_memory_profile(spark, tables):
    root, ref, _ = tables
    kwargs = {"categorical": CATS, "exact_max_unique": CAP}
    memory = ReferenceProfile.from_frame(ref, **kwargs)
    got = profile_spark(str(root / "ref"), spark=spark, **kwargs)
    assert not got.features["price"].exact and got.features["cut"].kind == "categorical"
    assert got.features["table"].exact and got.features["depth"].n_missing > 0
    _assert_same(got, memory)


def test_categorical_columns_default_to_the_schema(spark, tables):
    root, ref, _ = tables
    got = profile_spark(f"file://{root / 'ref'}", features=["carat", "cut"], spark=spark)
    assert got.categorical == ["cut"]
    _assert_same(got, ReferenceProfile.from_frame(ref[["carat", "cut"]], categorical=["cut"]))


def test_verdicts_equal_the_in_memory_check(spark, tables):
    root, ref, cur = tables
    reference = ReferenceProfile.from_frame(ref, categorical=CATS, exact_max_unique=CAP)
    memory = detect_drift(
        reference,
        ReferenceProfile.from_frame(cur, categorical=CATS, exact_max_unique=CAP),
        settings=Settings(),
    )
    report = detect_drift_spark(reference, str(root / "cur"), settings=Settings(), spark=spark)
    assert sorted(report.drifted_features) == ["carat", "color"]
    assert report.drifted_features == memory.drifted_features
    for name, f in memory.features.items():
        g = report.features[name]
        if f.statistic_error == 0:
            assert g.statistic == pytest.approx(f.statistic, rel=1e-12, abs=1e-12), name
        else:  # sketched: both within their bound of the exact statistic
            exact = detect_drift(ref[[name]], cur[[name]]).features[name].statistic
            assert abs(g.statistic - exact) <= g.statistic_error, name
    # both sides from Parquet: the same verdicts
    both = detect_drift_spark(
        str(root / "ref"), str(root / "cur"), categorical=CATS, settings=Settings(), spark=spark
    )
    assert both.drifted_features == report.drifted_features


def test_missing_sources_and_columns_are_named(spark, tmp_path, tables):
    root, _, _ = tables
    with pytest.raises(ValueError, match="no such file"):
        profile_spark(str(tmp_path / "nope"), spark=spark)
    with pytest.raises(ValueError, match="no column 'weight'"):
        profile_spark(str(root / "ref"), features=["carat", "weight"], spark=spark)


def test_read_columns_reads_only_what_exists(tables):
    root, ref, _ = tables
    got = read_columns(str(root / "ref"), ["carat", "__prediction__"], Settings())
    assert list(got.columns) == ["carat"] and len(got) == len(ref)


def test_pipeline_check_drift_with_the_spark_engine(spark, tmp_path, diamonds):
    from dethrone.pipeline import steps as pipeline
    from dethrone.pipeline.staging import Stager
    from tests.unit.pipeline_fakes import make_context

    rows = diamonds.sample(600, random_state=5).reset_index(drop=True)
    ctx = make_context(rows, drift_engine="spark", staging_uri=str(tmp_path))
    ctx = dataclasses.replace(ctx, stager=Stager(ctx.settings))
    data = pipeline.fetch_data(ctx, dag_run_id="r1", purpose="champion", seed=1)
    assert data["uri"].startswith("file://")
    trained = pipeline.train_model(ctx, data_uri=data["uri"], dag_run_id="r1", role="champion")
    reg = pipeline.register_model(ctx, run_id=trained["run_id"], dag_run_id="r1", role="champion")
    pipeline.first_champion(ctx, version=reg["version"], dag_run_id="r1")
    same = pipeline.fetch_data(ctx, dag_run_id="r2", purpose="current")
    verdict = pipeline.check_drift(ctx, data_uri=same["uri"], champion_version="1", dag_run_id="r2")
    assert verdict["drifted"] is False and verdict["engine"] == "spark"
    memory = pipeline.check_drift(
        dataclasses.replace(ctx, settings=ctx.settings.replace(drift_engine="memory")),
        data_uri=same["uri"],
        champion_version="1",
        dag_run_id="r2",
    )
    assert memory["features"] == verdict["features"]
    uri = ctx.stager.put(rows.assign(carat=rows["carat"] * 3), "shifted")
    verdict = pipeline.check_drift(ctx, data_uri=uri, champion_version="1", dag_run_id="r3")
    assert verdict["drifted"] is True and "carat" in verdict["drifted_features"]


def test_the_drift_command_with_the_spark_engine(spark, tables, tmp_path, capsys):
    from dethrone.cli import main

    root, ref, _ = tables
    profile = ReferenceProfile.from_frame(ref, categorical=CATS)
    saved = profile.save(tmp_path / "ref.npz")
    code = main(["drift", str(saved), str(root / "cur"), "--engine", "spark"])
    out = capsys.readouterr().out
    assert code == 1 and "DRIFT in carat, color" in out
    code = main(["drift", str(root / "ref"), str(tmp_path / "nope"), "--engine", "spark"])
    assert code == 2 and "no such file" in capsys.readouterr().err


def test_day_partitions_are_not_features(spark, tmp_path, tables):
    _, ref, _ = tables
    small = ref[["carat", "cut"]].iloc[:1000]
    for day, part in (("2026-12-01", small.iloc[:500]), ("2026-12-02", small.iloc[500:])):
        (tmp_path / f"date={day}").mkdir()
        part.to_parquet(tmp_path / f"date={day}" / "part-0.parquet", index=False)
    got = profile_spark(str(tmp_path), spark=spark)
    assert list(got.features) == ["carat", "cut"] and got.n_rows == 1000
    _assert_same(got, ReferenceProfile.from_frame(small, categorical=["cut"]))

"""Reading the log back: the export equals what was logged and labelled, row for row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dethrone.cli import main
from dethrone.store import PredictionLogWriter
from dethrone.store.export import export, joined_predictions, prune, stats, to_epoch
from dethrone.store.feedback import FeedbackItem, record_feedback

T0 = 1_700_000_000.0  # November 2023: older than any retention below


def served(rng, n: int) -> list[dict]:
    """What a client saw: regression rows on two experiments, a classifier, a shadow arm."""
    out = []
    for i in range(n):
        exp = "e1" if i % 3 else "e2"
        arm = "champion" if rng.random() < 0.5 else "challenger"
        base = {
            "request_id": f"q{i // 2}",
            "row": i % 2,
            "unit": f"u{i % 7}",
            "ts": T0 + i,
            "experiment_id": exp,
            "model_name": "m",
            "champion_version": "1",
            "challenger_version": "2",
            "salt": "s",
            "latency_ms": float(i % 5),
        }
        if exp == "e1":
            out.append(
                {
                    **base,
                    "arm": arm,
                    "model_version": "1" if arm == "champion" else "2",
                    "prediction": round(float(rng.normal(10, 2)), 6),
                    "features": {"x": i},
                }
            )
        else:
            probs = rng.dirichlet([1, 1, 1]).round(6)
            out.append(
                {
                    **base,
                    "arm": arm,
                    "model_version": "1",
                    "prediction": dict(zip("abc", probs.tolist(), strict=True)),
                }
            )
            out.append(
                {
                    **base,
                    "arm": "shadow",
                    "served": False,
                    "model_version": "2",
                    "prediction": {"a": 0.1, "b": 0.2, "c": 0.7},
                }
            )
    return out


@pytest.fixture
def logged(engine, rng):
    rows = served(rng, 600)
    log = PredictionLogWriter(engine, flush_seconds=0.05, batch_rows=97)
    log.append(rows)
    assert log.close() == 0
    labels = {}
    for r in rows[::3]:
        if r.get("served", True):
            labels[(r["request_id"], r["row"])] = (
                round(float(rng.normal(10, 2)), 6)
                if r["experiment_id"] == "e1"
                else str(rng.choice(list("abc")))
            )
    items = [FeedbackItem(k[0], k[1], v) for k, v in labels.items()]
    result = record_feedback(engine, items, now=T0 + 700)
    assert result.counts["stored"] == len(items)
    return engine, rows, labels


def expected_frame(rows, labels) -> pd.DataFrame:
    out = []
    for r in rows:
        label = labels.get((r["request_id"], r["row"]))
        pred = r["prediction"]
        numeric = isinstance(pred, float)
        cls = None if numeric else max(pred, key=pred.get)
        if label is None:
            loss = np.nan
        elif numeric:
            loss = abs(pred - label)
        else:
            loss = float(cls != label)
        out.append(
            {
                "request_id": r["request_id"],
                "row": r["row"],
                "arm": r["arm"],
                "served": r.get("served", True),
                "unit": r["unit"],
                "model_version": r["model_version"],
                "experiment_id": r["experiment_id"],
                "ts": pd.Timestamp(r["ts"], unit="s", tz="UTC"),
                "prediction": pred if numeric else np.nan,
                "predicted_class": cls,
                "latency_ms": r["latency_ms"],
                "label": label if isinstance(label, float) else np.nan,
                "label_class": label if isinstance(label, str) else None,
                "loss": loss,
            }
        )
    return pd.DataFrame(out)


def test_joined_rows_equal_what_was_served_and_labelled(logged):
    engine, rows, labels = logged
    got = joined_predictions(engine)
    assert len(got) == len(rows)
    want = expected_frame(rows, labels)
    cols = list(want.columns)
    got = got.sort_values(["ts", "arm"]).reset_index(drop=True)[cols]
    want = want.sort_values(["ts", "arm"]).reset_index(drop=True)
    for frame in (got, want):  # one representation of "no class" on both sides
        for col in ("label_class", "predicted_class"):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    got["ts"] = got["ts"].astype("datetime64[ns, UTC]")
    pd.testing.assert_frame_equal(got, want[cols], check_dtype=False, rtol=1e-9, atol=1e-9)
    has_label = got["label"].notna() | got["label_class"].notna()
    assert has_label[got["served"]].sum() == len(labels)  # a shadow row shares its row's label
    shadowed = {(r["request_id"], r["row"]) for r in rows if not r.get("served", True)}
    assert has_label[~got["served"]].sum() == len(shadowed & set(labels))


def test_filters_and_parquet_export(logged, tmp_path):
    engine, rows, _ = logged
    e1 = joined_predictions(engine, experiment="e1", since=T0 + 100, until=T0 + 200)
    want = [r for r in rows if r["experiment_id"] == "e1" and T0 + 100 <= r["ts"] < T0 + 200]
    assert sorted(e1["request_id"] + "/" + e1["row"].astype(str)) == sorted(
        f"{r['request_id']}/{r['row']}" for r in want
    )
    result = export(engine, tmp_path / "out" / "all.parquet", chunk_rows=64)
    back = pd.read_parquet(result.path)
    assert result.rows == len(rows) == len(back)
    pd.testing.assert_frame_equal(
        back.reset_index(drop=True),
        joined_predictions(engine).reset_index(drop=True),
        check_dtype=False,
    )
    assert not list((tmp_path / "out").glob("*.partial"))


def test_stats_per_arm(logged):
    engine, rows, labels = logged
    want = expected_frame(rows, labels).groupby("arm")
    arms = {a.arm: a for a in stats(engine)}
    assert set(arms) == {"champion", "challenger", "shadow"}
    for arm, frame in want:
        assert arms[arm].rows == len(frame)
        assert arms[arm].labelled == frame["loss"].notna().sum()
        assert arms[arm].mean_loss == pytest.approx(frame["loss"].mean(), rel=1e-9)
        assert arms[arm].coverage == pytest.approx(frame["loss"].notna().mean())


def test_prune_removes_old_rows_and_their_labels(logged):
    engine, rows, labels = logged
    result = prune(engine, older_than="300s", now=T0 + 600)
    left = joined_predictions(engine)
    assert result.predictions == sum(r["ts"] < T0 + 300 for r in rows) == len(rows) - len(left)
    assert left["ts"].min() >= pd.Timestamp(T0 + 300, unit="s", tz="UTC")
    assert result.feedback > 0 and stats(engine)  # labels of the kept rows are still joined
    assert prune(engine, older_than="300s", now=T0 + 600).predictions == 0


def test_prune_drops_the_kept_sums_no_look_advanced_since(engine):
    from sqlalchemy import func, insert, select

    from dethrone.store.schema import look_scopes, look_units

    sums = {c.name: 0 for c in look_units.columns if not c.nullable} | {"k": "u:1", "b": 0}
    with engine.begin() as conn:
        for sid, updated in ((1, T0), (2, T0 + 500)):
            conn.execute(
                insert(look_scopes).values(
                    id=sid,
                    key=f"s{sid}",
                    served_until=0.0,
                    closed_until=0.0,
                    last_id=0,
                    requests=0,
                    caps={},
                    tail={},
                    updated_at=updated,
                )
            )
            conn.execute(insert(look_units).values(**{**sums, "scope_id": sid}))
    assert prune(engine, older_than="300s", now=T0 + 600).look_scopes == 1
    with engine.connect() as conn:
        assert conn.execute(select(look_scopes.c.id)).scalars().all() == [2]
        assert conn.execute(select(func.count()).select_from(look_units)).scalar() == 1


def test_empty_log_exports_an_empty_typed_file(engine, tmp_path):
    assert joined_predictions(engine).empty and stats(engine) == ()
    assert pd.read_parquet(export(engine, tmp_path / "e.parquet").path).empty


def test_cli_export_stats_prune(logged, db_url, tmp_path, capsys):
    engine, rows, _ = logged
    out = tmp_path / "e2.parquet"
    assert (
        main(
            [
                "predictions",
                "--database-url",
                db_url,
                "export",
                "--experiment",
                "e2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (
        json.loads(capsys.readouterr().out)["rows"]
        == sum(r["experiment_id"] == "e2" for r in rows)
        == len(pd.read_parquet(out))
    )
    assert main(["predictions", "--database-url", db_url, "stats", "--json"]) == 0
    assert {a["arm"] for a in json.loads(capsys.readouterr().out)} == {
        "champion",
        "challenger",
        "shadow",
    }
    assert main(["predictions", "--database-url", db_url, "stats"]) == 0
    assert "coverage" in capsys.readouterr().out
    assert main(["predictions", "--database-url", db_url, "prune", "--older-than", "x"]) == 2
    assert "older_than" in capsys.readouterr().err
    assert main(["predictions", "--database-url", db_url, "prune", "--older-than", "1d"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"] == len(rows)


def test_to_epoch_forms():
    assert to_epoch(None) is None
    assert to_epoch("1970-01-01T00:01:00") == 60.0
    assert to_epoch("2h", now=10_000.0) == 2_800.0
    with pytest.raises(ValueError, match="not a time"):
        to_epoch("yesterday-ish")

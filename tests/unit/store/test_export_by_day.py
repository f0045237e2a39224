"""Retention: the log exported as Parquet partitioned by day, readable as a drift source."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dethrone.cli import main
from dethrone.store import PredictionLogWriter
from dethrone.store.export import export_by_day, joined_predictions

DAY = 86_400.0
T0 = 1_700_006_400.0  # 2023-11-15T00:00:00Z


@pytest.fixture
def logged(engine):
    rows = [
        {
            "request_id": f"q{i}",
            "row": 0,
            "unit": f"u{i}",
            "ts": T0 + (i % 3) * DAY + i,
            "arm": "champion",
            "model_name": "m",
            "model_version": "1",
            "prediction": float(i),
            "features": {"carat": 0.1 * i, "color": "EFG"[i % 3], "n": i},
        }
        for i in range(90)
    ]
    log = PredictionLogWriter(engine, flush_seconds=0.05, batch_rows=40)
    log.append(rows)
    assert log.close() == 0
    return rows


def test_days_are_folders_and_the_folder_reads_back(engine, logged, tmp_path):
    out = tmp_path / "log"
    done = export_by_day(engine, out, features=True, chunk_rows=25)
    assert done.rows == len(logged)
    days = sorted(p.name for p in out.iterdir())
    assert days == ["date=2023-11-15", "date=2023-11-16", "date=2023-11-17"]
    assert all(p.name.startswith("part-") for p in (out / days[0]).iterdir())
    back = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    whole = joined_predictions(engine)
    pd.testing.assert_series_equal(back["prediction"], whole["prediction"])
    assert back["carat"].tolist() == pytest.approx([0.1 * i for i in range(90)])
    assert back["color"].tolist() == ["EFG"[i % 3] for i in range(90)]
    assert back.groupby(back["date"].astype(str)).size().tolist() == [30, 30, 30]


def test_a_day_exported_again_is_replaced_not_doubled(engine, logged, tmp_path):
    out = tmp_path / "log"
    export_by_day(engine, out)
    again = export_by_day(engine, out, since=T0 + DAY, until=T0 + 2 * DAY)
    assert again.rows == 30
    back = pd.read_parquet(out)
    assert len(back) == len(logged) and back["id"].is_unique
    assert "carat" not in back.columns  # features only on request


def test_the_command_writes_by_day(engine, logged, tmp_path, capsys, db_url):
    out = tmp_path / "cli"
    code = main(["predictions", "--database-url", db_url, "export", "--out", str(out), "--by-day"])
    assert code == 0 and json.loads(capsys.readouterr().out)["rows"] == len(logged)
    assert len(list(out.glob("date=*/part-*.parquet"))) == 3
    code = main(
        ["predictions", "--database-url", db_url, "export", "--out", "x.parquet", "--features"]
    )
    assert code == 2 and "--by-day" in capsys.readouterr().err

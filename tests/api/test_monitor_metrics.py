"""The drift monitor's newest check as Prometheus gauges, per feature, from the database."""

from __future__ import annotations

from dethrone.store.monitor import save_result
from dethrone_router.metrics.monitor import MonitorCollector

RESULT = {
    "drifted": True,
    "features": {
        "carat": {"drifted": True, "method": "ks", "statistic": 0.31},
        "color": {"drifted": False, "method": "psi+chi2", "statistic": 0.02},
    },
    "prediction": {"drifted": True, "method": "ks", "statistic": 0.2},
    "performance": {"drifted": False, "method": "ks", "statistic": 0.01},
}


def _gauges(app) -> str:
    return app.test_client().get("/metrics").get_data(as_text=True)


def test_no_check_yet_exports_no_drift_series(app):
    assert "dethrone_drift_feature_drifted" not in _gauges(app)


def test_the_newest_check_is_exported_per_feature(app):
    engine = app.extensions["dethrone_router"].engine
    save_result(engine, {"drifted": False, "features": {}}, status="checked", champion_version="1")
    save_result(engine, RESULT, status="checked", champion_version="1", now=4e9)
    collector = MonitorCollector(engine, ttl=0)
    families = {f.name: f for f in collector.collect()}
    stats = {
        s.labels["feature"]: s.value for s in families["dethrone_drift_feature_statistic"].samples
    }
    assert stats == {"carat": 0.31, "color": 0.02, "__prediction__": 0.2, "__loss__": 0.01}
    drifted = {
        s.labels["feature"]: s.value for s in families["dethrone_drift_feature_drifted"].samples
    }
    assert drifted == {"carat": 1.0, "color": 0.0, "__prediction__": 1.0, "__loss__": 0.0}
    assert families["dethrone_drift_checked_timestamp_seconds"].samples[0].value == 4e9
    text = _gauges(app)
    assert 'dethrone_drift_feature_drifted{feature="carat"} 1.0' in text


def test_a_skipped_check_exports_nothing_and_an_outage_does_not_fail_the_scrape(app):
    engine = app.extensions["dethrone_router"].engine
    save_result(engine, {"reason": "too few"}, status="skipped", champion_version="1")
    assert list(MonitorCollector(engine, ttl=0).collect()) == []
    engine.dispose()
    broken = MonitorCollector(_Broken(), ttl=0)
    assert list(broken.collect()) == []


class _Broken:
    def connect(self):
        raise ConnectionError("database down")


def test_the_serving_page_shows_the_newest_check(app):
    engine = app.extensions["dethrone_router"].engine
    client = app.test_client()
    assert "No drift check on served traffic yet" in client.get("/ui/serving").get_data(True)
    save_result(
        engine,
        {**RESULT, "drifted_features": ["carat"], "window": "24h"},
        status="checked",
        champion_version="3",
        run_id="abc",
    )
    html = client.get("/ui/serving").get_data(as_text=True)
    assert "v3" in html and "in carat" in html and "answers drifted" in html
    assert "1 drifted window(s) in a row" in html

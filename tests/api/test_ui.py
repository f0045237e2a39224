"""The experiment page (``/ui/``) through the Flask test client: HTML, sign-in, 404s.

:func:`seed` fills a router database with what the lifecycle stores for a running
experiment (its record, looks, config changes) and a few thousand log rows; the browser
test (``tests/integration/test_ui_browser.py``) uses it too.
"""

from __future__ import annotations

import random
import re
import time

import pytest
from sqlalchemy import insert

from dethrone.settings import Settings
from dethrone.store import experiments as store
from dethrone.store.schema import feedback, predictions

RUNNING, ENDED = "live-v3-a1b2c3d4e5", "live-v2-0f9e8d7c6b"
READ_TOKEN = "read-s3cret-token"


def seed(engine, config_store, *, now: float | None = None, rows: int = 2000) -> dict:
    """A promoted-then-window-closed experiment (v1 → v2) and a running one (v2 vs v3).

    The running experiment has 6 looks (the interval narrowing towards a gain), an action
    trail, the router config changes it made, and ``rows`` logged rows (60% labelled).
    """
    now = time.time() if now is None else now
    rng = random.Random(7)
    ended_start = now - 6 * 3600
    store.save_experiment(
        engine,
        {
            "id": ENDED,
            "champion_version": "1",
            "challenger_version": "2",
            "salt": ENDED,
            "started_at": ended_start,
            "mode": "ab",
            "split": 0.5,
            "thresholds": {"margin": 0.0, "min_units_per_arm": 100},
            "state": "guardrail",
            "outcome": "promote",
            "looks": 3,
            "holdback": 0.1,
            "window_until": ended_start + 3 * 3600,
            "action": {"action": "promote", "by": "dethrone", "reason": "", "at": now - 5 * 3600},
        },
    )
    for k, (lo, hi, phase, outcome) in enumerate(
        [
            (-80.0, 120.0, "experiment", "continue"),
            (15.0, 90.0, "experiment", "promote"),
            (-40.0, 30.0, "guardrail", "continue"),
        ],
        1,
    ):
        store.save_look(
            engine,
            ENDED,
            {
                "time": ended_start + k * 1800,
                "phase": phase,
                "units_a": 300 * k,
                "units_b": 300 * k,
                "ci_low": lo,
                "ci_high": hi,
                "pvalue": 0.5 / k,
                "outcome": outcome,
            },
            k,
        )
    rec = {
        "id": ENDED,
        "champion_version": "1",
        "challenger_version": "2",
        "started_at": ended_start,
        "mode": "ab",
        "split": 0.5,
        "thresholds": {"margin": 0.0, "min_units_per_arm": 100},
        "state": "promoted",
        "outcome": "promote",
        "looks": 3,
        "holdback": 0.1,
        "window_until": ended_start + 3 * 3600,
        "ended_at": ended_start + 3 * 3600,
        "reasons": ["challenger v2 better: interval [15, 90] above the margin 0"],
        "action": {"action": "promote", "by": "dethrone", "reason": "", "at": now - 5 * 3600},
    }
    store.save_experiment(engine, rec)

    started = now - 3600
    versions = []
    for why, cfg in (
        ("start", {"mode": "ab", "a": 0.5, "b": 0.5, "salt": RUNNING}),
        ("split 70/30 by operator", {"mode": "ab", "a": 0.7, "b": 0.3, "salt": RUNNING}),
    ):
        version, _, _ = config_store.update(
            lambda c, cfg=cfg: {**c, **cfg},
            source=f"live experiment {RUNNING} (run manual__7): {why}",
        )
        versions.append(version)
    running = {
        "id": RUNNING,
        "champion_version": "2",
        "challenger_version": "3",
        "salt": RUNNING,
        "started_at": started,
        "mode": "ab",
        "split": 0.5,
        "thresholds": {
            "alpha": 0.05,
            "margin": 0.0,
            "min_units_per_arm": 100,
            "srm_pvalue_threshold": 0.001,
        },
        "dag_run_id": "manual__7",
        "state": "running",
        "run_id": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "looks": 6,
        "config_versions": versions,
        "action": {"action": "start", "by": "alice", "reason": "new features", "at": started},
    }
    store.save_experiment(engine, running)
    for k in range(1, 7):
        half = 300.0 / k**0.5
        store.save_look(
            engine,
            RUNNING,
            {
                "time": started + k * 540,
                "phase": "experiment",
                "units_a": 40 * k,
                "units_b": 38 * k,
                "rows_a": 90 * k,
                "rows_b": 85 * k,
                "ci_low": 20.0 - half,
                "ci_high": 20.0 + half,
                "pvalue": min(1.0, 1.2 / k),
                "mean_a": 690.0,
                "mean_b": 668.0,
                "outcome": "continue",
                "reasons": [
                    f"continue: {40 * k}/{38 * k} units, interval [{20 - half:.1f}, "
                    f"{20 + half:.1f}] $ contains the margin 0"
                ],
                "srm_pvalue": 0.62,
                "units_in_both_arms": 0,
                "loss_name": "absolute error of price",
                "loss_unit": "$",
                "guardrails": {
                    "error_rate": {"champion": 0.001, "challenger": 0.002, "ok": True},
                    "p99_latency_ms": {"champion": 41.0, "challenger": 97.0, "ok": False},
                },
            },
            k,
        )
    log, labels = [], []
    for i in range(rows):
        challenger = rng.random() < 0.5
        rid = f"r{i}"
        ts = started + (i + 0.5) * 3500 / rows
        log.append(
            {
                "request_id": rid,
                "row": 0,
                "arm": "challenger" if challenger else "champion",
                "served": True,
                "unit": f"u{rng.randrange(400)}",
                "model_name": "dethrone-model",
                "model_version": "3" if challenger else "2",
                "experiment_id": f"2/3/{RUNNING}",
                "champion_version": "2",
                "challenger_version": "3",
                "salt": RUNNING,
                "ts": ts,
                "prediction": 3900.0,
                "latency_ms": rng.expovariate(1 / 5.0),
                "features": None,
            }
        )
        if rng.random() < 0.6:
            labels.append({"request_id": rid, "row": 0, "label": 3950.0, "received_at": ts + 5})
    with engine.begin() as conn:
        conn.execute(insert(predictions), log)
        conn.execute(insert(feedback), labels)
    store.refresh_counts(engine, RUNNING, now=now)
    return {"running": RUNNING, "ended": ENDED, "rows": rows, "labels": len(labels)}


@pytest.fixture
def seeded(app):
    st = app.extensions["dethrone_router"]
    store._memo.clear()
    return seed(st.engine, st.store)


def _text(html: bytes) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.decode()))


def test_list_running_first(client, seeded):
    resp = client.get("/ui/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.data.decode()
    assert html.index(RUNNING) < html.index(ENDED)
    text = _text(resp.data)
    assert "running" in text and "promoted" in text and "v2" in text and "v3" in text
    assert f'href="/ui/experiments/{RUNNING}"' in html
    assert 'http-equiv="refresh"' in html  # an experiment runs
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")


def test_experiment_page(client, seeded):
    resp = client.get(f"/ui/experiments/{RUNNING}")
    assert resp.status_code == 200
    html, text = resp.data.decode(), _text(resp.data)
    # per arm, by model version, from the log
    counts, _ = store.arm_counts(
        client.application.extensions["dethrone_router"].engine,
        RUNNING,
        since=store.experiment(client.application.extensions["dethrone_router"].engine, RUNNING)[
            "started_at"
        ],
    )
    assert sum(c["rows"] for c in counts) == seeded["rows"]
    assert sum(c["labelled"] for c in counts) == seeded["labels"]
    for c in counts:
        assert f"{c['rows']:,}" in text and f"{c['labelled']:,}" in text
    assert "absolute error of price" in text
    # two charts with bands, zero and margin lines, one look each
    assert html.count("<svg") == 2 and html.count('class="band band-experiment"') == 2
    assert html.count('class="zero"') == 2 and html.count('class="margin"') == 2
    assert html.count('<g class="look">') == 12
    # health checks: green and red with figures
    assert re.search(r'class="check ok" data-check="sample ratio"', html)
    assert re.search(r'class="check fail" data-check="p99 latency"', html)
    assert "p = 0.62" in text
    assert "continue: 240/228 units" in text  # reasons in words
    # audit trail: the record's action and the router's config changes with their source
    assert "alice" in text and "new features" in text
    assert f"live experiment {RUNNING} (run manual__7): split 70/30 by operator" in text
    assert "a=0.7" in text
    assert 'http-equiv="refresh"' in html


def test_ended_experiment_markers_and_no_refresh(client, seeded):
    resp = client.get(f"/ui/experiments/{ENDED}")
    html = resp.data.decode()
    assert resp.status_code == 200
    assert 'class="marker marker-decision"' in html
    assert 'class="marker-window"' in html and "band-guardrail" in html
    assert 'http-equiv="refresh"' not in html
    assert "challenger v2 better" in _text(resp.data)


def test_serving_overview(client, seeded, app):
    resp = client.get("/ui/serving")
    assert resp.status_code == 200
    text = _text(resp.data)
    assert "70.0% / 30.0%" in text and RUNNING in text
    assert "Traffic of the last 5 minutes" in text


def test_unknown_experiment_is_404(client, seeded):
    resp = client.get("/ui/experiments/nope")
    assert resp.status_code == 404 and b"no experiment nope" in resp.data
    assert client.get("/ui/nothing-here").status_code == 404


def test_empty_database(client):
    resp = client.get("/ui/")
    assert resp.status_code == 200 and b"No live experiment" in resp.data
    assert b"no look" not in client.get("/ui/serving").data


@pytest.fixture
def locked(make_app, tmp_path):
    settings = Settings.from_env(
        {}, router_data_dir=str(tmp_path / "r"), router_read_token=READ_TOKEN
    )
    app = make_app(settings)
    app.config["TESTING"] = True
    st = app.extensions["dethrone_router"]
    store._memo.clear()
    seed(st.engine, st.store, rows=50)
    return app.test_client()


def test_read_token_login_sets_a_signed_cookie(locked, caplog):
    resp = locked.get(f"/ui/experiments/{RUNNING}")
    assert resp.status_code == 303 and resp.location.startswith("/ui/login?next=")
    assert locked.get("/ui/login").status_code == 200
    bad = locked.post("/ui/login", data={"token": "wrong", "next": "/ui/"})
    assert bad.status_code == 401 and b"wrong token" in bad.data
    assert "Set-Cookie" not in bad.headers
    with caplog.at_level("INFO"):
        ok = locked.post("/ui/login", data={"token": READ_TOKEN, "next": "/ui/serving"})
    assert ok.status_code == 303 and ok.location == "/ui/serving"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert READ_TOKEN not in cookie and READ_TOKEN not in caplog.text
    assert locked.get(f"/ui/experiments/{RUNNING}").status_code == 200
    assert locked.get("/ui/serving").status_code == 200
    # a forged or altered cookie is refused
    locked.set_cookie("dethrone_ui", "forged.value.sig", path="/ui/")
    assert locked.get("/ui/").status_code == 303
    locked.post("/ui/login", data={"token": READ_TOKEN})
    assert locked.post("/ui/logout").status_code == 303
    assert locked.get("/ui/").status_code == 303


def test_bearer_header_and_open_redirects(locked):
    hdr = {"Authorization": f"Bearer {READ_TOKEN}"}
    assert locked.get("/ui/", headers=hdr).status_code == 200
    assert locked.get("/ui/", headers={"Authorization": "Bearer nope"}).status_code == 303
    ok = locked.post("/ui/login", data={"token": READ_TOKEN, "next": "https://evil.example/ui/"})
    assert ok.location == "/ui/"
    ok = locked.post("/ui/login", data={"token": READ_TOKEN, "next": "//evil.example/ui/x"})
    assert ok.location == "/ui/"


def test_escapes_what_it_shows(client, app):
    st = app.extensions["dethrone_router"]
    store.save_experiment(
        st.engine,
        {
            "id": "live-x",
            "state": "kept",
            "started_at": time.time() - 60,
            "champion_version": "1",
            "challenger_version": "2",
            "reasons": ["<script>alert(1)</script>"],
            "action": {"action": "stop", "by": "<b>eve</b>", "reason": "x", "at": time.time()},
        },
    )
    html = client.get("/ui/experiments/live-x").data.decode()
    assert "<script>alert" not in html and "&lt;script&gt;" in html and "&lt;b&gt;eve" in html


def test_health_checks_read_the_looks_own_tests():
    """A look of dethrone.experiments.look carries its coverage and guardrail tests: the
    page's checks follow their verdicts (harm, differs), not a rule of its own."""
    from dethrone_router.api.ui import health_checks

    arms = [
        {
            "version": "1",
            "served": 100,
            "coverage": 0.9,
            "units": 50,
            "error_rate": 0.0,
            "p99_latency_ms": 10.0,
        },
        {
            "version": "2",
            "served": 100,
            "coverage": 0.5,
            "units": 50,
            "error_rate": 0.2,
            "p99_latency_ms": 12.0,
        },
    ]
    last = {
        "srm_pvalue": 0.5,
        "units_in_both_arms": 0,
        "coverage": {
            "p_a": 0.9,
            "p_b": 0.88,
            "low": -0.05,
            "high": 0.01,
            "margin": 0.01,
            "differs": False,
        },
        "guardrails": {
            "error_rate": {"name": "error rate", "p_a": 0.0, "p_b": 0.2, "harm": True},
            "p99_latency": {"name": "p99 latency", "p_a": 0.01, "p_b": 0.01, "harm": False},
        },
    }
    checks = {c["name"]: c["status"] for c in health_checks({"thresholds": {}}, last, arms)}
    assert checks["label coverage"] == "ok"  # the test, not the raw 90% vs 50% shares
    assert checks["error rate"] == "fail" and checks["p99 latency"] == "ok"

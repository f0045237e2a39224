"""Compiled scoring in the gateway: real MLflow pyfunc models, compile on against off.

The models are saved with ``mlflow.sklearn`` (signature and input example, as the training
pipeline logs them) and loaded by the gateway's own loader
(:func:`dethrone_router.gateway.models.from_pyfunc`) with a training sample as reference
rows; the gateway's answers, ``/health`` and the prediction log are compared between
``SERVING_COMPILE=auto`` and ``off``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import ensemble, linear_model
from sklearn.pipeline import Pipeline

from dethrone.pipeline.features import build_preprocessor, prepare_features, split_columns
from dethrone.store.export import joined_predictions
from dethrone_router.gateway.models import from_pyfunc

TOL = 1e-9


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Three versions saved with mlflow.sklearn: 1 and 2 regress price (RandomForest,
    two seeds), 3 classifies ``cut`` (LogisticRegression); categorical columns in all."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from dethrone.slices.datasets import load_diamonds

    frame = load_diamonds().sample(1500, random_state=0)
    numeric, categorical = split_columns(frame, "price")
    X = prepare_features(frame, numeric + categorical, categorical)
    root = tmp_path_factory.mktemp("models")
    out = {}
    cats = [c for c in categorical if c != "cut"]
    specs = {
        "1": (numeric, categorical, ensemble.RandomForestRegressor(12, random_state=1), "price"),
        "2": (numeric, categorical, ensemble.RandomForestRegressor(12, random_state=2), "price"),
        "3": (numeric, cats, linear_model.LogisticRegression(max_iter=300), "cut"),
    }
    for version, (num, cat, est, target) in specs.items():
        cols = num + cat
        y = frame[target].astype(float) if target == "price" else X["cut"]
        model = Pipeline([("prep", build_preprocessor(num, cat)), ("model", est)])
        model.fit(X[cols], y)
        path = root / f"v{version}"
        mlflow.sklearn.save_model(
            model,
            str(path),
            signature=infer_signature(X[cols].head(5), model.predict(X[cols].head(5))),
            input_example=X[cols].head(5),
            serialization_format="cloudpickle",
        )
        # the training rows as the registry stores them (categoricals, the target too)
        out[version] = (str(path), frame.head(500), model, cols)
    return out, X


class PyfuncSource:
    """The registry in a dict: versions are MLflow model folders loaded like MlflowSource."""

    def __init__(self, saved, mode: str) -> None:
        self.saved, self.mode = saved, mode
        self.aliases: dict[str, str] = {"champion": "1"}

    def ping(self) -> None:
        pass

    def lookup(self, alias):
        version = self.aliases.get(alias)
        return None if version is None else (version, {})

    def load(self, version):
        import mlflow.pyfunc

        path, sample, _, _ = self.saved[version]
        return from_pyfunc(
            mlflow.pyfunc.load_model(path), mode=self.mode, reference=sample, target="price"
        )


@pytest.fixture(scope="module")
def served_pair(saved):
    return saved


def _app(make_app, settings, tmp_path, saved, mode: str, log: bool = False):
    source = PyfuncSource(saved[0], mode)
    app = make_app(
        settings.replace(
            router_data_dir=str(tmp_path / f"router-{mode}"),
            serving_batch_window_ms=0,
            serving_compile=mode,
            serving_log=log,
            log_flush_seconds=0.05,
        ),
        model_source=source,
    )
    app.config["TESTING"] = True
    app.extensions["dethrone_serving"].watcher.refresh()
    return app, source


def _bodies(X: pd.DataFrame, cols: list[str]) -> list[dict]:
    """Single rows, a 60-row batch, rows with nulls and an unseen category, every form."""
    rows = X[cols].sample(80, random_state=5)
    records = rows.to_dict(orient="records")
    odd = [dict(r) for r in records[:6]]
    odd[0]["carat"] = None
    odd[1]["color"] = "Z-unseen"
    odd[2]["clarity"] = None
    split = {"columns": cols, "data": [[r[c] for c in cols] for r in records[:7]]}
    return [
        *({"rows": [r]} for r in records[:10]),
        {"dataframe_records": records[10:70]},
        {"instances": odd},
        {"dataframe_split": split},
        {"inputs": {c: [r[c] for r in records[:3]] for c in cols}},
    ]


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(np.abs(a - b) <= TOL * np.maximum(np.abs(a), np.abs(b))))


@pytest.mark.parametrize("version", ["1", "3"], ids=["regression", "classification"])
def test_compiled_answers_equal_the_models_own(make_app, settings, tmp_path, saved, version):
    models, X = saved
    _, _, model, cols = models[version]
    on, on_src = _app(make_app, settings, tmp_path, saved, "auto")
    off, off_src = _app(make_app, settings, tmp_path, saved, "off")
    on_src.aliases["champion"] = off_src.aliases["champion"] = version
    for app in (on, off):
        app.extensions["dethrone_serving"].watcher.refresh()
    classifier = version == "3"
    con, coff = on.test_client(), off.test_client()
    for body in _bodies(X, cols):
        body = {**body, "probabilities": True} if classifier else body
        a, b = con.post("/predict", json=body), coff.post("/invocations", json=body)
        assert a.status_code == b.status_code == 200, (a.json, b.json)
        # today's path: the pipeline's own predict on the gateway's frame
        rows = pd.DataFrame(
            body.get("rows")
            or body.get("dataframe_records")
            or body.get("instances")
            or body.get("inputs")
            or [dict(zip(cols, r, strict=True)) for r in body["dataframe_split"]["data"]]
        )[cols].astype({c: object for c in cols if X[c].dtype == object})
        if classifier:
            assert a.json["predictions"] == b.json["predictions"]
            assert a.json["predictions"] == model.predict(rows).tolist()
            assert a.json["classes"] == b.json["classes"]
            assert _close(a.json["probabilities"], b.json["probabilities"])
            assert _close(a.json["probabilities"], model.predict_proba(rows))
        else:
            assert _close(a.json["predictions"], b.json["predictions"])
            assert _close(a.json["predictions"], model.predict(rows))
    scoring_on = con.get("/health").json["serving"]["scoring"]["champion"]
    scoring_off = coff.get("/health").json["serving"]["scoring"]["champion"]
    assert scoring_on["version"] == version and scoring_on["compiled"] is True, scoring_on
    assert scoring_on["reason"].startswith("verified on")
    assert scoring_on["calls"]["compiled"] >= len(_bodies(X, cols)) - 1
    assert (scoring_off["compiled"], scoring_off["reason"]) == (False, "SERVING_COMPILE=off")
    metrics = con.get("/metrics").get_data(as_text=True)
    line = f'dethrone_serving_model_compiled{{alias="champion",version="{version}"}}'
    assert f"{line} 1.0" in metrics
    assert f"{line} 0.0" in coff.get("/metrics").get_data(as_text=True)


def test_a_planted_disagreement_serves_the_model_and_says_why(
    make_app, settings, tmp_path, saved, monkeypatch
):
    from dethrone_router.gateway.compile import trees

    real = trees.NodeTable.__init__

    def planted(self, *args, **kwargs):
        real(self, *args, **kwargs)
        self.threshold[int(self.roots[0])] += 0.25

    monkeypatch.setattr(trees.NodeTable, "__init__", planted)
    app, _ = _app(make_app, settings, tmp_path, saved, "auto")
    client = app.test_client()
    models, X = saved
    _, _, model, cols = models["1"]
    rows = X[cols].head(20)
    out = client.post("/predict", json={"rows": rows.to_dict(orient="records")}).json
    assert out["predictions"] == model.predict(rows).tolist()  # the model's own answers
    scoring = client.get("/health").json["serving"]["scoring"]["champion"]
    assert scoring["compiled"] is False
    assert scoring["reason"].startswith("verification failed: max relative difference")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'dethrone_serving_model_compiled{alias="champion",version="1"} 0.0' in metrics


def _logged(app) -> pd.DataFrame:
    sv = app.extensions["dethrone_serving"]
    assert sv.writer.flush(timeout=10)
    log = joined_predictions(app.extensions["dethrone_router"].engine)
    return log.sort_values(["request_id", "row", "arm"]).reset_index(drop=True)


def test_hot_swap_and_the_log_are_unchanged_with_compile_on(make_app, settings, tmp_path, saved):
    models, X = saved
    cols = models["1"][3]
    logs = {}
    for mode in ("auto", "off"):
        app, source = _app(make_app, settings, tmp_path, saved, mode, log=True)
        sv = app.extensions["dethrone_serving"]
        client = app.test_client()
        client.post("/traffic", json={"mode": "ab", "a": 0.5, "salt": "s"})
        source.aliases["challenger"] = "2"
        sv.watcher.refresh()
        rows = X[cols].sample(40, random_state=9).to_dict(orient="records")
        answers = []
        for i in range(40):
            if i == 20:  # hot swap: the challenger's version becomes the champion
                held = sv.watcher.get("champion")
                source.aliases["champion"], source.aliases["challenger"] = "2", "1"
                sv.watcher.refresh()
                assert sv.watcher.get("champion").version == "2" and held.version == "1"
                # a request in flight keeps the model it started with
                assert _close(
                    held.batcher.submit(pd.DataFrame(rows[:3]))[0],
                    models["1"][2].predict(pd.DataFrame(rows[:3])),
                )
            resp = client.post(
                "/predict",
                json={"rows": rows[i : i + 2]},
                headers={"X-Request-ID": f"req-{i}", "X-Dethrone-Unit": f"u{i}"},
            )
            assert resp.status_code == 200, resp.json
            answers.append((resp.json["arm"], resp.json["model_version"]))
        scoring = client.get("/health").json["serving"]["scoring"]
        assert {a: s["compiled"] for a, s in scoring.items()} == {
            "champion": mode == "auto",
            "challenger": mode == "auto",
        }
        logs[mode] = (answers, _logged(app))
        sv.writer.close()
    (ans_on, log_on), (ans_off, log_off) = logs["auto"], logs["off"]
    assert ans_on == ans_off and {v for _, v in ans_on} == {"1", "2"}
    assert list(log_on.columns) == list(log_off.columns) and len(log_on) == 79
    same = [c for c in log_on.columns if c not in ("ts", "latency_ms", "prediction", "id")]
    pd.testing.assert_frame_equal(log_on[same], log_off[same])
    assert _close(log_on["prediction"].astype(float), log_off["prediction"].astype(float))

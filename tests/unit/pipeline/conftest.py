"""Shared fixtures of the pipeline tests: a champion trained once on fakes, and a
prediction log of its own per test."""

from __future__ import annotations

import dataclasses
import uuid

import orjson
import pandas as pd
import pytest
from sqlalchemy import insert

from dethrone.pipeline import steps as pipeline
from dethrone.pipeline.training import prepare_features
from dethrone.store import make_engine, upgrade
from dethrone.store.schema import feedback, predictions
from tests.unit.pipeline_fakes import make_context

FEATURES = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]


@pytest.fixture(scope="module")
def served_rows(diamonds):
    return diamonds.sample(1500, random_state=7).reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(served_rows):
    """A context whose champion v1 was trained on ``rows`` (once per module: training is
    the slow part)."""
    ctx = make_context(served_rows, drift_source="log", drift_min_rows=100)
    data = pipeline.fetch_data(ctx, dag_run_id="r1", purpose="champion", seed=1)
    out = pipeline.train_model(ctx, data_uri=data["uri"], dag_run_id="r1", role="champion")
    reg = pipeline.register_model(ctx, run_id=out["run_id"], dag_run_id="r1", role="champion")
    pipeline.first_champion(ctx, version=reg["version"], dag_run_id="r1")
    return ctx


@pytest.fixture
def champion(trained, tmp_path):
    """The trained context with a prediction log of its own, and the log's engine."""
    url = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    yield (
        dataclasses.replace(trained, settings=trained.settings.replace(router_database_url=url)),
        engine,
    )
    engine.dispose()


def _serve(ctx, engine, served: pd.DataFrame, *, labels: bool, now: float) -> None:
    """Log ``served`` as the gateway does: features, the champion's prediction, labels."""
    batch = uuid.uuid4().hex[:8]  # request ids unique across calls
    model = ctx.registry.load_model("1")
    info = ctx.registry.model_info("1")
    pred = model.predict(prepare_features(served, info.features, info.categorical))
    features = served[FEATURES].to_dict("records")
    log = [
        {
            "request_id": f"{batch}-{i}",
            "row": 0,
            "arm": "champion",
            "served": True,
            "model_version": "1",
            "salt": "",
            "ts": now - 60,
            "prediction": float(p),
            "features": orjson.loads(orjson.dumps(f, option=orjson.OPT_SERIALIZE_NUMPY)),
        }
        for i, (p, f) in enumerate(zip(pred, features, strict=True))
    ]
    with engine.begin() as conn:
        conn.execute(insert(predictions), log)
        if labels:
            conn.execute(
                insert(feedback),
                [
                    {"request_id": f"{batch}-{i}", "row": 0, "label": float(y), "received_at": now}
                    for i, y in enumerate(served["price"])
                ],
            )


@pytest.fixture
def serve():
    """Log rows as the gateway does: ``serve(ctx, engine, frame, labels=..., now=...)``."""
    return _serve

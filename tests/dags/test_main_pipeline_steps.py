"""The DAG's one helper: a step runs with a fresh context, and bad input is not retried."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "airflow" / "dags" / "main_pipeline.py"


@pytest.fixture(scope="module")
def dag_module():
    spec = importlib.util.spec_from_file_location("main_pipeline_under_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_step(monkeypatch):
    """Replace context building and one pipeline step; return what the step raises."""
    from dethrone.pipeline import context
    from dethrone.pipeline import steps as pipeline

    monkeypatch.setattr(
        context.PipelineContext,
        "from_settings",
        classmethod(lambda cls, settings: ("ctx", settings)),
    )
    raised: dict = {}

    def step(ctx, **kwargs):
        if "exc" in raised:
            raise raised["exc"]
        return {"ctx": ctx, **kwargs}

    monkeypatch.setattr(pipeline, "fake_step", step, raising=False)
    return raised


def test_step_gets_a_context_from_the_params(dag_module, fake_step):
    out = dag_module._step("fake_step", {"psi_threshold": 0.3, "seed": 4}, x=1)
    assert out["x"] == 1 and out["ctx"][1].psi_threshold == 0.3


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("data is missing feature columns ['carat']"),
        KeyError("features"),
        TypeError("bad param"),
    ],
)
def test_deterministic_errors_fail_without_retries(dag_module, fake_step, exc):
    from airflow.exceptions import AirflowFailException

    fake_step["exc"] = exc
    with pytest.raises(AirflowFailException, match=type(exc).__name__):
        dag_module._step("fake_step", {})


def test_unknown_param_fails_without_retries(dag_module, fake_step):
    from airflow.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="unknown setting 'psi_treshold'"):
        dag_module._step("fake_step", {"psi_treshold": 0.3})


@pytest.mark.parametrize(
    "exc", [ConnectionError("refused"), TimeoutError("slow"), RuntimeError("HTTP 503")]
)
def test_network_and_server_errors_are_retried(dag_module, fake_step, exc):
    fake_step["exc"] = exc
    with pytest.raises(type(exc)):
        dag_module._step("fake_step", {})

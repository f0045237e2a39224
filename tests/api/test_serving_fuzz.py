"""schemathesis against the gateway's operations, with a champion loaded: no 5xx, no schema
breaks, whatever the body."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from dethrone.settings import Settings
from tests.api.test_serving import FakeSource, _fit

pytestmark = pytest.mark.slow

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
SERVING = {
    "POST /predict",
    "POST /invocations",
    "GET /health/live",
    "GET /health/ready",
    "POST /feedback",
}


@pytest.fixture(scope="module")
def serving_schema(tmp_path_factory, diamonds):
    from dethrone_router import create_app

    source = FakeSource(
        {"1": _fit(diamonds, "regression")[1], "2": _fit(diamonds, "classification")[1]}
    )
    source.aliases.update(champion="1", challenger="2")
    # a short feedback hold: fuzzed request ids are never logged (see test_fuzz.py)
    app = create_app(
        Settings.from_env(
            {},
            router_data_dir=str(tmp_path_factory.mktemp("fuzz-serving")),
            serving_max_rows=50,
            feedback_hold_seconds=0.1,
        ),
        model_source=source,
    )
    app.extensions["dethrone_serving"].watcher.refresh()
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_gateway_conforms_to_its_schema(serving_schema, mode):
    operations = [r.ok() for r in serving_schema.get_all_operations()]
    operations = [op for op in operations if op.label in SERVING]
    assert {op.label for op in operations} == SERVING
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            # Generated rows rarely carry the model's columns: a 400 naming one is right.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()

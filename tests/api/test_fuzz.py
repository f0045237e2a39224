"""schemathesis against /openapi.json, in-process over WSGI: no 5xx, no schema breaks.

schemathesis' own pytest loader (``from_fixture``) fails on pytest 9, so each
operation's case strategy runs under a bounded hypothesis ``@given`` instead.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from dethrone.settings import Settings

pytestmark = pytest.mark.slow

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
WITH_INPUT = {
    "POST /traffic",
    "GET /traffic/history",
    "GET /get_data",
    "POST /get_data",
    "GET /ab_data",
    "POST /ab_data",
}


@pytest.fixture(scope="module")
def fuzz_schema(tmp_path_factory):
    from dethrone_router import create_app

    # A small maximum keeps generated data_size values (and so each slice) cheap; a short
    # feedback hold, as fuzzed request ids are never logged and each would wait the default
    # 3 s for another worker's buffer (the hold has its own tests: test_prediction_log)
    app = create_app(
        Settings.from_env(
            {},
            router_data_dir=str(tmp_path_factory.mktemp("fuzz")),
            router_max_data_size=300,
            feedback_hold_seconds=0.1,
        )
    )
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


#: fuzzed with a loaded model in test_serving_fuzz.py (here no champion: 503 by design)
SERVING = ("/predict", "/invocations", "/health/live", "/health/ready")


def _operations(schema):
    return [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.path not in SERVING
    ]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_api_conforms_to_its_schema(fuzz_schema, mode):
    operations = _operations(fuzz_schema)
    labels = {op.label for op in operations}
    assert {
        "GET /traffic",
        "POST /traffic",
        "GET /traffic/history",
        "GET /get_data",
        "POST /get_data",
        "GET /ab_data",
        "POST /ab_data",
        "GET /health",
    } <= labels
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.label not in WITH_INPUT:
            continue  # nothing to make invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            # Cross-field rules (a + b = 1, drift specs only for listed columns, kinds that
            # fit the column) are beyond JSON Schema, so schema-valid bodies may get a 400.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()
    if mode is GenerationMode.POSITIVE:
        # Some fuzzed configs were valid and stored, and the data endpoints served them.
        assert fuzz_schema.app.test_client().get("/traffic").get_json()["version"] > 0

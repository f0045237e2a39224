"""Fixtures shared by every test package, and the order modules are handed to workers."""

from __future__ import annotations

import os

# One BLAS thread per process, set before numpy loads here and inherited by every server and
# `airflow dags test` the tests start: OpenBLAS's threads spin while they wait for each
# other, and with three workers and their servers on two cores a 1.2 s bootstrap test took
# 17 s (measured beside six busy processes: 17.4 s with its default threads, 1.2 s with one).
for _blas in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas, "1")

import numpy as np  # noqa: E402 - after the BLAS setting above
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

# Every MLflow server the tests start (LocalStack passes os.environ on) would otherwise start
# MLflow's job runner too: eight more processes, about 17 s of CPU per server start on the
# 2-core machine, for a feature (server-side GenAI jobs) dethrone never calls.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

#: The modules that take longest (measured: `pytest --durations=0`, summed per module;
#: every one over ~8 s), longest first. `make test` runs `--dist loadscope
#: --no-loadscope-reorder`: xdist hands modules to its workers in collection order, so
#: these start first, longest first, and the short ones fill in the end (a 30 s module
#: handed out last kept one worker busy while the others idled: 40 s at 40-75% CPU).
#: (xdist's default order, most tests first, left the one-test demo runs of minutes each
#: for last, on one worker while the other idled.)
SLOWEST_FIRST = (
    "tests/integration/test_pipeline_loop.py",
    "tests/integration/test_demo_cli.py",
    "tests/integration/test_prediction_log_gunicorn.py",
    "tests/integration/test_demo_own_data.py",
    "tests/integration/test_loopback_only.py",
    "tests/integration/test_live_experiment.py",
    "tests/integration/test_registry_faults.py",
    "tests/integration/test_serving.py",
    "tests/unit/drift/test_real_tables.py",
    "tests/unit/pipeline/test_pipeline_steps.py",
    "tests/api/test_disk_faults.py",
    "tests/unit/abtest/test_abtest_decision.py",
    "tests/unit/drift/test_spark_engine.py",
    "tests/unit/store/test_prediction_log.py",
    "tests/integration/test_simulate_gateway.py",
    "tests/api/test_serving_compiled.py",
    "tests/api/test_gunicorn.py",
    "tests/unit/slices/test_router_client.py",
    "tests/unit/drift/test_error_rates.py",
    "tests/unit/simulation/test_simulate.py",
    "tests/unit/abtest/test_betting.py",
    "tests/unit/registry/test_registry.py",
    "tests/api/test_serving.py",
    "tests/api/test_gateway_faults.py",
    "tests/unit/experiments/test_lifecycle.py",
    "tests/integration/test_ui_browser.py",
    "tests/api/test_gateway_gunicorn.py",
    "tests/api/test_prediction_log.py",
    "tests/unit/pipeline/test_monitor.py",
    "tests/unit/experiments/test_look_in_database.py",
    "tests/dags/test_monitor_dagbag.py",
    "tests/unit/pipeline/test_drift_sources.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    """Move the slowest modules to the front, in SLOWEST_FIRST's order; a stable sort, so
    the tests of a module and the other modules keep their order."""
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator so every random test is repeatable."""
    return np.random.default_rng(20261123)


@pytest.fixture(scope="session")
def diamonds() -> pd.DataFrame:
    """The shipped diamonds data set, loaded once per session (do not mutate)."""
    from dethrone.slices.datasets import load_diamonds

    return load_diamonds()

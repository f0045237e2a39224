"""The native stack (scripts/stack/native_stack.py) as one session fixture.

Started only by `make stack-test` (DETHRONE_STACK_TEST=1): it installs PostgreSQL when
missing and takes minutes, so `make test` skips it with that reason. Everything started is
stopped by PID at the end of the session, also when the start or a test fails, and on
SIGTERM (a CI timeout).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "stack"))

from native_stack import Stack  # noqa: E402
from stack_helpers import AirflowAPI, MLflow, report  # noqa: E402


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def stack(request):
    if os.environ.get("DETHRONE_STACK_TEST") != "1":
        pytest.skip(
            "starts PostgreSQL, seaweedfs, MLflow, the router and Airflow: "
            "run it with `make stack-test`"
        )
    s = Stack()
    atexit.register(s.stop)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    failed_before = request.session.testsfailed
    began = time.monotonic()
    try:
        s.start()
        report(request.config, f"stack started in {time.monotonic() - began:.0f}s {s.timings}")
        yield s
    except BaseException:
        _show_logs(request.config, s)
        raise
    finally:
        if request.session.testsfailed > failed_before:
            _show_logs(request.config, s)
        stopping = time.monotonic()
        killed = s.stop()
        report(
            request.config,
            f"stack stopped in {time.monotonic() - stopping:.0f}s"
            + (f" (slow or killed: {', '.join(killed)})" if killed else ""),
        )
        signal.signal(signal.SIGTERM, previous)
        if request.session.testsfailed > failed_before:
            report(request.config, f"logs kept in {s.logdir}")
        else:
            shutil.rmtree(s.workdir, ignore_errors=True)


def _interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def _show_logs(config, s: Stack) -> None:
    for proc in s.procs.started:
        report(
            config,
            f"----- {proc.name} (pid {proc.pid}) last lines of {proc.log} -----\n{proc.tail(25)}",
        )


@pytest.fixture(scope="session")
def airflow(stack) -> AirflowAPI:
    return AirflowAPI(stack.airflow_url, stack.creds.airflow_user, stack.creds.airflow_password)


@pytest.fixture(scope="session")
def mlflow(stack) -> MLflow:
    return MLflow(stack)


@pytest.fixture(scope="session")
def first_run(request, airflow, mlflow):
    """main_pipeline's first run: it crowns the first champion (every later test needs one)."""
    assert mlflow.alias("champion") is None, "the stack must start without a champion"
    dag_id = airflow.unpause("main_pipeline")
    began = time.monotonic()
    run_id, tasks = airflow.run(dag_id)
    report(request.config, f"run 1 ({run_id}) took {time.monotonic() - began:.0f}s")
    return run_id, tasks

"""Local stack process management: port checks, health wait, stop by PID."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from dethrone.devstack.localstack import LocalStack, StackError, free_port, port_free


def test_taken_port_gives_a_clear_message(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_free(port)
        with pytest.raises(
            StackError, match=f"port {port} on 127.0.0.1 is already in use.*--mlflow-port"
        ):
            LocalStack(tmp_path).start_mlflow(port)


def test_service_is_recorded_then_stopped_by_pid(tmp_path):
    stack = LocalStack(tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    info = stack._spawn(
        "web", cmd, port, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/", timeout=30
    )
    assert info.alive()
    assert (tmp_path / "run" / "web.pid").read_text() == str(info.pid)
    assert stack.services()["web"].port == port
    assert stack.stop_all() == ["web"]
    assert not info.alive() and stack.services() == {}
    assert port_free(port)


def test_service_that_dies_reports_its_log(tmp_path):
    stack = LocalStack(tmp_path)
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"]
    with pytest.raises(StackError, match="web exited while starting(.|\n)*boom: bad config"):
        stack._spawn("web", cmd, port, "http://x", f"http://127.0.0.1:{port}/", timeout=30)
    assert stack.services() == {}


def test_the_dags_are_found_in_the_checkout_the_environment_or_the_installed_copy(
    tmp_path, monkeypatch
):
    from dethrone.devstack import localstack

    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER", raising=False)
    assert (localstack.repo_dags_folder() / "monitor.py").exists()  # the checkout's
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    assert localstack.repo_dags_folder() == tmp_path
    # an installed wheel: no checkout next to the package, the data-files copy instead
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER")
    fake = tmp_path / "site" / "a" / "b" / "c" / "localstack.py"
    monkeypatch.setattr(localstack, "__file__", str(fake))
    monkeypatch.setattr(localstack.sys, "prefix", str(tmp_path / "prefix"))
    with pytest.raises(localstack.StackError, match="AIRFLOW__CORE__DAGS_FOLDER"):
        localstack.repo_dags_folder()
    shipped = tmp_path / "prefix" / "share" / "dethrone" / "dags"
    shipped.mkdir(parents=True)
    (shipped / "main_pipeline.py").write_text("")
    assert localstack.repo_dags_folder() == shipped


def test_the_wheel_ships_every_dag():
    import tomllib

    root = Path(__file__).resolve().parents[3]
    shipped = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"
    ]["share/dethrone/dags"]
    assert sorted(shipped) == sorted(
        f"airflow/dags/{p.name}" for p in (root / "airflow" / "dags").glob("*.py")
    )


@pytest.mark.parametrize(("preset", "expected"), [(None, "false"), ("true", "true")])
def test_mlflow_starts_without_its_job_runner_unless_the_user_asks(
    tmp_path, monkeypatch, preset, expected
):
    if preset is None:
        monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", preset)
    stack, seen = LocalStack(tmp_path), {}

    def spawn(name, cmd, port, url, health, *, env, wait):
        seen.update(env)

    monkeypatch.setattr(stack, "_spawn", spawn)
    stack.start_mlflow(free_port(), wait=False)
    assert seen["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == expected

"""``dethrone up`` and ``demo`` record the stack where every command looks; ``down`` stops
it and forgets it; the demo's drift columns come from the data set."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from dethrone.cli import main, stackfile
from dethrone.cli.up_cmd import record
from dethrone.devstack.localstack import LocalStack, ServiceInfo
from dethrone.simulation.demo import choose_drift


def _stack_with(tmp_path, *, alive_pid: int) -> LocalStack:
    stack = LocalStack(tmp_path / "stack")
    for name, port in (("mlflow", 5999), ("router", 8999)):
        stack._record(  # noqa: SLF001 - what _spawn records
            ServiceInfo(name, alive_pid, port, f"http://127.0.0.1:{port}", str(tmp_path / "l"))
        )
    return stack


def test_up_records_the_stack_for_every_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DETHRONE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ROUTER_DATABASE_URL", raising=False)
    stack = _stack_with(tmp_path, alive_pid=1)
    path = record(stack, written_by="dethrone up", scheduler=True)
    state = json.loads(open(path).read())
    assert path == str(tmp_path / "home" / "stack.json")
    assert state["router_url"] == "http://127.0.0.1:8999"
    assert state["mlflow_uri"] == "http://127.0.0.1:5999"
    assert state["database_url"] == f"sqlite:///{stack.home / 'router' / 'router.sqlite3'}"
    assert state["stack_home"] == str(stack.home) and state["scheduler"] is True


def test_down_stops_the_recorded_stack_and_forgets_it(tmp_path, monkeypatch, capsys):
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        home = tmp_path / "home"
        monkeypatch.setenv("DETHRONE_HOME", str(home))
        stack = _stack_with(tmp_path, alive_pid=sleeper.pid)
        record(stack, written_by="dethrone demo", scheduler=False)
        assert main(["down"]) == 0
        assert "stopped: mlflow" in capsys.readouterr().out
        assert sleeper.wait(timeout=30) is not None
        assert not (home / stackfile.STATE_FILE).exists()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_drift_columns_come_from_the_data_set():
    diamonds = pd.DataFrame(
        {"carat": [0.5], "cut": ["Ideal"], "color": ["E"], "depth": [61.0], "price": [1]}
    )
    assert choose_drift(diamonds, "price") == ["carat", "color"]
    iris = pd.DataFrame(
        {"sepal_length": [5.1], "sepal_width": [3.5], "petal_length": [1.4], "species": ["a"]}
    )
    assert choose_drift(iris, "species") == ["sepal_length", "sepal_width"]
    mixed = pd.DataFrame({"city": ["x"], "size": [3.0], "kind": ["y"], "y": [1.0]})
    assert choose_drift(mixed, "y") == ["size", "city"]
    assert choose_drift(iris, "species", ["petal_length"]) == ["petal_length"]
    with pytest.raises(ValueError, match="carat"):
        choose_drift(iris, "species", ["carat"])
    with pytest.raises(ValueError, match="species"):
        choose_drift(iris, "species", ["species"])

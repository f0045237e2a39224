"""The rules every command shares: where the stack is found, global options after the action,
one-line failures with exit 2/1, results alone on stdout, a closed pipe, read-only logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dethrone.cli import main, stackfile, status_cmd, traffic_cmd

SRC = Path(__file__).resolve().parents[3]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in stackfile.STACK_ENV}
    path = f"{SRC / 'src'}{os.pathsep}{SRC / 'app'}"
    return {**env, "PYTHONPATH": path, **extra}


# --- the stack-file rule ---------------------------------------------------------------
def test_precedence_flag_over_env_over_state(tmp_path):
    home = tmp_path / "home"
    stackfile.write_state(
        home,
        stack_home=home / "demo",
        router_url="http://127.0.0.1:8111",
        mlflow_uri="http://127.0.0.1:5111",
        database_url="sqlite:////x/router.sqlite3",
        written_by="test",
    )
    base = {"DETHRONE_HOME": str(home)}
    updates, state = stackfile.resolve({}, base)
    assert state is not None and updates["FLASK_URL"] == "http://127.0.0.1:8111"
    assert updates["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5111"
    assert updates["ROUTER_DATABASE_URL"] == "sqlite:////x/router.sqlite3"
    # an environment naming one of the stack's locations describes its own stack
    updates, state = stackfile.resolve({}, {**base, "FLASK_URL": "http://h:1"})
    assert state is None and "MLFLOW_TRACKING_URI" not in updates
    # a flag beats both
    updates, _ = stackfile.resolve({"router_url": "http://flag:2"}, base)
    assert updates["FLASK_URL"] == "http://flag:2"
    assert updates["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5111"
    # commands that create a stack do not read it
    updates, state = stackfile.resolve({}, base, use_state=False)
    assert state is None and set(updates) == {"DETHRONE_HOME"}


def test_home_rule(tmp_path, monkeypatch):
    assert stackfile.find_home({"DETHRONE_HOME": str(tmp_path / "h")}) == tmp_path / "h"
    # from a checkout: the checkout's .dethrone, whatever the current folder
    assert stackfile.checkout_root() == SRC
    assert stackfile.find_home({}, cwd=tmp_path) == SRC / ".dethrone"
    # installed: the nearest .dethrone/stack.json up the parents, like git's .git
    monkeypatch.setattr(stackfile, "checkout_root", lambda: None)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert stackfile.find_home({}, cwd=deep) == deep / ".dethrone"
    stackfile.write_state(
        tmp_path / ".dethrone",
        stack_home=tmp_path,
        router_url="u",
        mlflow_uri="m",
        database_url="d",
        written_by="t",
    )
    assert stackfile.find_home({}, cwd=deep) == tmp_path / ".dethrone"


def test_commands_read_the_state_file_and_env_is_restored(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    stackfile.write_state(
        home,
        stack_home=home,
        router_url="http://127.0.0.1:8999",
        mlflow_uri="http://127.0.0.1:5999",
        database_url="sqlite:///db",
        written_by="test",
    )
    for name in stackfile.STACK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DETHRONE_HOME", str(home))
    seen = {}

    def fake_run(args):
        seen.update({k: os.environ.get(k) for k in ("FLASK_URL", "MLFLOW_TRACKING_URI")})
        return 0

    monkeypatch.setattr(traffic_cmd, "run", fake_run)
    assert main(["traffic", "get"]) == 0
    assert seen == {
        "FLASK_URL": "http://127.0.0.1:8999",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5999",
    }
    assert "FLASK_URL" not in os.environ  # put back after the command
    # the global options, after the action too
    assert main(["traffic", "get", "--router-url", "http://after:1"]) == 0
    assert seen["FLASK_URL"] == "http://after:1"
    assert main(["--router-url", "http://before:1", "traffic", "get"]) == 0
    assert seen["FLASK_URL"] == "http://before:1"


# --- the prediction log is never created by a read -------------------------------------
def test_predictions_stats_never_creates_a_database(tmp_path, capsys):
    """Issue 18.7: `predictions --database-url sqlite:////nonexistent/dir/x.sqlite3 stats`
    exited 0 and created the folder and an empty database."""
    db = tmp_path / "nonexistent" / "dir" / "x.sqlite3"
    code = main(["predictions", "stats", "--database-url", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 1 and "no prediction log" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nonexistent").exists()


def test_predictions_garbage_url_is_bad_input(capsys):
    """Issue 18.7: `predictions --database-url garbage stats` ended in a traceback."""
    code = main(["predictions", "--database-url", "garbage", "stats"])
    err = capsys.readouterr().err
    assert code == 2 and "garbage" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_predictions_stats_reads_an_existing_log_read_only(tmp_path, capsys):
    from dethrone.store import make_engine, upgrade

    db = tmp_path / "router.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    before = db.stat().st_mtime_ns
    code = main(["predictions", "stats", "--json", "--database-url", f"sqlite:///{db}"])
    assert code == 0 and json.loads(capsys.readouterr().out) == []
    assert db.stat().st_mtime_ns == before


# --- failures ---------------------------------------------------------------------------
def test_unexpected_error_is_one_line_and_debug_shows_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DETHRONE_HOME", str(tmp_path))

    def boom(args):
        raise KeyError("surprise")

    monkeypatch.setattr(status_cmd, "run", boom)
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dethrone status: 'surprise'") and "--debug" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(KeyError):
        main(["status", "--debug"])


def test_bad_option_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["status", "--no-such-option"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1


def test_only_the_result_reaches_stdout(monkeypatch, capsys, tmp_path):
    """Issue 18.7: MLflow's run banners were printed on stdout before the JSON."""
    from dethrone.cli.common import emit

    monkeypatch.setenv("DETHRONE_HOME", str(tmp_path))

    def noisy(args):
        print("🏃 View run at: http://127.0.0.1:5000/#/experiments/1")  # as MLflow does
        emit(json.dumps({"ok": True}))
        return 0

    monkeypatch.setattr(status_cmd, "run", noisy)
    assert main(["status", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"ok": True} and "View run" in err


def test_closed_pipe_is_quiet(tmp_path):
    """Issue 18.7: `dethrone status | head -2` ended in a BrokenPipeError traceback."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 120)), columns=[f"f{i}" for i in range(120)])
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_csv(tmp_path / "b.csv", index=False)
    cmd = (
        f"{sys.executable} -m dethrone drift {tmp_path / 'a.csv'} {tmp_path / 'b.csv'} --json"
        " | head -2"
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd],
        env=_env(DETHRONE_HOME=str(tmp_path / "h")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert len(done.stdout.splitlines()) == 2
    assert "BrokenPipe" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0

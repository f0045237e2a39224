"""``dethrone demo`` as a user runs it (``make demo`` runs exactly this command), then the
commands a user types next, with none of the stack's variables exported.

The demo records its stack in ``$DETHRONE_HOME/stack.json`` (in a checkout, ``.dethrone/`` of
the checkout). These tests give both the demo and the later commands the same
``DETHRONE_HOME`` (a temporary folder, so the checkout's own ``.dethrone`` is left alone) and
nothing else: no ``FLASK_URL``, ``MLFLOW_TRACKING_URI``, ``ROUTER_DATABASE_URL`` or
``ROUTER_DATA_DIR``; the later commands also run from another folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dethrone.cli.stackfile import STACK_ENV
from dethrone.devstack.process import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in STACK_ENV and k not in ("DATASET_PATH", "TARGET")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "app")])
    return {**env, "DETHRONE_HOME": str(home), **extra}


def dethrone(home: Path, *args: str, cwd: Path, timeout: float = 300, **extra: str):
    return subprocess.run(
        [sys.executable, "-m", "dethrone", *args],
        env=_env(home, **extra),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def demo(tmp_path):
    """Runs the demo with the given variables; stops what it left running afterwards."""
    home = tmp_path / "home"
    ran = []

    def run(**extra: str) -> subprocess.CompletedProcess:
        ports = ["--mlflow-port", str(free_port()), "--router-port", str(free_port())]
        ran.append(True)
        return dethrone(home, "demo", *ports, cwd=tmp_path, timeout=1500, **extra)

    yield home, run
    if ran:
        down = dethrone(home, "down", cwd=tmp_path)
        assert down.returncode == 0, down.stderr


def _closing(done: subprocess.CompletedProcess) -> str:
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    assert "Traceback" not in text
    assert re.search(r"left running: mlflow http://127\.0\.0\.1:\d+ \(pid \d+\)", text)
    assert "stop them with: dethrone down" in text
    assert "left for you: /traffic a=0.5 b=0.5" in text and "drift_cols=[] (no drift)" in text
    return text


def test_demo_output_leads_to_experiment_status_without_exports(demo, tmp_path):
    """Issue 20: `dethrone experiment status` after `make demo` created an empty database
    and died; `predictions stats` found no rows."""
    home, run = demo
    text = _closing(run())
    page = re.search(r"experiment page: (http://\S+/ui/experiments/(\S+))", text)
    assert page, text[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    status = dethrone(home, "experiment", "status", "--json", cwd=elsewhere)
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["experiment"]["id"] == page.group(2)
    assert body["page"] == page.group(1)
    assert sum(v["rows"] for v in body["versions"]) > 0
    table = dethrone(home, "experiment", "status", cwd=elsewhere)
    assert table.returncode == 0 and f"experiment {page.group(2)}" in table.stdout
    stats = dethrone(home, "predictions", "stats", "--json", cwd=elsewhere)
    assert stats.returncode == 0, stats.stderr
    assert sum(arm["rows"] for arm in json.loads(stats.stdout)) > 0
    assert not (elsewhere / ".dethrone").exists()  # nothing created where the user stands
    import requests

    shown = requests.get(page.group(1), timeout=30)  # the page the demo printed
    assert shown.status_code == 200 and page.group(2) in shown.text
    live = dethrone(home, "status", cwd=elsewhere)
    assert live.returncode == 0 and f"live experiment {page.group(2)}" in live.stdout

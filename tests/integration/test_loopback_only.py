"""Every process ``dethrone up`` starts listens on 127.0.0.1 only (no 0.0.0.0, no [::]).

Runs the real console command, then lists the listening TCP sockets of every process in
the process groups it recorded (services and all their children), then ``dethrone down``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from dethrone.devstack.process import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _listening(pgids: set[int]) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket in ``pgids``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if os.getpgid(proc.pid) not in pgids:
                continue
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((" ".join(proc.cmdline()[:3]), conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            continue
    return found


def test_dethrone_up_listens_on_loopback_only(tmp_path):
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "dethrone"]
    ports = {
        "--mlflow-port": free_port(),
        "--router-port": free_port(),
        "--airflow-port": free_port(),
    }
    args = [str(x) for kv in ports.items() for x in kv]
    try:
        up = subprocess.run(
            [*cmd, "up", "--home", str(home), *args], capture_output=True, text=True, timeout=600
        )
        assert up.returncode == 0, up.stderr[-3000:]
        run_dir = home / "run"
        pgids = {json.loads(p.read_text())["pid"] for p in run_dir.glob("*.json")}
        assert len(pgids) >= 3
        time.sleep(10)  # let late children (log servers, executor workers) bind
        sockets = _listening(pgids)
        assert {port for _, _, port in sockets} >= set(ports.values()), sockets
        exposed = [s for s in sockets if s[1] not in ("127.0.0.1",)]
        assert exposed == [], f"listening beyond loopback: {exposed}"
    finally:
        subprocess.run([*cmd, "down", "--home", str(home)], capture_output=True, timeout=180)

"""Parse one DAG of ``airflow/dags`` in a fresh interpreter and report what parsing did.

A fresh interpreter, so that the guards see every import the DAG file triggers, not
modules some other test imported earlier; sockets and SQLite are refused while parsing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "airflow" / "dags"

_PROBE = r"""
import json, socket, sqlite3, sys
calls = []
def _deny(kind):
    def guard(*args, **kwargs):
        calls.append(kind)
        raise RuntimeError(f"{kind} during DAG parsing")
    return guard
from airflow.dag_processing.dagbag import DagBag
socket.socket.connect = _deny("socket.connect")
socket.create_connection = _deny("socket.create_connection")
sqlite3.connect = _deny("sqlite3.connect")
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags.get(sys.argv[2])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "calls": calls,
       "heavy": sorted(m for m in ("dethrone.pipeline.steps", "mlflow", "sklearn", "pandas")
                       if m in sys.modules)}
if dag is not None:
    out["tasks"] = {t.task_id: {"downstream": sorted(t.downstream_task_ids),
                                "type": type(t).__name__, "retries": t.retries}
                    for t in dag.tasks}
    out["params"] = sorted(dag.params.keys())
    out["schedule"] = str(dag.schedule)
print("RESULT" + json.dumps(out))
"""


def parse_dag(airflow_home: Path, dag_id: str, **env: str) -> dict:
    """What parsing ``dag_id`` did: import errors, refused calls, heavy modules imported,
    and the DAG's tasks, params and schedule. ``env`` adds environment variables; the
    tracking server and the router are unreachable addresses (parsing must not try them).
    """
    variables = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "FLASK_URL": "http://127.0.0.1:9",
        **env,
    }
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAGS), dag_id],
        env=variables,
        capture_output=True,
        text=True,
        timeout=180,
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    return json.loads(line[-1][len("RESULT") :])

"""The embedded (no Docker) stack: local MLflow, the router and Airflow, on 127.0.0.1.

Every service runs in its own process group, started from this module; its PID, port
and log live under ``<home>/run/``. Stopping signals that process group by the recorded
PID only (SIGTERM, then SIGKILL after a timeout), never by process name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from argparse import Namespace
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from dethrone.cli.router_cmd import command
from dethrone.devstack.process import (
    HOST,
    free_port,
    pid_alive,
    port_free,
    start,
    stop_process_group,
    wait_until,
)

__all__ = [
    "DEFAULT_PORTS",
    "HOST",
    "LocalStack",
    "ServiceInfo",
    "StackError",
    "free_port",
    "port_free",
    "stop_process_group",
]
DEFAULT_PORTS = {"mlflow": 5000, "router": 8000, "airflow": 8080}
#: the MLflow server's environment defaults (see start_mlflow)
_MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
#: Airflow components besides the API server; their log servers stay off (see start_airflow).
AIRFLOW_COMPONENTS = {
    "airflow-scheduler": ["scheduler", "--skip-serve-logs"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer", "--skip-serve-logs"],
}
_SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)


class StackError(RuntimeError):
    """A service could not be started or stopped (the message says what to do)."""


@dataclass
class ServiceInfo:
    """What is recorded about a running service."""

    name: str
    pid: int
    port: int
    url: str
    log: str

    def alive(self) -> bool:
        """Whether the recorded process still exists (and is not a zombie)."""
        return pid_alive(self.pid)


def repo_dags_folder() -> Path:
    """The DAG files: ``AIRFLOW__CORE__DAGS_FOLDER``, else the checkout's ``airflow/dags``
    (an editable install), else the copy an installed wheel ships in
    ``<prefix>/share/dethrone/dags`` (pyproject's data-files)."""
    env = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if env:
        return Path(env)
    candidates = [
        Path(__file__).resolve().parents[3] / "airflow" / "dags",
        Path(sys.prefix) / "share" / "dethrone" / "dags",
    ]
    for folder in candidates:
        if (folder / "main_pipeline.py").exists():
            return folder
    raise StackError(
        "cannot find the DAG files (main_pipeline.py) in "
        f"{' or '.join(str(c) for c in candidates)}; set AIRFLOW__CORE__DAGS_FOLDER"
    )


def _bin(name: str) -> str:
    # The console scripts of the venv dethrone runs in, even when it is not on PATH.
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


class LocalStack:
    """Start, inspect and stop the local services whose state lives in ``home``.

    Parameters
    ----------
    home : path
        Project-local state folder (``DETHRONE_HOME``, default ``.dethrone``).
    """

    def __init__(self, home: str | Path):
        self.home = Path(home).expanduser().resolve()
        self.run_dir = self.home / "run"
        self._health: dict[str, tuple[str, float]] = {}

    # --- state -------------------------------------------------------------------
    def info(self, name: str) -> ServiceInfo | None:
        """The recorded service ``name``, or None."""
        path = self.run_dir / f"{name}.json"
        if not path.exists():
            return None
        return ServiceInfo(**json.loads(path.read_text()))

    def require(self, name: str) -> ServiceInfo:
        """The recorded service ``name``; :class:`StackError` when none is recorded."""
        info = self.info(name)
        if info is None:
            raise StackError(f"no {name} is recorded in {self.run_dir}")
        return info

    def services(self) -> dict[str, ServiceInfo]:
        """Every recorded service."""
        if not self.run_dir.exists():
            return {}
        found = ((p.stem, self.info(p.stem)) for p in sorted(self.run_dir.glob("*.json")))
        return {name: info for name, info in found if info is not None}

    def _record(self, info: ServiceInfo) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / f"{info.name}.json").write_text(json.dumps(asdict(info), indent=2))
        (self.run_dir / f"{info.name}.pid").write_text(str(info.pid))

    def _forget(self, name: str) -> None:
        for suffix in (".json", ".pid"):
            (self.run_dir / f"{name}{suffix}").unlink(missing_ok=True)

    # --- environment ---------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment for pipeline processes: points at the running services."""
        env = dict(os.environ)
        # airflow standalone starts its components as `airflow ...` from PATH
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["DETHRONE_HOME"] = str(self.home)
        env.setdefault("ROUTER_DATA_DIR", str(self.home / "router"))
        for name, var in (("mlflow", "MLFLOW_TRACKING_URI"), ("router", "FLASK_URL")):
            info = self.info(name)
            if info is not None:
                env[var] = info.url
        env.update(self.airflow_env())
        return env

    def airflow_env(self) -> dict[str, str]:
        """``AIRFLOW_*`` variables of the embedded Airflow (SQLite under ``home``)."""
        return {
            "AIRFLOW_HOME": str(self.home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(repo_dags_folder()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # log files are read by people and tests; ANSI colours only get in the way
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        }

    # --- start/stop ------------------------------------------------------------------
    def _check_port(self, name: str, port: int) -> None:
        if not port_free(port):
            raise StackError(
                f"port {port} on {HOST} is already in use, so {name} cannot "
                f"start there; stop whatever uses it or pick another port "
                f"(--{name}-port)"
            )

    def _spawn(
        self,
        name: str,
        cmd: list[str],
        port: int,
        url: str,
        health: str,
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
        wait: bool = True,
    ) -> ServiceInfo:
        current = self.info(name)
        if current is not None and current.alive():
            return current
        self._forget(name)
        if port:
            self._check_port(name, port)
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        proc = start(cmd, log=log_path, env=env or self.env(), cwd=self.home)
        info = ServiceInfo(name=name, pid=proc.pid, port=port, url=url, log=str(log_path))
        self._record(info)
        self._health[name] = (health, timeout)
        if wait:
            self.wait_ready(name)
        return info

    def wait_ready(self, name: str) -> ServiceInfo:
        """Block until service ``name`` answers its health URL (or raise StackError)."""
        info = self.info(name)
        if info is None:
            raise StackError(f"{name} is not running")
        health, timeout = self._health.get(name, (info.url, 120.0))
        if not health:  # a worker without a port: alive is all we can check
            if wait_until(lambda: False, timeout=2.0, alive=info.alive) or info.alive():
                return info
        elif wait_until(
            lambda: requests.get(health, timeout=2).status_code < 500,
            timeout=timeout,
            alive=info.alive,
        ):
            return info
        if not info.alive():
            self._forget(name)
            tail = Path(info.log).read_text(errors="replace")[-2000:]
            raise StackError(f"{name} exited while starting; log {info.log}:\n{tail}")
        self.stop(name)
        raise StackError(f"{name} did not answer {health} within {timeout:.0f} s; see {info.log}")

    def start_mlflow(
        self,
        port: int = DEFAULT_PORTS["mlflow"],
        *,
        artifacts_destination: str | None = None,
        wait: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> ServiceInfo:
        """MLflow tracking server with SQLite and a local artifact folder (or S3)."""
        data = self.home / "mlflow"
        data.mkdir(parents=True, exist_ok=True)
        dest = artifacts_destination or str(data / "artifacts")
        cmd = [
            _bin("mlflow"),
            "server",
            "--host",
            HOST,
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{data / 'mlflow.db'}",
            "--artifacts-destination",
            dest,
            "--workers",
            "1",
        ]
        url = f"http://{HOST}:{port}"
        return self._spawn(
            "mlflow",
            cmd,
            port,
            url,
            f"{url}/health",
            # MLflow 3's job runner (8 more processes, ~4x the server's start-up CPU) serves
            # features dethrone never calls; a user's own setting wins
            env={**_MLFLOW_ENV, **self.env(), **(extra_env or {})},
            wait=wait,
        )

    def start_router(
        self,
        port: int = DEFAULT_PORTS["router"],
        *,
        workers: int = 2,
        wait: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> ServiceInfo:
        """The traffic router under gunicorn (``dethrone router``)."""
        env = self.env()
        env["ROUTER_DATA_DIR"] = str(self.home / "router")
        env.update(extra_env or {})

        # gunicorn itself (not a wrapper) leads the process group, so stop() reaches it.
        cmd = command(Namespace(host=HOST, port=port, workers=workers))
        url = f"http://{HOST}:{port}"
        return self._spawn("router", cmd, port, url, f"{url}/traffic", env=env, wait=wait)

    def start_airflow(self, port: int = DEFAULT_PORTS["airflow"]) -> ServiceInfo:
        """Airflow's API server (UI), scheduler, DAG processor and triggerer on loopback.

        These are the components ``airflow standalone`` runs, started one by one because
        standalone cannot turn off the scheduler's and triggerer's log servers, which
        bind every interface (0.0.0.0/[::], ports 8793/8794) whatever the config says.
        Without them the UI reads task logs from the local log folder.
        """
        self.migrate_airflow()
        env = self.env()
        env.update(
            {
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__HOST": HOST,
                # task workers reach the API server here; the default assumes 8080
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{port}/execution/",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__AUTH_MANAGER": _SIMPLE_AUTH_MANAGER,
            }
        )
        for name, args in AIRFLOW_COMPONENTS.items():
            self._spawn(name, [_bin("airflow"), *args], 0, "", "", env=env, wait=False)
        url = f"http://{HOST}:{port}"
        info = self._spawn(
            "airflow",
            [_bin("airflow"), "api-server", "--host", HOST, "--port", str(port)],
            port,
            url,
            f"{url}/api/v2/monitor/health",
            env=env,
            timeout=240,
        )
        for name in AIRFLOW_COMPONENTS:  # still running once the API answers?
            self.wait_ready(name)
        return info

    def stop(self, name: str, timeout: float = 20.0) -> bool:
        """Stop service ``name`` by its recorded PID; True when something was stopped."""
        info = self.info(name)
        if info is None:
            return False
        stopped = False
        if info.alive():
            stopped = True
            stop_process_group(info.pid, timeout)
        self._forget(name)
        return stopped

    def stop_all(self) -> list[str]:
        """Stop every recorded service; returns the names that were running."""
        return [name for name in list(self.services()) if self.stop(name)]

    # --- Airflow runs --------------------------------------------------------------------
    def migrate_airflow(self) -> None:
        """Create/upgrade the embedded Airflow metadata DB (SQLite) once."""
        home = self.home / "airflow"
        home.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [_bin("airflow"), "db", "migrate"],
            env=self.env(),
            capture_output=True,
            text=True,
            cwd=self.home,
        )
        if out.returncode != 0:
            raise StackError(
                f"airflow db migrate failed:\n{out.stdout[-1500:]}{out.stderr[-1500:]}"
            )

    def run_dag(
        self,
        conf: dict[str, Any] | None = None,
        *,
        log_name: str = "dag_run",
        echo: bool = False,
        dag_id: str = "main_pipeline",
    ) -> tuple[int, Path]:
        """Run ``dag_id`` once with ``airflow dags test``; returns (exit code, log).

        Airflow's output always goes to the log file; ``echo`` copies it to stderr.
        """
        cmd = [_bin("airflow"), "dags", "test", dag_id]
        if conf:
            cmd += ["--conf", json.dumps(conf)]
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{log_name}.log"
        with open(log_path, "wb") as log:
            if not echo:
                done = subprocess.run(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.home
                )
                return done.returncode, log_path
            # echo: the log file gets everything, and stderr too (stdout stays for results)
            with subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env(), cwd=self.home
            ) as proc:
                assert proc.stdout is not None  # stdout=PIPE
                for line in proc.stdout:
                    log.write(line)
                    sys.stderr.buffer.write(line)
                    sys.stderr.flush()
            return proc.returncode, log_path

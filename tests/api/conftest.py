"""Fixtures of the router tests: the Flask app and client, and real gunicorn servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from dethrone.devstack.process import free_port
from dethrone.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Router settings on a fresh store folder, ignoring the caller's environment."""
    return Settings.from_env({}, router_data_dir=str(tmp_path / "router"))


@pytest.fixture
def make_app(monkeypatch, diamonds) -> Callable:
    """``make_app(settings)``: an app that reuses the session's diamonds frame."""
    import dethrone_router

    original = dethrone_router.load_dataset
    # Parsing the CSV for every app would dominate the suite's run time.
    monkeypatch.setattr(
        dethrone_router, "load_dataset", lambda path: diamonds if not path else original(path)
    )
    return dethrone_router.create_app


@pytest.fixture
def app(make_app, settings):
    """The router app on a fresh store (the Flask tutorial's ``app`` fixture)."""
    app = make_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    """A test client of :func:`app`."""
    return app.test_client()


class RouterServer:
    """The router under real gunicorn on 127.0.0.1; stop() ends it by PID."""

    def __init__(
        self,
        data_dir: Path,
        workers: int = 2,
        env: dict | None = None,
        wrap: list[str] | None = None,
        ready: bool = True,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"gunicorn-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k != "PROMETHEUS_MULTIPROC_DIR" and not k.startswith("ROUTER_")
        }
        # No test router talks to a registry it was not given: a closed port answers at once
        # (a stray MLflow on the default port, or a slow one, would change what it serves).
        full_env["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"
        full_env.update({"ROUTER_DATA_DIR": str(data_dir), **(env or {})})
        cmd = [
            sys.executable,
            "-m",
            "dethrone",
            "router",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        cmd = list(wrap or []) + cmd
        with open(self.log, "wb") as log:
            # A session of its own, so stop() can end the whole group by this PID.
            self.proc = subprocess.Popen(
                cmd,
                env=full_env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(ok=(200,) if ready else (200, 503))
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 60.0, ok: tuple[int, ...] = (200,)) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"router exited early:\n{self.log.read_text()[-3000:]}")
            try:
                # A busy machine may take seconds to answer the first /health (a worker
                # still importing, a write probe on a slow disk): a timeout is "not yet".
                if requests.get(self.url + "/health", timeout=10).status_code in ok:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"router not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def worker_pids(self) -> set[int]:
        """PIDs of the gunicorn workers (the grandchildren or children of the process)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        children = lambda pid: {c for c, p in parents.items() if p == pid}  # noqa: E731
        level = children(self.proc.pid)
        masters = {c for c in level if children(c)} if len(level) == 1 else set()
        return set().union(*(children(m) for m in masters)) if masters else level

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout`` seconds."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        try:
            # Workers left behind by a killed master are in the same group.
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def router_server(tmp_path) -> Iterator[Callable[..., RouterServer]]:
    """``router_server(data_dir=None, workers=2, wrap=None, ready=True, **env)`` starts a
    gunicorn router (``wrap``: a command prefix such as ``setpriv ...``; ``ready=False``:
    a 503 from /health counts as started); all that were started are stopped at
    teardown, also when the test failed."""
    started: list[RouterServer] = []

    def start(
        data_dir: Path | None = None,
        workers: int = 2,
        *,
        wrap: list[str] | None = None,
        ready: bool = True,
        **env: str,
    ) -> RouterServer:
        server = RouterServer(data_dir or tmp_path / "router", workers, env, wrap, ready)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()

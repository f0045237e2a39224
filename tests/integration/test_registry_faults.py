"""Promotion, rollback and a dead server against a real MLflow server behind a cutting proxy.

The proxy forwards the first k API calls, forwards call k+1 but drops its answer (the
server applied it, the client saw a cut), and refuses everything after. For every k of a
clean promotion, the next attempt (a task retry, or ``dethrone rollback``) must leave the
registry exactly as after the promotion and lose no rollback target.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from dethrone.devstack.process import HOST, free_port
from dethrone.registry.records import Decision
from dethrone.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BEFORE = {"champion": "2", "challenger": "3", "previous-champion": "1"}
AFTER = {"champion": "3", "challenger": None, "previous-champion": "2"}


class CuttingProxy:
    """An HTTP proxy to ``upstream`` that cuts the connection after ``cut_after`` calls."""

    def __init__(self, upstream: str):
        target = urlparse(upstream)
        self.cut_after: int | None = None
        self.hang = False
        self.calls = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    proxy.calls += 1
                    n = proxy.calls
                if proxy.hang:
                    time.sleep(30)
                cut = proxy.cut_after is not None and n > proxy.cut_after
                if cut and n > proxy.cut_after + 1:
                    self.close_connection = True  # refused: the server never sees it
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if cut:  # applied by the server, but the client never hears back
                    self.close_connection = True
                    return
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer((HOST, free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    from dethrone.devstack.localstack import LocalStack

    stack = LocalStack(tmp_path_factory.mktemp("mlflow_faults"))
    try:
        yield stack.start_mlflow(free_port()).url
    finally:
        stack.stop("mlflow", timeout=5)


@pytest.fixture
def proxy(mlflow_server, monkeypatch):
    # no client retries: each cut is seen at once (the retry limit itself is tested below)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    found = CuttingProxy(mlflow_server)
    yield found
    found.close()


@pytest.fixture(scope="module")
def model(mlflow_server) -> str:
    """A registered model with three versions (created once: creation is slow)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server, mlflow_server)
    run = client.create_run(client.create_experiment("faults"))
    client.create_registered_model("faults")
    for _ in range(3):
        client.create_model_version(
            "faults", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
        )
    return "faults"


def _reset(mlflow_server, name: str) -> str:
    """v1 @previous-champion, v2 @champion, v3 @challenger, no pending intent (direct)."""
    from mlflow.tracking import MlflowClient

    from dethrone.registry.records import PromotionIntent

    client = MlflowClient(mlflow_server, mlflow_server)
    for alias, version in BEFORE.items():
        client.set_registered_model_alias(name, alias, version)
    client.delete_registered_model_tag(name, PromotionIntent.tag("intent"))
    return name


def _registry(url: str, name: str):
    from dethrone.registry.client import Registry

    return Registry(Settings(mlflow_tracking_uri=url, model_name=name))


def _clean_promotion_calls(mlflow_server, proxy, model) -> int:
    reg = _registry(proxy.url, _reset(mlflow_server, model))
    start = proxy.calls
    reg.promote("3", Decision(outcome="promote"))
    calls = proxy.calls - start
    assert _registry(mlflow_server, reg.name).aliases() == AFTER
    return calls


def test_cut_after_every_call_of_a_promotion_then_retry(mlflow_server, proxy, model):
    from dethrone.registry.client import RegistryError

    n_calls = _clean_promotion_calls(mlflow_server, proxy, model)
    assert n_calls >= 8
    for k in range(n_calls):
        name = _reset(mlflow_server, model)
        proxy.cut_after = proxy.calls + k
        with pytest.raises(RegistryError, match="did not answer"):
            _registry(proxy.url, name).promote("3", Decision(outcome="promote"))
        proxy.cut_after = None
        reg = _registry(proxy.url, name)
        seen = reg.aliases()
        assert seen in (BEFORE, AFTER) or reg.pending_promotion() is not None, (k, seen)
        assert reg.promote("3", Decision(outcome="promote")) == {
            "champion": "3",
            "previous": "2",
        }, k
        assert reg.aliases() == AFTER, k
        assert reg.pending_promotion() is None, k


def test_cut_promotion_then_rollback_never_loses_a_version(mlflow_server, proxy, model):
    from dethrone.registry.client import RegistryError

    n_calls = _clean_promotion_calls(mlflow_server, proxy, model)
    for k in range(n_calls):
        name = _reset(mlflow_server, model)
        proxy.cut_after = proxy.calls + k
        with pytest.raises(RegistryError):
            _registry(proxy.url, name).promote("3", Decision(outcome="promote"))
        proxy.cut_after = None
        reg = _registry(proxy.url, name)
        promoted = reg.pending_promotion() is not None or reg.aliases() == AFTER
        out = reg.rollback("release went wrong")
        after = reg.aliases()
        if promoted:
            assert out == {"champion": "2", "previous": "3"}, k
            assert after == {"champion": "2", "challenger": None, "previous-champion": "3"}, k
        else:
            assert out == {"champion": "1", "previous": "2"}, k
            assert after == {**BEFORE, "champion": "1", "previous-champion": "2"}, k
        assert after["champion"] != after["previous-champion"], k


def test_dead_server_fails_fast_with_a_clear_message(mlflow_server, model, monkeypatch):
    from dethrone.pipeline.context import configure_mlflow
    from dethrone.registry.client import RegistryError

    for var in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    ):
        monkeypatch.delenv(var, raising=False)
    proxy = CuttingProxy(mlflow_server)
    settings = Settings(mlflow_tracking_uri=proxy.url, model_name=_reset(mlflow_server, model))
    configure_mlflow(settings)  # the defaults: 2 retries, 30 s per request (undone after)
    reg = _registry(proxy.url, settings.model_name)
    assert reg.aliases() == BEFORE
    proxy.close()  # the server dies mid-task
    start = time.monotonic()
    with pytest.raises(RegistryError, match=f"MLflow tracking server at {proxy.url} did not"):
        reg.promote("3", Decision(outcome="promote"))
    # MLflow's own defaults retried for about four minutes before failing
    assert time.monotonic() - start < 30


def test_hanging_server_fails_within_the_request_timeout(mlflow_server, model, monkeypatch):
    from dethrone.pipeline.context import configure_mlflow
    from dethrone.registry.client import RegistryError

    proxy = CuttingProxy(mlflow_server)
    try:
        settings = Settings(
            mlflow_tracking_uri=proxy.url,
            model_name=_reset(mlflow_server, model),
            mlflow_http_request_timeout=2,
            mlflow_http_request_max_retries=1,
        )
        for var in (
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
            "MLFLOW_HTTP_REQUEST_TIMEOUT",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        ):
            monkeypatch.setenv(var, "0")
        configure_mlflow(settings)
        proxy.hang = True
        start = time.monotonic()
        with pytest.raises(RegistryError, match="did not answer"):
            _registry(proxy.url, settings.model_name).aliases()
        assert time.monotonic() - start < 15
    finally:
        proxy.close()

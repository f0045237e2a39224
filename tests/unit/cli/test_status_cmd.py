"""``dethrone status`` with a tracking server that is down or broken: one line, exit 1."""

from __future__ import annotations

import argparse
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dethrone.cli import status_cmd


class _HealthOnly(BaseHTTPRequestHandler):
    """Answers /health, then drops every API call (a server dying behind its proxy)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        else:
            self.close_connection = True

    do_POST = do_GET


@pytest.fixture
def broken_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthOnly)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("reachable", [False, True], ids=["down", "health-only"])
def test_status_reports_an_unusable_server_in_one_line(
    reachable, broken_server, monkeypatch, capsys
):
    from dethrone.devstack.process import free_port

    url = broken_server if reachable else f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    rc = status_cmd.run(argparse.Namespace(json=False))
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"dethrone status: MLflow tracking server at {url}")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err

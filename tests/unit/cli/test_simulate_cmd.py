"""``dethrone simulate`` against a small fake router over HTTP on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dethrone.cli import main
from dethrone.devstack.process import free_port

SLICE = {
    "columns": ["carat", "cut", "price"],
    "index": list(range(20)),
    "data": [[0.2 + i / 100, "Ideal", 400 + i] for i in range(20)],
}


@pytest.fixture
def router(monkeypatch):
    """A fake router: /get_data, /predict (503 when ``state['down']``), /feedback."""
    state = {"down": False, "predict": [], "feedback": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status, body):
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self):
            self._send(200, SLICE) if self.path.startswith("/get_data") else self._send(404, {})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/feedback":
                state["feedback"].extend(body)
                return self._send(200, {"results": [{"status": "stored"} for _ in body]})
            if state["down"]:
                return self._send(503, {"error": "no_champion"})
            state["predict"].append((body, self.headers.get("X-Dethrone-Unit")))
            self._send(
                200,
                {
                    "predictions": [1.0] * len(body["rows"]),
                    "arm": "champion",
                    "model_version": "1",
                    "request_id": self.headers.get("X-Request-ID"),
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("FLASK_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("TARGET", "price")
    yield state
    server.shutdown()
    server.server_close()


def test_simulate_prints_progress_and_a_summary(router, capsys):
    code = main(
        [
            "simulate",
            "--rate",
            "10",
            "--duration",
            "1.5",
            "--units",
            "3",
            "--rows-per-request",
            "2",
            "--label-delay",
            "0.1",
            "--seed",
            "1",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert "requests" in err.splitlines()[0]  # a progress line
    assert out.startswith("sent 15 requests (30 rows answered)")
    assert "labels: 30 accepted, 0 not accepted" in out
    assert "champion" in out
    assert len(router["predict"]) == 15 and len(router["feedback"]) == 30
    assert {unit for _, unit in router["predict"]} <= {"sim-unit-0", "sim-unit-1", "sim-unit-2"}
    assert all("price" not in row for body, _ in router["predict"] for row in body["rows"])


def test_simulate_json_summary(router, capsys):
    code = main(
        [
            "simulate",
            "--rate",
            "50",
            "--duration",
            "5",
            "--max-requests",
            "7",
            "--label-coverage",
            "0",
            "--json",
        ]
    )
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert code == 0
    assert report["requests"] == 7 and report["feedback_sent"] == 0
    assert report["per_arm"] == {"champion": {"requests": 7, "rows": 7, "units": 0}}
    assert router["feedback"] == []


def test_simulate_exits_1_when_no_request_is_answered(router, capsys):
    router["down"] = True
    code = main(["simulate", "--rate", "20", "--duration", "2", "--max-requests", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert json.loads(out)["error_statuses"] == {"HTTP 503": 3}
    assert err.splitlines()[-1] == "dethrone simulate: the router answered no request"


def test_simulate_exits_1_with_one_line_when_the_router_is_unreachable(monkeypatch, capsys):
    monkeypatch.setenv("FLASK_URL", f"http://127.0.0.1:{free_port()}")
    code = main(["simulate", "--rate", "5", "--duration", "1"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "unreachable" in err


@pytest.mark.parametrize(
    "args, name",
    [
        (["--rate", "0", "--duration", "1"], "rate"),
        (["--rate", "5", "--duration", "-1"], "duration"),
        (["--rate", "5", "--duration", "1", "--label-coverage", "1.2"], "label_coverage"),
        (["--rate", "5", "--duration", "1", "--label-delay", "-2"], "label_delay"),
        (["--rate", "5", "--duration", "1", "--units", "0"], "units"),
        (["--rate", "5", "--duration", "1", "--rows-per-request", "0"], "rows_per_request"),
        (["--rate", "5", "--duration", "1", "--max-requests", "0"], "max_requests"),
    ],
)
def test_simulate_bad_arguments_exit_2_with_one_line(router, capsys, args, name):
    code = main(["simulate", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and name in err
    assert router["predict"] == []

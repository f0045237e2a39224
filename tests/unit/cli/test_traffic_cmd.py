"""``dethrone traffic set --source``: the header reaches the router; a source key is refused."""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dethrone.cli import traffic_cmd


@pytest.fixture
def router(monkeypatch):
    """A router stand-in on loopback that records each POST /traffic and answers it."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"body": body, "source": self.headers.get("X-Dethrone-Source")})
            raw = json.dumps({"status": "updated", "traffic": {**body, "version": 1}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("FLASK_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("ROUTER_TOKEN", raising=False)
    yield seen
    server.shutdown()
    server.server_close()


def parse(*argv: str) -> argparse.Namespace:
    sub = argparse.ArgumentParser().add_subparsers()
    return traffic_cmd.add_parser(sub).parse_args(list(argv))


@pytest.mark.parametrize("source", [None, "ana: rebalance after the sale"])
def test_set_sends_the_source_as_a_header(router, capsys, source):
    extra = () if source is None else ("--source", source)
    assert traffic_cmd.run(parse("set", "--data-size", "300", *extra)) == 0
    assert router == [{"body": {"data_size": 300}, "source": source}]
    assert json.loads(capsys.readouterr().out) == {"data_size": 300, "version": 1}


@pytest.mark.parametrize("raw", ['{"source": "ana", "a": 0.4}', "[1, 2]"])
def test_set_refuses_a_body_that_is_not_config_keys(router, capsys, raw):
    assert traffic_cmd.run(parse("set", "--json", raw)) == 2
    assert router == [] and "--source" in capsys.readouterr().err

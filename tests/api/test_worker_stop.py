"""The router's gunicorn worker stops without waiting on idle keep-alive clients."""

from __future__ import annotations

import signal
import socket

import pytest
import requests

from dethrone.devstack.process import wait_until

pytestmark = pytest.mark.slow


def test_an_idle_kept_alive_client_does_not_hold_the_stop(router_server):
    """gunicorn's own gthread sleeps out ``graceful_timeout`` while a client keeps an idle
    connection open (a load balancer's pool always does): a stop took the full 10 s."""
    server = router_server(workers=1, ROUTER_LOG_LEVEL="info")
    session = requests.Session()
    assert session.get(server.url + "/traffic", timeout=10).status_code == 200
    server.proc.send_signal(signal.SIGTERM)  # SIGTERM to the master: a graceful stop
    assert wait_until(lambda: server.proc.poll() is not None, timeout=60), "did not stop"
    assert server.proc.returncode == 0
    # closed when the stop began, not left to time out at the graceful timeout
    assert "stopping: closed 1 idle keep-alive connection(s)" in server.log.read_text()
    session.close()


def test_a_request_in_flight_still_finishes_during_the_stop(router_server):
    """A request sent before the stop is answered; only idle connections are closed."""
    server = router_server(workers=1)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /traffic HTTP/1.1\r\nHost: x\r\n\r\n")
        server.proc.send_signal(signal.SIGTERM)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert wait_until(lambda: server.proc.poll() is not None, timeout=60), "did not stop"

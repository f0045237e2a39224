"""Slow clients against the router behind nginx (issue 14, case 3).

gunicorn's gthread workers block a thread on each client whose request is still
arriving; nginx in front reads requests and answers with its event loop and hands the
router only complete requests. nginx is installed by scripts/stack/ensure-nginx.sh
when missing; the tests skip when that is not possible.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from .conftest import REPO, RouterServer, free_port

sys.path.insert(0, str(REPO / "scripts" / "stack"))
import nginx_proxy  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """``(router, nginx_url)``: a 1-worker router (2 threads) behind a private nginx."""
    try:
        binary = nginx_proxy.nginx_binary(install=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"nginx is not installed and could not be installed: {exc}")
    if binary is None:
        pytest.skip("nginx is not installed and could not be installed")
    tmp = tmp_path_factory.mktemp("proxied")
    router = RouterServer(tmp / "router", workers=1)
    port = free_port()
    conf = nginx_proxy.render(
        tmp / "nginx", listen=f"127.0.0.1:{port}", upstream=f"127.0.0.1:{router.port}"
    )
    proc = subprocess.Popen(
        nginx_proxy.command(conf, binary),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(url + "/health", timeout=2)
                break
            except requests.ConnectionError:
                if proc.poll() is not None:
                    raise RuntimeError((tmp / "nginx" / "error.log").read_text()) from None
                time.sleep(0.1)
        yield router, url
    finally:
        proc.terminate()
        proc.wait(10)
        router.stop()


def _slow_loris(port: int, stop: threading.Event, body: bool, started: threading.Semaphore) -> None:
    """One client sending its request one byte every 0.5 s until ``stop``; releases
    ``started`` once it has connected and sent the first part."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            if body:
                sock.sendall(
                    b"POST /traffic HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    b"application/json\r\nContent-Length: 5000\r\n\r\n"
                )
            else:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            started.release()
            while not stop.wait(0.5):
                sock.sendall(b" " if body else b"X")
    except OSError:
        pass  # nginx may cut a stalled client off: that is its job


def _answer_seconds(url: str) -> float:
    started = time.perf_counter()
    resp = requests.get(url, timeout=5, headers={"Connection": "close"})
    assert resp.status_code == 200
    return time.perf_counter() - started


def test_twenty_slow_clients_do_not_delay_a_normal_request(proxied):
    router, url = proxied
    port = int(url.rsplit(":", 1)[1])
    stop, started = threading.Event(), threading.Semaphore(0)
    clients = [
        threading.Thread(target=_slow_loris, args=(port, stop, i % 2 == 1, started), daemon=True)
        for i in range(20)
    ]
    for client in clients:
        client.start()
    try:
        # every slow client has connected and sent part of its request
        assert all(started.acquire(timeout=30) for _ in clients)
        seconds = [
            _answer_seconds(url + path) for path in ("/health", "/traffic", "/get_data?seed=1") * 3
        ]
    finally:
        stop.set()
        for client in clients:
            client.join(10)
    # The router has 2 threads; unshielded, 20 slow clients hold both for minutes.
    assert max(seconds) < 1.0, seconds


@pytest.mark.parametrize(
    "raw,status",
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 400),
        (
            b"POST /traffic HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 70000\r\n\r\n" + b" " * 70000,
            413,
        ),
    ],
)
def test_nginx_refusals_use_the_json_error_shape(proxied, raw, status):
    _, url = proxied
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(raw)
        except OSError:
            pass  # nginx may answer and close before the whole body was sent
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert int(head.split()[1]) == status, head
    assert b"application/json" in head
    assert json.loads(body)["error"]["status"] == status


def test_router_errors_and_big_answers_pass_through(proxied):
    _, url = proxied
    resp = requests.post(url + "/traffic", json={"a": 2}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["field"] == "a"
    assert requests.post(url + "/traffic", json={"data_size": 60_000}, timeout=10).ok
    data = requests.get(url + "/get_data?seed=2", timeout=30)
    assert data.status_code == 200 and len(data.json()["index"]) == 60_000
    assert data.headers["X-Dethrone-Seed"] == "2"

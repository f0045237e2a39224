"""The router's gunicorn worker stops without waiting on idle keep-alive clients."""

from __future__ import annotations

import logging
import selectors
import signal
import socket
from collections import deque
from functools import partial

import pytest
import requests

from dethrone.devstack.process import wait_until
from dethrone_router.worker import RouterWorker


@pytest.mark.slow
def test_an_idle_kept_alive_client_does_not_hold_the_stop(router_server):
    """gunicorn's own gthread sleeps out ``graceful_timeout`` while a client keeps an idle
    connection open (a load balancer's pool always does): every stop took the full 10 s.
    Here the graceful timeout is 10 minutes, so only a stop that does not wait for the idle
    connection ends within the minute allowed."""
    server = router_server(workers=1, GUNICORN_CMD_ARGS="--graceful-timeout 600")
    session = requests.Session()
    assert session.get(server.url + "/traffic", timeout=10).status_code == 200
    # one more answer on a connection of its own: by then the worker has filed the session's
    # connection as kept alive (it does so just after answering, so a stop right after the
    # answer could find it still in a thread, and gunicorn would close it on its own)
    other = requests.get(server.url + "/traffic", timeout=10, headers={"Connection": "close"})
    assert other.status_code == 200
    server.proc.send_signal(signal.SIGTERM)  # to the master: a graceful stop
    assert wait_until(lambda: server.proc.poll() is not None, timeout=60), "did not stop"
    assert server.proc.returncode == 0
    session.close()


class _Conn:
    """What the worker keeps of a connection: its socket, and close()."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def close(self) -> None:
        self.sock.close()


def _worker() -> tuple[RouterWorker, list]:
    """The worker's state that closing reads, without an arbiter or a thread pool."""
    worker = RouterWorker.__new__(RouterWorker)
    worker.poller = selectors.DefaultSelector()
    worker.keepalived_conns = deque()
    worker.nr_conns = 0
    worker.alive = False
    worker.log = logging.getLogger("test_worker_stop")
    dispatched: list = []
    worker.enqueue_req = dispatched.append  # the thread pool's door
    return worker, dispatched


def test_only_connections_with_nothing_to_answer_are_closed():
    worker, dispatched = _worker()
    pairs = [socket.socketpair() for _ in range(3)]
    conns = [_Conn(server_side) for server_side, _ in pairs]
    for conn in conns:
        worker.keepalived_conns.append(conn)
        worker.poller.register(
            conn.sock, selectors.EVENT_READ, partial(worker.on_client_socket_readable, conn)
        )
    worker.nr_conns = len(conns)
    pairs[1][1].sendall(b"GET /traffic HTTP/1.1\r\nHost: x\r\n\r\n")  # sent before the stop
    try:
        assert worker.close_idle_connections() == 2
        assert dispatched == [conns[1]]  # served: handed to the pool, still open
        assert conns[1].sock.fileno() != -1
        assert [c.sock.fileno() for c in (conns[0], conns[2])] == [-1, -1]
        assert worker.nr_conns == 1 and not worker.keepalived_conns
    finally:
        for server_side, client_side in pairs:
            server_side.close()
            client_side.close()
        worker.poller.close()


def test_a_stop_with_no_idle_connection_closes_nothing():
    worker, dispatched = _worker()
    assert worker.close_idle_connections() == 0 and dispatched == []

"""The router's gunicorn worker: gthread, stopping without waiting on idle clients.

On SIGTERM, gunicorn's gthread worker (26.x) stops accepting, then waits while any
connection is open, idle keep-alive ones included, and sleeps in its poller until the
graceful timeout when none of them speaks: a load balancer's or a client's pooled
connection held every stop and restart for the full ``graceful_timeout`` (10 s). This
worker closes the idle ones at that moment, as nginx does on a graceful stop: requests
in flight still finish, and a request already waiting in a socket is still served.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.gthread import ThreadWorker

__all__ = ["RouterWorker"]


class RouterWorker(ThreadWorker):
    """gthread, closing idle keep-alive connections when a graceful stop begins."""

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        # called with False once the main loop ends (and when the worker is full, while
        # still alive: then nothing more happens here)
        if not enabled and not self.alive:
            self.close_idle_connections()

    def close_idle_connections(self) -> int:
        """Close the kept-alive connections with no request; returns how many."""
        idle: Any = getattr(self, "keepalived_conns", None)
        if idle is None or self.poller is None:  # another gunicorn's gthread: its own way
            return 0
        # requests already sent on a kept connection go to the pool first, then count as
        # in flight (gunicorn >= 26 dispatches from its poller; older ones have no hook)
        dispatch = getattr(self, "wait_for_and_dispatch_events", None)
        if dispatch is not None:
            dispatch(timeout=0)
        closed = 0
        while idle:
            conn = idle.popleft()
            try:
                self.poller.unregister(conn.sock)
            except (OSError, KeyError, ValueError):
                pass  # already unregistered
            self.nr_conns -= 1
            conn.close()
            closed += 1
        if closed:
            self.log.info("stopping: closed %d idle keep-alive connection(s)", closed)
        return closed

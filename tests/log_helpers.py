"""Waiting on the prediction log (integration and stack tests): answered rows sit up to
``LOG_FLUSH_SECONDS`` in the buffer of the router worker that served them."""

from __future__ import annotations

from sqlalchemy import func, select

from dethrone.devstack.process import wait_until
from dethrone.store.schema import predictions


def logged_rows(engine) -> int:
    """Rows in the prediction log."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(predictions)).scalar_one())


def wait_logged(engine, rows: int, timeout: float = 60.0) -> None:
    """Until the log holds at least ``rows`` rows (fails after ``timeout`` seconds)."""
    ok = wait_until(lambda: logged_rows(engine) >= rows, timeout=timeout, interval=0.05)
    assert ok, f"{logged_rows(engine)} rows logged after {timeout:.0f} s, expected {rows}"

"""The prediction log writer: batched, off the request path, bounded, never failing a request.

``append`` puts rows in an in-memory buffer and returns at once; a background thread commits
the buffer every ``flush_seconds`` (sooner when a batch is full) with one multi-row INSERT
per batch. Rows leave the buffer only after their batch has committed, so when the database
is down they wait there, up to ``buffer_rows``; beyond that new rows are dropped and
counted. Writes are retried with exponential backoff; meanwhile a cheap probe
(``SELECT 1``) every ``probe_seconds`` ends the backoff as soon as the database answers
again, so the loss is bounded by the outage, not by the backoff. ``close`` flushes what is
left (call it on SIGTERM; it is also registered with :mod:`atexit`).

Every row that is not written is counted in ``dropped_total`` (``on_drop``): a full buffer,
a row that cannot be encoded (one bad row never costs its neighbours), and a row the database
already holds under the same ``(request_id, row, arm)`` (also in ``duplicates_total``).

What a ``kill -9`` loses is exactly the buffer at that moment: with a healthy database, the
rows appended during the last ``flush_seconds`` plus the time of one write.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from sqlalchemy import Engine

from dethrone.store.durations import parse_log_features
from dethrone.store.errors import StoreUnavailable


@dataclass(frozen=True)
class LogHealth:
    """State of a :class:`PredictionLogWriter`, for ``/health`` and metrics."""

    buffered: int
    capacity: int
    written_total: int
    dropped_total: int
    last_error: str | None
    last_error_at: float | None
    last_flush: float | None
    last_flush_seconds: float | None
    #: rows the database already had (a request id logged before): not written, also dropped
    duplicates_total: int = 0

    @property
    def ok(self) -> bool:
        """False while writes fail or the buffer is full (rows are being dropped)."""
        return self.last_error is None and self.buffered < self.capacity

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


_JSON_COLUMNS = frozenset({"prediction", "features"})
#: column order of the tuples built by ``_normalise`` (test_prediction_log checks the set)
COLUMNS = (
    "request_id",
    "row",
    "arm",
    "served",
    "unit",
    "model_name",
    "model_version",
    "experiment_id",
    "champion_version",
    "challenger_version",
    "salt",
    "ts",
    "prediction",
    "latency_ms",
    "features",
)


def _insert_sql(dialect: str) -> str:
    # The driver's own executemany with JSON encoded on the way in: about three times the
    # rows/s of a compiled SQLAlchemy insert (bench/predlog_bench.py). A batch retried after
    # an ambiguous failure (commit sent, answer lost) skips the rows already there.
    mark = "?" if dialect == "sqlite" else "%s"
    marks = [
        f"{mark}::json" if dialect == "postgresql" and c in _JSON_COLUMNS else mark for c in COLUMNS
    ]
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    return (
        f"INSERT INTO predictions ({columns}) VALUES ({', '.join(marks)}) "
        'ON CONFLICT ("request_id", "row", "arm") DO NOTHING'
    )


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=_JSON_OPTIONS).decode()


def _text(value: Any) -> str | None:
    return value if value is None or value.__class__ is str else str(value)


class PredictionLogWriter:
    """Batched writer of served predictions.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A migrated database (:func:`dethrone.store.migrate.upgrade`).
    flush_seconds : float
        Longest time a row waits in the buffer while the database is up (``LOG_FLUSH_SECONDS``).
    buffer_rows : int
        Bound of the buffer (``LOG_BUFFER_ROWS``); rows beyond it are dropped and counted.
    batch_rows : int
        Rows per INSERT; a full batch is written without waiting for the interval.
    log_features : str or float
        ``"all"``, ``"none"`` or the share of requests whose features are kept
        (``SERVING_LOG_FEATURES``); chosen by a hash of ``request_id``, so every row and arm
        of a request is treated alike.
    on_drop, on_flush : callable, optional
        ``on_drop(n)`` after ``n`` rows were dropped; ``on_flush(n, seconds)`` after a batch
        committed. For metrics (``dethrone_log_dropped_total``, ...); errors are ignored.
    max_backoff : float
        Longest wait between retries while the database is down.

    Examples
    --------
    >>> from dethrone.store import make_engine, upgrade
    >>> engine = make_engine("sqlite://")
    >>> _ = upgrade(engine)
    >>> log = PredictionLogWriter(engine, flush_seconds=0.05)
    >>> log.append([{"request_id": "r1", "row": 0, "arm": "champion", "prediction": 3.5}])
    1
    >>> log.close()
    0
    >>> log.health().written_total
    1
    """

    def __init__(
        self,
        engine: Engine,
        *,
        flush_seconds: float = 1.0,
        buffer_rows: int = 100_000,
        batch_rows: int = 2_000,
        log_features: str | float = "all",
        on_drop: Callable[[int], Any] | None = None,
        on_flush: Callable[[int, float], Any] | None = None,
        max_backoff: float = 30.0,
        probe_seconds: float = 0.25,
        on_duplicate: Callable[[int], Any] | None = None,
    ) -> None:
        if flush_seconds <= 0 or buffer_rows < 1 or batch_rows < 1:
            raise ValueError("flush_seconds, buffer_rows and batch_rows must be positive")
        self.engine = engine
        self.flush_seconds, self.capacity, self.batch_rows = flush_seconds, buffer_rows, batch_rows
        self.max_backoff, self.probe_seconds = max_backoff, probe_seconds
        self.on_duplicate = on_duplicate
        self.duplicates_total = 0
        self._feature_cut = parse_log_features(log_features) * 2**32
        self.on_drop, self.on_flush = on_drop, on_flush
        self._insert = _insert_sql(engine.dialect.name)
        mark = "?" if engine.dialect.name == "sqlite" else "%s"
        self._exists = f"SELECT 1 FROM predictions WHERE request_id = {mark} LIMIT 1"
        self.written_total = self.dropped_total = 0
        self._last_error: tuple[str, float] | None = None
        self._last_flush: tuple[float, float] | None = None
        self._closed = False
        self._reset()
        atexit.register(self.close)
        # Gunicorn forks workers after the app (and this writer) was built: the child gets
        # no thread, a held lock maybe, and the parent's pooled connections. Start afresh.
        ref = weakref.ref(self)

        def after_fork_in_child() -> None:
            writer = ref()
            if writer is not None:
                writer._after_fork()

        os.register_at_fork(after_in_child=after_fork_in_child)

    @classmethod
    def from_settings(cls, engine: Engine, settings: Any, **kwargs: Any) -> PredictionLogWriter:
        """A writer set by ``LOG_FLUSH_SECONDS``, ``LOG_BUFFER_ROWS``, ``SERVING_LOG_FEATURES``."""
        return cls(
            engine,
            flush_seconds=settings.log_flush_seconds,
            buffer_rows=settings.log_buffer_rows,
            log_features=settings.serving_log_features,
            **kwargs,
        )

    def _reset(self) -> None:
        # Also run in a forked child (gunicorn): the parent's thread and lock do not exist
        # there, and its pooled connections must not be shared.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._buf: collections.deque[tuple] = collections.deque()
        #: rows in the buffer per request id (labels for them must wait, ids are taken)
        self._ids: dict[str, int] = {}
        self._inflight: set[str] = set()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def _after_fork(self) -> None:
        self.engine.dispose(close=False)
        self._reset()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
                    thread.start()
                    self._thread = thread

    # ------------------------------------------------------------------ request path
    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Queue served rows for the log; returns how many were accepted. Never raises.

        Each row is a mapping with at least ``request_id``, ``row`` and ``arm``; the other
        keys are the columns of :data:`dethrone.store.schema.predictions` (``ts`` defaults
        to now, ``served`` to True). Invalid rows are dropped and counted.
        """
        try:
            now = time.time()
            clean, bad = [], 0
            for row in rows:
                try:
                    item = self._normalise(row, now)
                except Exception:  # noqa: BLE001 - e.g. a lone surrogate orjson refuses
                    item = None
                if item is None:
                    bad += 1
                else:
                    clean.append(item)
            if self._closed:
                return self._drop(bad + len(clean), "writer is closed")
            self._ensure_thread()
            with self._lock:
                room = max(0, self.capacity - len(self._buf))
                kept = clean[:room]
                self._buf.extend(kept)
                ids = self._ids
                for item in kept:
                    ids[item[0]] = ids.get(item[0], 0) + 1
                full = len(self._buf) >= self.batch_rows
            if full:
                self._wake.set()
            over = len(clean) - min(room, len(clean))
            if bad:
                self._drop(bad, "row without request_id, row or arm, or not encodable")
            if over:
                self._drop(over, None)
            return len(clean) - over
        except Exception as exc:  # noqa: BLE001 - logging must never fail a prediction
            self._drop(0, f"append failed: {exc!r}")
            return 0

    def _normalise(self, row: Mapping[str, Any], now: float) -> tuple | None:
        """The row as a tuple in :data:`COLUMNS` order, ready for the driver."""
        # Written out column by column: this runs on the request path, once per served row.
        get = row.get
        request_id, index, arm = get("request_id"), get("row"), get("arm")
        if request_id is None or index is None or arm is None:
            return None
        request_id = str(request_id)
        features = get("features")
        if (
            features is not None
            and self._feature_cut < 4294967296.0
            and (zlib.crc32(request_id.encode()) >= self._feature_cut)
        ):
            features = None
        ts, served, latency = get("ts"), get("served"), get("latency_ms")
        return (
            request_id,
            int(index),
            str(arm),
            True if served is None else bool(served),
            _text(get("unit")),
            _text(get("model_name")),
            _text(get("model_version")),
            _text(get("experiment_id")),
            _text(get("champion_version")),
            _text(get("challenger_version")),
            _text(get("salt")),
            now if ts is None else float(ts),
            _json(get("prediction")),
            None if latency is None else float(latency),
            _json(features),
        )

    def _drop(self, n: int, error: str | None) -> int:
        if error is not None:
            self._last_error = (error, time.time())
        if n:
            with self._lock:
                self.dropped_total += n
            _call(self.on_drop, n)
        return 0

    # ------------------------------------------------------------------ background thread
    def _run(self) -> None:
        failures = 0
        while True:
            wait = (
                self.flush_seconds
                if not failures
                else min(self.max_backoff, self.flush_seconds * 2 ** min(failures, 16))
            )
            deadline = time.monotonic() + wait
            while not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if failures:
                    # Backing off: a cheap probe now and then ends it as soon as the
                    # database answers again (a full batch does not wake us here).
                    self._stop.wait(min(left, self.probe_seconds))
                    if self._probe():
                        break
                    continue
                if self._wake.wait(left):
                    break
            self._wake.clear()
            failures = 0 if self._drain() else failures + 1
            if self._stop.is_set():
                return

    def _drain(self) -> bool:
        """Write everything buffered, batch by batch; False at the first failure."""
        while True:
            with self._lock:
                chunk = list(itertools.islice(self._buf, self.batch_rows))
            if not chunk:
                return True
            began = time.monotonic()
            try:
                with self.engine.begin() as conn:
                    result = conn.exec_driver_sql(self._insert, chunk)
                    inserted = result.rowcount
            except Exception as exc:  # noqa: BLE001 - kept as health, retried later
                self._last_error = (str(StoreUnavailable(exc)), time.time())
                return False
            took = time.monotonic() - began
            with self._lock:
                # close() may have given up on us and emptied the buffer meanwhile.
                ids = self._ids
                for _ in range(min(len(chunk), len(self._buf))):
                    rid = self._buf.popleft()[0]
                    left = ids.get(rid, 1) - 1
                    if left > 0:
                        ids[rid] = left
                    else:
                        ids.pop(rid, None)
            # The driver's count of inserted rows; a negative one means it does not know.
            written = len(chunk) if inserted is None or inserted < 0 else min(inserted, len(chunk))
            duplicates = len(chunk) - written
            self.written_total += written
            self._last_error, self._last_flush = None, (time.time(), took)
            if written:
                _call(self.on_flush, written, took)
            if duplicates:
                with self._lock:
                    self.duplicates_total += duplicates
                _call(self.on_duplicate, duplicates)
                self._drop(duplicates, None)

    def _probe(self) -> bool:
        """True when the database answers a ``SELECT 1`` now."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - still down
            return False

    # ------------------------------------------------------------------ lookups
    def pending(self, request_ids: Iterable[str]) -> set[str]:
        """The request ids of ``request_ids`` that have rows in this buffer (not written)."""
        ids = self._ids
        return {r for r in request_ids if r in ids}

    def claim(self, request_id: str) -> bool:
        """Reserve ``request_id`` for a request in flight; False when this writer holds it
        already (in flight, or rows buffered). :meth:`release` it when the request ends."""
        with self._lock:
            if request_id in self._ids or request_id in self._inflight:
                return False
            self._inflight.add(request_id)
            return True

    def release(self, request_id: str) -> None:
        with self._lock:
            self._inflight.discard(request_id)

    def logged(self, request_id: str) -> bool:
        """True when the log holds a row of ``request_id``. False when it does not, and
        while writes fail (the check must not wait for a database that is down)."""
        if self._last_error is not None:
            return False
        try:
            with self.engine.connect() as conn:
                return conn.exec_driver_sql(self._exists, (request_id,)).first() is not None
        except Exception:  # noqa: BLE001 - unknown: the insert counts a duplicate later
            return False

    # ------------------------------------------------------------------ control
    def flush(self, timeout: float = 10.0) -> bool:
        """Ask for a write now and wait until the buffer is empty; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.health().buffered:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> int:
        """Write what is buffered (one last attempt) and stop; returns rows not written.

        Rows not written are counted as dropped. Safe to call twice.
        """
        if self._closed:
            return 0
        self._closed = True
        thread = self._thread
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(timeout)
        with self._lock:
            lost = len(self._buf)
            self._buf.clear()
            self._ids.clear()
        self._drop(lost, "closed with rows not written" if lost else None)
        return lost

    def health(self) -> LogHealth:
        """Buffered and dropped rows, the last error (None once a write succeeds again)."""
        error, flush = self._last_error, self._last_flush
        return LogHealth(
            buffered=len(self._buf),
            capacity=self.capacity,
            written_total=self.written_total,
            dropped_total=self.dropped_total,
            last_error=error[0] if error else None,
            last_error_at=error[1] if error else None,
            last_flush=flush[0] if flush else None,
            last_flush_seconds=flush[1] if flush else None,
            duplicates_total=self.duplicates_total,
        )


def _call(hook: Callable | None, *args: Any) -> None:
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:  # noqa: BLE001 - a metrics hook must not break logging
        pass

"""Adaptive micro-batching: concurrent requests to one model are scored in one call.

A scikit-learn call on 64 rows costs about as much as on one, so under load the gateway
scores the rows of many requests together. The design is leader/follower, with no
scoring thread of its own:

* A request arriving while the model is idle becomes the *leader* and scores its rows at
  once: an idle worker adds no delay.
* Requests arriving while a call runs queue up. When the leader's call returns, it answers
  every request of its batch and hands leadership to the oldest queued request, which
  waits up to ``window`` seconds for more company (or until ``max_rows`` are queued) and
  scores the whole queue in one call.

The batch size thus follows the load: 1 row when idle, up to ``max_rows`` when busy.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: A request's rows: a DataFrame, or ``column -> array`` (one DataFrame is built per call).
Rows = pd.DataFrame | dict[str, np.ndarray]

#: ``score(frame, want_proba) -> (labels, probabilities or None)``; ``frame`` is a
#: ``column -> array`` mapping for a batcher with ``columns=True``.
Scorer = Callable[[Rows, bool], tuple[np.ndarray, np.ndarray | None]]


def n_rows(rows: Rows) -> int:
    """Number of rows of ``rows``."""
    if isinstance(rows, pd.DataFrame):
        return len(rows)
    return len(next(iter(rows.values()))) if rows else 0


def _as_column(values: np.ndarray) -> Any:
    # pandas 3 turns an object array of strings into its Arrow-backed str dtype, which a
    # scikit-learn encoder converts back to objects on every call: about a quarter of a
    # RandomForest pipeline's predict on a few rows. Models are trained on object columns.
    return pd.Series(values, dtype=object, copy=False) if values.dtype == object else values


def combine(parts: list[Rows], *, columns: bool = False) -> Rows:
    """One DataFrame of the parts' rows, in order (string columns stay ``object``);
    ``columns=True``: ``column -> array`` mappings stay one mapping (no DataFrame)."""
    dicts = [p for p in parts if isinstance(p, dict)]
    if columns and len(dicts) == len(parts):
        if len(dicts) == 1:
            return dicts[0]
        return {c: np.concatenate([p[c] for p in dicts]) for c in dicts[0]}
    if len(dicts) == len(parts):
        if len(dicts) == 1:
            return pd.DataFrame({c: _as_column(v) for c, v in dicts[0].items()}, copy=False)
        return pd.DataFrame(
            {c: _as_column(np.concatenate([p[c] for p in dicts])) for c in dicts[0]}, copy=False
        )
    frames = [p if isinstance(p, pd.DataFrame) else pd.DataFrame(p) for p in parts]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


@dataclass(eq=False)
class _Job:
    frame: Rows
    proba: bool
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    error: BaseException | None = None


class MicroBatcher:
    """Score the frames of concurrent callers of :meth:`submit` in shared model calls.

    Parameters
    ----------
    score : callable
        ``score(frame, want_proba)`` returning labels and, when asked, probabilities,
        row-aligned with ``frame``.
    max_rows : int
        Most rows per call (a single larger request is still scored in one call).
    window : float
        Seconds a leader chosen under load waits for more requests.
    observe : callable, optional
        ``observe(requests, rows)`` after each call (the batch-size metrics).
    columns : bool
        ``score`` takes ``column -> array`` mappings as they are (a compiled model): the
        batcher builds no DataFrame of them.

    >>> import numpy as np
    >>> b = MicroBatcher(lambda f, p: (f["x"].to_numpy() * 2, None), max_rows=8, window=0)
    >>> b.submit(pd.DataFrame({"x": [1, 2]}))[0].tolist()
    [2, 4]
    """

    def __init__(
        self,
        score: Scorer,
        *,
        max_rows: int,
        window: float,
        observe: Callable[[int, int], None] | None = None,
        columns: bool = False,
    ) -> None:
        self.score, self.max_rows, self.window = score, max_rows, window
        self.observe, self.columns = observe, columns
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._pending: deque[_Job] = deque()
        self._pending_rows = 0
        self._busy = False

    def submit(self, frame: Rows, *, proba: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Score ``frame`` (alone or with other callers' rows); re-raise the model's error."""
        job = _Job(frame, proba)
        with self._lock:
            self._pending.append(job)
            self._pending_rows += n_rows(frame)
            if self._busy:
                self._arrived.notify()
            else:
                self._busy = job.lead = True
        if job.lead:
            self._lead(job, wait=False)
        else:
            job.done.wait()
            if job.labels is None and job.error is None:
                # Handed leadership: the model is under load, so wait for company.
                self._lead(job, wait=True)
        if job.error is not None:
            raise job.error
        # _score_into sets labels or error on every job of the batch it scores
        assert job.labels is not None
        return job.labels, job.probabilities

    def _lead(self, job: _Job, *, wait: bool) -> None:
        with self._lock:
            if wait and self.window > 0:
                deadline = time.monotonic() + self.window
                while self._pending_rows < self.max_rows:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.wait(left)
            batch = self._take()
        try:
            self._run(batch)
        finally:
            with self._lock:
                if self._pending:
                    nxt = self._pending[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._busy = False

    def _take(self) -> list[_Job]:
        # The leader's own job is always first in the queue, so it is always scored.
        batch = [self._pending.popleft()]
        rows = n_rows(batch[0].frame)
        while self._pending and rows + n_rows(self._pending[0].frame) <= self.max_rows:
            nxt = self._pending.popleft()
            batch.append(nxt)
            rows += n_rows(nxt.frame)
        self._pending_rows -= rows
        return batch

    def _run(self, batch: list[_Job]) -> None:
        frame = combine([j.frame for j in batch], columns=self.columns)
        try:
            self._score_into(batch, frame)
        finally:
            for j in batch:
                j.lead = False
                j.done.set()
        if self.observe is not None:
            self.observe(len(batch), n_rows(frame))

    def _score_into(self, batch: list[_Job], frame: Rows) -> None:
        try:
            labels, proba = self.score(frame, any(j.proba for j in batch))
        except Exception as exc:  # noqa: BLE001 - handed to the callers, who re-raise it
            if len(batch) == 1:
                batch[0].error = exc
                return
            # One request's rows may be what the model rejects: score each alone, so
            # only that request fails.
            for j in batch:
                self._score_into([j], combine([j.frame], columns=self.columns))
            return
        start = 0
        for j in batch:
            stop = start + n_rows(j.frame)
            j.labels = np.asarray(labels[start:stop])
            if j.proba and proba is not None:
                j.probabilities = np.asarray(proba[start:stop])
            start = stop

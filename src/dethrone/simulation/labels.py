"""Parts of :mod:`dethrone.simulation.traffic`: thread-safe counts and the delayed-label sender."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from dethrone.slices.router_client import RouterClient, RouterError

#: items per POST /feedback (the router's limit)
MAX_BATCH = 1000
#: seconds due labels may wait to share one POST with later ones
FLUSH_SECONDS = 0.25
#: a label for a row the router has not logged yet (its log commits about once a second)
#: is tried once more after this many seconds
UNKNOWN_RETRY_SECONDS = 2.0
_ACCEPTED = {"stored", "overwritten", "duplicate"}


class Tally:
    """Counts of one simulation, updated from many threads; frozen once at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self.requests = self.rows = self.errors = self.in_flight = 0
        self.feedback_sent = self.feedback_errors = 0
        self.statuses: Counter[str] = Counter()
        self.arms: dict[str, dict[str, int]] = {}
        self.arm_units: dict[str, set[str]] = {}
        self.versions: dict[str, dict[str, int]] = {}

    def sent(self) -> None:
        with self._lock:
            if not self._closed:
                self.requests += 1
                self.in_flight += 1

    def answered(self, arm: str, version: str, rows: int, unit: str | None) -> None:
        with self._lock:
            if self._closed:
                return
            self.in_flight -= 1
            self.rows += rows
            for table, key in ((self.arms, arm), (self.versions, version)):
                entry = table.setdefault(key, {"requests": 0, "rows": 0})
                entry["requests"] += 1
                entry["rows"] += rows
            units = self.arm_units.setdefault(arm, set())
            if unit is not None:
                units.add(unit)

    def error(self, reason: str, *, request: bool = True) -> None:
        """A failed request (``request=True``) or another failure such as a data fetch."""
        with self._lock:
            if self._closed:
                return
            self.in_flight -= int(request)
            self.errors += 1
            self.statuses[reason] += 1

    def feedback(self, accepted: int, refused: Counter[str] | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            self.feedback_sent += accepted
            for reason, n in (refused or {}).items():
                self.feedback_errors += n
                self.statuses[f"feedback {reason}"] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._view()

    def _view(self) -> dict[str, Any]:
        per_arm = {
            arm: {**c, "units": len(self.arm_units.get(arm, ()))} for arm, c in self.arms.items()
        }
        return {
            "requests": self.requests,
            "rows": self.rows,
            "errors": self.errors,
            "error_statuses": dict(self.statuses),
            "feedback_sent": self.feedback_sent,
            "feedback_errors": self.feedback_errors,
            "per_arm": per_arm,
            "per_version": {v: dict(c) for v, c in self.versions.items()},
        }

    def freeze(self, *, unsent: int) -> dict[str, Any]:
        """Final counts; requests still running are errors ``unfinished``, labels still
        waiting are feedback errors ``unsent``. Later updates are ignored."""
        with self._lock:
            if self.in_flight:
                self.errors += self.in_flight
                self.statuses["unfinished"] += self.in_flight
            if unsent:
                self.feedback_errors += unsent
                self.statuses["feedback unsent"] += unsent
            self._closed = True
            return self._view()


class LabelSender:
    """Posts labels ``delay`` seconds after :meth:`put`, in batches, on its own thread."""

    def __init__(self, router: RouterClient, tally: Tally, *, delay: float):
        self.router, self.tally, self.delay = router, tally, delay
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, list[dict[str, Any]]]] = []
        self._ready: list[dict[str, Any]] = []
        self._posting = 0
        self._retried: set[tuple[str, int]] = set()
        self._seq = itertools.count()
        self._last_post = 0.0
        self._draining = self._stop = False
        self._thread = threading.Thread(target=self._run, name="dethrone-labels", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, items: list[dict[str, Any]]) -> None:
        due = time.monotonic() + self.delay
        with self._cond:
            if self._stop:
                self.tally.feedback(0, Counter({"unsent": len(items)}))
                return
            heapq.heappush(self._heap, (due, next(self._seq), items))
            self._cond.notify()

    def pending(self) -> int:
        """Labels not yet answered by the router."""
        with self._cond:
            return self._pending()

    def _pending(self) -> int:
        return sum(len(e[2]) for e in self._heap) + len(self._ready) + self._posting

    def finish(self, *, deadline: float, tick: Callable[[], None], every: float = 1.0) -> None:
        """Post the rest as it falls due, until none is left or ``deadline`` (monotonic)."""
        with self._cond:
            self._draining = True
            self._cond.notify()
        next_tick = time.monotonic() + every
        while (now := time.monotonic()) < deadline:
            with self._cond:
                if not self._pending():
                    return
                self._cond.wait(timeout=min(next_tick, deadline) - now)
            if time.monotonic() >= next_tick:
                tick()
                next_tick += every

    def abandon(self) -> int:
        """Stop; returns the number of labels never answered (count them as unsent)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            return self._pending()

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Waits (holding the condition) until a batch should go; None when stopped."""
        while not self._stop:
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                self._ready.extend(heapq.heappop(self._heap)[2])
            flush_at = self._last_post + FLUSH_SECONDS
            # at the end the last labels go at once; before, due ones wait to share a post
            if self._ready and (
                len(self._ready) >= MAX_BATCH
                or now >= flush_at
                or (self._draining and not self._heap)
            ):
                batch, self._ready = self._ready[:MAX_BATCH], self._ready[MAX_BATCH:]
                self._posting = len(batch)
                return batch
            wake = [flush_at] if self._ready else []
            if self._heap:
                wake.append(self._heap[0][0])
            self._cond.wait(timeout=max(min(wake) - now, 0.005) if wake else None)
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
            if batch is None:
                return
            outcome = self._post(batch)
            with self._cond:
                self._last_post = time.monotonic()
                self._posting = 0
                if self._stop:
                    return
                accepted, refused, again = outcome
                self.tally.feedback(accepted, refused)
                if again:  # pushed under the same lock, so pending() never misses them
                    heapq.heappush(
                        self._heap,
                        (self._last_post + UNKNOWN_RETRY_SECONDS, next(self._seq), again),
                    )
                self._cond.notify_all()

    def _post(self, batch: list[dict[str, Any]]) -> tuple[int, Counter[str], list[dict]]:
        try:
            body = self.router.feedback(batch)
        except RouterError as exc:
            return 0, Counter({exc.reason: len(batch)}), []
        except Exception as exc:  # noqa: BLE001 - a simulated client never crashes the run
            return 0, Counter({type(exc).__name__: len(batch)}), []
        results = body.get("results")
        if not isinstance(results, list) or len(results) != len(batch):
            return len(batch), Counter(), []  # 200 without details: all accepted
        accepted, refused, again = 0, Counter[str](), []
        for item, result in zip(batch, results, strict=True):
            status = result.get("status") if isinstance(result, dict) else None
            key = (item["request_id"], item["row"])
            if status in _ACCEPTED:
                accepted += 1
            elif status == "unknown" and key not in self._retried:
                self._retried.add(key)
                again.append(item)
            else:
                refused[str(status)] += 1
        return accepted, refused, again

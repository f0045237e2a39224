"""Simulated live traffic: rows from the router's data through ``/predict``, labels later.

The rows come from ``GET /get_data``, so the router's configured drift applies to the
features; the target column is held back and posted to ``POST /feedback`` after a delay, as
a real system learns outcomes later. Sending keeps its pace while labels wait in a heap
served by a background thread. Everything is bounded: at most ``max_requests`` requests,
no new request after ``duration`` seconds, and the call returns by ``duration +
label_delay`` plus a few seconds' grace even if the router hangs.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from dethrone.settings import Settings
from dethrone.simulation.labels import LabelSender, Tally
from dethrone.slices.router_client import RouterClient, RouterError

#: seconds past ``duration + label_delay`` the call may take (last answers and labels)
GRACE = 5.0
#: requests in flight at once; more would only queue inside the router
MAX_IN_FLIGHT = 8
#: seconds between progress reports
PROGRESS_EVERY = 1.0


@dataclass(frozen=True)
class SimulationReport:
    """Outcome of :func:`simulate`.

    ``requests`` counts requests sent, ``rows`` the rows of the answered ones and
    ``errors`` the failed requests and data fetches, by kind in ``error_statuses``
    (``"HTTP 503"``, ``"ReadTimeout"``, ``"unfinished"``, ``"get_data HTTP 500"``; labels
    the router refused or that could not be sent are under ``"feedback <status>"``).
    ``feedback_sent`` counts labels the router accepted, ``feedback_errors`` the others.
    ``per_arm`` maps each arm to ``{"requests", "rows", "units"}`` (distinct unit ids),
    ``per_version`` each model version to ``{"requests", "rows"}``.
    """

    requests: int
    rows: int
    errors: int
    error_statuses: dict[str, int] = field(default_factory=dict)
    feedback_sent: int = 0
    feedback_errors: int = 0
    per_arm: dict[str, dict[str, int]] = field(default_factory=dict)
    per_version: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Pool:
    """Rows of one ``/get_data`` slice in random order; refetched when used up."""

    def __init__(
        self,
        router: RouterClient,
        target: str,
        rng: np.random.Generator,
        label_transform,
        coverage: float,
    ):
        self.router, self.target, self.rng = router, target, rng
        self.transform, self.coverage = label_transform, coverage
        self.records: list[dict[str, Any]] = []
        self.labels: list[Any] = []
        self.pos = 0

    def fetch(self) -> None:
        """Replace the pool with a new slice (raises :class:`RouterError`)."""
        frame = self.router.get_data(seed=int(self.rng.integers(2**31 - 1)))
        if self.target not in frame.columns:
            raise RouterError(
                f"/get_data has no target column {self.target!r} (columns: {list(frame.columns)})",
                reason="no target",
            )
        if frame.empty:
            raise RouterError("/get_data sent no rows", reason="no rows")
        frame = frame.iloc[self.rng.permutation(len(frame))].reset_index(drop=True)
        features = frame.drop(columns=[self.target])
        labels = frame[self.target].to_numpy()
        if self.transform is not None:
            labels = np.asarray(self.transform(features, labels))
            if labels.shape != (len(features),):
                raise ValueError(
                    f"label_transform returned shape {labels.shape}, expected ({len(features)},)"
                )
        # NaN is not JSON: a missing value is sent as null
        # the frame is a /get_data answer (JSON): its column names are strings
        self.records = cast(
            list[dict[str, Any]],
            features.astype(object).where(features.notna(), None).to_dict("records"),
        )
        self.labels = [_plain(v) for v in labels]
        self.pos = 0

    def take(self, k: int) -> tuple[list[dict[str, Any]], list[tuple[int, Any]], str | None]:
        """``k`` rows, the (row, label) pairs of the covered ones, and why a refetch failed.

        A used-up pool is refetched; if that fails, the old rows are served again.
        """
        failed = None
        if self.pos + k > len(self.records):
            try:
                self.fetch()
            except RouterError as exc:
                failed = exc.reason
            except Exception as exc:  # noqa: BLE001 - e.g. label_transform on odd rows
                failed = type(exc).__name__
            self.pos = 0
        idx = [(self.pos + j) % len(self.records) for j in range(k)]
        self.pos += k
        covered = self.rng.random(k) < self.coverage
        labelled = [
            (j, self.labels[i])
            for j, i in enumerate(idx)
            if covered[j] and self.labels[i] is not None
        ]
        return [self.records[i] for i in idx], labelled, failed


def _plain(value: Any) -> Any:
    """A JSON-ready label: Python numbers and strings, None for a missing one."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check(
    rate, duration, units, label_delay, label_coverage, max_requests, rows_per_request
) -> None:
    def finite(name, value, low, strict):
        ok = (
            isinstance(value, int | float)
            and math.isfinite(value)
            and (value > low if strict else value >= low)
        )
        if not ok:
            raise ValueError(
                f"{name} must be a finite number {'>' if strict else '>='} {low}, got {value!r}"
            )

    finite("rate", rate, 0, True)
    finite("duration", duration, 0, True)
    finite("label_delay", label_delay, 0, False)
    if not (isinstance(label_coverage, int | float) and 0.0 <= label_coverage <= 1.0):
        raise ValueError(f"label_coverage must be in [0, 1], got {label_coverage!r}")
    for name, value in (
        ("units", units),
        ("max_requests", max_requests),
        ("rows_per_request", rows_per_request),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def simulate(
    router: RouterClient,
    *,
    rate: float,
    duration: float,
    units: int | None = None,
    label_delay: float = 0.0,
    label_coverage: float = 1.0,
    max_requests: int | None = None,
    rows_per_request: int = 1,
    label_transform: Callable[[pd.DataFrame, np.ndarray], np.ndarray] | None = None,
    random_state=None,
    progress: Callable[[dict], None] | None = None,
    settings: Settings | None = None,
) -> SimulationReport:
    """Send simulated prediction traffic to the router and post the true labels later.

    Parameters
    ----------
    router : RouterClient
        The router (``/get_data``, ``/predict``, ``/feedback``).
    rate : float
        Requests per second (> 0), scheduled at fixed times; up to ``MAX_IN_FLIGHT`` run
        at once, so a slow answer does not slow the pace.
    duration : float
        Seconds during which requests are started.
    units : int, optional
        Number of unit ids (``sim-unit-0`` …); each request carries a random one in
        ``X-Dethrone-Unit``. None: no unit (the router draws each request's arm).
    label_delay : float
        Seconds after its answer that a request's labels are posted.
    label_coverage : float
        Share of rows whose label is ever posted (each row independently).
    max_requests : int, optional
        Stop after this many requests.
    rows_per_request : int
        Rows in each request.
    label_transform : callable, optional
        ``f(features, labels) -> labels`` applied to each fetched slice, e.g. to make the
        labels disagree with a model.
    random_state : int or numpy Generator, optional
        Seed of the slices, units and coverage draws (request ids are always fresh).
    progress : callable, optional
        Called about once a second, and at the end, with a dict of the counts so far.
    settings : Settings, optional
        For the target column (``TARGET``); default ``Settings.from_env()``.

    Raises
    ------
    ValueError
        For an invalid argument, naming it.
    RouterError
        When the first ``/get_data`` slice cannot be fetched; later errors are counted.

    Examples
    --------
    >>> report = simulate(RouterClient("http://127.0.0.1:8000"), rate=20, duration=10,
    ...                   units=500, label_delay=2)            # doctest: +SKIP
    >>> report.requests, report.feedback_sent                  # doctest: +SKIP
    (200, 200)
    """
    _check(rate, duration, units, label_delay, label_coverage, max_requests, rows_per_request)
    target = (settings or Settings.from_env()).target
    rng = np.random.default_rng(random_state)
    pool = _Pool(router, target, rng, label_transform, float(label_coverage))
    pool.fetch()
    start = time.monotonic()
    tally = Tally()
    sender = LabelSender(router, tally, delay=float(label_delay))
    sender.start()
    _send_all(
        router,
        pool,
        tally,
        sender,
        rng,
        start=start,
        rate=float(rate),
        duration=float(duration),
        units=units,
        max_requests=max_requests,
        rows_per_request=rows_per_request,
        progress=progress,
    )
    sender.finish(
        deadline=start + duration + label_delay + GRACE,
        tick=lambda: _report_progress(progress, tally, sender, start),
    )
    counts = tally.freeze(unsent=sender.abandon())
    report = SimulationReport(**counts, seconds=round(time.monotonic() - start, 3))
    if progress is not None:
        progress({**report.to_dict(), "done": True, "pending_labels": 0})
    return report


def _send_all(
    router,
    pool,
    tally,
    sender,
    rng,
    *,
    start,
    rate,
    duration,
    units,
    max_requests,
    rows_per_request,
    progress,
) -> None:
    """The pacing loop: request i starts at ``start + i / rate`` on its own thread."""
    run = uuid.uuid4().hex[:12]
    slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
    ticker = _Ticker(progress, tally, sender, start)
    threads: list[threading.Thread] = []
    end, i = start + duration, 0
    while (max_requests is None or i < max_requests) and (due := start + i / rate) < end:
        while (now := time.monotonic()) < due:
            ticker.maybe()
            time.sleep(min(due - now, 0.05))
        if not _acquire(slots, end, ticker):
            break  # every slot stayed busy until the end: a hanging router
        rows, labelled, failed = pool.take(rows_per_request)
        if failed is not None:
            tally.error(f"get_data {failed}", request=False)
        unit = None if units is None else f"sim-unit-{int(rng.integers(units))}"
        job = threading.Thread(
            target=_one,
            daemon=True,
            args=(router, tally, sender, slots, rows, labelled, unit, f"sim-{run}-{i}"),
        )
        tally.sent()
        job.start()
        threads.append(job)
        i += 1
        if ticker.maybe():
            threads = [t for t in threads if t.is_alive()]
    wait_until = end + GRACE / 2
    for job in threads:
        job.join(timeout=max(wait_until - time.monotonic(), 0.0))


def _acquire(slots: threading.BoundedSemaphore, end: float, ticker) -> bool:
    """A free in-flight slot, or False at ``end``; reports progress while waiting."""
    while not slots.acquire(timeout=min(max(end - time.monotonic(), 0.0), 0.5)):
        ticker.maybe()
        if time.monotonic() >= end:
            return False
    return True


class _Ticker:
    """Calls ``progress`` at most once per ``PROGRESS_EVERY`` seconds."""

    def __init__(self, progress, tally, sender, start):
        self.progress, self.tally, self.sender, self.start = progress, tally, sender, start
        self.next = start + PROGRESS_EVERY

    def maybe(self) -> bool:
        now = time.monotonic()
        if now < self.next:
            return False
        self.next = now + PROGRESS_EVERY
        _report_progress(self.progress, self.tally, self.sender, self.start)
        return True


def _one(router, tally, sender, slots, rows, labelled, unit, request_id) -> None:
    """One request on its own thread; its labels go to the sender's heap."""
    try:
        answer = router.predict(rows, unit=unit, request_id=request_id)
    except RouterError as exc:
        tally.error(exc.reason)
        return
    except Exception as exc:  # noqa: BLE001 - a simulated client never crashes the run
        tally.error(type(exc).__name__)
        return
    finally:
        slots.release()
    rid = str(answer.get("request_id") or request_id)
    tally.answered(str(answer.get("arm")), str(answer.get("model_version")), len(rows), unit)
    if labelled:
        sender.put([{"request_id": rid, "row": j, "label": label} for j, label in labelled])


def _report_progress(progress, tally, sender, start) -> None:
    if progress is not None:
        progress(
            {
                **tally.snapshot(),
                "pending_labels": sender.pending(),
                "seconds": round(time.monotonic() - start, 3),
                "done": False,
            }
        )

"""The watcher: one per gunicorn worker, keeping the served models in step with the registry.

Its thread looks up ``@champion`` and ``@challenger`` every ``SERVING_REFRESH_SECONDS``,
loads a version that moved and swaps it in by replacing one dict reference: a request holds
the :class:`~dethrone_router.gateway.models.ServedModel` it started with until it answers, so a
swap never fails or mixes versions within a request. The registry being unreachable leaves
the loaded models in service; the watcher reports ``degraded``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from dethrone.registry.records import CHALLENGER, CHAMPION, Decision
from dethrone_router.gateway.batching import MicroBatcher
from dethrone_router.gateway.models import (
    ALIASES,
    LoadedModel,
    ModelSource,
    ServedModel,
    is_rejected,
)

log = logging.getLogger("dethrone_router.api.serving")


class ModelWatcher:
    """The models one worker serves, kept in step with the registry's aliases.

    Parameters
    ----------
    source : ModelSource
        Looks up aliases and loads versions.
    refresh_seconds : float
        Pause between two checks of the aliases.
    make_batcher : callable
        ``make_batcher(alias, scorer, columns)`` builds the :class:`MicroBatcher` of a
        version (``columns``: the scorer takes ``column -> array`` mappings).
    events : object, optional
        Receives ``reload(alias, outcome)``, ``served(alias, version, on)``,
        ``compiled(alias, version, compiled)`` and ``delegated(alias, version)`` (metrics).
    """

    def __init__(
        self,
        source: ModelSource,
        *,
        refresh_seconds: float,
        make_batcher: Callable[[str, Callable, bool], MicroBatcher],
        events: Any = None,
    ) -> None:
        self.source, self.refresh_seconds = source, refresh_seconds
        self.make_batcher, self.events = make_batcher, events
        self.models: dict[str, ServedModel] = {}
        self.registry_ok: bool | None = None
        self.last_error: str | None = None
        self.last_check: float | None = None
        #: the aliases' versions at the last successful lookup (None: never looked up)
        self.registered: dict[str, str | None] | None = None
        #: versions loaded from the local cache while the registry was unreachable
        self.from_cache: dict[str, str] = {}
        self._remembered: dict[str, str | None] | None = None
        self._refused: set[str] = set()
        self._failed: dict[str, tuple[int, float]] = {}  # version -> (failures, next try)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- reading (request threads) ----------------------------------------------------
    def get(self, alias: str) -> ServedModel | None:
        """The model serving ``alias`` right now (keep the reference for the request)."""
        return self.models.get(alias)

    def status(self) -> dict[str, Any]:
        """This worker's view: versions served, registry state, last check."""
        registry = {None: "unknown", True: "ok", False: "unreachable"}[self.registry_ok]
        return {
            "pid": os.getpid(),
            "registry": registry,
            "last_error": self.last_error,
            "last_check_age_s": None
            if self.last_check is None
            else round(time.monotonic() - self.last_check, 3),
            "refresh_seconds": self.refresh_seconds,
            "models": {a: (m.version if (m := self.models.get(a)) else None) for a in ALIASES},
            # per alias: the version's scoring path (compiled or not, why, calls by path)
            "scoring": {
                a: ({"version": m.version, **m.model.scoring_status()} if m else None)
                for a in ALIASES
                if (m := self.models.get(a)) is not None
            },
            "registered": self.registered,
            "from_cache": dict(self.from_cache),
            "refused": sorted(self._refused, key=lambda v: (len(v), v)),
            "failed_loads": {v: n for v, (n, _) in self._failed.items()},
        }

    # --- refreshing (watcher thread) --------------------------------------------------
    def refresh(self) -> None:
        """Check both aliases once and load, swap or drop what changed."""
        with self._lock:
            try:
                self.source.ping()
                found = {alias: self.source.lookup(alias) for alias in ALIASES}
            except Exception as exc:  # noqa: BLE001 - registry down: keep serving what is loaded
                if self.registry_ok is not False:
                    log.warning("model registry unreachable, serving loaded models: %s", exc)
                    self._event("reload", CHAMPION, "unreachable")
                self.registry_ok, self.last_error = False, str(exc)[:300]
                self.last_check = time.monotonic()
                self._load_offline()
                return
            self.registry_ok, self.last_error = True, None
            self.registered = {a: (hit[0] if hit else None) for a, hit in found.items()}
            for alias, hit in found.items():
                self._follow(alias, hit)
            self.from_cache.clear()  # what is served now is what the registry names
            self.last_check = time.monotonic()
            served = {a: (m.version if (m := self.models.get(a)) else None) for a in ALIASES}
            remember = getattr(self.source, "remember", None)
            if remember is not None and served != self._remembered:
                remember(served)
                self._remembered = served

    def _load_offline(self) -> None:
        """Registry down: serve the versions served last from the local cache, for the
        aliases this worker has nothing loaded for (a worker started during the outage)."""
        # optional capabilities of a source with a local cache (MlflowSource), not of
        # every ModelSource
        offline = getattr(self.source, "offline", None)
        load_cached = getattr(self.source, "load_cached", None)
        if offline is None or load_cached is None or all(self.models.get(a) for a in ALIASES):
            return
        for alias, version in offline().items():
            if self.models.get(alias) is not None:
                continue
            try:
                loaded = load_cached(version)
            except Exception as exc:  # noqa: BLE001 - a broken copy: nothing to serve from it
                log.warning("cached @%s version %s does not load: %s", alias, version, exc)
                continue
            served = self._served(alias, version, loaded)
            self._swap(alias, served)
            self.from_cache[alias] = version
            self._event("reload", alias, "cached")
            log.warning(
                "registry unreachable: serving @%s version %s from the cache", alias, version
            )

    def _follow(self, alias: str, hit: tuple[str, dict[str, str]] | None) -> None:
        current = self.models.get(alias)
        if hit is not None and alias == CHALLENGER and is_rejected(hit[1]):
            if hit[0] not in self._refused:
                self._refused.add(hit[0])
                log.warning(
                    "refusing @%s version %s: its recorded decision is %r",
                    alias,
                    hit[0],
                    hit[1].get(Decision.tag("outcome")),
                )
                self._event("reload", alias, "refused")
            hit = None
        if hit is None:
            if current is not None:
                self._swap(alias, None)
            return
        if current is not None and current.version == hit[0]:
            return
        failures, next_try = self._failed.get(hit[0], (0, 0.0))
        if time.monotonic() < next_try:
            return
        try:
            loaded = self.source.load(hit[0])
        except Exception as exc:  # keep the old version, retry later (backoff below)
            log.exception("loading @%s version %s failed", alias, hit[0])
            self.last_error = f"load of version {hit[0]} failed: {exc}"[:300]
            self._event("reload", alias, "failed")
            # Back off (up to 5 min): a version that cannot load must not be downloaded
            # again on every check by every worker.
            delay = min(300.0, self.refresh_seconds * 2**failures)
            self._failed[hit[0]] = (failures + 1, time.monotonic() + delay)
            return
        self._failed.pop(hit[0], None)
        self.from_cache.pop(alias, None)
        served = self._served(alias, hit[0], loaded)
        self._swap(alias, served)
        self._event("reload", alias, "loaded")
        log.info("serving @%s version %s", alias, hit[0])

    def _served(self, alias: str, version: str, loaded: LoadedModel) -> ServedModel:
        handler = getattr(self.events, "delegated", None)
        on_delegate = None if handler is None else (lambda: handler(alias, version))
        batcher = self.make_batcher(alias, _scorer(loaded, on_delegate), loaded.score is not None)
        return ServedModel(alias, version, loaded, batcher, time.time())

    def _swap(self, alias: str, served: ServedModel | None) -> None:
        old = self.models.get(alias)
        models = {k: v for k, v in self.models.items() if k != alias}
        if served is not None:
            models[alias] = served
        # One reference assignment: readers see the old dict or the new one, never a mix.
        self.models = models
        if old is not None:
            self._event("served", alias, old.version, False)
        if served is not None:
            self._event("served", alias, served.version, True)
            scoring = served.model.scoring
            self._event("compiled", alias, served.version, bool(scoring and scoring.compiled))

    def _event(self, name: str, *args: Any) -> None:
        handler = getattr(self.events, name, None)
        if handler is not None:
            handler(*args)

    def start(self) -> None:
        """Refresh now and then every ``refresh_seconds`` in a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, name="dethrone-model-watcher", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the loop must outlive any surprise
                log.exception("model refresh failed")
            self._stop.wait(self.refresh_seconds)

    def stop(self) -> None:
        """End the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _scorer(
    model: LoadedModel, on_delegate: Callable[[], None] | None = None
) -> Callable[[Any, bool], tuple]:
    """The batcher's ``score(rows, want_proba)`` of ``model``; ``on_delegate()`` after a call
    a compiled model handed to the model itself (one scorer runs one call at a time)."""
    if model.score is not None:
        score_rows = model.score
        counts = model.scoring.calls if model.scoring is not None else None
        if counts is None or on_delegate is None:
            return score_rows

        def counted(rows: Any, want_proba: bool) -> tuple:
            before = counts.delegated
            try:
                return score_rows(rows, want_proba)
            finally:
                if counts.delegated != before:
                    on_delegate()

        return counted

    def score(frame: pd.DataFrame, want_proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        labels = model.predict(frame)
        proba = model.predict_proba(frame) if want_proba and model.predict_proba else None
        return labels, proba

    return score

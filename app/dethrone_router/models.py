"""The served models: loaded from MLflow by alias, re-checked in the background, hot-swapped.

Each gunicorn worker owns one :class:`ModelWatcher`. Its thread looks up ``@champion`` and
``@challenger`` every ``SERVING_REFRESH_SECONDS``, loads a version that moved (through
``mlflow.pyfunc``, so skops or cloudpickle scikit-learn, LightGBM, XGBoost or a custom
``PythonModel`` all work) and swaps it in by replacing one dict reference: a request
holds the :class:`ServedModel` it started with until it answers, so a swap never fails
or mixes versions within a request. The registry being unreachable leaves the loaded
models in service; the watcher reports ``degraded``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dethrone.records import CHALLENGER, CHAMPION, Decision
from dethrone.settings import Settings
from dethrone_router.batching import MicroBatcher

log = logging.getLogger("dethrone_router.serving")

ALIASES = (CHAMPION, CHALLENGER)
#: signature types -> the JSON kind a request value must have
_KINDS = {
    "double": "number",
    "float": "number",
    "long": "integer",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
}


@dataclass(frozen=True)
class Feature:
    """One input column of a model's signature."""

    name: str
    kind: str  # number, integer, string, boolean or any
    required: bool = True


@dataclass(frozen=True)
class LoadedModel:
    """What a source hands over: how to score, and what the input must look like."""

    predict: Callable[[pd.DataFrame], Any]
    predict_proba: Callable[[pd.DataFrame], Any] | None = None
    features: tuple[Feature, ...] | None = None
    classes: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class ServedModel:
    """One version in service under one alias, with its own batcher."""

    alias: str
    version: str
    model: LoadedModel
    batcher: MicroBatcher = field(repr=False)
    loaded_at: float = 0.0

    @property
    def task(self) -> str:
        return "classification" if self.model.classes is not None else "regression"


class ModelSource(Protocol):
    """Where models come from: ``ping`` raises when unreachable, ``lookup`` gives an alias's
    ``(version, tags)`` or None, ``load`` a version (MLflow in production, fakes in tests)."""

    def ping(self) -> None: ...
    def lookup(self, alias: str) -> tuple[str, dict[str, str]] | None: ...
    def load(self, version: str) -> LoadedModel: ...


def is_rejected(tags: dict[str, str]) -> bool:
    """True when a version's recorded decision is final and not ``promote``.

    The offline pipeline tags its decision onto the challenger (the
    :class:`dethrone.records.Decision` record, see
    :meth:`dethrone.registry.Registry.record_decision`) and leaves the alias in place;
    such a version must never get live traffic. A decision marked ``final = false`` (a
    live experiment still collecting) does not reject.

    >>> is_rejected(Decision(outcome="keep").to_tags())
    True
    >>> is_rejected(Decision(outcome="keep", final=False).to_tags())
    False
    >>> is_rejected(Decision(outcome="promote").to_tags()), is_rejected({})
    (False, False)
    """
    outcome = tags.get(Decision.tag("outcome"))
    final = tags.get(Decision.tag("final"), "true").strip().lower() != "false"
    return outcome is not None and outcome != "promote" and final


def _features(metadata: Any) -> tuple[Feature, ...] | None:
    schema = metadata.get_input_schema() if metadata is not None else None
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    return tuple(
        Feature(
            c.name,
            _KINDS.get(getattr(c.type, "name", str(c.type)), "any"),
            bool(getattr(c, "required", True)),
        )
        for c in schema.inputs
    )


def _as_array(out: Any) -> np.ndarray:
    if isinstance(out, pd.DataFrame):
        out = out.iloc[:, 0] if out.shape[1] == 1 else out
    return np.asarray(out)


class MlflowSource:
    """Versions of ``settings.model_name`` from the MLflow registry, loaded with pyfunc."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # MLflow retries an unreachable server for minutes by default; the watcher
        # retries on its own schedule and must notice an outage quickly.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self._registry: Any = None

    def ping(self) -> None:
        # MLflow is imported here, not at app start: without it the router still serves
        # its data endpoints and the watcher reports the ImportError as the registry state.
        from dethrone.context import configure_mlflow
        from dethrone.registry import Registry

        configure_mlflow(self.settings)  # raises RegistryError when the server is down
        if self._registry is None:
            self._registry = Registry(self.settings)

    def lookup(self, alias: str) -> tuple[str, dict[str, str]] | None:
        found = self._registry.alias_version(alias)
        return None if found is None else (str(found.version), dict(found.tags or {}))

    def load(self, version: str) -> LoadedModel:
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(f"models:/{self.settings.model_name}/{version}")
        try:
            raw = model.get_raw_model()
        except Exception:  # noqa: BLE001 - flavours without a raw model: labels only
            raw = None
        classes = getattr(raw, "classes_", None)
        proba = getattr(raw, "predict_proba", None)
        predict = model.predict
        if model.metadata.flavors.get("python_function", {}).get(
            "loader_module"
        ) == "mlflow.sklearn" and hasattr(raw, "predict"):
            # pyfunc's sklearn wrapper only enforces the signature (done by the gateway
            # already, to the same dtypes) before calling this: skipping it saves ~2 ms.
            predict = raw.predict
        return LoadedModel(
            predict=lambda frame: _as_array(predict(frame)),
            predict_proba=None if proba is None else (lambda frame: np.asarray(proba(frame))),
            features=_features(model.metadata),
            classes=None if classes is None else tuple(np.asarray(classes).tolist()),
        )


class ModelWatcher:
    """The models one worker serves, kept in step with the registry's aliases.

    Parameters
    ----------
    source : ModelSource
        Looks up aliases and loads versions.
    refresh_seconds : float
        Pause between two checks of the aliases.
    make_batcher : callable
        ``make_batcher(alias, scorer)`` builds the :class:`MicroBatcher` of a version.
    events : object, optional
        Receives ``reload(alias, outcome)`` and ``served(alias, version, on)`` (metrics).
    """

    def __init__(
        self,
        source: ModelSource,
        *,
        refresh_seconds: float,
        make_batcher: Callable[[str, Callable], MicroBatcher],
        events: Any = None,
    ) -> None:
        self.source, self.refresh_seconds = source, refresh_seconds
        self.make_batcher, self.events = make_batcher, events
        self.models: dict[str, ServedModel] = {}
        self.registry_ok: bool | None = None
        self.last_error: str | None = None
        self.last_check: float | None = None
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
                return
            self.registry_ok, self.last_error = True, None
            for alias, hit in found.items():
                self._follow(alias, hit)
            self.last_check = time.monotonic()

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
        served = ServedModel(
            alias, hit[0], loaded, self.make_batcher(alias, _scorer(loaded)), time.time()
        )
        self._swap(alias, served)
        self._event("reload", alias, "loaded")
        log.info("serving @%s version %s", alias, hit[0])

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


def _scorer(model: LoadedModel) -> Callable[[pd.DataFrame, bool], tuple]:
    def score(frame: pd.DataFrame, want_proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        labels = model.predict(frame)
        proba = model.predict_proba(frame) if want_proba and model.predict_proba else None
        return labels, proba

    return score

"""The served models: what a loaded version is, and where versions come from.

Models are loaded from MLflow by alias through ``mlflow.pyfunc`` (skops or cloudpickle
scikit-learn, LightGBM, XGBoost or a custom ``PythonModel`` all work), with the input
contract of their signature (:class:`Feature`). Each worker's
:class:`~dethrone_router.gateway.watcher.ModelWatcher` re-checks the aliases and hot-swaps.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dethrone.registry.records import CHALLENGER, CHAMPION, Decision
from dethrone.settings import Settings
from dethrone_router.gateway.batching import MicroBatcher

log = logging.getLogger("dethrone_router.api.serving")
ALIASES = (CHAMPION, CHALLENGER)
#: versions kept in the local model cache besides the ones served now
CACHE_KEEP = 4
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
    :class:`dethrone.registry.records.Decision` record, see
    :meth:`dethrone.registry.client.Registry.record_decision`) and leaves the alias in place;
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


def cache_dir(settings: Settings) -> Path | None:
    """The local model cache (``SERVING_MODEL_CACHE_DIR``; empty: ``ROUTER_DATA_DIR/model-cache``,
    ``off``: none), one folder per registered model name."""
    raw = settings.serving_model_cache_dir.strip()
    if raw.lower() in ("off", "none", "false", "0"):
        return None
    base = Path(raw) if raw else Path(settings.router_data_dir) / "model-cache"
    return base / settings.model_name.replace("/", "_")


class MlflowSource:
    """Versions of ``settings.model_name`` from the MLflow registry, loaded with pyfunc.

    With a cache folder (:func:`cache_dir`) each version is downloaded once into
    ``<cache>/<version>/`` (atomically: a temporary folder renamed into place, so workers
    loading the same version at once never see half a copy) and loaded from there; the
    versions served last are written to ``<cache>/served.json``. A worker that starts while
    the registry is unreachable serves those (:meth:`offline`, :meth:`load_cached`).
    Versions are immutable in the registry, so the version number is the key; the cached
    copy also records its ``source`` URI and is fetched again when the registry names a
    different one (a registry rebuilt from scratch reuses numbers).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = cache_dir(settings)
        # MLflow retries an unreachable server for minutes by default; the watcher
        # retries on its own schedule and must notice an outage quickly.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self._registry: Any = None

    def ping(self) -> None:
        # MLflow is imported here, not at app start: without it the router still serves
        # its data endpoints and the watcher reports the ImportError as the registry state.
        from dethrone.pipeline.context import configure_mlflow
        from dethrone.registry.client import Registry

        configure_mlflow(self.settings)  # raises RegistryError when the server is down
        if self._registry is None:
            self._registry = Registry(self.settings)

    def lookup(self, alias: str) -> tuple[str, dict[str, str]] | None:
        found = self._registry.alias_version(alias)
        return None if found is None else (str(found.version), dict(found.tags or {}))

    def load(self, version: str) -> LoadedModel:
        if self.cache is None:
            return self._load(f"models:/{self.settings.model_name}/{version}")
        return self._load(str(self._download(version)))

    # --- the local cache ------------------------------------------------------------
    def _download(self, version: str) -> Path:
        import mlflow.artifacts

        assert self.cache is not None
        folder = self.cache / version
        source = str(self._registry.model_version(version).source) if self._registry else ""
        meta = folder / "dethrone-cache.json"
        if meta.exists():
            try:
                if json.loads(meta.read_text()).get("source") == source:
                    return folder / "model"
            except (OSError, ValueError):
                pass
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.cache))
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{self.settings.model_name}/{version}",
                dst_path=str(tmp / "model"),
            )
            (tmp / "dethrone-cache.json").write_text(json.dumps({"source": source}))
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.rename(tmp, folder)
            except OSError:  # another worker renamed its copy first: use that one
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder / "model"

    def remember(self, served: dict[str, str | None]) -> None:
        """Record the versions served now (``served.json``) and drop old cached versions."""
        if self.cache is None:
            return
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
            path = self.cache / "served.json"
            tmp = path.with_name(f".served-{os.getpid()}.json")
            tmp.write_text(json.dumps(served))
            os.replace(tmp, path)
            keep = {v for v in served.values() if v}
            old = sorted(
                (p for p in self.cache.iterdir() if p.is_dir() and not p.name.startswith(".")),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            )
            for extra in [p for p in old if p.name not in keep][CACHE_KEEP:]:
                shutil.rmtree(extra, ignore_errors=True)
        except OSError as exc:  # a full or read-only disk must not stop serving
            log.warning("model cache not updated: %s", exc)

    def offline(self) -> dict[str, str]:
        """``{alias: version}`` served last and present in the cache (empty: none)."""
        if self.cache is None:
            return {}
        try:
            served = json.loads((self.cache / "served.json").read_text())
        except (OSError, ValueError):
            return {}
        return {
            a: str(v)
            for a, v in served.items()
            if a in ALIASES and v and (self.cache / str(v) / "dethrone-cache.json").exists()
        }

    def load_cached(self, version: str) -> LoadedModel:
        """Load a cached version without the registry."""
        assert self.cache is not None
        return self._load(str(self.cache / version / "model"))

    def _load(self, uri: str) -> LoadedModel:
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(uri)
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

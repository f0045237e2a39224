"""The served models: what a loaded version is, and where versions come from.

Models are loaded from MLflow by alias through ``mlflow.pyfunc`` (skops or cloudpickle
scikit-learn, LightGBM, XGBoost or a custom ``PythonModel`` all work), with the input
contract of their signature (:class:`Feature`). Each worker's
:class:`~dethrone_router.gateway.watcher.ModelWatcher` re-checks the aliases and hot-swaps.

A scikit-learn model is compiled when loaded (``SERVING_COMPILE=auto``,
:mod:`dethrone_router.gateway.compiled`): verified against its own ``predict`` on its
reference rows - a sample of the training data stored with its run
(:meth:`dethrone.registry.client.Registry.training_sample`, kept in the local model cache
next to the model) plus its input example - before the compiled path serves it. Without
reference rows, or when verification disagrees, the model's own methods serve and
:attr:`LoadedModel.scoring` says why.
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
from dethrone_router.gateway.compiled import CompiledModel, compile_model, parse_mode

log = logging.getLogger("dethrone_router.api.serving")
ALIASES = (CHAMPION, CHALLENGER)
#: versions kept in the local model cache besides the ones served now
CACHE_KEEP = 4
#: training rows sampled as the reference rows a compiled model is verified on
REFERENCE_ROWS = 500
#: the sample's file in a cached version's folder
REFERENCE_FILE = "reference.parquet"
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
    #: how the version scores (compiled or the model's own methods) and why; None: the
    #: source does not compile (then :attr:`compile_reason` says why)
    scoring: CompiledModel | None = None
    #: ``score(rows, want_proba) -> (labels, proba)`` for a DataFrame *or* a ``column ->
    #: array`` mapping (the batcher then builds no DataFrame); None: ``predict`` and
    #: ``predict_proba`` on a DataFrame
    score: Callable[[Any, bool], tuple[Any, Any]] | None = None
    compile_reason: str = "the model source does not compile"

    def scoring_status(self) -> dict[str, Any]:
        """``/health``'s view: compiled or not, why, and this worker's calls by path."""
        cm = self.scoring
        if cm is None:
            return {"compiled": False, "reason": self.compile_reason}
        return {
            "compiled": cm.compiled,
            "reason": cm.reason,
            "checked_rows": cm.checked_rows,
            "compiled_bytes": cm.nbytes,
            "calls": {"compiled": cm.calls.compiled, "delegated": cm.calls.delegated},
        }


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
            return self._load(
                f"models:/{self.settings.model_name}/{version}", self._training_sample(version)
            )
        folder = self._download(version)
        return self._load(str(folder), self._cached_reference(version, folder.parent))

    # --- reference rows of compiled scoring ---------------------------------------------
    def _training_sample(self, version: str) -> pd.DataFrame | None:
        """A sample of ``version``'s training rows from its run (None: none stored, or
        the compile is off: no download for nothing)."""
        if self._registry is None or parse_mode(self.settings.serving_compile) == "off":
            return None
        try:
            return self._registry.training_sample(version, REFERENCE_ROWS)
        except Exception as exc:  # noqa: BLE001 - no sample: verify on the input example
            log.info("no training sample for version %s: %s", version, str(exc)[:200])
            return None

    def _cached_reference(
        self, version: str, folder: Path, *, fetch: bool = True
    ) -> pd.DataFrame | None:
        """The cached version's training sample, fetched into the folder when missing
        (``fetch=False``: the registry is down, only the cached copy)."""
        path = folder / REFERENCE_FILE
        if path.exists():
            try:
                return pd.read_parquet(path)
            except (OSError, ValueError) as exc:
                log.warning("cached reference rows of version %s unreadable: %s", version, exc)
        sample = self._training_sample(version) if fetch else None
        if sample is not None:
            try:
                tmp = folder / f".{REFERENCE_FILE}-{os.getpid()}"
                sample.to_parquet(tmp)
                os.replace(tmp, path)
            except (OSError, ValueError) as exc:  # a full disk: verify on it uncached
                log.warning("reference rows of version %s not cached: %s", version, exc)
        return sample

    # --- the local cache ------------------------------------------------------------
    def _download(self, version: str) -> Path:
        import mlflow.artifacts  # lazy: mlflow stays off the router's start (see ping)

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
        folder = self.cache / version
        reference = self._cached_reference(version, folder, fetch=False)
        return self._load(str(folder / "model"), reference)

    def _load(self, uri: str, reference: pd.DataFrame | None = None) -> LoadedModel:
        import mlflow.pyfunc  # lazy: mlflow stays off the router's start (see ping)

        return from_pyfunc(
            mlflow.pyfunc.load_model(uri),
            mode=parse_mode(self.settings.serving_compile),
            reference=reference,
            target=self.settings.target,
        )


def _gateway_dtypes(frame: pd.DataFrame, features: tuple[Feature, ...] | None) -> pd.DataFrame:
    """``frame``'s signature columns with the dtypes the gateway builds for requests (numbers
    float64, integers int64, text object with NaN for missing), so verification sees what
    serving will; a column that does not convert is kept as it is."""
    if features is None:
        return frame
    out = {}
    for feat in features:
        if feat.name not in frame.columns:
            continue
        col = frame[feat.name]
        try:
            if feat.kind == "number":
                col = col.astype("float64")
            elif feat.kind == "string":
                col = pd.Series(col.to_numpy(dtype=object), index=col.index, dtype=object)
                col = col.where(col.notna(), np.nan)
            elif feat.kind == "integer" and not col.isna().any():
                col = col.astype("int64")
            elif feat.kind == "boolean" and not col.isna().any():
                col = col.astype("bool")
        except (TypeError, ValueError):
            pass
        out[feat.name] = col
    return pd.DataFrame(out, index=frame.index)


def reference_rows(
    sample: pd.DataFrame | None,
    example: Any,
    features: tuple[Feature, ...] | None,
    target: str | None = None,
) -> pd.DataFrame | None:
    """The rows a compiled model is verified on: the training ``sample`` and the input
    ``example``, as the gateway's requests (:func:`_gateway_dtypes`); None when neither has
    every required signature column."""
    parts = []
    for part in (sample, example):
        if part is None:
            continue
        try:
            frame = part if isinstance(part, pd.DataFrame) else pd.DataFrame(part)
        except (TypeError, ValueError):
            continue
        if features is not None:
            if any(f.required and f.name not in frame.columns for f in features):
                continue
        elif target and target in frame.columns:
            frame = frame.drop(columns=[target])
        frame = _gateway_dtypes(frame, features)
        if len(frame):
            parts.append(frame.reset_index(drop=True))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def from_pyfunc(
    model: Any, *, mode: str = "auto", reference: pd.DataFrame | None = None, target: str = ""
) -> LoadedModel:
    """A :class:`LoadedModel` of an ``mlflow.pyfunc`` model; a scikit-learn one is compiled
    (``mode``) and verified on ``reference`` (a training sample) plus its input example."""
    try:
        raw = model.get_raw_model()
    except Exception:  # noqa: BLE001 - flavours without a raw model: labels only
        raw = None
    features = _features(model.metadata)
    classes = getattr(raw, "classes_", None)
    classes = None if classes is None else tuple(np.asarray(classes).tolist())
    loader = model.metadata.flavors.get("python_function", {}).get("loader_module")
    if loader == "mlflow.sklearn" and hasattr(raw, "predict"):
        # pyfunc's sklearn wrapper only enforces the signature (done by the gateway
        # already, to the same dtypes) before calling the model: skipping it saves ~2 ms.
        try:
            example = model.input_example
        except Exception:  # noqa: BLE001 - no or unreadable example: the sample alone
            example = None
        rows = reference_rows(reference, example, features, target)
        cm = compile_model(raw, rows, mode=mode)
        log.info(
            "scikit-learn model %s: %s (%s)",
            type(raw).__name__,
            "compiled" if cm.compiled else "not compiled",
            cm.reason,
        )
        predict_proba = cm.predict_proba if classes is not None else None
        return LoadedModel(
            predict=lambda frame: _as_array(cm.predict(frame)),
            predict_proba=None
            if predict_proba is None
            else (lambda frame: np.asarray(predict_proba(frame))),
            features=features,
            classes=classes,
            scoring=cm,
            score=cm.score,
        )
    proba = getattr(raw, "predict_proba", None)
    predict = model.predict
    return LoadedModel(
        predict=lambda frame: _as_array(predict(frame)),
        predict_proba=None if proba is None else (lambda frame: np.asarray(proba(frame))),
        features=features,
        classes=classes,
        compile_reason=f"not a scikit-learn model (pyfunc loader {loader})",
    )

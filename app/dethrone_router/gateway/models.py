"""The served models: what a loaded version is, and where versions come from.

Models are loaded from MLflow by alias through ``mlflow.pyfunc`` (skops or cloudpickle
scikit-learn, LightGBM, XGBoost or a custom ``PythonModel`` all work), with the input
contract of their signature (:class:`Feature`). Each worker's
:class:`~dethrone_router.gateway.watcher.ModelWatcher` re-checks the aliases and hot-swaps.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dethrone.registry.records import CHALLENGER, CHAMPION, Decision
from dethrone.settings import Settings
from dethrone_router.gateway.batching import MicroBatcher

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
        from dethrone.pipeline.context import configure_mlflow
        from dethrone.registry.client import Registry

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

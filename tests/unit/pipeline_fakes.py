"""In-memory stand-ins for the pipeline's collaborators (no network, no MLflow server).

``FakeMlflowClient`` implements the part of ``MlflowClient`` the registry uses, with the
same "does not exist" errors, and can cut the connection after a given number of calls.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
)

from dethrone.pipeline.context import PipelineContext
from dethrone.registry.client import Registry
from dethrone.settings import Settings
from dethrone.slices.router_client import ABSlices


def _missing(what: str) -> MlflowException:
    return MlflowException(f"{what} not found", error_code=RESOURCE_DOES_NOT_EXIST)


class Cut(MlflowException):
    """What MLflow raises when its HTTP request fails."""

    def __init__(self, name: str):
        super().__init__(
            f"API request to fake for {name} failed with exception ConnectionError",
            error_code=INTERNAL_ERROR,
        )


class FakeMlflowClient:
    """Registered models, versions, aliases, runs and tags held in dicts.

    ``cut_after`` (number of calls) makes every later call fail like a cut connection;
    ``calls`` counts the calls so far.
    """

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, str]] = {}
        self.calls = 0
        self.cut_after: int | None = None

    def _count(self, name: str) -> None:
        if self.cut_after is not None and self.calls >= self.cut_after:
            raise Cut(name)
        self.calls += 1

    def _model(self, name: str) -> dict[str, Any]:
        if name not in self.models:
            raise _missing(f"registered model {name}")
        return self.models[name]

    def _version(self, name: str, version: str) -> SimpleNamespace:
        found = self._model(name)["versions"].get(str(version))
        if found is None:
            raise _missing(f"version {version} of {name}")
        return found

    # --- used by tests to set things up (not counted) --------------------------------
    def add_run(self, run_id: str, tags: dict[str, str]) -> None:
        self.runs[run_id] = dict(tags)

    def add_version(self, name: str, run_id: str, tags: dict[str, str] | None = None) -> str:
        model = self.models.setdefault(name, {"versions": {}, "aliases": {}, "tags": {}})
        number = str(len(model["versions"]) + 1)
        model["versions"][number] = SimpleNamespace(
            version=number, run_id=run_id, tags=dict(tags or {})
        )
        return number

    # --- the MlflowClient API -----------------------------------------------------
    def get_model_version_by_alias(self, name: str, alias: str) -> SimpleNamespace:
        self._count("get_model_version_by_alias")
        version = self._model(name)["aliases"].get(alias)
        if version is None:
            raise MlflowException(f"alias {alias} not found", error_code=INVALID_PARAMETER_VALUE)
        return self._version(name, version)

    def get_model_version(self, name: str, version: str) -> SimpleNamespace:
        self._count("get_model_version")
        return self._version(name, version)

    def search_model_versions(self, filter_string: str) -> list[SimpleNamespace]:
        self._count("search_model_versions")
        found = re.search(r"name = '([^']*)'", filter_string)
        assert found is not None, filter_string
        name = found.group(1)
        wanted = dict(re.findall(r"tags\.`([^`]*)` = '([^']*)'", filter_string))
        if name not in self.models:
            return []
        return [
            v
            for v in self.models[name]["versions"].values()
            if all(v.tags.get(k) == val for k, val in wanted.items())
        ]

    def get_run(self, run_id: str) -> SimpleNamespace:
        self._count("get_run")
        if run_id not in self.runs:
            raise _missing(f"run {run_id}")
        return SimpleNamespace(data=SimpleNamespace(tags=self.runs[run_id]))

    def get_experiment_by_name(self, name: str) -> None:
        self._count("get_experiment_by_name")
        return None  # no runs logged: status shows only the registry

    def get_registered_model(self, name: str) -> SimpleNamespace:
        self._count("get_registered_model")
        return SimpleNamespace(name=name, tags=dict(self._model(name)["tags"]))

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._count("set_registered_model_alias")
        self._version(name, version)
        self._model(name)["aliases"][alias] = str(version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._count("delete_registered_model_alias")
        self._model(name)["aliases"].pop(alias, None)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._count("set_model_version_tag")
        self._version(name, version).tags[key] = value

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._count("set_registered_model_tag")
        self._model(name)["tags"][key] = value

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._count("delete_registered_model_tag")
        self._model(name)["tags"].pop(key, None)


class InMemoryRegistry(Registry):
    """The real :class:`Registry` logic on a :class:`FakeMlflowClient`.

    Only what needs MLflow's artifact store is replaced: registration and loading of
    models and profiles (kept in dicts).
    """

    def __init__(self, settings: Settings | None = None):
        self.fake = FakeMlflowClient()
        super().__init__(settings or Settings(model_name="m"), client=self.fake)
        #: training run id -> (model, reference profile), filled by FakeTracker
        self.artifacts: dict[str, tuple[Any, Any]] = {}
        self.outputs: dict[str, Any] = {}

    def register(self, run_id: str, *, dag_run_id: str, role: str) -> Any:
        from dethrone.registry.records import RunIdentity, TrainingRecord

        existing = self.find_registered(dag_run_id, role)
        if existing is not None:
            return existing
        tags = {
            **RunIdentity(role=role, dag_run_id=dag_run_id).to_tags(),
            **TrainingRecord(training_run_id=run_id).to_tags(),
        }
        return self.fake._version(self.name, self.fake.add_version(self.name, run_id, tags))

    def load_model(self, version: str | int) -> Any:
        return self.artifacts[self.model_version(version).run_id][0]

    def load_profile(self, version: str | int) -> Any:
        return self.artifacts[self.model_version(version).run_id][1]

    def load_outputs_profile(self, version: str | int) -> Any:
        return self.outputs.get(self.model_version(version).run_id)


@dataclass
class FakeRouter:
    """Serves fixed rows; ``share_a`` is the split its /ab_data answer reports."""

    frame: pd.DataFrame
    share_a: float = 0.5
    config_version: str = "3"
    calls: list[tuple[str, Any]] = field(default_factory=list)
    #: the ``source`` of every set_traffic call (the router's history keeps it)
    sources: list[str | None] = field(default_factory=list)
    #: the experiment each set_traffic call was made by (its lock header)
    as_experiment: list[str | None] = field(default_factory=list)

    def get_data(self, *, seed: int | None = None) -> pd.DataFrame:
        self.calls.append(("get_data", seed))
        return self.frame.copy()

    def get_traffic(self) -> dict[str, Any]:
        # A config changed after the slice was cut: a step must not trust this.
        self.calls.append(("get_traffic", None))
        return {"a": 0.5, "b": 0.5}

    def set_traffic(
        self, *, source: str | None = None, as_experiment: str | None = None, **config: Any
    ) -> dict[str, Any]:
        """Store serving fields like POST /traffic; answer the config with its version."""
        self.calls.append(("set_traffic", dict(config)))
        self.sources.append(source)
        self.as_experiment.append(as_experiment)
        self.config = {**getattr(self, "config", {}), **config}
        self.config_version = str(int(self.config_version) + 1)
        return {**self.config, "version": int(self.config_version)}

    def ab_slices(self, *, seed: int | None = None) -> ABSlices:
        self.calls.append(("ab_slices", seed))
        n_a = round(self.share_a * len(self.frame))
        return ABSlices(
            self.frame.iloc[:n_a].copy(),
            self.frame.iloc[n_a:].copy(),
            self.share_a,
            self.config_version,
        )


@dataclass
class FakeStager:
    """Frames in a dict under ``mem://`` URIs."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def put(self, frame: pd.DataFrame, key: str) -> str:
        self.frames[f"mem://{key}"] = frame.copy()
        return f"mem://{key}"

    def get(self, uri: str) -> pd.DataFrame:
        return self.frames[uri].copy()


@dataclass
class FakeTracker:
    """Records what would be logged; training runs get their tags in the fake client."""

    registry: InMemoryRegistry
    logged: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def log_training_run(
        self,
        result,
        frame,
        profile,
        settings,
        *,
        dag_run_id,
        role,
        data_uri=None,
        outputs_profile=None,
    ) -> str:
        from dethrone.registry.records import ModelInfo, RunIdentity

        run_id = f"run-{next(self._ids)}"
        info = ModelInfo(
            features=result.features,
            categorical=result.categorical,
            numeric=result.numeric,
            target=result.target,
            task=result.task,
        )
        self.registry.artifacts[run_id] = (result.model, profile)
        if outputs_profile is not None:
            self.registry.outputs[run_id] = outputs_profile
        identity = RunIdentity(role=role, dag_run_id=dag_run_id)
        self.registry.fake.add_run(run_id, {**identity.to_tags(), **info.to_tags()})
        self.logged.append(
            ("training", {"run_id": run_id, "rows": len(frame), "data_uri": data_uri})
        )
        return run_id

    def log_drift(self, report, html, settings, *, dag_run_id, champion_version) -> str:
        self.logged.append(("drift", {"report": report, "html": html}))
        return f"drift-{next(self._ids)}"

    def log_comparison(
        self, decision, loss_a, loss_b, settings, *, record, extra_metrics=None
    ) -> str:
        self.logged.append(("comparison", {"decision": decision, "record": record}))
        return f"cmp-{next(self._ids)}"


def make_context(frame: pd.DataFrame, **settings: Any) -> PipelineContext:
    """A context of fakes serving ``frame``; ``settings`` override small defaults."""
    s = Settings(model_name="m", cv_folds=2, ab_min_rows_per_arm=20, ab_n_boot=200, **settings)
    registry = InMemoryRegistry(s)
    return PipelineContext(
        settings=s,
        registry=registry,
        router=FakeRouter(frame),
        stager=FakeStager(),
        tracker=FakeTracker(registry),
    )

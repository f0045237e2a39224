"""The collaborators of a pipeline run, as the steps call them.

:class:`~dethrone.pipeline.context.PipelineContext` holds one of each. The real ones are
:class:`~dethrone.registry.client.Registry`, :class:`~dethrone.slices.router_client.RouterClient`,
:class:`~dethrone.pipeline.staging.Stager` and the module
:mod:`dethrone.registry.mlflow_logging`; the unit tests pass the in-memory fakes of
``tests/unit/pipeline_fakes.py``. The registry and the router extend the live experiment's
(:mod:`dethrone.experiments.protocols`), because a step starts a live experiment with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dethrone.experiments.protocols import ExperimentRegistry, ExperimentRouter

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from dethrone.pipeline.training import TrainResult
    from dethrone.registry.records import Decision, ModelInfo
    from dethrone.settings import Settings
    from dethrone.slices.router_client import ABSlices


@runtime_checkable
class PipelineRegistry(ExperimentRegistry, Protocol):
    """The registry as the steps use it: also registration, model info and stored artifacts."""

    def register(self, run_id: str, *, dag_run_id: str, role: str) -> Any: ...

    def model_info(self, version: str | int) -> ModelInfo: ...

    def load_model(self, version: str | int) -> Any: ...

    def load_profile(self, version: str | int) -> Any: ...

    def load_outputs_profile(self, version: str | int) -> Any: ...


@runtime_checkable
class PipelineRouter(ExperimentRouter, Protocol):
    """The router's client as the steps use it: also the A/B slices."""

    def ab_slices(self, *, seed: int | None = None) -> ABSlices: ...


@runtime_checkable
class FrameStager(Protocol):
    """Where frames travel between tasks (:class:`~dethrone.pipeline.staging.Stager`)."""

    def put(self, frame: pd.DataFrame, key: str) -> str: ...

    def get(self, uri: str) -> pd.DataFrame: ...


@runtime_checkable
class PipelineTracker(Protocol):
    """Where training, drift and comparison runs are logged (default: the module
    :mod:`dethrone.registry.mlflow_logging`)."""

    def log_training_run(
        self,
        result: TrainResult,
        frame: pd.DataFrame,
        profile: Any,
        settings: Settings,
        *,
        dag_run_id: str,
        role: str,
        data_uri: str | None = None,
        outputs_profile: Any = None,
    ) -> str: ...

    def log_drift(
        self,
        report: Any,
        html: str | None,
        settings: Settings,
        *,
        dag_run_id: str,
        champion_version: str,
    ) -> str: ...

    def log_comparison(
        self,
        decision: Any,
        loss_a: np.ndarray,
        loss_b: np.ndarray,
        settings: Settings,
        *,
        record: Decision,
        extra_metrics: dict[str, float] | None = None,
    ) -> str: ...

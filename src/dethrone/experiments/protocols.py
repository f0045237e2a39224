"""The collaborators of a live experiment, as the lifecycle calls them.

:class:`~dethrone.experiments.state.ExperimentContext` holds one of each. The real ones are
:class:`~dethrone.registry.client.Registry`, :class:`~dethrone.slices.router_client.RouterClient`
and :class:`~dethrone.experiments.tracking.Tracker`; tests pass in-memory fakes. Each
Protocol lists exactly the methods the experiment code (and the commands that build an
:class:`ExperimentContext`) call, so a fake only needs those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from dethrone.registry.records import Decision, LiveExperiment, Look


@runtime_checkable
class ModelRegistryClient(Protocol):
    """The MLflow client calls made directly (the names and arguments of ``MlflowClient``)."""

    def get_registered_model(self, name: str) -> Any: ...

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None: ...

    def delete_registered_model_alias(self, name: str, alias: str) -> None: ...

    def get_model_version(self, name: str, version: str) -> Any: ...

    def search_model_versions(self, filter_string: str) -> Any: ...

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> None: ...

    def copy_model_version(self, src_model_uri: str, dst_name: str) -> Any: ...


@runtime_checkable
class ExperimentRegistry(Protocol):
    """The model registry: aliases, version tags, decisions, promotion and rollback."""

    @property
    def name(self) -> str:
        """The registered model's name."""
        ...

    @property
    def client(self) -> ModelRegistryClient:
        """The MLflow client the registry wraps."""
        ...

    def alias_version(self, alias: str) -> Any | None: ...

    def model_version(self, version: str | int) -> Any: ...

    def set_alias(self, alias: str, version: str | int) -> None: ...

    def tag_version(self, version: str | int, tags: dict[str, str]) -> None: ...

    def record_decision(self, version: str | int, decision: Decision) -> None: ...

    def promote(self, version: str | int, decision: Decision | None = None) -> dict[str, Any]: ...

    def rollback(self, reason: str = ...) -> dict[str, Any]: ...

    def finish_pending(self) -> dict[str, Any] | None: ...


@runtime_checkable
class ExperimentRouter(Protocol):
    """The traffic router's client: its serving config and its data slices."""

    def set_traffic(
        self, *, source: str | None = None, as_experiment: str | None = None, **config: Any
    ) -> dict[str, Any]: ...

    def get_data(self, *, seed: int | None = None) -> pd.DataFrame: ...


@runtime_checkable
class ExperimentTracker(Protocol):
    """Where an experiment's run and its looks are recorded."""

    def start_run(self, rec: LiveExperiment) -> str: ...

    def update(self, rec: LiveExperiment) -> None: ...

    def log_look(self, rec: LiveExperiment, look: Look) -> list[dict[str, Any]]: ...

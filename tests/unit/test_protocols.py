"""The in-memory fakes satisfy the collaborators' Protocols, and so do the real classes.

Checked twice: at run time (the Protocols are ``runtime_checkable``: every member exists)
and statically, because this file is in mypy's ``files`` (pyproject.toml): the annotated
assignments in :func:`_conformance` fail ``make lint`` when a fake or a real collaborator
drifts from a Protocol's signatures.
"""

from __future__ import annotations

import pandas as pd

from dethrone.experiments import tracking
from dethrone.experiments.protocols import (
    ExperimentRegistry,
    ExperimentRouter,
    ExperimentTracker,
    ModelRegistryClient,
)
from dethrone.pipeline.protocols import (
    FrameStager,
    PipelineRegistry,
    PipelineRouter,
    PipelineTracker,
)
from dethrone.pipeline.staging import Stager
from dethrone.registry import mlflow_logging
from dethrone.registry.client import Registry
from dethrone.settings import Settings
from dethrone.slices.router_client import RouterClient
from tests.unit.pipeline_fakes import (
    FakeRouter,
    FakeStager,
    FakeTracker,
    InMemoryRegistry,
)


def _fakes() -> tuple[InMemoryRegistry, FakeRouter, FakeStager, FakeTracker]:
    registry = InMemoryRegistry(Settings(model_name="m"))
    return registry, FakeRouter(pd.DataFrame({"x": [1]})), FakeStager(), FakeTracker(registry)


def _conformance(
    registry: Registry, router: RouterClient, stager: Stager, tracker: tracking.Tracker
) -> None:
    """Never called: mypy checks these assignments (structural subtyping)."""
    fake_registry, fake_router, fake_stager, fake_tracker = _fakes()
    pipeline_registry: PipelineRegistry = fake_registry
    pipeline_router: PipelineRouter = fake_router
    frame_stager: FrameStager = fake_stager
    pipeline_tracker: PipelineTracker = fake_tracker
    experiment_registry: ExperimentRegistry = fake_registry
    experiment_router: ExperimentRouter = fake_router
    # the real collaborators, as PipelineContext.from_settings and
    # ExperimentContext.from_settings build them
    pipeline_registry = registry
    pipeline_router = router
    frame_stager = stager
    pipeline_tracker = mlflow_logging
    experiment_tracker: ExperimentTracker = tracker
    client: ModelRegistryClient = registry.client
    del pipeline_registry, pipeline_router, frame_stager, pipeline_tracker
    del experiment_registry, experiment_router, experiment_tracker, client


def test_fakes_have_every_member_of_the_protocols():
    registry, router, stager, tracker = _fakes()
    assert isinstance(registry, PipelineRegistry)
    assert isinstance(registry, ExperimentRegistry)
    assert isinstance(router, PipelineRouter)
    assert isinstance(router, ExperimentRouter)
    assert isinstance(stager, FrameStager)
    assert isinstance(tracker, PipelineTracker)


def test_the_real_tracking_module_has_every_member_of_the_tracker_protocol():
    assert isinstance(mlflow_logging, PipelineTracker)

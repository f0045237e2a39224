"""The collaborators of a pipeline run, built once from settings, and MLflow's configuration.

:func:`configure_mlflow` is the one place that points the MLflow client libraries at a
tracking server (credentials, S3 endpoint, request retries and timeout, health check).
:class:`PipelineContext` holds what every pipeline step needs; the DAG and the command
line build it with :meth:`PipelineContext.from_settings`, tests build it from fakes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

import mlflow
import requests

from dethrone.pipeline.protocols import (
    FrameStager,
    PipelineRegistry,
    PipelineRouter,
    PipelineTracker,
)
from dethrone.pipeline.staging import Stager
from dethrone.registry import mlflow_logging
from dethrone.registry.client import Registry, RegistryError
from dethrone.settings import Settings
from dethrone.slices.router_client import RouterClient

# Settings whose values the MLflow client (and boto3 under it) read from the environment.
_MLFLOW_ENV = {
    "MLFLOW_TRACKING_USERNAME": "mlflow_tracking_username",
    "MLFLOW_TRACKING_PASSWORD": "mlflow_tracking_password",
    "MLFLOW_S3_ENDPOINT_URL": "mlflow_s3_endpoint_url",
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "mlflow_http_request_max_retries",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "mlflow_http_request_timeout",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "mlflow_http_request_backoff_factor",
}


def configure_mlflow(settings: Settings, *, check: bool = True) -> None:
    """Point the MLflow client libraries at ``settings``.

    MLflow reads credentials, the S3 endpoint and its HTTP retry/timeout limits only from
    the process environment, so they are exported here (and nowhere else). The retry
    limits bound how long a dead server can stall a task: MLflow's own defaults retry
    for about four minutes.

    Parameters
    ----------
    settings : Settings
        Tracking URI, credentials, S3 endpoint, HTTP retries and timeout.
    check : bool
        Fail fast with a clear :class:`~dethrone.registry.client.RegistryError` when an HTTP
        tracking server does not answer ``/health``.
    """
    for env, name in _MLFLOW_ENV.items():
        value = getattr(settings, name)
        if value not in ("", None):
            os.environ[env] = str(value)
    uri = settings.mlflow_tracking_uri
    if check and urlparse(uri).scheme in ("http", "https"):
        timeout = min(5.0, float(settings.mlflow_http_request_timeout))
        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=timeout).raise_for_status()
        except requests.RequestException as exc:
            raise RegistryError(
                f"MLflow tracking server at {uri} is not reachable: {exc}. "
                f"Start it (dethrone up) or set MLFLOW_TRACKING_URI."
            ) from exc
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


@dataclass(frozen=True)
class PipelineContext:
    """Everything a pipeline step talks to.

    Attributes
    ----------
    settings : Settings
    registry : PipelineRegistry
        Aliases, versions, stored models and profiles (default
        :class:`~dethrone.registry.client.Registry`).
    router : PipelineRouter
        The traffic router (slices, A/B slices; default
        :class:`~dethrone.slices.router_client.RouterClient`).
    stager : FrameStager
        Where frames travel between tasks (default :class:`~dethrone.pipeline.staging.Stager`).
    tracker : PipelineTracker
        ``log_training_run``, ``log_drift`` and ``log_comparison`` (default
        :mod:`dethrone.registry.mlflow_logging`).

    The collaborators' Protocols are in :mod:`dethrone.pipeline.protocols`.
    """

    settings: Settings
    registry: PipelineRegistry
    router: PipelineRouter
    stager: FrameStager
    tracker: PipelineTracker

    @classmethod
    def from_settings(cls, settings: Settings, *, check: bool = True) -> PipelineContext:
        """Configure MLflow once and build the real collaborators for ``settings``."""
        configure_mlflow(settings, check=check)
        return cls(
            settings=settings,
            registry=Registry(settings),
            router=RouterClient.from_settings(settings),
            stager=Stager(settings),
            tracker=mlflow_logging,
        )

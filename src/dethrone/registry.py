"""The MLflow model registry as dethrone uses it: aliases, never stages.

* ``@champion`` is the model in production, ``@challenger`` the one under test and
  ``@previous-champion`` the one a promotion replaced (what ``rollback`` returns to).
* Each version's run stores the training data and its drift ``ReferenceProfile``, so
  drift is always measured against the model that is actually in production.
* Registration is idempotent per DAG run: a version carries the tags
  ``dethrone.dag_run_id`` and ``dethrone.role``, and a retried task finds it instead of
  registering a second one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from dethrone.settings import Settings

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
TAG_DAG_RUN, TAG_ROLE = "dethrone.dag_run_id", "dethrone.role"
#: prefix of the decision record's tags on a version (``dethrone.decision.outcome``, ...)
TAG_DECISION = "dethrone.decision."
PROFILE_PATH, TRAINING_DATA_PATH = "reference/profile.npz", "data/training.parquet"
MODEL_NAME_IN_RUN = "model"


class RegistryError(RuntimeError):
    """The tracking server is unreachable or the registry is not in the expected state."""


def configure_mlflow(settings: Settings) -> None:
    """Point the MLflow client libraries at ``settings`` (tracking URI, auth, S3 endpoint).

    Also fails fast with a clear :class:`RegistryError` when an HTTP tracking server does
    not answer ``/health``: MLflow's own client would retry for minutes before failing.
    """
    import mlflow

    for env, value in (("MLFLOW_TRACKING_USERNAME", settings.mlflow_tracking_username),
                       ("MLFLOW_TRACKING_PASSWORD", settings.mlflow_tracking_password),
                       ("MLFLOW_S3_ENDPOINT_URL", settings.mlflow_s3_endpoint_url),
                       ("AWS_ACCESS_KEY_ID", settings.aws_access_key_id),
                       ("AWS_SECRET_ACCESS_KEY", settings.aws_secret_access_key)):
        if value:
            os.environ[env] = value
    uri = settings.mlflow_tracking_uri
    if urlparse(uri).scheme in ("http", "https"):
        import requests

        try:
            requests.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise RegistryError(f"MLflow tracking server at {uri} is not reachable: {exc}. "
                                f"Start it (dethrone up) or set MLFLOW_TRACKING_URI.") from exc
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


class Registry:
    """Aliases, versions and their stored reference data for ``settings.model_name``.

    Parameters
    ----------
    settings : Settings
        Tracking URI, model name and experiment names.
    check : bool
        Check that the tracking server answers before doing anything.
    """

    def __init__(self, settings: Settings, *, check: bool = True):
        from mlflow.tracking import MlflowClient

        self.settings = settings
        self.name = settings.model_name
        if check:
            configure_mlflow(settings)
        self.client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri,
                                   registry_uri=settings.mlflow_tracking_uri)

    # --- reading ----------------------------------------------------------------
    def version(self, alias: str) -> Any | None:
        """The ``ModelVersion`` behind ``alias``, or ``None`` when unset or no model exists."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def get(self, version: str | int) -> Any:
        """The ``ModelVersion`` with number ``version``."""
        return self.client.get_model_version(self.name, str(version))

    def find_registered(self, dag_run_id: str, role: str) -> Any | None:
        """The version registered for (``dag_run_id``, ``role``), if a previous try did it."""
        found = self.client.search_model_versions(
            f"name = '{self.name}' and tags.`{TAG_DAG_RUN}` = '{dag_run_id}' "
            f"and tags.`{TAG_ROLE}` = '{role}'")
        return min(found, key=lambda v: int(v.version)) if found else None

    def model_info(self, version: str | int) -> dict[str, Any]:
        """Features, categorical columns, target and task of ``version`` (from its run)."""
        run = self.client.get_run(self.get(version).run_id)
        raw = run.data.tags.get("dethrone.model_info")
        if not raw:
            raise RegistryError(f"version {version} of {self.name} has no dethrone.model_info "
                                f"tag; it was not registered by dethrone")
        return json.loads(raw)

    def load_model(self, version: str | int) -> Any:
        """The scikit-learn pipeline of ``version``."""
        import mlflow.sklearn

        return mlflow.sklearn.load_model(f"models:/{self.name}/{version}")

    def _download(self, version: str | int, path: str, dst: str) -> Path:
        import mlflow.artifacts

        run_id = self.get(version).run_id
        return Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=dst,
            tracking_uri=self.settings.mlflow_tracking_uri))

    def load_profile(self, version: str | int) -> Any:
        """The drift ``ReferenceProfile`` stored with ``version``'s training run."""
        from dethrone.drift import ReferenceProfile

        with tempfile.TemporaryDirectory() as tmp:
            return ReferenceProfile.load(self._download(version, PROFILE_PATH, tmp))

    def load_training_data(self, version: str | int) -> pd.DataFrame:
        """The rows ``version`` was trained on."""
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_parquet(self._download(version, TRAINING_DATA_PATH, tmp))

    # --- writing ----------------------------------------------------------------
    def register(self, run_id: str, *, dag_run_id: str, role: str) -> Any:
        """Register the model logged by ``run_id`` once per (``dag_run_id``, ``role``).

        Returns the existing version when a retried task calls this again.
        """
        import mlflow

        existing = self.find_registered(dag_run_id, role)
        if existing is not None:
            return existing
        model_id = self.client.get_run(run_id).data.tags.get("dethrone.model_id")
        uri = f"models:/{model_id}" if model_id else f"runs:/{run_id}/{MODEL_NAME_IN_RUN}"
        # Tags go in with the version itself, so there is no window in which a version
        # exists without the tag that makes registration idempotent.
        return mlflow.register_model(uri, self.name, tags={
            TAG_DAG_RUN: dag_run_id, TAG_ROLE: role, "dethrone.training_run_id": run_id})

    def set_alias(self, alias: str, version: str | int) -> None:
        """Point ``alias`` at ``version``."""
        self.client.set_registered_model_alias(self.name, alias, str(version))

    def _tag(self, version: str | int, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            self.client.set_model_version_tag(self.name, str(version), key, text[:5000])

    def promote(self, version: str | int, decision: dict[str, Any] | None = None) -> dict:
        """Make ``version`` the champion; the old one becomes ``@previous-champion``.

        The decision record (outcome, comparison run, p-value, CI, reasons) is written
        onto the new champion's version as ``dethrone.decision.*`` tags.

        Returns
        -------
        dict
            ``{"champion": new, "previous": old or None}``.
        """
        version = str(version)
        found = self.version(CHAMPION)
        old = str(found.version) if found is not None else None
        decision = decision or {}
        self._tag(version, {f"{TAG_DECISION}{k}": v for k, v in decision.items()})
        if old is not None and old != version:
            self.set_alias(PREVIOUS, old)
            self._tag(old, {"dethrone.replaced_by": version})
        # The single step that changes production: an alias re-point is atomic server-side.
        self.set_alias(CHAMPION, version)
        chall = self.version(CHALLENGER)
        if chall is not None and str(chall.version) == version:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)
        return {"champion": version, "previous": old if old != version else None}

    def record_decision(self, version: str | int, decision: dict[str, Any]) -> None:
        """Write an A/B decision record onto the challenger's version as tags."""
        self._tag(version, {f"{TAG_DECISION}{k}": v for k, v in decision.items()})

    def rollback(self, reason: str = "manual rollback") -> dict:
        """Re-point ``@champion`` to ``@previous-champion`` and record why.

        Raises
        ------
        RegistryError
            When there is no previous champion to return to.
        """
        cur, prev = self.version(CHAMPION), self.version(PREVIOUS)
        if prev is None:
            raise RegistryError(f"{self.name} has no @{PREVIOUS}; nothing to roll back to")
        previous, current = str(prev.version), (str(cur.version) if cur is not None else None)
        self.set_alias(CHAMPION, previous)
        if current is not None and current != previous:
            # Swapping keeps the rolled-back version reachable (a second rollback undoes it).
            self.set_alias(PREVIOUS, current)
            self._tag(current, {"dethrone.rolled_back": "true",
                                "dethrone.rollback_reason": reason})
        self._tag(previous, {"dethrone.restored_by_rollback": "true"})
        return {"champion": previous, "previous": current}

    def aliases(self) -> dict[str, str | None]:
        """Current version of each dethrone alias (``None`` when unset)."""
        out = {}
        for alias in (CHAMPION, CHALLENGER, PREVIOUS):
            v = self.version(alias)
            out[alias] = str(v.version) if v is not None else None
        return out

"""The MLflow model registry as dethrone uses it: aliases, never stages.

* ``@champion`` is the model in production, ``@challenger`` the one under test and
  ``@previous-champion`` the one a promotion replaced (what ``rollback`` returns to).
* Each version's run stores the training data and its drift ``ReferenceProfile``, so
  drift is always measured against the model that is actually in production.
* Registration is idempotent per DAG run: a version carries its :class:`RunIdentity`
  tags, and a retried task finds it instead of registering a second one.
* Promotion and rollback first record a :class:`PromotionIntent` on the registered model;
  an interrupted one is finished by the next promote/rollback, so no cut connection can
  leave ``@previous-champion`` equal to ``@champion`` or lose a rollback target.

Nothing here reads the environment or configures MLflow: call
:func:`dethrone.pipeline.context.configure_mlflow` once at the edge, then build a ``Registry``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import mlflow
import mlflow.artifacts
import mlflow.sklearn
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dethrone.drift import ReferenceProfile
from dethrone.registry.model_contract import signature_info
from dethrone.registry.records import (
    ALIASES,
    CHALLENGER,
    CHAMPION,
    MODEL_NAME_IN_RUN,
    OUTPUTS_PROFILE_PATH,
    PREVIOUS,
    PROFILE_PATH,
    TRAINING_DATA_PATH,
    Decision,
    ModelInfo,
    PromotionIntent,
    Replacement,
    RollbackRecord,
    RunIdentity,
    TrainingRecord,
)
from dethrone.settings import Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

_MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
_INTENT_TAG = PromotionIntent.tag("intent")


class RegistryError(RuntimeError):
    """The tracking server is unreachable or the registry is not in the expected state.

    ``permanent`` is True when retrying cannot help (e.g. a version without model info).
    """

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class _GuardedClient:
    """An ``MlflowClient`` whose transport failures become one clear :class:`RegistryError`.

    MLflow reports a dead server as a generic ``MlflowException`` ("API request ... failed")
    after its own retries; the pipeline must tell that apart from "no such alias".
    """

    def __init__(self, client: Any, uri: str):
        self._client, self._uri = client, uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except MlflowException as exc:
                if exc.error_code in _MISSING or "API request" not in str(exc):
                    raise
                raise RegistryError(
                    f"MLflow tracking server at {self._uri} did not answer "
                    f"({name}): {str(exc)[:300]}"
                ) from exc
            except OSError as exc:  # requests' ConnectionError and timeouts
                raise RegistryError(
                    f"MLflow tracking server at {self._uri} did not answer ({name}): {exc}"
                ) from exc

        return call


class Registry:
    """Aliases, versions and their stored reference data for ``settings.model_name``.

    Parameters
    ----------
    settings : Settings
        Tracking URI and model name.
    client : MlflowClient, optional
        The client to use (tests pass an in-memory fake); default: one for the settings.
    """

    def __init__(self, settings: Settings, *, client: Any = None):
        if client is None:
            client = MlflowClient(
                tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri
            )
        self.settings = settings
        self.name = settings.model_name
        # the guard forwards every attribute to the client: typed as the client it wraps
        self.client = cast("MlflowClient", _GuardedClient(client, settings.mlflow_tracking_uri))

    # --- reading ----------------------------------------------------------------
    def alias_version(self, alias: str) -> Any | None:
        """The ``ModelVersion`` behind ``alias``, or ``None`` when unset or no model exists."""
        try:
            return self.client.get_model_version_by_alias(self.name, alias)
        except MlflowException as exc:
            if exc.error_code in _MISSING:
                return None
            raise

    def _alias(self, alias: str) -> str | None:
        found = self.alias_version(alias)
        return str(found.version) if found is not None else None

    def model_version(self, version: str | int) -> Any:
        """The ``ModelVersion`` with number ``version``."""
        return self.client.get_model_version(self.name, str(version))

    def find_registered(self, dag_run_id: str, role: str) -> Any | None:
        """The version registered for (``dag_run_id``, ``role``), if a previous try did it."""
        found = self.client.search_model_versions(
            f"name = '{self.name}' and tags.`{RunIdentity.tag('dag_run_id')}` = "
            f"'{dag_run_id}' and tags.`{RunIdentity.tag('role')}` = '{role}'"
        )
        return min(found, key=lambda v: int(v.version)) if found else None

    def model_info(self, version: str | int) -> ModelInfo:
        """Features, categorical columns, target and task of ``version`` (from its run).

        A version trained elsewhere (no dethrone tags on its run: a team's own challenger)
        gets them from its MLflow signature: the named input columns, the string and
        boolean ones as categorical, ``TARGET``, and the task from the output type.
        """
        run_id = self.model_version(version).run_id
        info = ModelInfo.from_tags(self.client.get_run(run_id).data.tags) if run_id else None
        if info is not None and info.features:
            return info
        info = signature_info(f"models:/{self.name}/{version}", target=self.settings.target)
        if info is None:
            raise RegistryError(
                f"version {version} of {self.name} has neither dethrone's model info tags "
                f"nor an MLflow signature with named input columns",
                permanent=True,
            )
        return info

    def load_model(self, version: str | int) -> Any:
        """The scikit-learn pipeline of ``version``."""
        return mlflow.sklearn.load_model(f"models:/{self.name}/{version}")

    def _download(self, version: str | int, path: str, dst: str) -> Path:
        run_id = self.model_version(version).run_id
        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=path,
                dst_path=dst,
                tracking_uri=self.settings.mlflow_tracking_uri,
            )
        )

    def load_profile(self, version: str | int) -> Any:
        """The drift ``ReferenceProfile`` stored with ``version``'s training run."""
        with tempfile.TemporaryDirectory() as tmp:
            return ReferenceProfile.load(self._download(version, PROFILE_PATH, tmp))

    def load_outputs_profile(self, version: str | int) -> Any:
        """The profile of ``version``'s outputs and out-of-fold losses on its training rows
        (``None`` for a model logged before dethrone stored it, or by another tool)."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self._download(version, OUTPUTS_PROFILE_PATH, tmp)
            except (MlflowException, OSError):
                return None
            return ReferenceProfile.load(path)

    def load_training_data(self, version: str | int) -> pd.DataFrame:
        """The rows ``version`` was trained on."""
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_parquet(self._download(version, TRAINING_DATA_PATH, tmp))

    def training_sample(self, version: str | int, n: int = 500, seed: int = 0) -> pd.DataFrame:
        """At most ``n`` rows of ``version``'s training data, sampled with ``seed`` (the
        reference rows the router verifies a compiled model on)."""
        frame = self.load_training_data(version)
        return frame.sample(n, random_state=seed) if len(frame) > n else frame

    def aliases(self) -> dict[str, str | None]:
        """Current version of each dethrone alias (``None`` when unset)."""
        return {alias: self._alias(alias) for alias in ALIASES}

    def pending_promotion(self) -> PromotionIntent | None:
        """The intent of a promotion or rollback that was interrupted, if any."""
        try:
            tags = self.client.get_registered_model(self.name).tags
        except MlflowException as exc:
            if exc.error_code in _MISSING:
                return None
            raise
        found = PromotionIntent.from_tags(tags or {})
        return found if isinstance(found.intent, dict) else None

    # --- writing ----------------------------------------------------------------
    def register(self, run_id: str, *, dag_run_id: str, role: str) -> Any:
        """Register the model logged by ``run_id`` once per (``dag_run_id``, ``role``).

        Returns the existing version when a retried task calls this again.
        """
        existing = self.find_registered(dag_run_id, role)
        if existing is not None:
            return existing

        tags = self.client.get_run(run_id).data.tags
        model_id = TrainingRecord.from_tags(tags).model_id
        uri = f"models:/{model_id}" if model_id else f"runs:/{run_id}/{MODEL_NAME_IN_RUN}"
        # Tags go in with the version itself, so there is no window in which a version
        # exists without the tag that makes registration idempotent.
        return mlflow.register_model(
            uri,
            self.name,
            tags={
                **RunIdentity(role=role, dag_run_id=dag_run_id).to_tags(),
                **TrainingRecord(training_run_id=run_id).to_tags(),
            },
        )

    def set_alias(self, alias: str, version: str | int) -> None:
        """Point ``alias`` at ``version``."""
        self.client.set_registered_model_alias(self.name, alias, str(version))

    def tag_version(self, version: str | int, tags: dict[str, str]) -> None:
        """Write ``tags`` (from a record's ``to_tags()``) onto ``version``."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, str(version), key, value)

    def record_decision(self, version: str | int, decision: Decision) -> None:
        """Write an A/B decision record onto the challenger's version as tags."""
        self.tag_version(version, decision.to_tags())

    def promote(self, version: str | int, decision: Decision | None = None) -> dict:
        """Make ``version`` the champion; the old one becomes ``@previous-champion``.

        ``decision`` is written onto the new champion's version first. Safe to call again
        after any failure: an interrupted promotion is finished, never half-applied twice.

        Returns
        -------
        dict
            ``{"champion": new, "previous": old or None}``.
        """
        version = str(version)
        if decision is not None:
            self.tag_version(version, decision.to_tags())
        pending = self.pending_promotion()
        if pending is not None:
            done = self._complete(pending)
            if pending.version == version:
                return done
        old, prev = self._alias(CHAMPION), self._alias(PREVIOUS)
        if old == version:  # already done (e.g. a retry after the last call was cut)
            self._drop_challenger(version)
            return {"champion": version, "previous": prev}
        return self._complete(
            self._record_intent(
                {"kind": "promote", "version": version, "old_champion": old, "old_previous": prev}
            )
        )

    def rollback(self, reason: str = "manual rollback") -> dict:
        """Re-point ``@champion`` to ``@previous-champion`` and record why.

        The rolled-back version becomes ``@previous-champion``, so a second rollback undoes
        the first. An interrupted promotion is finished first.

        Raises
        ------
        RegistryError
            When there is no previous champion to return to.
        """
        pending = self.pending_promotion()
        if pending is not None:
            self._complete(pending)
        cur, prev = self._alias(CHAMPION), self._alias(PREVIOUS)
        if prev is None:
            raise RegistryError(
                f"{self.name} has no @{PREVIOUS}; nothing to roll back to", permanent=True
            )
        return self._complete(
            self._record_intent(
                {
                    "kind": "rollback",
                    "version": prev,
                    "old_champion": cur,
                    "old_previous": prev,
                    "reason": reason,
                }
            )
        )

    def finish_pending(self) -> dict | None:
        """Finish an interrupted promotion or rollback, if any (else ``None``)."""
        pending = self.pending_promotion()
        return None if pending is None else self._complete(pending)

    def _record_intent(self, intent: dict[str, Any]) -> PromotionIntent:
        record = PromotionIntent(intent=intent)
        for key, value in record.to_tags().items():
            self.client.set_registered_model_tag(self.name, key, value)
        return record

    def _complete(self, intent: PromotionIntent) -> dict:
        # Every step is idempotent and driven by the recorded intent (not by the aliases,
        # which a cut may have left half-moved), so running it twice is harmless.
        new, old = intent.version, intent.old_champion
        if old is not None and old != new:
            self.set_alias(PREVIOUS, old)
            if intent.recorded.get("kind") == "rollback":
                self.tag_version(
                    old,
                    RollbackRecord(
                        rolled_back=True, reason=intent.recorded.get("reason")
                    ).to_tags(),
                )
            else:
                self.tag_version(old, Replacement(replaced_by=new).to_tags())
        self.set_alias(CHAMPION, new)
        if intent.recorded.get("kind") == "rollback":
            self.tag_version(new, RollbackRecord(restored=True).to_tags())
        self._drop_challenger(new)
        self.client.delete_registered_model_tag(self.name, _INTENT_TAG)
        return {"champion": new, "previous": old if old != new else None}

    def _drop_challenger(self, version: str) -> None:
        if self._alias(CHALLENGER) == version:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)

"""Every MLflow tag, alias and artifact path dethrone writes, and the records behind them.

This is the only module that spells a ``dethrone.`` tag name. A record is a frozen
dataclass whose fields *are* its tags: the tag name is the record's ``PREFIX`` plus the
field name, strings are stored as they are and everything else as JSON. A new record
(a live experiment, a look, ...) is one more subclass of :class:`TagRecord` with its own
``PREFIX``; nothing else needs to change.

>>> rec = RunIdentity(role="champion", dag_run_id="manual__1")
>>> rec.to_tags()
{'dethrone.role': 'champion', 'dethrone.dag_run_id': 'manual__1'}
>>> RunIdentity.from_tags(rec.to_tags()) == rec
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

#: registry aliases: production, the model under test, the one a promotion replaced.
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS)

#: run roles (tag ``dethrone.role``) besides the training roles champion/challenger.
ROLE_DRIFT_CHECK, ROLE_AB_TEST = "drift-check", "ab-test"

#: artifact paths inside a run.
MODEL_NAME_IN_RUN = "model"
PROFILE_PATH = "reference/profile.npz"
TRAINING_DATA_PATH = "data/training.parquet"
DRIFT_REPORT_JSON, DRIFT_REPORT_HTML = "drift/report.json", "drift/report.html"
DECISION_JSON, COMPARISON_DIR = "comparison/decision.json", "comparison"

#: MLflow truncates nothing for us: a tag value longer than this is rejected.
MAX_TAG_LENGTH = 5000
_NAMESPACE = "dethrone."


@dataclass(frozen=True)
class TagRecord:
    """Base of all records: fields map one-to-one onto tags ``PREFIX + field name``."""

    PREFIX: ClassVar[str] = _NAMESPACE

    @classmethod
    def tag(cls, name: str) -> str:
        """The tag name of field ``name`` (raises ``KeyError`` for an unknown field)."""
        if name not in {f.name for f in fields(cls)}:
            raise KeyError(f"{cls.__name__} has no field {name!r}")
        return f"{cls.PREFIX}{name}"

    def to_tags(self) -> dict[str, str]:
        """The record as MLflow tags; ``None`` fields are left out."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            plain = isinstance(value, str)
            out[f"{self.PREFIX}{f.name}"] = (value if plain else json.dumps(value))[
                :MAX_TAG_LENGTH]
        return out

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]):
        """Rebuild the record from tags; missing tags take the field's default."""
        values = {}
        for f in fields(cls):
            raw = tags.get(f"{cls.PREFIX}{f.name}")
            if raw is None:
                continue
            plain = f.type in ("str", "str | None")
            values[f.name] = raw if plain else _loads(raw)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-serialisable dict."""
        return asdict(self)


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # written by hand or by an older layout: keep the text
        return raw


@dataclass(frozen=True)
class RunIdentity(TagRecord):
    """Who wrote a run or a model version: its role and DAG run (registration key)."""

    role: str | None = None
    dag_run_id: str | None = None


@dataclass(frozen=True)
class ModelInfo(TagRecord):
    """The input contract of a trained model, stored on its training run."""

    PREFIX: ClassVar[str] = "dethrone.model_info."

    features: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    target: str = ""
    task: str = ""


@dataclass(frozen=True)
class TrainingRecord(TagRecord):
    """Where a training run's data came from and which logged model it produced."""

    data_uri: str | None = None
    model_id: str | None = None
    training_run_id: str | None = None


@dataclass(frozen=True)
class DriftVerdict(TagRecord):
    """The verdict of one drift check against the champion's reference profile."""

    PREFIX: ClassVar[str] = "dethrone.drift."

    champion_version: str | None = None
    drifted: bool = False
    drifted_features: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision(TagRecord):
    """An A/B decision (or the first-champion record), on its run and on the version.

    ``expected_share_a`` and ``config_version`` come from the same router response as
    the A/B rows, so the SRM gate is known to have tested the split the rows were cut by.
    """

    PREFIX: ClassVar[str] = "dethrone.decision."

    outcome: str = ""
    dag_run_id: str | None = None
    champion_version: str | None = None
    challenger_version: str | None = None
    reasons: list[str] = field(default_factory=list)
    comparison_run_id: str | None = None
    pvalue: float | None = None
    paired_pvalue: float | None = None
    ci: list[float | None] | None = None
    loss: str | None = None
    expected_share_a: float | None = None
    config_version: str | None = None
    #: False while a live experiment still collects evidence (the gateway may serve it).
    final: bool | None = None


@dataclass(frozen=True)
class Replacement(TagRecord):
    """On a former champion: which version replaced it."""

    replaced_by: str | None = None


@dataclass(frozen=True)
class RollbackRecord(TagRecord):
    """On the version a rollback moved away from, and on the one it restored."""

    PREFIX: ClassVar[str] = "dethrone.rollback."

    rolled_back: bool | None = None
    reason: str | None = None
    restored: bool | None = None


@dataclass(frozen=True)
class PromotionIntent(TagRecord):
    """Written on the registered model before a promotion changes any alias.

    It holds the aliases as they were, so an interrupted promotion can be finished by
    the next attempt (task retry, ``dethrone status`` or ``rollback``) and no version
    that was a rollback target is ever lost. Removed when the promotion completes.
    """

    PREFIX: ClassVar[str] = "dethrone.promotion."

    intent: dict[str, Any] | None = None

    @property
    def version(self) -> str:
        return str(self.intent["version"])

    @property
    def old_champion(self) -> str | None:
        return self.intent.get("old_champion")

    @property
    def old_previous(self) -> str | None:
        return self.intent.get("old_previous")


def dethrone_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Only the tags dethrone wrote."""
    return {k: v for k, v in tags.items() if k.startswith(_NAMESPACE)}

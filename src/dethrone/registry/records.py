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
#: the model's outputs and out-of-fold losses on its training rows (prediction drift,
#: live performance); absent for models trained before it existed
OUTPUTS_PROFILE_PATH = "reference/outputs_profile.npz"
TRAINING_DATA_PATH = "data/training.parquet"
DRIFT_REPORT_JSON, DRIFT_REPORT_HTML = "drift/report.json", "drift/report.html"
DECISION_JSON, COMPARISON_DIR = "comparison/decision.json", "comparison"

#: MLflow truncates nothing for us: a tag value longer than this is rejected.
MAX_TAG_LENGTH = 5000
#: on a version copied into MODEL_NAME from another model: the models:/ URI it came from
COPIED_FROM_TAG = "dethrone.copied_from"
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
            out[f"{self.PREFIX}{f.name}"] = (value if plain else json.dumps(value))[:MAX_TAG_LENGTH]
        return out

    @classmethod
    def field_tags(cls, **values: Any) -> dict[str, str]:
        """Tags of the given fields only, encoded as :meth:`to_tags` encodes them: an update
        of part of a record that leaves its other tags as they are.

        >>> RunIdentity.field_tags(role="champion")
        {'dethrone.role': 'champion'}
        """
        return {
            cls.tag(name): (value if isinstance(value, str) else json.dumps(value))[:MAX_TAG_LENGTH]
            for name, value in values.items()
        }

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
    by: str | None = None


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
    def recorded(self) -> dict[str, Any]:
        """The intent (a record read back without one has none: TypeError)."""
        if self.intent is None:
            raise TypeError("PromotionIntent has no recorded intent")
        return self.intent

    @property
    def version(self) -> str:
        return str(self.recorded["version"])

    @property
    def old_champion(self) -> str | None:
        return self.recorded.get("old_champion")

    @property
    def old_previous(self) -> str | None:
        return self.recorded.get("old_previous")


#: states of a live experiment: ``starting`` → ``running`` → (``promoting`` → ``guardrail``
#: → ``promoted`` | ``rolling-back`` → ``rolled-back``) | ``kept`` | ``stopped``.
LIVE_ACTIVE = ("starting", "running", "promoting", "guardrail", "rolling-back")
LIVE_DONE = ("promoted", "rolled-back", "kept", "stopped", "inconclusive")


@dataclass(frozen=True)
class LiveExperiment(TagRecord):
    """A live experiment, stored as tags on the registered model (one runs at a time).

    ``id`` is derived from the challenger version and the DAG run (or operator request)
    that started it, so a retried start finds the experiment instead of starting another;
    ``salt`` (the experiment id) is what the router hashes units with. ``split`` is the
    challenger's share of traffic (``None`` in shadow mode). ``window_until`` (epoch
    seconds) ends the guardrail window after a promotion, during which ``holdback``
    of the traffic stays on the previous champion. ``config_versions`` lists the router
    config versions this experiment wrote (the router's history holds the diffs).
    """

    PREFIX: ClassVar[str] = "dethrone.live."

    id: str = ""
    champion_version: str = ""
    challenger_version: str = ""
    salt: str = ""
    started_at: float | None = None
    mode: str = "ab"
    split: float | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    dag_run_id: str | None = None
    state: str = "starting"
    run_id: str | None = None
    looks: int = 0
    outcome: str | None = None
    reasons: list[str] = field(default_factory=list)
    holdback: float | None = None
    window_until: float | None = None
    ended_at: float | None = None
    config_versions: list[Any] = field(default_factory=list)
    action: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self.state in LIVE_ACTIVE

    #: the one registered-model tag holding the whole record as JSON: one write changes
    #: it, so a cut connection never leaves half an update (the run gets per-field tags)
    RECORD_TAG: ClassVar[str] = "dethrone.live.record"

    def to_json(self) -> str:
        """The record as one JSON tag value (reasons shortened to fit a tag)."""
        data = self.to_dict()
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > MAX_TAG_LENGTH:
            data["reasons"] = [r[:300] for r in data["reasons"][-4:]]
            data["config_versions"] = data["config_versions"][-20:]
            text = json.dumps(data, separators=(",", ":"))
        return text

    @classmethod
    def from_json(cls, text: str | None) -> LiveExperiment | None:
        """The record of :meth:`to_json` (``None`` for no or unreadable text)."""
        try:
            data = json.loads(text) if text else None
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Look(TagRecord):
    """One sequential look at a live experiment (a row of its looks table in MLflow).

    ``phase`` is ``experiment`` (challenger vs champion) or ``guardrail`` (new champion vs
    the holdback on the previous one); the interval is of champion-arm loss minus
    challenger-arm loss (positive: the challenger arm is better).
    """

    PREFIX: ClassVar[str] = "dethrone.look."

    time: float = 0.0
    phase: str = "experiment"
    units_a: int = 0
    units_b: int = 0
    rows_a: int = 0
    rows_b: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    pvalue: float | None = None
    mean_a: float | None = None
    mean_b: float | None = None
    outcome: str = ""


@dataclass(frozen=True)
class OperatorAction(TagRecord):
    """Who did what to a live experiment, why and when (kept as the experiment's ``action``).

    A repeated action is a no-op because the experiment's state already shows it done.
    """

    PREFIX: ClassVar[str] = "dethrone.action."

    action: str = ""
    by: str = ""
    reason: str = ""
    at: float | None = None


def dethrone_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Only the tags dethrone wrote."""
    return {k: v for k, v in tags.items() if k.startswith(_NAMESPACE)}

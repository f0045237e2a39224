"""The router's per-app state: what a worker keeps between requests.

Kept in its own module (as flaskr keeps ``get_db`` in ``db.py``) so the blueprints can
import :func:`state` without importing the package that registers them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
from flask import current_app

from dethrone.settings import Settings
from dethrone.slices.injection import DriftSpec
from dethrone.slices.slicing import Slicer
from dethrone_router.errors import ApiError
from dethrone_router.validation import ValidationError, drift_plan, validate_config

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from dethrone_router.metrics.registry import Metrics


class ConfigStore(Protocol):
    """The serving config's store as the router calls it
    (:class:`~dethrone.store.config_store.SqlConfigStore`)."""

    @property
    def path(self) -> str:
        """Where the store is, for messages."""
        ...

    def current(self) -> tuple[int, dict[str, Any]]: ...

    def update(
        self,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        expected_version: int | None = None,
        *,
        source: str | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, Any]]: ...

    def history(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    def write_problem(self, *, max_age: float = 1.0) -> str | None: ...


@dataclass
class RouterState:
    """Everything a worker keeps between requests (one per app)."""

    settings: Settings
    slicer: Slicer
    columns: dict[str, pd.Series]
    store: ConfigStore
    metrics: Metrics
    #: the log database (prediction log, feedback, experiments)
    engine: Engine
    _plan: tuple[int, dict[str, Any], dict[str, DriftSpec | None]] | None = field(
        default=None, repr=False
    )

    def config(self) -> tuple[int, dict[str, Any], dict[str, DriftSpec | None]]:
        """The current ``(version, config, drift plan)``, re-checked when it changes.

        Raises
        ------
        ApiError
            503 when the stored config no longer fits the data set (e.g. the data set
            or ``ROUTER_MAX_DATA_SIZE`` changed since it was accepted).
        """
        version, cfg = self.store.current()
        plan = self._plan
        if plan is None or plan[0] != version:
            try:
                checked = validate_config(cfg, self.columns, self.settings.router_max_data_size)
            except ValidationError as exc:
                raise ApiError(
                    503,
                    "config_incompatible",
                    f"stored config version {version} does not fit the data set: "
                    f"{exc.message}; POST /traffic a new one",
                    exc.field,
                ) from exc
            plan = (version, checked, drift_plan(checked))
            self._plan = plan
        return plan


def state() -> RouterState:
    """The :class:`RouterState` of the current app."""
    return current_app.extensions["dethrone_router"]

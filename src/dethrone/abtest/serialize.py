"""The one ``to_dict`` of every A/B result object.

Results are logged to MLflow, stored in experiment records and printed by the CLI as
JSON, which has no NaN, inf or tuples: one function turns a result into plain JSON
values so that every result type does it the same way.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import TYPE_CHECKING, Any, ClassVar

__all__ = ["ResultMixin", "json_value"]


def json_value(value: Any) -> Any:
    """``value`` as JSON data: results via their ``to_dict``, tuples as lists, NaN and
    inf as None (JSON has neither), everything else unchanged."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ResultMixin:
    """``to_dict`` for frozen result dataclasses: every field, as JSON data."""

    __slots__ = ()
    if TYPE_CHECKING:  # what the dataclasses mixing this in provide
        __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field (non-finite floats become None)."""
        return {f.name: json_value(getattr(self, f.name)) for f in fields(self)}

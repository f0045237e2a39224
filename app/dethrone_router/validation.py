"""Validation of traffic configs: every rule names its field, nothing is coerced silently.

A config is a JSON object with the keys of :data:`DEFAULTS`. Updates may be
partial; :func:`merge_update` applies one to the stored config and
:func:`validate_config` checks the merged result as a whole.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal, overload

import pandas as pd

from dethrone.experiments.modes import MODES as SERVING_MODES
from dethrone.slices.injection import KINDS, DriftSpec, applicable_kinds, intensity_range

#: Seed-compatible defaults; ``drift`` and ``seed`` are extensions.
DEFAULTS: dict[str, Any] = {
    "a": 0.5,
    "b": 0.5,
    "data_size": 5000,
    "drift_cols": [],
    "drift": {},
    "seed": None,
}
#: Serving keys (the gateway's mode, experiment salt and unit column); a config stored
#: before they existed gets these values.
SERVING_DEFAULTS: dict[str, Any] = {
    "mode": "ab",
    "salt": "",
    "unit_column": None,
    "experiment": None,
}
DEFAULTS.update(SERVING_DEFAULTS)
MODES = tuple(SERVING_MODES)
#: the running experiment's id as the config stores it (it locks the split)
_EXPERIMENT_RE = re.compile(r"[\x20-\x7e]{1,128}")
WRITABLE = tuple(DEFAULTS)
SUM_TOLERANCE = 1e-9
SEED_MAX = 2**64 - 1
_SEED_RE = re.compile(r"[0-9]{1,20}")
#: Deepest JSON nesting accepted in a body (a full config needs 3).
MAX_JSON_DEPTH = 16


class ValidationError(ValueError):
    """An invalid request value; becomes a 400 answer naming ``field`` and ``code``."""

    def __init__(self, field: str | None, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


def nesting_depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, strings ignored.

    Kept for callers of earlier releases; the router's body reader no longer uses it (it
    checks the depth while walking the parsed value, see :mod:`dethrone_router.body`). One
    pass over the bytes, no copy of them.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _is_number(value: Any) -> bool:
    # bool is an int subclass; JSON true must not pass as 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: float | int) -> bool:
    # math.isfinite overflows on huge ints, which are finite anyway.
    return isinstance(value, int) or math.isfinite(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_share(value: Any) -> bool:
    return _is_number(value) and _finite(value) and 0 <= value <= 1


def _complement(share: float) -> float:
    # 1 - 0.7 is 0.30000000000000004; rounding to 12 places stays far inside the
    # 1e-9 sum tolerance and gives the number a client would write.
    return round(1.0 - share, 12)


def _probability(cfg: Mapping[str, Any], name: str) -> float:
    value = cfg[name]
    if not _is_number(value):
        raise ValidationError(name, "type", f"{name} must be a number, got {_show(value)}")
    if not (_finite(value) and 0.0 <= value <= 1.0):
        raise ValidationError(name, "range", f"{name} must be in [0, 1], got {value}")
    return float(value) + 0.0  # + 0.0 turns -0.0 into 0.0


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_config(
    cfg: Mapping[str, Any], columns: Mapping[str, pd.Series], max_data_size: int
) -> dict[str, Any]:
    """Check a complete config and return its normalised form.

    Parameters
    ----------
    cfg : mapping
        A full config (all keys of :data:`DEFAULTS`).
    columns : mapping of name -> Series
        The data set's columns (their dtype decides which drift kinds fit).
    max_data_size : int
        Largest accepted ``data_size``.

    Returns
    -------
    dict
        The config with ``a``/``b`` as floats and drift specs in canonical form.

    Raises
    ------
    ValidationError
        On the first rule broken, naming the field.
    """
    unknown = sorted(set(cfg) - set(WRITABLE))
    if unknown:
        raise ValidationError(
            unknown[0],
            "unknown_key",
            f"unknown key {unknown[0]!r}; allowed keys: {', '.join(WRITABLE)}",
        )
    cfg = {**SERVING_DEFAULTS, **cfg}
    missing = [k for k in WRITABLE if k not in cfg]
    if missing:
        raise ValidationError(missing[0], "required", f"{missing[0]} is required")
    a, b = _probability(cfg, "a"), _probability(cfg, "b")
    if abs(a + b - 1.0) > SUM_TOLERANCE:
        raise ValidationError(
            "b", "sum", f"a + b must equal 1 (within {SUM_TOLERANCE:g}), got {a} + {b} = {a + b!r}"
        )
    size = cfg["data_size"]
    if not _is_integer(size):
        raise ValidationError(
            "data_size", "type", f"data_size must be an integer, got {_show(size)}"
        )
    if not 1 <= size <= max_data_size:
        raise ValidationError(
            "data_size", "range", f"data_size must be in [1, {max_data_size}], got {size}"
        )
    drift_cols = _drift_cols(cfg["drift_cols"], columns)
    drift = _drift_specs(cfg["drift"], drift_cols, columns)
    return {
        "a": a,
        "b": b,
        "data_size": size,
        "drift_cols": drift_cols,
        "drift": drift,
        "seed": parse_seed(cfg["seed"], allow_none=True),
        **_serving_keys(cfg),
    }


def _serving_keys(cfg: Mapping[str, Any]) -> dict[str, Any]:
    mode, salt, unit = cfg["mode"], cfg["salt"], cfg["unit_column"]
    if mode not in MODES:
        raise ValidationError(
            "mode", "unknown_mode", f"mode must be one of {', '.join(MODES)}, got {_show(mode)}"
        )
    if not isinstance(salt, str) or len(salt) > 100:
        raise ValidationError(
            "salt", "type", f"salt must be a string of at most 100 characters, got {_show(salt)}"
        )
    if unit is not None and (not isinstance(unit, str) or not 0 < len(unit) <= 100):
        raise ValidationError(
            "unit_column",
            "type",
            f"unit_column must be null or a column name (1-100 characters), got {_show(unit)}",
        )
    experiment = cfg["experiment"]
    if experiment is not None and (
        not isinstance(experiment, str) or not _EXPERIMENT_RE.fullmatch(experiment)
    ):
        raise ValidationError(
            "experiment",
            "type",
            "experiment must be null or the running experiment's id (1-128 printable ASCII "
            f"characters), got {_show(experiment)}",
        )
    return {"mode": mode, "salt": salt, "unit_column": unit, "experiment": experiment}


def _drift_cols(value: Any, columns: Mapping[str, pd.Series]) -> list[str]:
    if not isinstance(value, list):
        raise ValidationError(
            "drift_cols", "type", f"drift_cols must be a list of column names, got {_show(value)}"
        )
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str):
            raise ValidationError(
                "drift_cols", "type", f"drift_cols must contain strings only, got {_show(item)}"
            )
        if item not in columns:
            raise ValidationError(
                "drift_cols",
                "unknown_column",
                f"unknown column {item!r}; known: {', '.join(columns)}",
            )
        if item in seen:
            raise ValidationError("drift_cols", "duplicate", f"column {item!r} listed twice")
        seen.add(item)
    return list(value)


def _drift_specs(
    value: Any, drift_cols: list[str], columns: Mapping[str, pd.Series]
) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ValidationError(
            "drift", "type", f"drift must be an object of column -> spec, got {_show(value)}"
        )
    out: dict[str, dict[str, Any]] = {}
    for col, spec in value.items():
        field = f"drift.{col}"
        if col not in drift_cols:
            raise ValidationError(
                field,
                "not_in_drift_cols",
                f"column {col!r} has a drift spec but is not in drift_cols",
            )
        if not isinstance(spec, dict):
            raise ValidationError(
                field, "type", f"{field} must be an object with 'kind' and optional 'intensity'"
            )
        extra = sorted(set(spec) - {"kind", "intensity"})
        if extra:
            raise ValidationError(
                f"{field}.{extra[0]}",
                "unknown_key",
                f"unknown key {extra[0]!r}; allowed: kind, intensity",
            )
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValidationError(
                f"{field}.kind",
                "unknown_kind",
                f"unknown drift kind {_show(kind)}; expected one of {', '.join(KINDS)}",
            )
        fits = applicable_kinds(columns[col])
        if kind not in fits:
            raise ValidationError(
                f"{field}.kind",
                "kind_mismatch",
                f"drift kind {kind!r} does not fit column {col!r}; "
                f"use one of {', '.join(sorted(fits))}",
            )
        intensity = spec.get("intensity")
        if intensity is not None:
            lo, hi = intensity_range(kind)
            if not _is_number(intensity):
                raise ValidationError(
                    f"{field}.intensity",
                    "type",
                    f"intensity must be a number, got {_show(intensity)}",
                )
            if not (_finite(intensity) and lo <= intensity <= hi):
                raise ValidationError(
                    f"{field}.intensity",
                    "range",
                    f"intensity of kind {kind!r} must be in [{lo:g}, {hi:g}], got {intensity}",
                )
            intensity = float(intensity) + 0.0  # no -0.0 stored
        out[col] = {"kind": kind, "intensity": intensity}
    return out


@overload
def parse_seed(value: Any, *, allow_none: Literal[False] = False, query: bool = False) -> int: ...
@overload
def parse_seed(value: Any, *, allow_none: bool, query: bool = False) -> int | None: ...
def parse_seed(value: Any, *, allow_none: bool = False, query: bool = False) -> int | None:
    """Check a seed: an integer in [0, 2**64 - 1] (from a query: its decimal digits)."""
    field = "seed"
    if value is None and allow_none:
        return None
    if query and isinstance(value, str) and _SEED_RE.fullmatch(value):
        value = int(value)
    if not _is_integer(value):
        raise ValidationError(field, "type", f"seed must be an integer, got {_show(value)}")
    if not 0 <= value <= SEED_MAX:
        raise ValidationError(field, "range", f"seed must be in [0, 2**64 - 1], got {value}")
    return value


def merge_update(current: Mapping[str, Any], update: Any) -> dict[str, Any]:
    """Apply a partial update to ``current`` (not validated yet).

    ``b`` left out becomes ``1 - a`` (and ``a`` left out ``1 - b``); ``drift_cols``
    given without ``drift`` keeps the specs of the columns that stay listed.

    Raises
    ------
    ValidationError
        If ``update`` is not a non-empty JSON object or has unknown keys.
    """
    if not isinstance(update, dict):
        kind = "null" if update is None else type(update).__name__
        raise ValidationError(None, "type", f"body must be a JSON object, got {kind}")
    if not update:
        raise ValidationError(
            None, "empty", f"body sets nothing; give any of {', '.join(WRITABLE)}"
        )
    unknown = sorted(set(update) - set(WRITABLE))
    if unknown:
        raise ValidationError(
            unknown[0],
            "unknown_key",
            f"unknown key {unknown[0]!r}; allowed keys: {', '.join(WRITABLE)}",
        )
    merged = {**current, **update}
    # Only a valid share implies its complement; otherwise the error must name the
    # key the client sent, not the derived one.
    if "a" in update and "b" not in update and _is_share(update["a"]):
        merged["b"] = _complement(update["a"])
    elif "b" in update and "a" not in update and _is_share(update["b"]):
        merged["a"] = _complement(update["b"])
    if "drift_cols" in update and "drift" not in update and isinstance(update["drift_cols"], list):
        keep = {c for c in update["drift_cols"] if isinstance(c, str)}
        merged["drift"] = {c: s for c, s in current.get("drift", {}).items() if c in keep}
    return merged


def drift_plan(cfg: Mapping[str, Any]) -> dict[str, DriftSpec | None]:
    """The validated config's drift as ``column -> DriftSpec`` (None: the seed's kind)."""
    specs = cfg.get("drift", {})
    return {
        c: (DriftSpec(specs[c]["kind"], specs[c]["intensity"]) if c in specs else None)
        for c in cfg["drift_cols"]
    }

"""Component schemas of the router's OpenAPI document (``openapi.py`` builds its paths)."""

from __future__ import annotations

from typing import Any

from dethrone.experiments.modes import MODES
from dethrone.slices.injection import INTENSITY_BOUNDS, KINDS


def component_schemas(columns: list[str], max_data_size: int) -> dict[str, Any]:
    prob = {"type": "number", "minimum": 0, "maximum": 1}
    seed = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1, "nullable": True}
    spec = {
        "type": "object",
        "required": ["kind"],
        "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": list(KINDS)},
            "intensity": {
                "type": "number",
                "minimum": INTENSITY_BOUNDS[0],
                "maximum": INTENSITY_BOUNDS[1],
                "nullable": True,
            },
        },
    }
    fields = {
        "a": prob,
        "b": prob,
        "data_size": {"type": "integer", "minimum": 1, "maximum": max_data_size},
        "drift_cols": {
            "type": "array",
            "uniqueItems": True,
            "items": {"type": "string", "enum": columns},
        },
        "drift": {
            "type": "object",
            "additionalProperties": False,
            "properties": {c: {"$ref": "#/components/schemas/DriftSpec"} for c in columns},
        },
        "seed": seed,
        "mode": {
            "type": "string",
            "enum": list(MODES),
            "description": "; ".join(f"{m.name}: {m.description}" for m in MODES.values()),
        },
        "salt": {"type": "string", "maxLength": 100},
        "unit_column": {"type": "string", "minLength": 1, "maxLength": 100, "nullable": True},
        "experiment": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "nullable": True,
            "description": "the running live experiment; while set, a, b, mode and salt "
            "change only with its X-Dethrone-Experiment header (else 409 experiment_running)",
        },
    }
    split = {
        "type": "object",
        "required": ["columns", "index", "data"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "index": {"type": "array", "items": {"type": "integer"}},
            "data": {"type": "array", "items": {"type": "array", "items": {}}},
        },
    }
    traffic = {
        "type": "object",
        "required": [*fields, "version"],
        "properties": {**fields, "version": {"type": "integer", "minimum": 0}},
    }
    return {
        "DriftSpec": spec,
        "TrafficUpdate": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {**fields, "version": {"type": "integer", "minimum": 0}},
        },
        "Traffic": traffic,
        "TrafficUpdated": {
            "type": "object",
            "required": ["status", "traffic"],
            "properties": {
                "status": {"type": "string", "enum": ["updated"]},
                "traffic": {"$ref": "#/components/schemas/Traffic"},
            },
        },
        "History": {
            "type": "object",
            "required": ["version", "history"],
            "properties": {
                "version": {"type": "integer"},
                "history": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["version", "at", "before", "after"],
                        "properties": {
                            "version": {"type": "integer"},
                            "at": {"type": "string"},
                            "before": {"type": "object"},
                            "after": {"type": "object"},
                            # X-Dethrone-Source of the change; null when none was sent
                            "source": {"type": "string", "nullable": True},
                        },
                    },
                },
            },
        },
        "Split": split,
        "ABData": {
            "type": "object",
            "required": ["a_data", "b_data"],
            "properties": {
                "a_data": {"$ref": "#/components/schemas/Split"},
                "b_data": {"$ref": "#/components/schemas/Split"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
                "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
                "config_version": {"type": "integer", "nullable": True},
                "store": {"type": "object"},
                "metrics": {"type": "string", "nullable": True},
                "dataset": {"type": "object"},
                "log": {"type": "object", "nullable": True},
                "warnings": {"type": "array", "items": {"type": "string"}},
            },
        },
        **_serving_schemas(),
        **_feedback_schemas(),
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "field", "status"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string", "nullable": True},
                        "status": {"type": "integer"},
                    },
                }
            },
        },
    }


def _serving_schemas() -> dict[str, Any]:
    rows = {"type": "array", "items": {"type": "object"}}
    body = {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 3,
        "properties": {
            "dataframe_split": {
                "type": "object",
                "required": ["columns", "data"],
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array", "items": {}}},
                    "index": {"type": "array"},
                },
            },
            "dataframe_records": rows,
            "rows": rows,
            "instances": {"oneOf": [rows, {"type": "object"}]},
            "inputs": {"oneOf": [rows, {"type": "object"}]},
            "probabilities": {"type": "boolean"},
            "params": {"type": "object"},
        },
    }
    answer = {
        "type": "object",
        "required": ["predictions", "model_version", "arm", "request_id"],
        "properties": {
            "predictions": {"type": "array", "items": {}},
            "model_version": {"type": "string"},
            "arm": {"type": "string", "enum": ["champion", "challenger"]},
            "request_id": {"type": "string"},
            "classes": {"type": "array", "items": {}},
            "probabilities": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}},
            },
        },
    }
    ready = {
        "type": "object",
        "required": ["status", "models"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "degraded", "unavailable"]},
            "models": {"type": "object"},
            "pid": {"type": "integer"},
            "registry": {"type": "string"},
            "store": {"type": "boolean"},
        },
    }
    return {"PredictRequest": body, "Predictions": answer, "Ready": ready}


def _feedback_schemas() -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "object",
        "required": ["request_id", "row", "label"],
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": 128},
            "row": {"type": "integer", "minimum": 0},
            "label": {
                "oneOf": [{"type": "number"}, {"type": "string", "minLength": 1, "maxLength": 128}]
            },
        },
        "additionalProperties": False,
    }
    # one item may say overwrite; a batch says it once, beside its items
    single = {**item, "properties": {**item["properties"], "overwrite": {"type": "boolean"}}}
    items = {
        "type": "array",
        "minItems": 1,
        "maxItems": 1000,
        "items": {"$ref": "#/components/schemas/FeedbackItem"},
    }
    result = {
        "type": "object",
        "required": ["request_id", "row", "status"],
        "properties": {
            "request_id": {"type": "string"},
            "row": {"type": "integer"},
            "status": {
                "type": "string",
                "enum": ["stored", "overwritten", "duplicate", "conflict", "unknown", "too_old"],
            },
            "arm": {"type": "string"},
            "label": {},
            "previous": {},
        },
    }
    return {
        "FeedbackItem": item,
        "FeedbackRequest": {
            "oneOf": [
                single,
                items,
                {
                    "type": "object",
                    "required": ["items"],
                    "additionalProperties": False,
                    "properties": {"items": items, "overwrite": {"type": "boolean"}},
                },
            ]
        },
        "FeedbackItemResult": result,
        "FeedbackResult": {
            "oneOf": [
                {"$ref": "#/components/schemas/FeedbackItemResult"},
                {
                    "type": "object",
                    "required": ["results", "counts"],
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/FeedbackItemResult"},
                        },
                        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    },
                },
            ]
        },
    }

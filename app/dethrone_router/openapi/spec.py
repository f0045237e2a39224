"""The OpenAPI 3.0 document of the router, built for the loaded data set and limits."""

from __future__ import annotations

from typing import Any

from dethrone_router.openapi.schemas import component_schemas

_ERROR_CODES = {
    "400": "invalid request (the error names the field and rule)",
    "401": "missing or wrong bearer token",
    "409": "version conflict",
    "413": "body too large",
    "415": "Content-Type is not application/json",
    "429": "the worker already serves its large slices (see Retry-After)",
    "503": "stored config does not fit the data set, or the config store "
    "cannot be read or written now (see Retry-After)",
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(ref: str, description: str = "OK", headers: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }
    if headers:
        out["headers"] = headers
    return out


def _feedback_path() -> dict[str, Any]:
    single = {
        "404": "no logged prediction has this request_id and row",
        "409": "a different label is stored (send overwrite: true to replace it)",
        "410": "the row was logged longer ago than FEEDBACK_MAX_AGE",
    }
    return {
        "/feedback": {
            "post": {
                "summary": "true labels of served rows (one item, a list, or {items, overwrite})",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/FeedbackRequest"}
                        }
                    },
                },
                "responses": {
                    "200": _json("FeedbackResult", "every item stored, overwritten or duplicate"),
                    "207": _json("FeedbackResult", "a list with refused items: per-item statuses"),
                    **{k: _json("FeedbackResult", v) for k, v in single.items()},
                    "400": _error("malformed body (the error names the field); nothing stored"),
                    "413": _error(_ERROR_CODES["413"]),
                    "415": _error(_ERROR_CODES["415"]),
                    "503": _error("the database cannot be written now (see Retry-After)"),
                },
            }
        }
    }


def _serving_paths() -> dict[str, Any]:
    codes = {
        "400": "invalid rows (the error names the column)",
        "413": "too many rows",
        "415": _ERROR_CODES["415"],
        "422": "the model rejected rows that fit its signature",
        "503": "no @champion loaded (or serving is off)",
    }
    op = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
            },
        },
        "responses": {
            "200": _json(
                "Predictions",
                "predictions of the assigned arm",
                {
                    "X-Request-ID": {
                        "description": "the client's valid id, else a new one",
                        "schema": {"type": "string"},
                    }
                },
            ),
            **{k: _error(v) for k, v in codes.items()},
        },
    }
    return {
        "/predict": {"post": {**op, "summary": "score rows on the assigned arm"}},
        "/invocations": {"post": {**op, "summary": "MLflow scoring-server compatible"}},
        "/health/live": {
            "get": {
                "summary": "the process answers",
                "responses": {
                    "200": {
                        "description": "alive",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/health/ready": {
            "get": {
                "summary": "a champion is loaded, the store reachable",
                "responses": {"200": _json("Ready", "ready"), "503": _json("Ready", "not ready")},
            }
        },
    }


def build_spec(
    columns: list[str], max_data_size: int, auth: bool, read_auth: bool = False
) -> dict[str, Any]:
    """Build the OpenAPI document.

    Parameters
    ----------
    columns : list of str
        Column names of the served data set (enumerated in the schemas).
    max_data_size : int
        Largest accepted ``data_size``.
    auth : bool
        Whether POST /traffic requires a bearer token.
    read_auth : bool
        Whether the reads (traffic, history, data) require one (``ROUTER_READ_TOKEN``).

    Returns
    -------
    dict
        An OpenAPI 3.0.3 document.
    """
    data_headers = {
        h: {"description": d, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
        for h, d in (
            ("X-Dethrone-Config-Version", "config version used"),
            ("X-Dethrone-Seed", "seed that redraws this exact slice"),
        )
    }
    data_headers["X-Dethrone-Share-A"] = {
        "description": "share a the slice was split by",
        "schema": {"type": "string"},
    }
    seed_param = {
        "name": "seed",
        "in": "query",
        "required": False,
        "description": "overrides the config's seed for this request",
        "schema": {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
    }
    errs = {k: _error(v) for k, v in _ERROR_CODES.items() if k in ("400", "401", "503")}
    read_security: dict[str, Any] = {"security": [{"bearer": []}]} if read_auth else {}

    def data_op(ref: str, summary: str) -> dict[str, Any]:
        return {
            "summary": summary,
            "parameters": [seed_param],
            **read_security,
            "responses": {
                "200": _json(ref, "the slice", data_headers),
                **errs,
                "429": _error(_ERROR_CODES["429"]),
            },
        }

    source_header = {
        "name": "X-Dethrone-Source",
        "in": "header",
        "required": False,
        "description": "who or what makes the change (a person, a DAG run); the history "
        "entry of the change keeps it as source",
        # printable ASCII; no space at the ends, which HTTP drops
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "pattern": "^[!-~]([ -~]*[!-~])?$",
        },
    }
    post_traffic: dict[str, Any] = {
        "summary": "validate and store a (partial) config",
        "parameters": [source_header],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/TrafficUpdate"}}
            },
        },
        "responses": {
            "200": _json("TrafficUpdated", "stored"),
            **{k: _error(v) for k, v in _ERROR_CODES.items() if k != "429"},
        },
    }
    if auth:
        post_traffic["security"] = [{"bearer": []}]
    get_data = data_op("Split", "a slice of data_size rows with drift applied")
    ab_data = data_op("ABData", "one slice split a : b into A and B")
    return {
        "openapi": "3.0.3",
        "info": {"title": "dethrone traffic router", "version": "1"},
        "paths": {
            "/traffic": {
                "get": {
                    "summary": "current config",
                    **read_security,
                    "responses": {"200": _json("Traffic"), **errs},
                },
                "post": post_traffic,
            },
            "/traffic/history": {
                "get": {
                    "summary": "every accepted change, oldest first",
                    **read_security,
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100_000},
                        }
                    ],
                    "responses": {"200": _json("History"), **errs},
                }
            },
            "/get_data": {"get": get_data, "post": {**get_data, "operationId": "postGetData"}},
            "/ab_data": {"get": ab_data, "post": {**ab_data, "operationId": "postAbData"}},
            "/health": {
                "get": {
                    "summary": "readiness",
                    "responses": {
                        "200": _json("Health", "ready"),
                        "503": _json("Health", "not ready"),
                    },
                }
            },
            **_serving_paths(),
            **_feedback_path(),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": component_schemas(columns, max_data_size),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

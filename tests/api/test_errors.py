"""One JSON error shape for 404, 405, 413, 415 and 500."""

from __future__ import annotations

import pytest


def _error(resp, status):
    assert resp.status_code == status
    assert resp.mimetype == "application/json"
    error = resp.get_json()["error"]
    assert set(error) == {"code", "message", "field", "status"}
    assert error["status"] == status and error["message"]
    return error


def test_404(client):
    assert _error(client.get("/no/such/page"), 404)["code"] == "not_found"


@pytest.mark.parametrize(
    "method,path",
    [("put", "/traffic"), ("delete", "/get_data"), ("patch", "/ab_data"), ("post", "/health")],
)
def test_405_keeps_allow_header(client, method, path):
    resp = getattr(client, method)(path)
    assert _error(resp, 405)["code"] == "method_not_allowed"
    assert "GET" in resp.headers["Allow"]


def test_413_for_oversized_body(client):
    resp = client.post("/traffic", data="{" + " " * 70_000 + "}", content_type="application/json")
    _error(resp, 413)


def test_415(client):
    assert (
        _error(client.post("/traffic", data="a=1", content_type="text/plain"), 415)["field"]
        == "Content-Type"
    )


def test_500_is_json_and_hides_details(app, caplog):
    def boom():
        raise RuntimeError("secret internals")

    app.add_url_rule("/boom", "boom", boom)
    resp = app.test_client().get("/boom")
    error = _error(resp, 500)
    assert error["code"] == "internal_error" and "secret" not in error["message"]
    assert "secret internals" in caplog.text  # logged for the operator

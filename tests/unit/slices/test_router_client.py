"""Router client against a scripted HTTP server on loopback: retries, errors, token."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from dethrone.slices.router_client import RouterClient, RouterError, frame_from_split, source_text

SPLIT = {
    "columns": ["carat", "color", "price"],
    "index": [4, 9],
    "data": [[0.3, "E", 500], [1.1, "J", 4200]],
}


class Script:
    """Answers per path, consumed in order; the last one repeats."""

    def __init__(self):
        self.answers: dict[str, list[tuple[int, object, float]]] = {}
        self.requests: list[dict] = []
        self.answered = threading.Event()  # set once an answer has been written

    def add(self, path, status, body, delay=0.0, headers=None):
        self.answers.setdefault(path, []).append((status, body, delay, headers or {}))


@pytest.fixture
def server():
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            path = self.path.split("?")[0]
            script.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "auth": self.headers.get("Authorization"),
                    "headers": dict(self.headers),
                    "body": self.rfile.read(length) if length else b"",
                }
            )
            queue = script.answers.get(path) or [(404, {"error": "no"}, 0.0, {})]
            status, body, delay, headers = queue.pop(0) if len(queue) > 1 else queue[0]
            try:
                time.sleep(delay)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)
            finally:  # also when the client gave up and closed the connection
                script.answered.set()

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield script
    httpd.shutdown()
    httpd.server_close()


def client(url, **kw):
    kw.setdefault("backoff", 0.01)
    return RouterClient(url, **kw)


def test_get_data_parses_split_json_and_sends_seed(server):
    server.add("/get_data", 200, SPLIT)
    frame = client(server.url).get_data(seed=17)
    expected = pd.DataFrame(SPLIT["data"], columns=SPLIT["columns"], index=SPLIT["index"])
    pd.testing.assert_frame_equal(frame, expected)
    assert server.requests[-1]["path"] == "/get_data?seed=17"


def test_ab_data_returns_both_arms(server):
    server.add("/ab_data", 200, {"a_data": SPLIT, "b_data": {**SPLIT, "index": [1, 2]}})
    a, b = client(server.url).ab_data()
    assert len(a) == 2 and list(b.index) == [1, 2]


def test_server_errors_are_retried_then_succeed(server):
    server.add("/traffic", 503, {"error": "busy"})
    server.add("/traffic", 502, {"error": "gateway"})
    server.add("/traffic", 200, {"a": 0.5, "b": 0.5, "data_size": 10, "drift_cols": []})
    assert client(server.url, retries=3).get_traffic()["data_size"] == 10
    assert len(server.requests) == 3


def test_client_errors_are_not_retried_and_name_the_problem(server):
    server.add("/traffic", 400, {"error": {"message": "a + b must equal 1", "field": "b"}})
    with pytest.raises(RouterError, match="HTTP 400.*a \\+ b must equal 1"):
        client(server.url, retries=3, token="t").set_traffic(a=0.7, b=0.7)
    assert len(server.requests) == 1


def test_token_is_sent_on_post(server):
    server.add("/traffic", 200, {"status": "updated", "traffic": {"a": 0.6, "b": 0.4}})
    out = client(server.url, token="s3cret").set_traffic(a=0.6)
    assert out == {"a": 0.6, "b": 0.4}
    req = server.requests[-1]
    assert req["auth"] == "Bearer s3cret" and json.loads(req["body"]) == {"a": 0.6}


@pytest.mark.parametrize("source", [None, "live experiment live-v2-ab (run manual__1): start"])
def test_set_traffic_sends_the_source_header_only_when_given(server, source):
    server.add("/traffic", 200, {"status": "updated", "traffic": {"mode": "ab"}})
    assert client(server.url).set_traffic(source=source, mode="ab") == {"mode": "ab"}
    req = server.requests[-1]
    # the source is a header, never a config field
    assert req["headers"].get("X-Dethrone-Source") == source
    assert json.loads(req["body"]) == {"mode": "ab"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ana", "ana"),
        ("", "?"),
        ("   ", "?"),
        (" ana ", "ana"),
        ("a\u00e9\x00\n~", "a???~"),
        ("x" * 256, "x" * 256),
        ("x" * 257, "x" * 253 + "..."),
    ],
)
def test_source_text_is_a_valid_header_value(text, expected):
    assert source_text(text) == expected


@pytest.mark.parametrize(
    "body, match",
    [
        ({"columns": ["a"]}, "invalid /get_data slice.*'columns' and 'data'"),
        ({"columns": ["a", "b"], "data": [[1]]}, "does not have 2 values"),
        ({"columns": ["a"], "data": [[1]], "index": [1, 2]}, "index length"),
        ([1, 2, 3], "invalid /get_data slice"),
        (b"<html>oops</html>", "not JSON"),
    ],
)
def test_invalid_slices_raise_clear_errors(server, body, match):
    server.add("/get_data", 200, body)
    with pytest.raises(RouterError, match=match):
        client(server.url).get_data()


def test_ab_data_without_arms_is_invalid(server):
    server.add("/ab_data", 200, {"a_data": SPLIT})
    with pytest.raises(RouterError, match="'a_data' and 'b_data'"):
        client(server.url).ab_data()


def test_timeout_is_retried_then_reported(server):
    server.add("/traffic", 200, {"a": 1}, delay=0.5)
    start = time.monotonic()
    with pytest.raises(RouterError, match="unreachable after 2 attempts.*ReadTimeout"):
        client(server.url, timeout=0.1, retries=1).get_traffic()
    assert time.monotonic() - start < 3


def test_unreachable_router():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RouterError, match=f"127.0.0.1:{port} unreachable after 3 attempts"):
        client(f"http://127.0.0.1:{port}", retries=2).get_traffic()


def test_frame_from_split_without_index():
    frame = frame_from_split({"columns": ["x"], "data": [[1], [2]]})
    assert list(frame["x"]) == [1, 2]


def test_ab_slices_take_split_and_config_version_from_the_same_answer(server):
    server.add("/traffic", 200, {"a": 0.5, "b": 0.5})  # must not be asked
    server.add(
        "/ab_data",
        200,
        {"a_data": SPLIT, "b_data": SPLIT},
        headers={"X-Dethrone-Share-A": "0.7", "X-Dethrone-Config-Version": "12"},
    )
    found = client(server.url).ab_slices(seed=3)
    assert (found.share_a, found.config_version) == (0.7, "12")
    assert len(found.a) == len(found.b) == 2
    assert [r["path"] for r in server.requests] == ["/ab_data?seed=3"]


@pytest.mark.parametrize("share", [None, "abc", "1.5", "nan", "-0.1"])
def test_ab_slices_without_a_valid_split_header_is_permanent(server, share):
    headers = {} if share is None else {"X-Dethrone-Share-A": share}
    server.add("/ab_data", 200, {"a_data": SPLIT, "b_data": SPLIT}, headers=headers)
    with pytest.raises(RouterError, match="X-Dethrone-Share-A") as err:
        client(server.url).ab_slices()
    assert err.value.permanent


PREDICTION = {"predictions": [1571.4], "arm": "champion", "model_version": "3", "request_id": "r-1"}


def test_predict_sends_rows_unit_and_request_id(server):
    server.add("/predict", 200, PREDICTION)
    rows = [{"carat": 0.5, "cut": "Ideal"}]
    answer = client(server.url, read_token="rt").predict(rows, unit="u-7", request_id="r-1")
    assert answer == PREDICTION
    sent = server.requests[-1]
    assert sent["method"] == "POST" and sent["path"] == "/predict"
    assert json.loads(sent["body"]) == {"rows": rows}
    assert sent["headers"]["X-Dethrone-Unit"] == "u-7"
    assert sent["headers"]["X-Request-ID"] == "r-1"
    assert sent["auth"] == "Bearer rt"


def test_predict_without_unit_sends_no_unit_header(server):
    server.add("/predict", 200, PREDICTION)
    client(server.url).predict([{"carat": 0.5}])
    assert "X-Dethrone-Unit" not in server.requests[-1]["headers"]


@pytest.mark.parametrize("status", [429, 503])
def test_predict_is_retried_when_surely_not_served(server, status):
    server.add("/predict", status, {"error": "busy"})
    server.add("/predict", 200, PREDICTION)
    assert client(server.url, retries=1).predict([{"carat": 0.5}]) == PREDICTION
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 504])
def test_predict_is_not_replayed_after_a_possibly_served_error(server, status):
    server.add("/predict", status, {"error": "x"})
    server.add("/predict", 200, PREDICTION)
    with pytest.raises(RouterError) as err:
        client(server.url, retries=3).predict([{"carat": 0.5}])
    assert len(server.requests) == 1
    assert err.value.status == status and err.value.reason == f"HTTP {status}"


def test_predict_is_not_replayed_after_a_timeout(server):
    server.add("/predict", 200, PREDICTION, delay=0.5)
    with pytest.raises(RouterError) as err:
        client(server.url, timeout=0.1, retries=3).predict([{"carat": 0.5}])
    assert err.value.reason == "ReadTimeout" and err.value.status is None
    # the slow answer finished: a retry sent on the timeout would have arrived by then
    assert server.answered.wait(30)
    assert len(server.requests) == 1


def test_predict_is_retried_when_the_connection_is_refused():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RouterError, match="unreachable after 3 attempts") as err:
        client(f"http://127.0.0.1:{port}", retries=2).predict([{"carat": 0.5}])
    assert err.value.reason == "ConnectionError"


def test_predict_answer_without_predictions_is_invalid(server):
    server.add("/predict", 200, {"arm": "champion"})
    with pytest.raises(RouterError, match="unexpected answer to POST /predict"):
        client(server.url).predict([{"carat": 0.5}])


def test_feedback_posts_a_list_with_the_write_token_and_is_retried(server):
    body = {
        "results": [{"request_id": "r-1", "row": 0, "status": "stored"}],
        "counts": {"stored": 1},
    }
    server.add("/feedback", 500, {"error": "db"})
    server.add("/feedback", 207, body)
    items = [{"request_id": "r-1", "row": 0, "label": 1500.0}]
    assert client(server.url, token="wt", read_token="rt", retries=1).feedback(items) == body
    assert [json.loads(r["body"]) for r in server.requests] == [items, items]
    assert server.requests[-1]["auth"] == "Bearer wt"


def test_feedback_refused_body_raises_with_status(server):
    server.add("/feedback", 400, {"error": "invalid", "field": "[0].label"})
    with pytest.raises(RouterError, match=r"\[0\].label") as err:
        client(server.url).feedback([{"request_id": "r", "row": 0, "label": None}])
    assert err.value.status == 400 and err.value.permanent

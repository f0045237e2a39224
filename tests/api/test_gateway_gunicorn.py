"""Issue 18 under real gunicorn: chunked bodies over the limit, and a worker's memory under
oversized bodies (items 8 and 3). No model is needed: the body is read before scoring."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

PREDICT_LIMIT = 1000 * 4096  # SERVING_MAX_ROWS (1000) x 4 KiB


def _chunks(data: bytes, size: int = 64 * 1024):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_8_chunked_bodies_count_against_the_limit(router_server):
    server = router_server(
        workers=1, ROUTER_LOG_LEVEL="warning", MLFLOW_TRACKING_URI="http://127.0.0.1:9"
    )
    headers = {"Content-Type": "application/json"}
    item = json.dumps({"request_id": "r1", "row": 0, "label": 1.0}).encode()
    # a valid body followed by spaces beyond the /feedback limit (512 KB), sent chunked
    padded = requests.post(
        server.url + "/feedback",
        data=_chunks(item + b" " * 600_000),
        headers=headers,
        timeout=30,
    )
    assert padded.status_code == 413, padded.text[:300]
    assert padded.json()["error"]["code"] == "request_entity_too_large"
    # 10 MB chunked to /predict (limit 4 MB): refused, not cut into "Unterminated string"
    big = b'{"rows": [{"cut": "' + b"x" * 10_000_000 + b'"}]}'
    resp = requests.post(server.url + "/predict", data=_chunks(big), headers=headers, timeout=60)
    assert resp.status_code == 413, resp.text[:300]
    # a chunked body under the limit is read whole
    ok = requests.post(server.url + "/feedback", data=_chunks(item), headers=headers, timeout=30)
    assert ok.status_code in (404, 200), ok.text[:300]


def test_3_worker_memory_under_oversized_string_bodies_is_bounded(router_server):
    server = router_server(
        workers=1, ROUTER_LOG_LEVEL="warning", MLFLOW_TRACKING_URI="http://127.0.0.1:9"
    )
    (pid,) = server.worker_pids()
    headers = {"Content-Type": "application/json", "Connection": "close"}
    small = json.dumps({"rows": [{"carat": 0.5, "depth": 61.0, "cut": "Ideal"}]})
    requests.post(server.url + "/predict", data=small, headers=headers, timeout=30)
    before = _rss_kib(pid, "VmHWM")
    body = json.dumps({"rows": [{"carat": 0.5, "depth": 61.0, "cut": "x" * 3_900_000}]})
    assert len(body) < PREDICT_LIMIT
    codes = []
    started = time.monotonic()
    for _ in range(10):
        resp = requests.post(server.url + "/predict", data=body, headers=headers, timeout=60)
        codes.append(resp.status_code)
    took = (time.monotonic() - started) / 10
    peak, rest = _rss_kib(pid, "VmHWM"), _rss_kib(pid, "VmRSS")
    print(
        f"worker {pid}: peak RSS {before / 1024:.0f} -> {peak / 1024:.0f} MiB "
        f"(+{(peak - before) / 1024:.0f}), resting {rest / 1024:.0f} MiB, "
        f"{took * 1000:.0f} ms per 3.9 MB request, statuses {sorted(set(codes))}"
    )
    assert set(codes) == {413}
    assert peak - before < 64 * 1024, f"peak grew by {(peak - before) / 1024:.0f} MiB"

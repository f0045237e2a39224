"""The router under real gunicorn with 2 workers: shared, durable, concurrent config."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _metric(text: str, line_start: str) -> float:
    match = re.search("^" + re.escape(line_start) + r" (\S+)$", text, re.MULTILINE)
    assert match, line_start
    return float(match.group(1))


def test_config_is_shared_by_workers_and_survives_restart(router_server, tmp_path):
    data_dir = tmp_path / "shared"
    server = router_server(data_dir, workers=2)
    resp = requests.post(
        server.url + "/traffic",
        timeout=10,
        json={"a": 0.2, "data_size": 300, "drift_cols": ["color"]},
    )
    assert resp.status_code == 200
    posted = resp.json()["traffic"]
    versions = set()
    for _ in range(50):
        # A new connection each time, so both workers answer some of them.
        r = requests.get(server.url + "/traffic", timeout=10, headers={"Connection": "close"})
        assert r.json() == posted
        d = requests.get(server.url + "/get_data", timeout=10, headers={"Connection": "close"})
        versions.add(d.headers["X-Dethrone-Config-Version"])
        assert len(d.json()["index"]) == 300
    assert versions == {"1"}
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    # Counters are summed over both workers' files, whichever worker answers the scrape.
    assert (
        _metric(
            metrics, 'dethrone_router_requests_total{endpoint="/traffic",method="GET",status="200"}'
        )
        == 50
    )
    assert _metric(metrics, 'dethrone_router_rows_served_total{endpoint="/get_data"}') == 15000
    assert _metric(metrics, "dethrone_router_traffic_a") == 0.2
    server.stop()

    again = router_server(data_dir, workers=2)
    assert requests.get(again.url + "/traffic", timeout=10).json() == posted
    history = requests.get(again.url + "/traffic/history", timeout=10).json()["history"]
    assert len(history) == 1 and history[0]["after"]["a"] == 0.2
    # A restart starts the counters afresh (stale worker files would be summed otherwise).
    metrics = requests.get(again.url + "/metrics", timeout=10).text
    assert 'endpoint="/get_data"' not in metrics


def test_twenty_concurrent_posts(router_server):
    server = router_server(workers=2)
    bodies = [{"a": round(0.01 * (i + 1), 2), "data_size": 100 + i} for i in range(20)]

    def post(body):
        return requests.post(
            server.url + "/traffic", json=body, timeout=30, headers={"Connection": "close"}
        )

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, bodies))
    assert [r.status_code for r in answers] == [200] * 20
    assert sorted(r.json()["traffic"]["version"] for r in answers) == list(range(1, 21))
    history = requests.get(server.url + "/traffic/history", timeout=10).json()["history"]
    assert [h["version"] for h in history] == list(range(1, 21))
    # Each change starts from the one before it: no update was lost or interleaved.
    for older, newer in zip(history, history[1:], strict=False):
        assert newer["before"] == older["after"]
    final = requests.get(server.url + "/traffic", timeout=10).json()
    assert {"a": final["a"], "data_size": final["data_size"]} in bodies
    assert final == {**history[-1]["after"], "version": 20}


def test_token_under_gunicorn(router_server):
    server = router_server(workers=1, ROUTER_TOKEN="tok-123")
    assert requests.post(server.url + "/traffic", json={"a": 0.3}, timeout=10).status_code == 401
    ok = requests.post(
        server.url + "/traffic",
        json={"a": 0.3},
        timeout=10,
        headers={"Authorization": "Bearer tok-123"},
    )
    assert ok.status_code == 200
    assert requests.get(server.url + "/traffic", timeout=10).json()["a"] == 0.3


def test_source_of_a_change_over_http(router_server):
    from dethrone.slices.router_client import RouterClient, RouterError

    server = router_server(workers=1, ROUTER_TOKEN="tok-123")
    client = RouterClient(server.url, token="tok-123", retries=0)
    source = "live experiment live-v2-ab (run manual__2026-11-29T00:00:00+00:00): start"
    assert client.set_traffic(source=source, mode="shadow")["mode"] == "shadow"
    client.set_traffic(mode="champion")
    # UTF-8 bytes arrive as latin-1 text: refused, not stored garbled
    bad = requests.post(
        server.url + "/traffic",
        json={"mode": "ab"},
        timeout=10,
        headers={"Authorization": "Bearer tok-123", "X-Dethrone-Source": "caf\u00e9".encode()},
    )
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "X-Dethrone-Source"
    with pytest.raises(RouterError, match="X-Dethrone-Source") as info:
        client.set_traffic(source="x" * 257, mode="ab")
    assert info.value.status == 400 and info.value.permanent
    history = requests.get(server.url + "/traffic/history", timeout=10).json()["history"]
    assert [(h["after"]["mode"], h["source"]) for h in history] == [
        ("shadow", source),
        ("champion", None),
    ]


def test_router_command_line():
    import argparse

    from dethrone.cli import router_cmd

    sub = argparse.ArgumentParser().add_subparsers()
    args = router_cmd.add_parser(sub).parse_args(["--port", "8123", "--workers", "3"])
    assert (args.host, args.port, args.workers) == ("127.0.0.1", 8123, 3)
    cmd = router_cmd.command(args)
    assert cmd[1:3] == ["-m", "gunicorn"]
    assert cmd[cmd.index("--bind") + 1] == "127.0.0.1:8123"
    assert cmd[cmd.index("--workers") + 1] == "3"
    assert cmd[-1] == "dethrone_router.wsgi:app"
    args.workers = 0
    assert router_cmd.run(args) == 2


def test_app_gunicorn_conf_file_is_valid(tmp_path):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {"PATH": "/usr/bin:/bin", "ROUTER_DATA_DIR": str(tmp_path / "d")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "app/gunicorn.conf.py",
            "--check-config",
            "dethrone_router.wsgi:app",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

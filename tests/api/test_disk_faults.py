"""The router under gunicorn on a full or read-only disk (issue 14, cases 1 and 2).

The disks are small tmpfs mounts (root only) and write access is taken away with
``chmod`` from a router whose root has no CAP_DAC_OVERRIDE (``setpriv``); where the
machine allows neither, the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from dethrone.devstack.process import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NO_DAC_OVERRIDE = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--ambient-caps=-all"]


def _mount(target: Path, options: str) -> None:
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        capture_output=True,
        text=True,
    )
    if res.returncode:
        pytest.skip(
            f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode}); "
            f"the disk tests need root"
        )


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs; unmounted at teardown."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount(disk, "size=2m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    # Unbuffered: a buffered file would raise ENOSPC again when it is closed.
    with open(filler, "ab", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def _new(url: str, method: str = "GET", **kw) -> requests.Response:
    # A new connection each time, so every worker answers some of the requests.
    headers = {"Connection": "close", **kw.pop("headers", {})}
    return requests.request(method, url, headers=headers, timeout=20, **kw)


def _store_error(resp: requests.Response, server_dir: Path, cause: str) -> None:
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    assert error["code"] == "store_unavailable"
    assert str(server_dir) in error["message"] and cause in error["message"].lower()
    assert "rollback" not in error["message"]
    assert resp.headers["Retry-After"]


def _assert_reads_work(url: str, config: dict, times: int = 6) -> None:
    for _ in range(times):
        assert _new(url + "/traffic").json() == config
        data = _new(url + "/get_data?seed=3")
        assert data.status_code == 200 and len(data.json()["index"]) == config["data_size"]


def _health(url: str) -> tuple[int, dict]:
    resp = _new(url + "/health")
    return resp.status_code, resp.json()


def _wait_health(url: str, status: int, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, body = _health(url)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        time.sleep(0.3)


def test_full_disk_reads_go_on_writes_503_and_service_resumes(router_server, small_disk):
    data_dir = small_disk  # the gunicorn log goes to its parent, off the small disk
    server = router_server(data_dir, workers=2)
    posted = _new(server.url + "/traffic", "POST", json={"a": 0.3, "data_size": 200}).json()
    config = posted["traffic"]
    workers = server.worker_pids()
    filler = _fill(small_disk)

    _assert_reads_work(server.url, config)
    body = _wait_health(server.url, 503)
    assert body["checks"]["store_writable"] is False and body["checks"]["dataset"] is True
    assert "full" in body["store"]["problem"]
    _store_error(_new(server.url + "/traffic", "POST", json={"a": 0.6}), data_dir, "full")
    assert _new(server.url + "/metrics").status_code == 200
    assert server.worker_pids() == workers, server.log.read_text()[-2000:]

    filler.unlink()
    assert _new(server.url + "/traffic", "POST", json={"a": 0.6}).status_code == 200
    _wait_health(server.url, 200)
    history = _new(server.url + "/traffic/history").json()["history"]
    assert [h["after"]["a"] for h in history] == [0.3, 0.6]


def test_metrics_on_a_full_disk_never_kill_a_worker(router_server, small_disk, tmp_path):
    """The old layout (metrics files on the store's disk) died of SIGBUS here."""
    metrics_dir = small_disk / "metrics"
    metrics_dir.mkdir()
    server = router_server(
        tmp_path / "router", workers=2, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    )
    workers = server.worker_pids()
    filler = _fill(small_disk)
    # Many distinct label sets make the metric files grow into unallocated pages.
    for i in range(60):
        assert _new(server.url + f"/no/such/{i}", ["GET", "PUT", "DELETE"][i % 3]).status_code in (
            404,
            405,
        )
        assert _new(server.url + "/get_data?seed=1").status_code == 200
    assert server.worker_pids() == workers, server.log.read_text()[-2000:]
    assert "SIGBUS" not in server.log.read_text()
    filler.unlink()

    # Started with the metrics disk already full: workers start and serve, and say why
    # they count nothing.
    server.stop()
    filler = _fill(small_disk)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    _fill(small_disk)
    again = router_server(tmp_path / "router", workers=1, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    code, body = _health(again.url)
    assert code == 200 and "metrics disabled" in body["metrics"]
    assert _new(again.url + "/get_data").status_code == 200
    assert _new(again.url + "/metrics").status_code == 200
    # The gateway's model watcher counts its first registry check (MLflow is not running
    # here) right after it: that count must not touch a metric file either (it did, SIGBUS).
    pids = again.worker_pids()
    deadline = time.monotonic() + 30
    while "registry unreachable" not in again.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "registry unreachable" in again.log.read_text()
    # the watcher records the registry as unreachable right after counting it: once /health
    # says so, the count is done (a SIGBUS there would have replaced the worker)
    recorded = lambda: _health(again.url)[1]["serving"].get("registry") == "unreachable"  # noqa: E731
    assert wait_until(recorded, timeout=30, interval=0.2), "the registry check was never recorded"
    assert again.worker_pids() == pids and "SIGBUS" not in again.log.read_text()
    assert _new(again.url + "/get_data").status_code == 200


def test_write_access_lost_and_regained_at_run_time(router_server, tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's CAP_DAC_OVERRIDE")
    data_dir = tmp_path / "router"
    server = router_server(data_dir, workers=2, wrap=NO_DAC_OVERRIDE)
    config = _new(server.url + "/traffic", "POST", json={"a": 0.4, "data_size": 150}).json()[
        "traffic"
    ]
    modes = {p: p.stat().st_mode for p in [data_dir, *data_dir.iterdir()]}
    for path in modes:
        path.chmod(modes[path] & ~0o222)
    try:
        _assert_reads_work(server.url, config)
        body = _wait_health(server.url, 503)
        assert "read-only" in body["store"]["problem"]
        for _ in range(4):
            _store_error(
                _new(server.url + "/traffic", "POST", json={"a": 0.9}), data_dir, "read-only"
            )
        # A worker that dies now is replaced, and the new one starts and serves.
        victim = sorted(server.worker_pids())[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (len(server.worker_pids() - {victim}) < 2) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(server.worker_pids() - {victim}) == 2, server.log.read_text()[-3000:]
        _assert_reads_work(server.url, config)
        assert server.proc.poll() is None
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    resp = _new(server.url + "/traffic", "POST", json={"a": 0.9})
    assert resp.status_code == 200, resp.text
    _wait_health(server.url, 200)
    assert [h["after"]["a"] for h in _new(server.url + "/traffic/history").json()["history"]] == [
        0.4,
        0.9,
    ]


def test_start_on_a_read_only_file_system_and_recover(router_server, small_disk):
    data_dir = small_disk  # the gunicorn log goes to its parent, off the small disk
    server = router_server(data_dir, workers=1)
    config = _new(server.url + "/traffic", "POST", json={"a": 0.2, "data_size": 120}).json()[
        "traffic"
    ]
    server.stop()
    remount = subprocess.run(
        ["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, text=True
    )
    if remount.returncode:
        pytest.skip(f"cannot remount the tmpfs read-only: {remount.stderr.strip()}")
    try:
        again = router_server(data_dir, workers=2, ready=False)
        _assert_reads_work(again.url, config)
        body = _wait_health(again.url, 503)
        assert body["checks"]["store_writable"] is False
        _store_error(_new(again.url + "/traffic", "POST", json={"a": 0.7}), data_dir, "read-only")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    # Read-only connections are retried read-write after a second: wait for it, however
    # long a busy machine takes, instead of sleeping a fixed 1.2 s.
    deadline, status = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        status = _new(again.url + "/traffic", "POST", json={"a": 0.7}).status_code
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200
    _wait_health(again.url, 200)
    # the other worker may still be in its 1 s read-retry window after the outage: every
    # worker serves the new config once it reads the store again
    deadline, seen = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        seen = _new(again.url + "/traffic").json()["a"]
        if seen == 0.7:
            break
        time.sleep(0.2)
    assert seen == 0.7


def test_gunicorn_refusals_use_the_json_error_shape(router_server):
    server = router_server(workers=1)
    for request in (
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n",
        b"BREW\x01 / HTTP/1.1\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"Content-Type: application/json" in head, answer[:300]
        error = json.loads(body)["error"]
        status = int(head.split()[1])
        assert error["status"] == status and 400 <= status < 500 and error["message"]


def test_metrics_files_live_outside_the_store_and_go_at_stop(router_server, tmp_path):
    server = router_server(tmp_path / "router", workers=2)
    assert _new(server.url + "/get_data").status_code == 200
    shm = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    folder = shm / f"dethrone-router-{server.port}"
    deadline = time.monotonic() + 20  # the second worker may still be loading the data set
    while len(list(folder.glob("*.db"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(list(folder.glob("*.db"))) == 4  # counter and histogram of each worker
    assert not (tmp_path / "router" / "metrics").exists()
    server.stop()
    assert not folder.exists()

"""The natively started stack is secured like the compose one: credentials everywhere,
loopback only, each database reachable only by its own role, buckets in place."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

import boto3
import psutil
import psycopg
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]


def test_mlflow_answers_401_without_credentials(stack):
    url = f"{stack.mlflow_url}/api/2.0/mlflow/experiments/search"
    params = {"max_results": 1}
    assert requests.get(url, params=params, timeout=30).status_code == 401
    wrong = (stack.creds.mlflow_user, stack.creds.mlflow_password + "x")
    assert requests.get(url, params=params, auth=wrong, timeout=30).status_code == 401
    good = (stack.creds.mlflow_user, stack.creds.mlflow_password)
    response = requests.get(url, params=params, auth=good, timeout=30)
    assert response.status_code == 200, response.text


def test_post_traffic_without_the_token_answers_401_and_changes_nothing(stack):
    read = {"Authorization": f"Bearer {stack.creds.router_read_token}"}
    before = requests.get(f"{stack.router_url}/traffic", timeout=30, headers=read)
    assert before.status_code == 200
    history = requests.get(f"{stack.router_url}/traffic/history", timeout=30, headers=read)
    change = {"a": 0.2, "b": 0.8, "drift_cols": ["carat"]}
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {stack.creds.router_token}"},
    ):
        response = requests.post(
            f"{stack.router_url}/traffic", json=change, headers=headers, timeout=30
        )
        assert response.status_code == 401, (headers, response.text)
    after = requests.get(f"{stack.router_url}/traffic", timeout=30, headers=read)
    assert after.json() == before.json()
    if history.status_code == 200:
        assert (
            requests.get(f"{stack.router_url}/traffic/history", timeout=30, headers=read).json()
            == history.json()
        )
    # The token itself is accepted: re-post the current split unchanged.
    current = before.json()
    same = {"a": current["a"], "b": current["b"]}
    response = requests.post(
        f"{stack.router_url}/traffic",
        json=same,
        timeout=30,
        headers={"Authorization": f"Bearer {stack.creds.router_token}"},
    )
    assert response.status_code == 200, response.text
    assert {k: response.json()["traffic"][k] for k in ("a", "b", "data_size", "drift_cols")} == {
        k: current[k] for k in ("a", "b", "data_size", "drift_cols")
    }


def test_airflow_api_requires_the_admin_from_env(stack, airflow):
    assert requests.get(f"{stack.airflow_url}/api/v2/dags", timeout=30).status_code == 401
    bad = requests.post(
        f"{stack.airflow_url}/auth/token",
        timeout=30,
        json={"username": stack.creds.airflow_user, "password": "not-the-password"},
    )
    assert bad.status_code in (400, 401), bad.text
    response = airflow.get("/dags")
    assert response.status_code == 200, response.text


def test_nothing_listens_beyond_loopback(stack):
    pids = stack.started_pids()
    listening = [
        c
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]
    ports = {c.laddr.port for c in listening}
    expected = {
        stack.ports.postgres,
        stack.ports.s3,
        stack.ports.mlflow,
        stack.ports.router,
        stack.ports.airflow,
        stack.ports.scheduler_health,
    }
    assert expected <= ports, f"services not listening: {expected - ports}"
    exposed = [
        (c.pid, c.laddr.ip, c.laddr.port)
        for c in listening
        if not ipaddress.ip_address(c.laddr.ip).is_loopback
    ]
    assert not exposed, f"listening beyond loopback: {exposed}"
    # Cross-check with ss, which sees sockets psutil might attribute to no PID.
    ss = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True)
    if ss.returncode == 0:
        ours = [
            line for line in ss.stdout.splitlines() if any(f"pid={pid}," in line for pid in pids)
        ]
        assert ours
        for line in ours:
            local = line.split()[3]
            assert local.startswith(("127.0.0.1:", "[::1]:")), line


def test_both_buckets_exist_and_setup_is_idempotent(stack):
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        region_name="us-east-1",
        aws_access_key_id=stack.creds.s3_access_key,
        aws_secret_access_key=stack.creds.s3_secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {stack.artifact_bucket, stack.staging_bucket} <= names
    env = {**stack.base_env(), **stack.s3_env(), "S3_ENDPOINT_URL": stack.s3_url}
    again = subprocess.run(
        [
            "sh",
            str(ROOT / "minio" / "create-bucket.sh"),
            stack.artifact_bucket,
            stack.staging_bucket,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("exists") == 2, again.stdout
    anonymous = boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        region_name="us-east-1",
        aws_access_key_id="nobody",
        aws_secret_access_key="nothing-at-all",
    )
    with pytest.raises(ClientError):
        anonymous.list_objects_v2(Bucket=stack.staging_bucket)


def test_each_database_is_reachable_only_by_its_role(stack):
    def connect(user: str, password: str, db: str):
        return psycopg.connect(
            host="127.0.0.1",
            port=stack.ports.postgres,
            user=user,
            password=password,
            dbname=db,
            connect_timeout=10,
        )

    with connect("mlflow", stack.creds.mlflow_db_password, "mlflow") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "mlflow"
    with connect("airflow", stack.creds.airflow_db_password, "airflow") as conn:
        tables = conn.execute(
            "select count(*) from information_schema.tables where table_name in ('dag', 'ab_user')"
        ).fetchone()[0]
        assert tables == 2  # Airflow's and the FAB auth manager's tables were migrated
    with connect("router", stack.creds.router_db_password, "router") as conn:
        tables = conn.execute(
            "select count(*) from information_schema.tables "
            "where table_name in ('config', 'predictions')"
        ).fetchone()[0]
        assert tables == 2  # the router migrated its own database
    with pytest.raises(psycopg.OperationalError):
        connect("mlflow", stack.creds.mlflow_db_password, "airflow").close()
    with pytest.raises(psycopg.OperationalError):
        connect("router", stack.creds.router_db_password, "mlflow").close()
    with pytest.raises(psycopg.OperationalError):
        connect("airflow", "wrong-password", "airflow").close()


def test_mlflow_auth_config_was_rendered_private(stack):
    config = stack.workdir / "mlflow-config" / "basic_auth.ini"
    assert config.exists()
    assert os.stat(config).st_mode & 0o077 == 0
    assert stack.creds.mlflow_password not in config.read_text()


def test_router_is_reached_through_nginx_and_guards_reads(stack):
    health = requests.get(f"{stack.router_url}/health", timeout=30)
    assert health.status_code == 200 and health.headers["Server"] == "nginx"
    assert requests.get(f"{stack.router_url}/metrics", timeout=30).status_code == 200
    for path in ("/traffic", "/get_data", "/ab_data", "/traffic/history"):
        refused = requests.get(f"{stack.router_url}{path}", timeout=30)
        assert refused.status_code == 401 and refused.json()["error"]["field"] == "Authorization"
    read = {"Authorization": f"Bearer {stack.creds.router_read_token}"}
    assert requests.get(f"{stack.router_url}/get_data", timeout=60, headers=read).ok
    # nginx refuses an oversized body itself, in the router's JSON error shape.
    big = requests.post(
        f"{stack.router_url}/traffic",
        data=b" " * 70_000,
        timeout=30,
        headers={"Content-Type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error"]["status"] == 413

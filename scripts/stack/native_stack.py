"""The docker-compose topology, started natively on 127.0.0.1 (no Docker engine here).

Same services, same configuration knobs, same project scripts as docker-compose.yml:
PostgreSQL (postgres/init-databases.sh) as the backend of MLflow and Airflow; seaweedfs as
the S3 store with the buckets of minio/create-bucket.sh; MLflow through mlflow/entrypoint.sh
with the basic-auth app and S3 artifact proxy; the router under gunicorn with its write and
read tokens, behind nginx (Debian's package, installed by ensure-nginx.sh when missing) with
nginx/router.conf.template, the file compose's nginx uses;
Airflow 3 with LocalExecutor and the FAB auth manager (db migrate, admin user, api-server,
scheduler, dag-processor). Differences, all forced by running without containers: every
service binds 127.0.0.1 on a free port, Airflow's log server is skipped (it binds every
interface; task logs are local files here), and no triggerer runs (the DAG defers nothing).

    python scripts/stack/native_stack.py     # start, print the URLs and credentials, stop on Ctrl-C
"""

from __future__ import annotations

import base64
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import nginx_proxy  # type: ignore
    from native_procs import Procs, free_port, http_ok, port_open, wait_until  # type: ignore
else:
    from . import nginx_proxy
    from .native_procs import Procs, free_port, http_ok, port_open, wait_until

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"

# Variables that would leak the developer's own configuration into the stack.
_FOREIGN = ("AIRFLOW", "MLFLOW_", "AWS_", "PG", "ROUTER_", "PROMETHEUS_MULTIPROC_DIR")


def _secret() -> str:
    return secrets.token_hex(16)


@dataclass
class Credentials:
    postgres_password: str = field(default_factory=_secret)
    mlflow_db_password: str = field(default_factory=_secret)
    airflow_db_password: str = field(default_factory=_secret)
    router_db_password: str = field(default_factory=_secret)
    s3_access_key: str = field(default_factory=lambda: "stack" + secrets.token_hex(6))
    s3_secret_key: str = field(default_factory=_secret)
    mlflow_user: str = "admin"
    mlflow_password: str = field(default_factory=_secret)
    airflow_user: str = "admin"
    airflow_password: str = field(default_factory=_secret)
    router_token: str = field(default_factory=_secret)
    router_read_token: str = field(default_factory=_secret)


@dataclass
class Ports:
    postgres: int = field(default_factory=free_port)
    s3: int = field(default_factory=free_port)
    mlflow: int = field(default_factory=free_port)
    router: int = field(default_factory=free_port)
    router2: int = field(default_factory=free_port)
    prometheus: int = field(default_factory=free_port)
    nginx: int = field(default_factory=free_port)
    airflow: int = field(default_factory=free_port)
    scheduler_health: int = field(default_factory=free_port)


class Stack:
    """Start with :meth:`start`, always :meth:`stop` (also after a failed start)."""

    artifact_bucket = "mlflow-artifacts"
    staging_bucket = "dethrone-staging"

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dethrone-stack-"))
        self.logdir = self.workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.procs = Procs(self.logdir)
        self.creds = Credentials()
        self.ports = Ports()
        self.timings: dict[str, float] = {}
        self._pgdir: Path | None = None
        self.airflow_home = self.workdir / "airflow"

    # ------------------------------------------------------------------ URLs
    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.mlflow}"

    @property
    def router_url(self) -> str:
        """The router as the outside sees it: through nginx (compose publishes only nginx)."""
        return f"http://127.0.0.1:{self.ports.nginx}"

    @property
    def router_direct_url(self) -> str:
        """gunicorn itself, as the pipeline reaches it on compose's network."""
        return f"http://127.0.0.1:{self.ports.router}"

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.airflow}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    # ------------------------------------------------------------------ environments
    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHON"] = sys.executable
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONPATH", None)
        return env

    def s3_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.creds.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.creds.s3_secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def pipeline_env(self) -> dict[str, str]:
        """What docker-compose.yml gives the airflow-* services for dethrone."""
        return {
            **self.s3_env(),
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": self.creds.mlflow_user,
            "MLFLOW_TRACKING_PASSWORD": self.creds.mlflow_password,
            "FLASK_URL": self.router_direct_url,
            "ROUTER_TOKEN": self.creds.router_token,
            "ROUTER_READ_TOKEN": self.creds.router_read_token,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_url,
            "S3_ENDPOINT_URL": self.s3_url,
            "STAGING_BUCKET": self.staging_bucket,
            "STAGING_URI": f"s3://{self.staging_bucket}/pipeline",
            "DETHRONE_HOME": str(self.workdir / "dethrone"),
            # the live_experiment DAG reads the log the routers write
            "ROUTER_DATABASE_URL": self.router_database_url,
            # Test-sized live experiments (compose keeps the defaults, 5% and 200): a rollback
            # is decided on a minute of simulated traffic instead of an hour of real traffic.
            "HOLDBACK_SHARE": "0.25",
            "AB_MIN_ROWS_PER_ARM": "100",
            # no day-long minimum before a promotion, labels counted within 2 s of serving
            "LIVE_MIN_DURATION": "1s",
            "LABEL_WINDOW": "2s",
        }

    def airflow_env(self) -> dict[str, str]:
        fernet = base64.urlsafe_b64encode(self._fernet_bytes).decode()
        db = (
            f"postgresql+psycopg://airflow:{self.creds.airflow_db_password}"
            f"@127.0.0.1:{self.ports.postgres}/airflow"
        )
        return {
            **self.base_env(),
            **self.pipeline_env(),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow" / "dags"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db,
            "AIRFLOW__CORE__FERNET_KEY": fernet,
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
            "AIRFLOW__API__SECRET_KEY": self._api_secret,
            "AIRFLOW__API__BASE_URL": self.airflow_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.ports.airflow),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "true",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(
                self.ports.scheduler_health
            ),
            # A test cannot wait the default 5 minutes for a new DAG file to be noticed.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # Two cores shared with other work: keep Airflow's process fan-out small.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        }

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._fernet_bytes = os.urandom(32)
        self._jwt_secret = _secret()
        self._api_secret = _secret()
        for step in (
            self.start_postgres,
            self.start_s3,
            self.start_mlflow,
            self.start_router,
            self.start_nginx,
            self.start_airflow,
        ):
            began = time.monotonic()
            step()
            self.timings[step.__name__] = round(time.monotonic() - began, 1)

    def stop(self) -> list[str]:
        killed = self.procs.stop()
        if self._pgdir is not None:
            shutil.rmtree(self._pgdir, ignore_errors=True)
        return killed

    def started_pids(self) -> set[int]:
        return self.procs.pids()

    # ------------------------------------------------------------------ PostgreSQL
    def start_postgres(self) -> None:
        bindir = _postgres_bindir()
        # The server refuses to run as root: use the postgres account Debian's package made.
        user = "postgres" if os.geteuid() == 0 else None
        self._pgdir = Path(tempfile.mkdtemp(prefix="dethrone-pg-"))
        data, sockets = self._pgdir / "data", self._pgdir / "sock"
        sockets.mkdir()
        pwfile = self._pgdir / "pwfile"
        pwfile.write_text(self.creds.postgres_password + "\n")
        if user:
            account = pwd.getpwnam(user)
            for path in (self._pgdir, sockets, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        env = {**self.base_env(), "LC_ALL": "C.UTF-8"}
        self.procs.run(
            "initdb",
            [
                f"{bindir}/initdb",
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
            ],
            env,
            user=user,
            cwd=self._pgdir,
        )
        pwfile.unlink()
        # SIGINT is PostgreSQL's fast shutdown: it does not wait for idle client sessions.
        server = self.procs.spawn(
            "postgres",
            [
                f"{bindir}/postgres",
                "-D",
                str(data),
                "-p",
                str(self.ports.postgres),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sockets}",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off",
            ],
            env,
            user=user,
            cwd=self._pgdir,
            stop_signal=signal.SIGINT,
            stop_timeout=20,
        )
        wait_until("postgres", port_open(self.ports.postgres), timeout=60, proc=server)
        init_env = {
            **self.base_env(),
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.ports.postgres),
            "PGPASSWORD": self.creds.postgres_password,
            "POSTGRES_USER": "postgres",
            "MLFLOW_DB_PASSWORD": self.creds.mlflow_db_password,
            "AIRFLOW_DB_PASSWORD": self.creds.airflow_db_password,
            "ROUTER_DB_PASSWORD": self.creds.router_db_password,
        }
        init_env["PATH"] = f"{bindir}{os.pathsep}{init_env['PATH']}"
        wait_until(
            "postgres accepting logins",
            lambda: self._psql_ok(init_env, bindir),
            timeout=60,
            proc=server,
        )
        self.procs.run(
            "init-databases", ["sh", str(ROOT / "postgres" / "init-databases.sh")], init_env
        )

    def _psql_ok(self, env: dict[str, str], bindir: str) -> bool:
        import subprocess

        return (
            subprocess.run(
                [f"{bindir}/psql", "-U", "postgres", "-d", "postgres", "-c", "select 1"],
                env=env,
                capture_output=True,
                timeout=10,
            ).returncode
            == 0
        )

    # ------------------------------------------------------------------ S3 (seaweedfs)
    def start_s3(self) -> None:
        s3dir = self.workdir / "s3"
        s3dir.mkdir()
        identities = self.workdir / "s3-identities.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "dethrone",
                            "credentials": [
                                {
                                    "accessKey": self.creds.s3_access_key,
                                    "secretKey": self.creds.s3_secret_key,
                                }
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        # Every sub-server of `weed server` opens its own HTTP and gRPC ports; left at their
        # defaults they would collide with other runs, so each gets a free one.
        port = {
            name: free_port()
            for name in (
                "master",
                "master.grpc",
                "volume",
                "volume.grpc",
                "filer",
                "filer.grpc",
                "s3.grpc",
                "metrics",
            )
        }
        weed = shutil.which("weed", path=str(VENV_BIN)) or "weed"
        argv = [
            weed,
            "server",
            f"-dir={s3dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={port['master']}",
            f"-master.port.grpc={port['master.grpc']}",
            f"-volume.port={port['volume']}",
            f"-volume.port.grpc={port['volume.grpc']}",
            f"-filer.port={port['filer']}",
            f"-filer.port.grpc={port['filer.grpc']}",
            "-s3",
            f"-s3.port={self.ports.s3}",
            f"-s3.port.grpc={port['s3.grpc']}",
            f"-s3.config={identities}",
            f"-metricsPort={port['metrics']}",
            # Catalog servers of the S3 gateway, not needed here (0 disables them).
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=16",
        ]
        # weed shuts down slowly on SIGTERM: give it a bounded grace, then SIGKILL.
        server = self.procs.spawn(
            "seaweedfs", argv, self.base_env(), cwd=self.workdir, stop_timeout=10
        )
        wait_until("seaweedfs s3", port_open(self.ports.s3), timeout=90, proc=server)
        env = {
            **self.base_env(),
            **self.s3_env(),
            "S3_ENDPOINT_URL": self.s3_url,
            "S3_WAIT_SECONDS": "90",
        }
        self.procs.run(
            "create-bucket",
            [
                "sh",
                str(ROOT / "minio" / "create-bucket.sh"),
                self.artifact_bucket,
                self.staging_bucket,
            ],
            env,
            timeout=180,
        )

    # ------------------------------------------------------------------ MLflow
    def start_mlflow(self) -> None:
        env = {
            **self.base_env(),
            **self.s3_env(),
            "MLFLOW_DB_HOST": "127.0.0.1",
            "MLFLOW_DB_PORT": str(self.ports.postgres),
            "MLFLOW_DB_USER": "mlflow",
            "MLFLOW_DB_PASSWORD": self.creds.mlflow_db_password,
            "MLFLOW_DB_NAME": "mlflow",
            "MLFLOW_AUTH_DB_NAME": "mlflow_auth",
            "MLFLOW_DEFAULT_PERMISSION": "READ",
            "MLFLOW_AUTH_ADMIN_USERNAME": self.creds.mlflow_user,
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.creds.mlflow_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret(),
            "MLFLOW_S3_ENDPOINT_URL": self.s3_url,
            "MLFLOW_CONFIG_DIR": str(self.workdir / "mlflow-config"),
        }
        server = self.procs.spawn(
            "mlflow",
            [
                "sh",
                str(ROOT / "mlflow" / "entrypoint.sh"),
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.mlflow),
                "--app-name",
                "basic-auth",
                "--artifacts-destination",
                f"s3://{self.artifact_bucket}",
                "--allowed-hosts",
                f"127.0.0.1:{self.ports.mlflow},localhost:{self.ports.mlflow}",
                "--workers",
                "1",
            ],
            env,
            cwd=self.workdir,
            stop_timeout=15,
        )
        wait_until("mlflow", http_ok(f"{self.mlflow_url}/health"), timeout=180, proc=server)

    # ------------------------------------------------------------------ router
    @property
    def router_database_url(self) -> str:
        """The router's database, as compose sets it: its own role and database."""
        return (
            f"postgresql+psycopg://router:{self.creds.router_db_password}"
            f"@127.0.0.1:{self.ports.postgres}/router"
        )

    def router_env(self, name: str = "router") -> dict[str, str]:
        """What docker-compose.yml gives the router: tokens, database, registry."""
        return {
            **self.base_env(),
            "ROUTER_TOKEN": self.creds.router_token,
            "ROUTER_READ_TOKEN": self.creds.router_read_token,
            "ROUTER_DATA_DIR": str(self.workdir / name),
            "ROUTER_WORKERS": "2",
            "ROUTER_DATABASE_URL": self.router_database_url,
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": self.creds.mlflow_user,
            "MLFLOW_TRACKING_PASSWORD": self.creds.mlflow_password,
            "SERVING_REFRESH_SECONDS": "2",
            **self.s3_env(),
        }

    def start_router(self, name: str = "router", port: int | None = None) -> None:
        """A router under gunicorn; ``name``/``port`` start another replica on the same
        PostgreSQL (the stack test runs two)."""
        port = port or self.ports.router
        server = self.procs.spawn(
            name,
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "app" / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "dethrone_router.wsgi:app",
            ],
            self.router_env(name),
            cwd=ROOT / "app",
            stop_timeout=15,
        )
        wait_until(name, http_ok(f"http://127.0.0.1:{port}/health"), timeout=120, proc=server)

    def start_prometheus(self, scrape_seconds: float = 2.0) -> str:
        """Debian's Prometheus (ensure-prometheus.sh) with prometheus/prometheus.yml, its
        targets rewritten to the loopback routers; returns its URL."""
        import shutil

        import yaml

        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: run scripts/stack/ensure-prometheus.sh")
        config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
        config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = (
            f"{scrape_seconds:g}s"
        )
        targets = {
            "router:8000": [f"127.0.0.1:{self.ports.router}", f"127.0.0.1:{self.ports.router2}"],
            "localhost:9090": [f"127.0.0.1:{self.ports.prometheus}"],
        }
        for job in config["scrape_configs"]:
            for static in job["static_configs"]:
                static["targets"] = [
                    t for old in static["targets"] for t in targets.get(old, [old])
                ]
        folder = self.workdir / "prometheus"
        folder.mkdir(exist_ok=True)
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        url = f"http://127.0.0.1:{self.ports.prometheus}"
        server = self.procs.spawn(
            "prometheus",
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
            ],
            self.base_env(),
            cwd=folder,
            stop_timeout=15,
        )
        wait_until("prometheus", http_ok(f"{url}/-/ready"), timeout=60, proc=server)
        return url

    def start_nginx(self) -> None:
        binary = nginx_proxy.nginx_binary(install=True)
        if binary is None:
            raise RuntimeError(
                "nginx not found: run scripts/stack/ensure-nginx.sh (apt-get install -y nginx)"
            )
        conf = nginx_proxy.render(
            self.workdir / "nginx",
            listen=f"127.0.0.1:{self.ports.nginx}",
            upstream=f"127.0.0.1:{self.ports.router}",
        )
        proxy = self.procs.spawn(
            "nginx",
            nginx_proxy.command(conf, binary),
            self.base_env(),
            cwd=self.workdir,
            stop_timeout=10,
        )
        wait_until("nginx", http_ok(f"{self.router_url}/health"), timeout=60, proc=proxy)

    # ------------------------------------------------------------------ Airflow
    def start_airflow(self) -> None:
        env = self.airflow_env()
        self.airflow_home.mkdir(exist_ok=True)
        airflow = str(VENV_BIN / "airflow")
        # airflow-init: migrate the metadata DB (FAB's tables included), create the admin.
        self.procs.run("airflow-db-migrate", [airflow, "db", "migrate"], env, timeout=600)
        self.procs.run(
            "airflow-users-create",
            [
                airflow,
                "users",
                "create",
                "--username",
                self.creds.airflow_user,
                "--password",
                self.creds.airflow_password,
                "--role",
                "Admin",
                "--email",
                "admin@example.com",
                "--firstname",
                "Admin",
                "--lastname",
                "User",
            ],
            env,
            timeout=300,
        )
        api = self.procs.spawn(
            "airflow-apiserver",
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.ports.airflow)],
            env,
            cwd=self.airflow_home,
            stop_timeout=10,
        )
        # The log server of `scheduler` binds every interface; task logs are local files
        # here, read by the api-server directly.
        scheduler = self.procs.spawn(
            "airflow-scheduler",
            [airflow, "scheduler", "--skip-serve-logs"],
            env,
            cwd=self.airflow_home,
            stop_timeout=15,
        )
        processor = self.procs.spawn(
            "airflow-dag-processor",
            [airflow, "dag-processor"],
            env,
            cwd=self.airflow_home,
            stop_timeout=10,
        )
        wait_until(
            "airflow api-server",
            http_ok(f"{self.airflow_url}/api/v2/monitor/health"),
            timeout=240,
            proc=api,
            interval=2,
        )
        wait_until(
            "airflow scheduler",
            http_ok(f"http://127.0.0.1:{self.ports.scheduler_health}/health"),
            timeout=180,
            proc=scheduler,
            interval=2,
        )
        if processor.popen.poll() is not None:
            raise RuntimeError(f"dag-processor exited:\n{processor.tail()}")

    def describe(self) -> str:
        return "\n".join(
            [
                f"workdir      {self.workdir}",
                f"MLflow       {self.mlflow_url}  user {self.creds.mlflow_user} "
                f"password {self.creds.mlflow_password}",
                f"Airflow      {self.airflow_url}  user {self.creds.airflow_user} "
                f"password {self.creds.airflow_password}",
                f"router       {self.router_url} (nginx; gunicorn {self.router_direct_url})  "
                f"token {self.creds.router_token} read token {self.creds.router_read_token}",
                f"S3           {self.s3_url}  key {self.creds.s3_access_key} "
                f"secret {self.creds.s3_secret_key}",
                f"PostgreSQL   127.0.0.1:{self.ports.postgres}",
            ]
        )


def _postgres_bindir() -> str:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return str(Path(found[-1]).parent)
    initdb = shutil.which("initdb")
    if initdb:
        return str(Path(initdb).resolve().parent)
    raise RuntimeError(
        "PostgreSQL server binaries not found: run scripts/stack/ensure-postgres.sh "
        "(apt-get install -y postgresql)"
    )


def main() -> int:
    # SIGTERM takes the same way out as Ctrl-C, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    stack = Stack()
    try:
        stack.start()
        print(stack.describe(), flush=True)
        print("stack is up; Ctrl-C stops it", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

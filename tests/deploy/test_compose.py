"""Static checks of the docker-compose stack (there is no Docker engine to run it here).

The compose file is parsed with PyYAML (merge keys included) and every reference it makes
is followed: variables to .env.example, builds to Dockerfiles and their COPY sources, bind
mounts to files, commands to the CLIs that will run them, dashboards to the router's
metric names. `make stack-test` runs the same configuration natively.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from dethrone.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; "$$" escapes a "$"
# for the container's shell and is not interpolated by compose.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|_KEY$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f".env.example:{number}: {line!r}"
        assert name not in values, f".env.example defines {name} twice"
        values[name] = value
    return values


def _strings(node):
    """Every string value (and mapping key) anywhere in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return arg
        return value or ""

    return INTERPOLATION.sub(sub, text).replace("$$", "$")


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _one_shot(service: dict) -> bool:
    return str(service.get("restart", "no")) == "no"


# ------------------------------------------------------------------------ variables


def test_every_compose_variable_is_defined_in_env_example(compose, env_example):
    used = {m.group(1) for s in _strings(compose) for m in INTERPOLATION.finditer(s)}
    assert used, "the compose file interpolates no variable at all"
    missing = sorted(used - set(env_example))
    assert not missing, f"used in docker-compose.yml but not in .env.example: {missing}"


def test_every_setting_is_documented_in_env_example(env_example):
    missing = [name for name in Settings.env_names() if name not in env_example]
    assert not missing, f"Settings fields without a line in .env.example: {missing}"


def test_env_example_defaults_of_settings_match_the_code(env_example):
    # .env.example claims to list each setting "with its default": hold it to that, except
    # where it carries a placeholder for a credential.
    for f in dataclasses.fields(Settings):
        name = f.name.upper()
        value = env_example[name]
        if value.startswith("CHANGE-ME") or name == "MLFLOW_TRACKING_USERNAME":
            continue
        parsed = Settings.from_env({name: value})
        assert getattr(parsed, f.name) == f.default, (
            f"{name}={value!r} in .env.example, default {f.default!r}"
        )


def test_compose_defaults_of_settings_match_the_code(compose):
    defaults = {f.name.upper(): f.default for f in dataclasses.fields(Settings)}
    seen = 0
    for text in _strings(compose):
        for m in INTERPOLATION.finditer(text):
            name, op, arg = m.groups()
            if name in defaults and op == ":-":
                seen += 1
                got = getattr(Settings.from_env({name: arg}), name.lower()) if arg else ""
                assert got == defaults[name], (
                    f"${{{name}:-{arg}}} in compose, Settings default {defaults[name]!r}"
                )
    assert seen >= 20


def test_every_setting_reaches_the_pipeline_or_the_router(services):
    given = set(_environment(services["airflow-scheduler"])) | set(_environment(services["router"]))
    missing = sorted(set(Settings.env_names()) - given)
    assert not missing, f"Settings not passed to airflow-* or router in compose: {missing}"


def test_airflow_services_share_one_environment(services):
    airflow = [n for n in services if n.startswith("airflow-")]
    assert {
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    } <= set(airflow)
    reference = _environment(services["airflow-scheduler"])
    for name in airflow:
        env = _environment(services[name])
        for key in (
            "AIRFLOW__CORE__EXECUTOR",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW__CORE__AUTH_MANAGER",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        ):
            assert env.get(key) == reference[key], f"{name}: {key} differs"
    assert reference["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_no_credential_is_written_in_the_compose_file(services):
    for name, service in services.items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key) and value:
                assert INTERPOLATION.fullmatch(value), f"{name}: {key} is a literal, not ${{...}}"
                assert ":-" not in value, f"{name}: {key} has a default value"


def test_env_example_carries_no_real_secret(env_example):
    for name, value in env_example.items():
        if SECRET_NAME.search(name):
            assert value.startswith("CHANGE-ME"), (
                f"{name} in .env.example must be a CHANGE-ME placeholder"
            )


def test_no_password_in_tracked_config_files():
    # The seed kept a password in basic_auth.ini: the template must only name variables.
    for path in [
        ROOT / "mlflow" / "basic_auth.ini.template",
        ROOT / "prometheus" / "prometheus.yml",
        *sorted((ROOT / "grafana").rglob("*.yml")),
    ]:
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            m = re.search(r"(password|secret)\s*[=:]\s*(\S+)", line, re.I)
            assert m is None or m.group(2).startswith("${"), f"{path.name}: {line!r}"


# ------------------------------------------------------------------------ files


def test_build_contexts_dockerfiles_and_copy_sources_exist(services):
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert {"mlflow", "router", "airflow-scheduler"} <= set(built)
    for name, build in built.items():
        context = ROOT / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.is_dir(), f"{name}: build context {context} missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        for sources in _copy_sources(dockerfile):
            for source in sources:
                assert list(context.glob(source)), (
                    f"{name}: COPY source {source} missing in {context}"
                )


def test_airflow_image_can_run_the_spark_drift_engine(services):
    """DRIFT_ENGINE=spark in compose needs PySpark (the ``spark`` extra) and a Java runtime."""
    assert "DRIFT_ENGINE" in services["airflow-scheduler"]["environment"]
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile.airflow").read_text())
    installs = [w for w in text.split() if w.strip('"').startswith("/opt/dethrone[")]
    assert installs, "Dockerfile.airflow does not install the library"
    extras = set(installs[0].strip('"').split("[", 1)[1].rstrip("]").split(","))
    assert {"pipeline", "spark"} <= extras
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "spark" in project["optional-dependencies"]
    # the same Debian release's JRE as the native stack's (the image is Debian bookworm)
    assert re.search(r"apt-get install[^\n]*openjdk-17-jre-headless", text)


def _copy_sources(dockerfile: Path):
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    for line in text.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if not words or words[0].upper() not in {"COPY", "ADD"}:
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        yield args[:-1]


def test_bind_mounts_exist(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} missing"


def test_scripts_are_valid_shell():
    for script in ["minio/create-bucket.sh", "postgres/init-databases.sh", "mlflow/entrypoint.sh"]:
        path = ROOT / script
        assert os.access(path, os.X_OK), f"{script} is not executable"
        subprocess.run(["sh", "-n", str(path)], check=True)


# ------------------------------------------------------------------------ commands


def test_airflow_commands_exist_in_the_installed_airflow(services):
    from airflow.cli.cli_config import core_commands

    known = {c.name: c for c in core_commands}
    expected = {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }
    for name, command in expected.items():
        assert services[name]["command"] == [command]
        assert command in known, f"airflow has no `{command}` command"
    assert "webserver" not in known, "Airflow 3 has no webserver; the compose file must not need it"
    init = services["airflow-init"]["command"][-1]
    assert "airflow db migrate" in init and "migrate" in {c.name for c in known["db"].subcommands}
    assert "airflow users create --role Admin" in init
    job_types = {"DagProcessorJob", "TriggererJob", "SchedulerJob"}
    for name in ("airflow-dag-processor", "airflow-triggerer"):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "airflow jobs check --job-type" in test and any(j in test for j in job_types)
    assert {c.name for c in known["jobs"].subcommands} >= {"check"}


def test_auth_manager_is_fab_and_provides_users_create(services):
    # `airflow users create` exists only with the FAB auth manager (scripts/stack/requirements.txt
    # installs it for `make stack-test`; the apache/airflow image ships it).
    pytest.importorskip(
        "airflow.providers.fab", reason="apache-airflow-providers-fab not installed"
    )
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

    path = _environment(services["airflow-scheduler"])["AIRFLOW__CORE__AUTH_MANAGER"]
    assert path == f"{FabAuthManager.__module__}.{FabAuthManager.__name__}"
    assert "users" in {c.name for c in FabAuthManager.get_cli_commands()}


def test_airflow_config_names_exist_in_the_installed_airflow(services):
    # AIRFLOW__SECTION__KEY only works when [section] key exists; a typo is silently ignored.
    import airflow

    config = yaml.safe_load(
        (Path(airflow.__file__).parent / "config_templates" / "config.yml").read_text()
    )
    env = _environment(services["airflow-init"])
    names = [k for k in env if k.startswith("AIRFLOW__")]
    assert len(names) >= 10
    for key in names:
        _, section, option = key.split("__", 2)
        section, option = section.lower(), option.lower()
        assert section in config, f"{key}: no [{section}] section in Airflow"
        assert option in config[section]["options"], f"{key}: no {option} in [{section}]"


def test_mlflow_command_uses_existing_server_options(services):
    from mlflow.cli import server

    options = {o for p in server.params for o in p.opts}
    command = services["mlflow"]["command"]
    assert command[:2] == ["mlflow", "server"]
    used = [w for w in command if w.startswith("-")]
    assert set(used) <= options, f"unknown mlflow server options: {set(used) - options}"
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert command[command.index("--artifacts-destination") + 1].startswith("s3://")
    assert "--backend-store-uri" not in command, "the DB password must not be on the command line"
    env = _environment(services["mlflow"])
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_one_shot_services_run_project_scripts(services):
    setup = services["minio-setup"]
    assert setup["entrypoint"][-1] == "/opt/minio/create-bucket.sh"
    assert "./minio/create-bucket.sh:/opt/minio/create-bucket.sh:ro" in setup["volumes"]
    assert setup["command"] == [
        "${MLFLOW_ARTIFACT_BUCKET:-mlflow-artifacts}",
        "${STAGING_BUCKET:-dethrone-staging}",
    ]
    mounts = services["postgres"]["volumes"]
    assert any(
        m.startswith("./postgres/init-databases.sh:/docker-entrypoint-initdb.d/") for m in mounts
    )


def test_router_image_serves_the_router_package(services):
    dockerfile = ROOT / services["router"]["build"]["dockerfile"]
    text = dockerfile.read_text()
    targets = re.findall(r"([a-z_][a-z0-9_.]*):([a-z_][a-z0-9_]*)\b", text)
    modules = [m for m, _ in targets if m.startswith("dethrone")]
    cli = "dethrone" in text and "router" in text
    assert modules or cli, f"{dockerfile} starts neither a dethrone module nor `dethrone router`"
    for module in modules:
        path = module.replace(".", "/")
        assert any(
            (ROOT / base / f"{path}.py").exists() or (ROOT / base / path / "__init__.py").exists()
            for base in ("app", "src")
        ), f"{dockerfile}: {module} not in the project"


# ------------------------------------------------------------------------ topology


def test_published_ports_are_unique_and_bound_to_bind_address(services, env_example):
    seen: dict[str, str] = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            resolved = _interpolate(port, env_example)
            host, host_port, _ = resolved.rsplit(":", 2)
            assert port.startswith("${BIND_ADDRESS"), f"{name}: {port} not bound to BIND_ADDRESS"
            assert host == "127.0.0.1"
            assert host_port not in seen, (
                f"port {host_port} published by {seen[host_port]} and {name}"
            )
            seen[host_port] = name
    assert len(seen) >= 7
    assert "postgres" not in seen.values(), "the database must not be published"


def test_every_image_is_pinned(services):
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name}: neither image nor build"
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag and tag and tag != "latest", (
            f"{name}: image {image} not pinned"
        )
    for dockerfile in [ROOT / "Dockerfile.airflow", ROOT / "mlflow" / "Dockerfile"]:
        for line in dockerfile.read_text().splitlines():
            if line.upper().startswith("FROM "):
                image = line.split()[1]
                assert ":" in image and not image.endswith(":latest"), f"{dockerfile}: {line}"


def test_every_long_running_service_has_a_healthcheck(services):
    long_running = [n for n, s in services.items() if not _one_shot(s)]
    assert len(long_running) >= 10
    for name in long_running:
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), (
            f"{name} has no healthcheck"
        )


def test_dependencies_wait_for_health_or_completion(services):
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dep, spec in depends.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = spec.get("condition")
            if _one_shot(services[dep]):
                assert condition == "service_completed_successfully", f"{name} -> {dep}"
            else:
                assert condition == "service_healthy", f"{name} -> {dep}"
    scheduler = services["airflow-scheduler"]["depends_on"]
    assert {"airflow-init", "airflow-apiserver", "mlflow", "router", "minio-setup"} <= set(
        scheduler
    )


def test_required_topology(services):
    assert set(services) >= {
        "minio",
        "minio-setup",
        "postgres",
        "mlflow",
        "router",
        "prometheus",
        "grafana",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    }
    assert "webserver" not in " ".join(services)


# ------------------------------------------------------------------------ MLflow auth config


def test_auth_template_renders_with_encoded_password(tmp_path):
    env = {
        "MLFLOW_DEFAULT_PERMISSION": "READ",
        "MLFLOW_DB_USER": "mlflow",
        "MLFLOW_DB_PASSWORD": "p@ss:w%rd/1",
        "MLFLOW_DB_HOST": "postgres",
        "MLFLOW_DB_PORT": "5432",
        "MLFLOW_AUTH_DB_NAME": "mlflow_auth",
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
    }
    out = tmp_path / "basic_auth.ini"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "mlflow" / "render_config.py"),
            str(ROOT / "mlflow" / "basic_auth.ini.template"),
            str(out),
        ],
        env={**os.environ, **env},
        check=True,
    )
    assert out.stat().st_mode & 0o777 == 0o600
    parser = configparser.ConfigParser()  # MLflow's reader: interpolation on
    parser.read(out)
    section = parser["mlflow"]
    assert (
        section["database_uri"]
        == "postgresql+psycopg://mlflow:p%40ss%3Aw%25rd%2F1@postgres:5432/mlflow_auth"
    )
    assert section["default_permission"] == "READ" and section["admin_username"] == "admin"
    assert "admin_password" not in section


def test_auth_template_refuses_missing_variables(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "mlflow" / "render_config.py"),
            str(ROOT / "mlflow" / "basic_auth.ini.template"),
            str(tmp_path / "x.ini"),
        ],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "MLFLOW_DB_PASSWORD" in result.stderr


# ------------------------------------------------------------------------ monitoring


def test_prometheus_scrapes_the_router_service(services):
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = jobs["router"]["static_configs"][0]["targets"]
    assert targets == ["router:8000"]
    assert any(p.endswith(":8000") for p in services["nginx"]["ports"])


# ------------------------------------------------------------------------ faults and limits


def _bytes(limit: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", str(limit).lower()).groups()
    return int(number) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[unit]


def test_every_service_has_a_memory_limit(services):
    for name, service in services.items():
        limit = service.get("mem_limit")
        assert limit, f"{name} has no mem_limit"
        assert 128 * 2**20 <= _bytes(limit) <= 8 * 2**30, f"{name}: mem_limit {limit}"


def test_router_is_published_only_through_nginx(services):
    assert "ports" not in services["router"], "the router must be reached through nginx"
    nginx = services["nginx"]
    assert nginx["depends_on"]["router"]["condition"] == "service_healthy"
    env = _environment(nginx)
    assert env["ROUTER_UPSTREAM"] == "router:8000" and env["NGINX_LISTEN"] == "8000"
    mounts = [v.split(":") for v in nginx["volumes"]]
    assert [
        "./nginx/router.conf.template",
        "/etc/nginx/templates/router.conf.template",
        "ro",
    ] in mounts


def test_nginx_config_shields_the_router():
    text = (ROOT / "nginx" / "router.conf.template").read_text()
    settings = dict(re.findall(r"^\s*([a-z_]+)\s+([^;{]+);", text, re.MULTILINE))
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert int(settings[directive].rstrip("s")) <= 60, directive
    assert settings["client_max_body_size"] == "64k"
    assert settings["proxy_request_buffering"] == "on" and settings["proxy_buffering"] == "on"
    assert "${ROUTER_UPSTREAM}" in text and "${NGINX_LISTEN}" in text


def test_native_nginx_config_is_valid(tmp_path):
    import subprocess
    import sys

    sys.path.insert(0, str(ROOT / "scripts" / "stack"))
    import nginx_proxy

    binary = nginx_proxy.nginx_binary(install=False)
    if binary is None:
        pytest.skip("nginx is not installed (scripts/stack/ensure-nginx.sh installs it)")
    conf = nginx_proxy.render(tmp_path, listen="127.0.0.1:18080", upstream="127.0.0.1:18081")
    res = subprocess.run(
        [*nginx_proxy.command(conf, binary)[:-2], "-t"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def test_dashboard_queries_use_metrics_the_router_exports():
    import json

    sources = sorted((ROOT / "app" / "dethrone_router" / "metrics").glob("*.py"))
    text = "\n".join(s.read_text() for s in sources)
    exported = set(re.findall(r"\"(dethrone_router_[a-z_]+)\"", text))
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / "dethrone-router.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"dethrone_router_[a-z_]+", e)}
    assert len(used) >= 7
    for metric in used:
        base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
        assert metric in exported or base in exported, (
            f"dashboard uses {metric}, router exports {exported}"
        )
    datasource = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    assert all(p["datasource"]["uid"] == uid for p in dashboard["panels"])


def test_mlflow_entrypoint_refuses_placeholder_secrets(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "PYTHON": sys.executable,
        "MLFLOW_CONFIG_DIR": str(tmp_path),
        "MLFLOW_AUTH_ADMIN_PASSWORD": "CHANGE-ME-mlflow-admin",
        "MLFLOW_DB_PASSWORD": "x" * 16,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "y" * 16,
        "AWS_SECRET_ACCESS_KEY": "z" * 16,
    }
    result = subprocess.run(
        ["sh", str(ROOT / "mlflow" / "entrypoint.sh"), "true"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 64
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" in result.stderr
    assert not (tmp_path / "basic_auth.ini").exists()


def test_router_keeps_config_and_log_in_the_compose_postgres(services):
    env = _environment(services["router"])
    url = env["ROUTER_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://${ROUTER_DB_USER:-router}:${ROUTER_DB_PASSWORD:?")
    assert url.endswith("@postgres:5432/${ROUTER_DB_NAME:-router}")
    # the live_experiment DAG reads the log the router writes: one database for both
    for name in [n for n in services if n.startswith("airflow-")]:
        assert _environment(services[name])["ROUTER_DATABASE_URL"] == url, name
    assert services["router"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    pg_env = _environment(services["postgres"])
    assert {"ROUTER_DB_USER", "ROUTER_DB_PASSWORD", "ROUTER_DB_NAME"} <= set(pg_env)
    script = (ROOT / "postgres" / "init-databases.sh").read_text()
    # The init script makes the role and the database the URL names, and checks the password.
    assert "ROUTER_DB_PASSWORD" in script.split("\n\n")[1]
    assert ":'router_user'" in script and ":'router_db'" in script

#!/bin/sh
# Start the MLflow server with the basic-auth app. Credentials arrive as environment
# variables (from .env via compose) and are assembled here, so no password is written in a
# tracked file, in the compose command line, or in `ps` output:
#   - the basic-auth config is rendered from basic_auth.ini.template into a 0600 file;
#   - the backend store URI is passed to `mlflow server` as MLFLOW_BACKEND_STORE_URI.
# The same script is used by the native stack test (scripts/stack), with PYTHON pointing at
# the project's venv.
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
python=${PYTHON:-python}

for name in MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_DB_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY AWS_SECRET_ACCESS_KEY; do
    eval "value=\${$name:-}"
    case "$value" in
        ""|CHANGE-ME*) echo "mlflow entrypoint: set $name in .env (it is empty or still a CHANGE-ME placeholder)" >&2; exit 64 ;;
    esac
done

: "${MLFLOW_DB_HOST:=postgres}"
: "${MLFLOW_DB_PORT:=5432}"
: "${MLFLOW_DEFAULT_PERMISSION:=READ}"
export MLFLOW_DB_HOST MLFLOW_DB_PORT MLFLOW_DEFAULT_PERMISSION

config_dir=${MLFLOW_CONFIG_DIR:-/tmp/mlflow-config}
mkdir -p "$config_dir"
chmod 700 "$config_dir"
MLFLOW_AUTH_CONFIG_PATH="$config_dir/basic_auth.ini"
export MLFLOW_AUTH_CONFIG_PATH
"$python" "$here/render_config.py" "${MLFLOW_AUTH_TEMPLATE:-$here/basic_auth.ini.template}" "$MLFLOW_AUTH_CONFIG_PATH"

MLFLOW_BACKEND_STORE_URI=$("$python" -c 'import os; from urllib.parse import quote as q; e = os.environ; print("postgresql+psycopg://%s:%s@%s:%s/%s" % (q(e["MLFLOW_DB_USER"], safe=""), q(e["MLFLOW_DB_PASSWORD"], safe=""), e["MLFLOW_DB_HOST"], e["MLFLOW_DB_PORT"], e["MLFLOW_DB_NAME"]))')
export MLFLOW_BACKEND_STORE_URI

exec "$@"

#!/bin/sh
# Create the roles and databases of MLflow (tracking store + basic-auth user store), Airflow
# (metadata store) and the router (traffic config, prediction log, feedback). The postgres image runs this once, on the first start of an empty
# data volume (/docker-entrypoint-initdb.d); the native stack test runs it against its own
# server. Safe to run again: existing roles and databases are left alone.
#
# Names and passwords come from the environment (.env); they reach SQL only through psql
# variables (:'v' quotes a literal, :"v" an identifier), so no value is spliced into SQL text.
set -eu

for name in MLFLOW_DB_PASSWORD AIRFLOW_DB_PASSWORD ROUTER_DB_PASSWORD; do
    eval "value=\${$name:-}"
    case "$value" in
        ""|CHANGE-ME*) echo "init-databases: set $name in .env (empty or a CHANGE-ME placeholder)" >&2; exit 64 ;;
    esac
done

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v mlflow_user="${MLFLOW_DB_USER:-mlflow}" -v mlflow_password="$MLFLOW_DB_PASSWORD" \
    -v mlflow_db="${MLFLOW_DB_NAME:-mlflow}" -v mlflow_auth_db="${MLFLOW_AUTH_DB_NAME:-mlflow_auth}" \
    -v airflow_user="${AIRFLOW_DB_USER:-airflow}" -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v airflow_db="${AIRFLOW_DB_NAME:-airflow}" \
    -v router_user="${ROUTER_DB_USER:-router}" -v router_password="$ROUTER_DB_PASSWORD" \
    -v router_db="${ROUTER_DB_NAME:-router}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'mlflow_user', :'mlflow_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'mlflow_user') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'airflow_user', :'airflow_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'airflow_user') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'router_user', :'router_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'router_user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'router_db', :'router_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'router_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'mlflow_db', :'mlflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'mlflow_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'mlflow_auth_db', :'mlflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'mlflow_auth_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'airflow_db', :'airflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'airflow_db') \gexec
-- Each role reaches only its own databases.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', d)
  FROM unnest(ARRAY[:'mlflow_db', :'mlflow_auth_db', :'airflow_db', :'router_db']) AS d \gexec
SQL
echo "init-databases: roles and databases for MLflow, Airflow and the router are ready"

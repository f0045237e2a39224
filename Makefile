# dethrone — developer commands. `make demo` then `make test` are the README's two commands.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast bench clean

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -U pip 2>&1 | grep -v "is ignored" || true
	$(PIP) install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt 2>&1 | grep -v "is ignored" || true
	$(PIP) install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import dethrone, flask, mlflow, airflow, scipy, sklearn" && touch $(STAMP)

install: $(STAMP)

## make test: everything CI runs (unit, api, dags, integration).
test: $(STAMP)
	$(PY) -m pytest -q tests

## make test-fast: skip the slow simulations and real-server tests.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not integration" tests

bench: $(STAMP)
	$(PY) bench/drift_bench.py

clean:
	rm -rf .pytest_cache build dist src/*.egg-info

## make demo: create the venv and install if needed, then run the end-to-end demo.
.PHONY: demo
demo: $(STAMP)
	$(VENV)/bin/dethrone demo

## make stack-test: the docker-compose topology started natively on 127.0.0.1 (PostgreSQL,
## seaweedfs as S3, MLflow with basic auth, the router, Airflow 3) and main_pipeline run on it.
.PHONY: stack-test
stack-test: $(STAMP)
	$(PIP) install -q --disable-pip-version-check -r scripts/stack/requirements.txt 2>&1 | grep -v "is ignored" || true
	sh scripts/stack/ensure-postgres.sh
	DETHRONE_STACK_TEST=1 $(PY) -m pytest -q --durations=5 tests/stack

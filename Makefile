# The only commands anyone needs: run, test, check, bench. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := packaging/lock
# `make run PORT=8001` serves the portal on another port.
PORT ?= 8000

# The CPU build of torch is not on PyPI (PyPI's torch 2.13.0 is the CUDA build, several GB):
# pip finds it in this folder (or index) instead. The lock holds its hash either way.
TORCH_WHEELS ?= /opt/wheels
# Everything is installed from the lock, hash-checked, with no resolver at install time.
# --no-warn-conflicts: the lock is resolved as a whole; its one deliberate gap (timm) is
# reported and explained by `make check-env` instead of a resolver error on every install.
PIP_INSTALL := $(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes \
	--no-warn-conflicts --find-links packaging/wheels --find-links $(TORCH_WHEELS)

# Test services on loopback (packaging/test_machine.sh starts them when they are not running).
# The suite embeds with MiniLM, the fast stand-in for any sentence-transformers model; the
# tests of the multilingual default name it themselves.
TEST_ENV := DATABASE_URL=postgres://postgres@127.0.0.1:5432/kb \
	CELERY_BROKER_URL=redis://127.0.0.1:6379/15 \
	SECRET_KEY=test-only-secret-key-not-for-production-0123456789abcdef \
	KB_DATA_DIR=$(CURDIR)/var/test KB_REQUIRE_SERVICES=1 HF_HUB_OFFLINE=1 \
	EMBEDDING_MODEL=all-MiniLM-L6-v2

.PHONY: run test check check-env bench install install-ldap install-llamacpp clean drill-test \
	lock test-machine fresh-check

# The tools the install itself uses (pip, setuptools, and the two source builds' scikit-build-core
# and cmake), from the lock, before anything else.
$(VENV)/.base: $(LOCK)/build.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r $(LOCK)/build.txt
	touch $@

# The run set: wheels only (--only-binary), so `make run` needs no compiler and no headers.
# The project itself and the spaCy model shim are local folders, installed without a build
# environment from what the lock put in place.
$(VENV)/.run: $(VENV)/.base $(LOCK)/run.txt pyproject.toml
	$(PIP_INSTALL) --only-binary :all: -r $(LOCK)/run.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
		-e . ./packaging/en_core_web_sm
	touch $@

# Tests add the dev tools, directory sign-in (python-ldap) and llama.cpp, two of which build
# from source (llama-cpp-python about 8 minutes, once: pip caches the wheel).
$(VENV)/.test: $(VENV)/.run $(LOCK)/test.txt
	$(PIP_INSTALL) --no-build-isolation -r $(LOCK)/test.txt
	touch $@

install: $(VENV)/.run

# Directory sign-in on a deployment without the test tools (the compose image does this).
install-ldap: $(VENV)/.run
	$(PIP_INSTALL) --no-build-isolation -r $(LOCK)/ldap.txt

# A local GGUF model through llama.cpp (LLM_GGUF_PATH) without the test tools. Builds
# llama-cpp-python from source: needs a C/C++ compiler (Debian: build-essential).
install-llamacpp: $(VENV)/.run
	$(PIP_INSTALL) --no-build-isolation -r $(LOCK)/llamacpp.txt

run: $(VENV)/.run
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py serve --host 127.0.0.1 --port $(PORT)

# `pip check`, less the one requirement the lock leaves out on purpose (timm; see
# packaging/lock/overrides.txt and the README).
check-env: $(VENV)/.base
	@$(BIN)/python packaging/check_env.py

check: $(VENV)/.test check-env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

# The Debian packages the tests use (installed when missing, as root), and PostgreSQL and Redis
# started when they are down.
test-machine:
	bash packaging/test_machine.sh

test: test-machine
	$(MAKE) check
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
	$(BENCH_ENV) $(BIN)/python bench/embedding.py
	$(BENCH_ENV) $(BIN)/python bench/ingest.py
	$(BENCH_ENV) $(BIN)/python bench/ttft.py
	$(BENCH_ENV) $(BIN)/python bench/retrieval.py
	$(BENCH_ENV) $(BIN)/python bench/load.py
	$(BENCH_ENV) $(BIN)/python bench/drills.py
	# Last: it reads ingest.json and load.json for the capacity table.
	$(BENCH_ENV) $(BIN)/python bench/capacity.py

# Regenerate the lock from pyproject.toml: a deliberate commit, never a side effect of an
# install. uv resolves; pip installs. test.txt is resolved first and holds every extra; the
# smaller sets are resolved within its versions, so every set agrees with every other.
UV_VERSION := 0.13.9
UV_COMPILE = $(VENV)-lock/bin/uv pip compile -q --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --find-links packaging/wheels \
	--find-links $(TORCH_WHEELS) --override $(LOCK)/overrides.txt --no-header \
	--annotation-style line
lock:
	test -x $(VENV)-lock/bin/uv || ($(PYTHON) -m venv $(VENV)-lock && \
		$(VENV)-lock/bin/pip install -q uv==$(UV_VERSION))
	$(UV_COMPILE) pyproject.toml --extra dev --extra ldap --extra llamacpp --extra bench \
		-o $(LOCK)/test.txt
	grep -E '^[a-z0-9]' $(LOCK)/test.txt | sed 's/ .*//' > $(LOCK)/versions.txt
	$(UV_COMPILE) pyproject.toml --only-binary :all: -c $(LOCK)/versions.txt -o $(LOCK)/run.txt
	$(UV_COMPILE) pyproject.toml --extra ldap -c $(LOCK)/versions.txt -o $(LOCK)/ldap.txt
	$(UV_COMPILE) pyproject.toml --extra llamacpp -c $(LOCK)/versions.txt \
		-o $(LOCK)/llamacpp.txt
	$(UV_COMPILE) $(LOCK)/build.in -c $(LOCK)/versions.txt -o $(LOCK)/build.txt
	rm $(LOCK)/versions.txt

# A minimal Debian 12 root with nothing but python3, venv, make and git: clone, `make run`,
# sign in, ask the README's question, and time clone -> first cited answer (see the script).
fresh-check:
	bash packaging/fresh_check.sh

clean:
	rm -rf $(VENV) var

# datumflow developer commands. Every target sets up what it needs, so a
# fresh clone only runs `make test` (or `make demo`); a second run finds
# everything in place and starts within seconds.
#
#   make setup      virtual environments + local services
#   make test       whole suite (.venv, then tests/kfp in .venv-kfp)
#   make test-fast  same, without tests marked slow
#   make lint       ruff + mypy
#   make demo       run the storage service demo (.venv-demo: the core only)
#   make bench      performance suite (adds .venv-bench with dvc and oxenai)
#   make kfp-components  recompile the Kubeflow component YAML in kfp_components/
#   make lock       re-resolve requirements/*.txt from pyproject.toml's ranges,
#                   keeping every pin that still fits
#   make lock-upgrade  the same, moving every pin to the newest allowed release
#   make clean      remove environments and caches
#
# Every environment installs exactly the pins of its lock in requirements/
# (written by `make lock`, committed), then the project itself without
# dependencies, so a new release of anything changes nothing here until the
# locks are refreshed. A stamp is older than its lock after a lock change,
# and the next target resyncs that environment.

SHELL := /bin/bash
PYTHON ?= python3.11
export PYTHON

VENV       := .venv
VENV_KFP   := .venv-kfp
VENV_DEMO  := .venv-demo
VENV_BENCH := .venv-bench

PYTEST_ARGS ?=

# Packages mypy --strict checks in `make lint` (add one once it is clean).
MYPY_PACKAGES := datumflow datumflow.storage_service datumflow.plugin datumflow.operators datumflow.sensors datumflow.kfp_components

.PHONY: setup services test test-fast lint demo bench clean kfp-components lock lock-upgrade

setup: $(VENV)/.stamp $(VENV_KFP)/.stamp services

services:
	@scripts/services.sh

# What each environment holds is decided in scripts/lock.sh (extras) and
# requirements/*.in. Airflow's kubernetes provider and kfp need incompatible
# kubernetes clients, so they live in separate environments; the demo needs
# only the core.
# The project's one compiled part (setup.py: the sync's folder scan) is built in place by the
# editable install: a change to its source re-runs the install.
COMPILED := setup.py storage_service/sync/_scan.c

$(VENV)/.stamp: requirements/main.txt pyproject.toml scripts/venv.sh $(COMPILED)
	@scripts/venv.sh $(VENV) requirements/main.txt -e .

$(VENV_KFP)/.stamp: requirements/kfp.txt pyproject.toml scripts/venv.sh $(COMPILED)
	@scripts/venv.sh $(VENV_KFP) requirements/kfp.txt -e .

$(VENV_DEMO)/.stamp: requirements/demo.txt pyproject.toml scripts/venv.sh $(COMPILED)
	@scripts/venv.sh $(VENV_DEMO) requirements/demo.txt -e .

$(VENV_BENCH)/.stamp: requirements/bench.txt scripts/venv.sh
	@scripts/venv.sh $(VENV_BENCH) requirements/bench.txt

lock:
	@scripts/lock.sh

lock-upgrade:
	@scripts/lock.sh --upgrade

test: setup
	@scripts/run-tests.sh $(PYTEST_ARGS)

test-fast: setup
	@scripts/run-tests.sh -m "not slow" $(PYTEST_ARGS)

# Both checkers always run; the target fails if either found a problem.
lint: $(VENV)/.stamp
	@status=0; \
	$(VENV)/bin/python -m ruff check . || status=1; \
	MYPY_PACKAGES='$(MYPY_PACKAGES)' scripts/mypy.sh || status=1; \
	exit $$status

demo: $(VENV_DEMO)/.stamp
	$(VENV_DEMO)/bin/python -m datumflow.storage_service.cli.demo

bench: setup $(VENV_BENCH)/.stamp
	PATH="$(CURDIR)/$(VENV_BENCH)/bin:$$PATH" $(VENV)/bin/python -m benchmarks.run

kfp-components: $(VENV_KFP)/.stamp
	$(VENV_KFP)/bin/python -m datumflow.kfp_components.compile kfp_components

clean:
	rm -rf $(VENV) $(VENV_KFP) $(VENV_DEMO) $(VENV_BENCH) build dist *.egg-info \
		.pytest_cache .mypy_cache .mypy-src .ruff_cache .hypothesis
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find storage_service -name "*.so" -delete

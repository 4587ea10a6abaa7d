# image-sequence-classifier: every task a newcomer needs, from a fresh clone.
# `make run` serves the bundled model on 127.0.0.1:8000; `make test` runs every check.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
TRAIN_VENV ?= .venv-train
BIN := $(VENV)/bin
CLASSIFIER := services/classifier
E2E := services/e2e
export PYTHONPATH := $(CURDIR)/$(CLASSIFIER)/src
PIP_FLAGS := --disable-pip-version-check --no-input -q
COMPOSE ?= docker compose
DOCKERFILES := $(CLASSIFIER)/Dockerfile services/logs/Dockerfile $(E2E)/Dockerfile
WORKFLOWS := $(wildcard .github/workflows/*.yml)

.PHONY: help install install-dev run test test-unit test-e2e lint lint-static fmt model lock \
        evaluate up e2e down logs bench bench-bound clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# --- environments: rebuilt when their lock file changes ----------------------------------------
$(VENV)/.runtime: $(CLASSIFIER)/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --require-hashes -r $<
	touch $@

$(VENV)/.dev: $(VENV)/.runtime $(CLASSIFIER)/requirements-dev.txt
	$(BIN)/python -m pip install $(PIP_FLAGS) --require-hashes -r $(CLASSIFIER)/requirements-dev.txt
	touch $@

install: $(VENV)/.runtime ## Create .venv with the classifier's pinned runtime dependencies

install-dev: $(VENV)/.dev ## Add the pinned test, lint and static-check tools

# --- the main job ------------------------------------------------------------------------------
run: $(VENV)/.runtime ## Serve the bundled model (CLASSIFIER_HOST/PORT/WORKERS honoured)
	exec $(BIN)/python -m classifier

# --- checks ------------------------------------------------------------------------------------
test: lint test-unit test-e2e ## Every check: lint, static checks, unit/API/integration tests, e2e

test-unit: $(VENV)/.dev ## Classifier tests: units, API (in-process), integration (real uvicorn)
	$(BIN)/python -m pytest $(CLASSIFIER)/tests

test-e2e: $(VENV)/.dev ## The e2e suite against a natively started classifier and log receiver
	$(BIN)/python $(E2E)/harness/native_stack.py -- $(BIN)/python -m pytest $(E2E)/tests

lint: $(VENV)/.dev lint-static ## ruff, ruff format --check, mypy --strict
	$(BIN)/ruff check services
	$(BIN)/ruff format --check services
	$(BIN)/mypy

lint-static: $(VENV)/.dev ## Dockerfiles (hadolint), compose.yml and workflows (schemas, actionlint)
	$(BIN)/hadolint --failure-threshold warning $(DOCKERFILES)
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/actionlint $(WORKFLOWS)

fmt: $(VENV)/.dev ## Format and autofix
	$(BIN)/ruff format services
	$(BIN)/ruff check --fix services

# --- the model ---------------------------------------------------------------------------------
$(TRAIN_VENV)/.train: $(CLASSIFIER)/training/requirements.txt
	test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install $(PIP_FLAGS) -r $<
	touch $@

model: $(TRAIN_VENV)/.train ## Train the default model and write it with its manifest (CPU)
	$(TRAIN_VENV)/bin/python $(CLASSIFIER)/training/train.py --out $(CLASSIFIER)/models/rodent-behaviour

evaluate: $(VENV)/.runtime ## Score the model on held-out H.264 recordings; writes docs/model-card.md (~1 h cold)
	$(BIN)/python $(CLASSIFIER)/training/evaluate.py $(EVALUATE_ARGS)

# --- the benchmark ------------------------------------------------------------------------------
$(VENV)/.bench: $(VENV)/.dev $(CLASSIFIER)/requirements-bench.txt
	$(BIN)/python -m pip install $(PIP_FLAGS) --require-hashes -r $(CLASSIFIER)/requirements-bench.txt
	touch $@

bench: $(VENV)/.bench ## Throughput against the yardsticks; writes docs/benchmarks.md (~10 min)
	command -v wrk >/dev/null && command -v hey >/dev/null || \
		{ echo "bench: installing wrk and hey (Debian packages)"; apt-get install -y -qq wrk hey; }
	cd $(CLASSIFIER) && PYTHONPATH=src:. $(CURDIR)/$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-bound: $(VENV)/.bench ## How close a bare Python ASGI app gets to the inference ceiling (~2 min)
	command -v wrk >/dev/null || { echo "bench: installing wrk"; apt-get install -y -qq wrk; }
	cd $(CLASSIFIER) && PYTHONPATH=src:. $(CURDIR)/$(BIN)/python -m bench.http_bound

# --- lock files --------------------------------------------------------------------------------
UV_COMPILE = $(BIN)/uv pip compile --generate-hashes --python-version 3.11 --universal -q
lock: $(VENV)/.dev ## Re-resolve the pinned lock files from pyproject.toml
	$(UV_COMPILE) pyproject.toml -o $(CLASSIFIER)/requirements.txt
	$(UV_COMPILE) pyproject.toml --group pyproject.toml:dev -c $(CLASSIFIER)/requirements.txt \
		-o $(CLASSIFIER)/requirements-dev.txt
	$(UV_COMPILE) --group pyproject.toml:e2e -o $(E2E)/requirements.txt
	$(UV_COMPILE) --group pyproject.toml:bench -c $(CLASSIFIER)/requirements-dev.txt \
		-o $(CLASSIFIER)/requirements-bench.txt

# --- the composed trio (needs a Docker engine) -------------------------------------------------
up: ## Start logs and classifier with compose, waiting until both are healthy
	$(COMPOSE) up -d --build --wait

e2e: ## Build, start, and run the e2e container against the stack; its exit code is passed on
	$(COMPOSE) --profile e2e build
	$(COMPOSE) up -d --wait
	$(COMPOSE) --profile e2e run --rm e2e

down: ## Stop the stack (volumes kept; `docker compose down -v` drops the logs)
	$(COMPOSE) --profile e2e down

logs: ## Follow the stack's logs
	$(COMPOSE) logs -f

clean: ## Remove virtual environments and caches
	rm -rf $(VENV) $(TRAIN_VENV) .mypy_cache .ruff_cache .pytest_cache

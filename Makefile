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
K8S_OVERLAYS := $(sort $(wildcard deploy/kubernetes/overlays/*))
# Kubernetes schemas the manifests are validated against: the oldest minor supported upstream on
# 2026-12-01, and the newest kubernetes-validate knows (tests/deploy checks the same two).
K8S_VERSIONS := 1.35.0 1.37.0
K8S_RENDERED := build/kubernetes
# The only kinds allowed to have no schema offline (tests/deploy checks their fields instead).
K8S_CUSTOM_KINDS := kind (ScaledObject|TriggerAuthentication) with api version keda\.sh/|kind InferenceService with api version serving\.kserve\.io/

.PHONY: help install install-dev chromium run test test-unit test-e2e test-model lint lint-static \
        lint-deploy fmt model model-parts frame-head golden lock evaluate screenshots up up-scale e2e \
        down logs bench \
        bench-bound bench-recording clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

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

# The browser tests drive the machine's own Chromium (Playwright never downloads one here).
CHROMIUM_PATH ?= /usr/bin/chromium
export CHROMIUM_PATH
chromium: ## Debian's chromium and chromium-driver for the browser tests, when missing (apt, as root)
	@test -x $(CHROMIUM_PATH) || { \
		echo "chromium: installing Debian's chromium and chromium-driver"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# --- the main job ------------------------------------------------------------------------------
run: $(VENV)/.runtime ## Serve the bundled model (CLASSIFIER_HOST/PORT/WORKERS honoured)
	exec $(BIN)/python -m classifier

# --- checks ------------------------------------------------------------------------------------
test: lint test-unit test-e2e ## Every check: lint, static checks, unit/API/integration tests, e2e

test-unit: $(VENV)/.dev chromium ## Classifier tests: units, API, integration, browser (real uvicorn)
	$(BIN)/python -m pytest $(CLASSIFIER)/tests

test-e2e: $(VENV)/.dev ## The e2e suite against a natively started classifier and log receiver
	$(BIN)/python $(E2E)/harness/native_stack.py -- $(BIN)/python -m pytest $(E2E)/tests

lint: $(VENV)/.dev lint-static ## ruff, ruff format --check, mypy --strict (service, tests, bench, e2e)
	$(BIN)/ruff check services
	$(BIN)/ruff format --check services
	$(BIN)/mypy
	$(BIN)/mypy $(E2E)/tests

lint-static: $(VENV)/.dev lint-deploy ## Dockerfiles (hadolint), compose.yml, workflows, Kubernetes
	$(BIN)/hadolint --failure-threshold warning $(DOCKERFILES)
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/actionlint $(WORKFLOWS)

lint-deploy: $(VENV)/.dev ## Render every Kustomize overlay and validate it (no cluster needed)
	rm -rf $(K8S_RENDERED) && mkdir -p $(K8S_RENDERED)
	for overlay in $(K8S_OVERLAYS); do \
	  $(BIN)/kubectl kustomize "$$overlay" > "$(K8S_RENDERED)/$$(basename "$$overlay").yaml"; \
	done
	$(BIN)/kubernetes-validate --strict --quiet $(addprefix -k ,$(K8S_VERSIONS)) \
	  $(K8S_RENDERED)/*.yaml | tee $(K8S_RENDERED)/validate.log
	@# kubernetes-validate only warns about a kind it has no schema for: fail on any such warning
	@# but the custom resources'.
	@! grep -vE '$(K8S_CUSTOM_KINDS)' $(K8S_RENDERED)/validate.log
	@echo "lint-deploy: $(words $(K8S_OVERLAYS)) overlays rendered and valid against Kubernetes $(K8S_VERSIONS)"

fmt: $(VENV)/.dev ## Format and autofix
	$(BIN)/ruff format services
	$(BIN)/ruff check --fix services

screenshots: $(VENV)/.dev chromium ## The web page's screenshots in docs/ (desktop and phone width)
	cd $(CLASSIFIER) && PYTHONPATH=src:.:$(CURDIR)/$(E2E) $(CURDIR)/$(BIN)/python -m tests.browser.screenshots $(CURDIR)/docs

# --- the model ---------------------------------------------------------------------------------
# The dev lock (hashed: the service's runtime, onnx, pytest, mypy), then torch on top: the
# training code imports the service's pipeline, and its tests run as the service's do.
$(TRAIN_VENV)/.train: $(CLASSIFIER)/requirements-dev.txt $(CLASSIFIER)/training/requirements.txt
	test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install $(PIP_FLAGS) --require-hashes -r $(CLASSIFIER)/requirements-dev.txt
	$(TRAIN_VENV)/bin/python -m pip install $(PIP_FLAGS) -r $(CLASSIFIER)/training/requirements.txt
	touch $@

model: $(TRAIN_VENV)/.train ## Train the default model; write its graphs (whole clip, parts) and manifest (CPU)
	$(TRAIN_VENV)/bin/python $(CLASSIFIER)/training/train.py --out $(CLASSIFIER)/models/rodent-behaviour

model-parts: $(TRAIN_VENV)/.train ## Re-export the frame encoder and temporal head from the trained weights
	$(TRAIN_VENV)/bin/python $(CLASSIFIER)/training/split_export.py --model-dir $(CLASSIFIER)/models/rodent-behaviour

frame-head: $(TRAIN_VENV)/.train ## Train the per-frame sequence head on cached embeddings; write sequence_head.onnx (7-25 min)
	$(TRAIN_VENV)/bin/python $(CLASSIFIER)/training/frame_head.py --model-dir $(CLASSIFIER)/models/rodent-behaviour

test-model: $(TRAIN_VENV)/.train ## Training code under mypy --strict; the model tests with PyTorch (parity)
	$(TRAIN_VENV)/bin/mypy $(CLASSIFIER)/training/*.py
	REQUIRE_TORCH=1 $(TRAIN_VENV)/bin/python -m pytest $(CLASSIFIER)/tests/model

golden: $(VENV)/.runtime ## Rewrite tests/model/golden.json for the bundled model, the service's way
	$(BIN)/python $(CLASSIFIER)/training/golden.py

evaluate: $(VENV)/.runtime ## Score the model on held-out H.264 recordings; writes docs/model-card.md (~1 h cold)
	$(BIN)/python $(CLASSIFIER)/training/evaluate.py $(EVALUATE_ARGS)

# --- the benchmark ------------------------------------------------------------------------------
$(VENV)/.bench: $(VENV)/.dev $(CLASSIFIER)/requirements-bench.txt
	$(BIN)/python -m pip install $(PIP_FLAGS) --require-hashes -r $(CLASSIFIER)/requirements-bench.txt
	touch $@

bench: $(VENV)/.bench ## Throughput against the yardsticks; writes docs/benchmarks.md (~10 min)
	command -v wrk >/dev/null && command -v hey >/dev/null || \
		{ echo "bench: installing wrk and hey (Debian packages)"; apt-get install -y -qq wrk hey; }
	cd $(CLASSIFIER) && PYTHONPATH=src:.:../e2e $(CURDIR)/$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-bound: $(VENV)/.bench ## How close a bare Python ASGI app gets to the inference ceiling (~2 min)
	command -v wrk >/dev/null || { echo "bench: installing wrk"; apt-get install -y -qq wrk; }
	cd $(CLASSIFIER) && PYTHONPATH=src:.:../e2e $(CURDIR)/$(BIN)/python -m bench.http_bound

bench-recording: $(VENV)/.bench ## A recording's analysis vs its decode floor and the naive pipeline; writes docs/benchmarks.md
	cd $(CLASSIFIER) && PYTHONPATH=src:.:../e2e $(CURDIR)/$(BIN)/python -m bench.recording $(BENCH_RECORDING_ARGS)

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

up-scale: ## Profile scale: PostgreSQL, 2 API replicas behind nginx (same port), 2 job workers
	$(COMPOSE) --profile scale up -d --build --wait proxy worker

e2e: ## Build, start, and run the e2e container against the stack; its exit code is passed on
	$(COMPOSE) --profile e2e build
	$(COMPOSE) up -d --wait
	$(COMPOSE) --profile e2e run --rm e2e

down: ## Stop the stack, either profile (volumes kept; `docker compose down -v` drops them)
	$(COMPOSE) --profile e2e --profile scale down

logs: ## Follow the stack's logs
	$(COMPOSE) logs -f

clean: ## Remove virtual environments and caches
	rm -rf $(VENV) $(TRAIN_VENV) .mypy_cache .ruff_cache .pytest_cache

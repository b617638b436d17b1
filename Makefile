# The two commands: `make run` (the whole embedded stack plus the simulator)
# and `make test` (the whole suite). Both create the virtualenv on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_DIRS := $(wildcard streamapp simulator tests bench)

.PHONY: run test lint typecheck check deploy-check bench bench-peers bench-venv bench-scale-out clean

# The peers benchmark's Quix Streams runs from a venv of its own: quixstreams pins
# pydantic < 2.14, the project 2.14.3 (bench/requirements-peers.txt says more).
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BENCH_STAMP): bench/requirements-peers.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements-peers.txt
	touch $(BENCH_STAMP)

bench-venv: $(BENCH_STAMP)

# Options go through to `streamapp dev`, e.g. make run ARGS="--rate 1/s --verbose" (or "--calm").
run: $(STAMP)
	$(BIN)/streamapp dev --simulate $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=85 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck deploy-check test

# The deployment files (Dockerfile, compose, Helm chart) with hadolint, Compose and
# helm, installed pinned into .tools/ by deploy/tools.sh; every tool must be there.
deploy-check: $(STAMP)
	bash deploy/tools.sh
	PATH="$(CURDIR)/.tools/bin:$$PATH" DOCKER_CONFIG="$(CURDIR)/.tools/docker" DEPLOY_CHECK_ALL=1 \
		bash deploy/check.sh

bench: $(STAMP)
	$(BIN)/python -m bench.licenses
	$(BIN)/python -m bench.tasks
	$(BIN)/python -m bench.carts
	test ! -f bench/merchants.py || $(BIN)/python -m bench.merchants
	$(MAKE) bench-peers

# The licenses pipeline beside Quix Streams and a hand-written loop (bench/peers.py);
# py-spy profiles one extra run of the worker and of Quix.
bench-peers: $(STAMP) $(BENCH_STAMP)
	test -x $(BIN)/py-spy || $(BIN)/python -m pip install --quiet py-spy
	$(BIN)/python -m bench.peers --quix-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

# Licenses throughput with two ingest processes and 1, 2, 3 workers (bench/scale_out.py).
bench-scale-out: $(STAMP)
	$(BIN)/python -m bench.scale_out $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .tools .streamapp .pytest_cache .coverage

# The two commands: `make run` (the whole embedded stack plus the simulator)
# and `make test` (the whole suite). Both create the virtualenv on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_DIRS := $(wildcard streamapp simulator tests bench)

.PHONY: run test lint typecheck check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/streamapp dev --simulate

test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=85 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m bench.licenses
	$(BIN)/python -m bench.tasks
	$(BIN)/python -m bench.carts
	test ! -f bench/merchants.py || $(BIN)/python -m bench.merchants

clean:
	rm -rf $(VENV) .streamapp .pytest_cache .coverage

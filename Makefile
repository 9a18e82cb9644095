# Every task of the project; `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Serving needs the project alone; every other task needs its dev tools too.
SERVE_STAMP := $(VENV)/.serve-stamp
STAMP := $(VENV)/.installed-stamp
# Test processes of `make test`: each runs its share of the suite on databases of its own.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install run test fuzz lint format migrate openapi bench clean demo

help: ## list every task
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(SERVE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(STAMP): $(SERVE_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv and install the project with its dev tools

run: $(SERVE_STAMP) ## serve on http://127.0.0.1:8000 (SQLite unless CONSENTRY_DATABASE_URL says otherwise)
	$(BIN)/consentry serve

test: $(STAMP) ## run the whole test suite on SQLite and PostgreSQL (TEST_WORKERS processes)
	$(BIN)/pytest -n $(TEST_WORKERS)

fuzz: $(STAMP) ## schemathesis against the OpenAPI document, 500 examples per operation and phase
	CONSENTRY_FUZZ_EXAMPLES=500 $(BIN)/pytest tests/test_fuzz.py

lint: $(STAMP) ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check src tests migrations bench examples
	$(BIN)/ruff format --check src tests migrations bench examples
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests migrations bench examples
	$(BIN)/ruff format src tests migrations bench examples

migrate: $(SERVE_STAMP) ## bring the database schema to the latest revision
	$(BIN)/consentry migrate

openapi: $(STAMP) ## regenerate openapi/openapi.json from the app
	$(BIN)/consentry openapi > openapi/openapi.json

bench: $(STAMP) ## measure the hot paths against a floor app and raw COPY (PostgreSQL, wrk)
	$(BIN)/python -m bench.run

demo: $(STAMP) ## try the banner and preference center: a platform page on :8001 and a service
	$(BIN)/python -m tests.browser.demo

clean: ## remove the virtualenv and local databases
	rm -rf $(VENV) consentry.db consentry.db-wal consentry.db-shm .pytest_cache .mypy_cache .ruff_cache

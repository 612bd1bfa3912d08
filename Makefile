# Two commands matter: `make up` (run the stack) and `make test` (run the suite). Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch; an unpinned torch pulls several GB of CUDA packages.
TORCH ?= torch==2.13.0
# Exact versions CI tested (see `make lock`), so a fresh clone next month installs the same thing.
CONSTRAINTS := constraints.txt

.PHONY: up test test-fast test-e2e install system-deps test-system-deps lint fmt lock bench clean

up: install system-deps
	$(BIN)/nexus up

# Everything: lint, then unit, workflow, API and whole-stack tests against real components.
test: install test-system-deps lint
	$(BIN)/pytest

# The inner loop: unit + workflow (time-skipping) + API tests on real Postgres.
test-fast: install test-system-deps
	$(BIN)/pytest tests/unit tests/workflows tests/api

test-e2e: install test-system-deps
	$(BIN)/pytest tests/e2e

install: $(STAMP)

# --no-compile: byte-compiling 2.6 GB of packages up front took three of a fresh install's four minutes; Python
# compiles the modules it imports on first use instead, and caches them: hence the unexport (a machine that sets
# PYTHONDONTWRITEBYTECODE would otherwise recompile torch in every process the tests start).
unexport PYTHONDONTWRITEBYTECODE
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --no-compile "$(TORCH)"
	$(BIN)/pip install -q --no-compile -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

system-deps:
	./scripts/system-deps.sh

test-system-deps:
	./scripts/system-deps.sh --test

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-pin every dependency to what is installed now (after changing pyproject.toml and testing).
lock: install
	{ echo "# Exact versions CI tested, for reproducible installs (make install uses them as pip constraints)."; \
	  echo "# Regenerate after changing dependencies: make lock"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v -i '^torch=='; } > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) var .pytest_cache

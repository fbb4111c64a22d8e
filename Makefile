# The two commands that matter: `make demo` (the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test check lint typecheck demo chaos bench clean redis-server

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# redis-server is a Debian package; tests and the demo start their own private instance.
redis-server:
	@command -v redis-server >/dev/null || scripts/ensure-redis.sh

test: install redis-server
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

demo: install redis-server
	$(BIN)/akool-audio demo

# ~15 min: the fault scenarios at full size (Redis, Akool, workers, the object store);
# figures -> docs/reliability/, docs/RELIABILITY.md
chaos: install redis-server
	$(BIN)/pytest -q -m chaos tests/chaos; status=$$?; \
	$(BIN)/python -m tests.chaos.report; exit $$status

bench: install redis-server
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

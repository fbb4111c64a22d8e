# The two commands that matter: `make demo` (the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every dependency (the dev extra included) pinned, for every platform on Python >= 3.11;
# pyproject.toml keeps the ranges. `make lock` refreshes it with uv.
LOCK := requirements-dev.lock
UV_VERSION := 0.13.8
# `make lock LOCK_FLAGS=` keeps the current pins and only resolves what pyproject changed.
LOCK_FLAGS ?= --upgrade
# Parallel tests: each xdist worker starts its own redis-server, sandboxes and Celery workers.
# The tests mostly wait on processes, so more workers than this machine's 2 cores;
# loadfile keeps a module on one worker, so a module-scoped stack starts once.
TEST_WORKERS ?= 4

.PHONY: install lock test check lint typecheck demo chaos bench clean redis-server chromium screenshots

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

lock: | $(BIN)/python
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile -q --universal --python-version 3.11 --extra dev $(LOCK_FLAGS) \
		--custom-compile-command 'make lock' pyproject.toml -o $(LOCK)

# redis-server is a Debian package; tests and the demo start their own private instance.
redis-server:
	@command -v redis-server >/dev/null || scripts/ensure-redis.sh

# Debian's chromium (and chromium-driver) for the dashboard's browser tests (tests/browser),
# driven by Playwright through its executable_path; installed when we run as root on Debian.
chromium:
	@scripts/ensure-chromium.sh

# Tests marked serial race a process's start against a short interval: they run after the
# parallel run, one at a time (both runs always run; either failing fails make test; exit 5,
# none marked serial, is no failure).
test: install redis-server chromium
	status=0; \
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile -m 'not chaos and not serial' || status=$$?; \
	$(BIN)/pytest -q -m 'serial and not chaos' || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	exit $$status

lint: install
	$(BIN)/python scripts/check_lock.py
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

# The dashboard's address and a login token are printed while the batch runs;
# `make demo KEEP_RUNNING=1` keeps everything (and the dashboard) up afterwards, until Ctrl-C.
demo: install redis-server
	$(BIN)/akool-audio demo $(if $(KEEP_RUNNING),--keep-running)

# The browser tests again, saving their screenshots of each page to docs/screenshots/.
screenshots: install redis-server chromium
	SAVE_SCREENSHOTS=1 $(BIN)/pytest -q tests/browser

# ~15 min: the fault scenarios at full size (Redis, Akool, workers, the object store);
# figures -> docs/reliability/, docs/RELIABILITY.md
chaos: install redis-server
	$(BIN)/pytest -q -m chaos tests/chaos; status=$$?; \
	$(BIN)/python -m tests.chaos.report; exit $$status

bench: install redis-server
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

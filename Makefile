# The two commands that matter: `make demo` (the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test check lint typecheck demo chaos bench clean redis-server chromium screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# redis-server is a Debian package; tests and the demo start their own private instance.
redis-server:
	@command -v redis-server >/dev/null || scripts/ensure-redis.sh

# Debian's chromium (and chromium-driver) for the dashboard's browser tests (tests/browser),
# driven by Playwright through its executable_path; installed when we run as root on Debian.
chromium:
	@scripts/ensure-chromium.sh

test: install redis-server chromium
	$(BIN)/pytest -q

lint: install
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

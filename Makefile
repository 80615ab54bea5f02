# Every target that needs the virtualenv depends on its stamp, so `make dev` and
# `make test` set themselves up on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup dev test lint bench clean

setup: $(STAMP)

$(STAMP): layers/common/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e 'layers/common[local,dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/hookpost dev

# pytest's exit code 5 means "no tests collected": not a failure of the code under test.
test: $(STAMP)
	$(BIN)/python -m pytest || [ $$? -eq 5 ]

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --lint --template-file template.yaml

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .local .pytest_cache

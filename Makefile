# Every target that needs the virtualenv depends on a stamp, so `make dev` and `make test` set
# themselves up on a fresh clone: `make dev` installs what running needs (RUN_STAMP), and the
# test, lint, bench and deploy tools come with everything else (STAMP), as `make setup` does.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed

.PHONY: setup dev test lint bench clean

setup: $(STAMP)

$(RUN_STAMP): layers/common/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e 'layers/common[local]'
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e 'layers/common[local,dev]'
	touch $(STAMP)

dev: $(RUN_STAMP)
	$(BIN)/hookpost dev

# The console's browser tests run Debian's chromium (Playwright's own browser download is not
# used): installed here when missing, which needs root and apt; otherwise `make test` stops and
# says so rather than skipping them.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "The console tests need Debian's chromium at $(CHROMIUM): run 'apt-get install -y chromium' as root (or make test as root)."; \
		exit 1; \
	fi
	@test -x $(CHROMIUM) || { echo "chromium was not installed at $(CHROMIUM)"; exit 1; }

# pytest's exit code 5 means "no tests collected": not a failure of the code under test.
test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest || [ $$? -eq 5 ]

# checkov pins releases of boto3 and packaging that the SAM CLI and pytest cannot share, so it
# has a virtualenv of its own (inside .venv, so `make clean` removes it too).
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(VENV)/checkov/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	test -x $(VENV)/checkov/bin/python || $(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $(CHECKOV_STAMP)

lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --lint --template-file template.yaml
	$(VENV)/checkov/bin/checkov --config-file .checkov.yaml --file template.yaml

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .local .pytest_cache

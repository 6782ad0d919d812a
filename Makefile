# mailbridge: `make run` starts the service on its dev stack, `make test` runs the suite.
# Both install what is missing first (Debian packages as root, a virtualenv with the package).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench deps system-deps clean-dev clean

run: deps
	$(PY) -m mailbridge dev

test: deps
	@scripts/install-system-deps.sh --test
	$(PY) -m pytest

# Benchmarks against a fresh dev stack (mail on tmpfs where possible); prints figures + JSON.
bench: deps
	$(PY) -m bench

lint: deps
	$(PY) -m ruff check mailbridge tests
	$(PY) -m mypy

deps: system-deps $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# Wipes the dev stack's state (mail, users, logs); the next `make run` starts afresh.
clean-dev: deps
	$(PY) -m mailbridge dev --wipe

clean: clean-dev
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

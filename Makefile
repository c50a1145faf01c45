# The README's two commands: `make demo` and `make test`. Both install what is missing (system packages,
# the Python environment in .venv, the test guests) and are quiet when everything is already there.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: all setup system system-test venv guests demo test check unit e2e clean

all: test

setup: system venv

system:
	@bash scripts/setup-system.sh

# what only the tests need: the browser that opens reports (tests/unit/test_report_browser.py)
system-test:
	@bash scripts/setup-system.sh --test

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]' >/dev/null
	@PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q src >/dev/null  # as pip does for an installed package
	@touch $@

guests: setup
	@if [ -f guests/build.sh ]; then bash guests/build.sh; fi

demo: setup guests
	@if [ -x demo/run.sh ]; then bash demo/run.sh; else $(BIN)/bootlab doctor; fi

check: venv
	@$(BIN)/ruff check src tests bench
	@$(BIN)/ruff format --check --quiet src tests bench
	@$(BIN)/mypy

# BOOTLAB_TEST_STRICT: a missing QEMU, guest, firmware or browser fails the run instead of skipping (tests/prereq.py)
test: setup system-test guests check
	@BOOTLAB_TEST_STRICT=1 $(BIN)/pytest -q $(PYTEST_ARGS)

unit: venv
	@$(BIN)/pytest -q -m "not e2e" $(PYTEST_ARGS)

e2e: setup guests
	@BOOTLAB_TEST_STRICT=1 $(BIN)/pytest -q -m e2e $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) guests/out .pytest_cache .mypy_cache .ruff_cache

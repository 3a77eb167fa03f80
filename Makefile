# The two commands of the README: `make demo` and `make test`. Both set up first.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export ETIKA_DATA_DIR ?= $(CURDIR)/var

.PHONY: setup demo test lint bench clean

setup:
	@scripts/setup

# Payments at a simulated counter: pcscd + virtual cards, a PIN pad on a pty and ISO 8583
# acquirers, each a real process (scripts/demo.py says what runs).
demo: setup
	$(PY) scripts/demo.py

lint: setup
	$(PY) scripts/check_lock.py
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q

bench: setup
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(ETIKA_DATA_DIR) .pytest_cache .mypy_cache .ruff_cache

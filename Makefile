# The two commands of the README: `make demo` and `make test`. Both set up first.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export ETIKA_DATA_DIR ?= $(CURDIR)/var

.PHONY: setup demo test lint bench clean

setup:
	@scripts/setup

demo: setup
	$(VENV)/bin/etika config check
	$(VENV)/bin/etika db status

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q

bench: setup
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(ETIKA_DATA_DIR) .pytest_cache .mypy_cache .ruff_cache

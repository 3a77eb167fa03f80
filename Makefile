# The two commands of the README: `make demo` and `make test`. Both set up first.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export ETIKA_DATA_DIR ?= $(CURDIR)/var

.PHONY: setup demo test lint bench clean chaos fuzz

setup:
	@scripts/setup

# The counter with every other side simulated (`etika demo`): the Textual UI with a card
# shelf on a terminal, the scripted headless mix and its JSON summary otherwise. The EMV
# kernel walkthrough over pcscd + vpcd is `$(PY) scripts/demo.py`.
demo: setup
	$(VENV)/bin/etika demo

lint: setup
	$(PY) scripts/check_lock.py
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Two pytest-xdist workers (at most; tests/conftest.py); pcscd's tests share one of them.
test: lint
	$(PY) -m pytest -q -n auto --dist loadgroup

# Proof under fault (README "Proof under fault"): the long chaos run — 1,000 dual
# transactions against real simulators, Mosquitto and the platform, with a seeded schedule of
# kills and faults — and the atheris fuzzers, each for FUZZ_SECONDS.
SEED ?= 1
CHAOS_TRANSACTIONS ?= 1000
FUZZ_SECONDS ?= 60

chaos: setup
	$(PY) -m tests.resilience.chaos --seed $(SEED) --transactions $(CHAOS_TRANSACTIONS)

# Every fuzz/fuzz_*.py harness in turn (FUZZ=profile: only fuzz_profile.py), each growing its
# corpus in $(ETIKA_DATA_DIR)/fuzz/corpus/<harness>/ across runs. A crash does not stop the
# others: its input lands in $(ETIKA_DATA_DIR)/fuzz/<harness>-crash-…, the target fails at
# the end naming the harnesses that crashed (fuzz/README.md: replaying and keeping one).
FUZZ ?= *
fuzz: setup
	@failed=""; for h in fuzz/fuzz_$(FUZZ).py; do \
		name=$$(basename $$h .py); corpus=$(ETIKA_DATA_DIR)/fuzz/corpus/$$name; \
		mkdir -p $$corpus; \
		echo "== $$h ($(FUZZ_SECONDS) s; corpus $$corpus/)"; \
		$(PY) $$h $$corpus -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=$(ETIKA_DATA_DIR)/fuzz/$$name- || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then \
		echo "fuzz: crashed:$$failed; inputs in $(ETIKA_DATA_DIR)/fuzz/ (replay: $(PY) fuzz/<harness>.py <file>)"; \
		exit 1; fi

bench: setup
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(ETIKA_DATA_DIR) .pytest_cache .mypy_cache .ruff_cache

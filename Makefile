# ringwatch: `make run` and `make test` do all set-up on a fresh Debian 12 host (as root).
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run setup test test-setup lint bench clean

run: setup
	$(VENV)/bin/ringwatch run $(ARGS)

setup:
	@bash scripts/setup.sh

test-setup:
	@bash scripts/setup.sh --test

test: test-setup
	$(PY) -m pytest -q -ra tests

lint: test-setup
	$(VENV)/bin/ruff check monitor tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

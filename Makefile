# ringwatch: `make run` and `make test` do all set-up on a fresh Debian 12 host (as root).
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run setup test test-setup lint bench clean install uninstall deb

# Alerts on stdout, and every program started (exec events) so you can watch it work,
# one readable line each (-o json for JSON lines).
RUN_ARGS ?= -o text --events execve,execveat
run: setup
	$(VENV)/bin/ringwatch run $(RUN_ARGS) $(ARGS)

setup:
	@bash scripts/setup.sh

test-setup:
	@bash scripts/setup.sh --test

test: test-setup
	$(PY) -m pytest -q -ra --durations=25 tests

# Overhead, throughput and footprint beside bcc's tools (bench/README.md). Several minutes;
# `make bench ARGS=--quick` for a short run. Table on stdout, JSON in bench/results/.
bench: test-setup
	$(PY) -m bench $(ARGS)

# The systemd service: a venv in /opt/ringwatch, the unit, /etc/ringwatch/config.yaml (kept
# if present) and rules.d/. PREFIX, SYSCONFDIR, UNITDIR, BINDIR, DESTDIR pass through
# (scripts/install.sh). `make uninstall PURGE=1` also removes config and state.
install: setup
	@bash scripts/install.sh

uninstall:
	@bash scripts/uninstall.sh

# dist/ringwatch_<version>_all.deb: the venv, unit, config (a conffile) and rules.d, for
# `apt install ./dist/ringwatch_*.deb` on Debian 12 (scripts/build-deb.sh; VERSION=, OUT=).
deb: setup
	@bash scripts/build-deb.sh

lint: test-setup
	$(VENV)/bin/ruff check monitor tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

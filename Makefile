# The two commands of the README: `make run` and `make test`.
VENV := .venv
CONFIG ?= config/abook.dev.toml

.PHONY: setup run test demo

setup:
	bash scripts/setup.sh

# Sets up, creates (or migrates) the SQLite store under ./var, loads the demo organisation (ldif/demo.ldif;
# re-importing it changes nothing, so running this again is safe) and starts the daemon.
run: setup
	$(VENV)/bin/abook init -c $(CONFIG)
	$(VENV)/bin/abook import -c $(CONFIG) ldif/demo.ldif
	$(VENV)/bin/abook serve -c $(CONFIG)

# Sets up everything the tests need (system packages included) and runs the whole suite. The suite waits on
# servers and subprocesses far more than it computes, so it runs in TEST_WORKERS processes (pytest-xdist), each
# test file whole in one of them (its module fixtures start once); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 4
test: setup
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

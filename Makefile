# Verify Line: the two commands a newcomer needs are `make up` and `make test`
# (fresh Debian 12, as root). Everything they need is installed from here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VL := $(VENV)/bin/verifyline
APT_OPTS := -o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0
# host command -> Debian package that provides it
# (chromium + chromedriver: the console's browser tests, tests/e2e/browser.py)
HOST_TOOLS := debootstrap:debootstrap sipp:sip-tester curl:curl ps:procps chromium:chromium \
	chromedriver:chromium-driver openssl:openssl systemd-analyze:systemd
PYTEST_ARGS ?=
# end-to-end tests run in parallel workers, each with a lab (Asterisk + app) on ports of its own
# (tests/e2e/ports.py); most of their time is real-time waiting, not CPU
E2E_WORKERS ?= 2
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: help install host-tools postgres venv asterisk up down test lint unit unit-pg e2e prompts \
	doctor clean docker test-compose

help:
	@echo "make up      install what is needed, start the line and its console on loopback with"
	@echo "             a demo roster; prints the console's URL and the demo supervisor's login"
	@echo "make test    the whole suite: lint, unit tests on SQLite and PostgreSQL, end-to-end"
	@echo "             tests on real Asterisk (PostgreSQL; the sqlite_too ones on SQLite too)"
	@echo "             (make unit / unit-pg: unit tests only)"
	@echo "make install install only (host tools, .venv, Asterisk chroot); start nothing"
	@echo "make down    stop the lab;  make doctor  check it;  make prompts  re-render prompts"
	@echo "make test-compose  build the container images, run docker-compose.yml and call"
	@echo "             through it (tests/e2e/test_compose.py; starts and stops a dockerd)"

install: host-tools postgres venv asterisk

host-tools:
	@need=(); for pair in $(HOST_TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null || need+=("$${pair#*:}"); done; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || need+=(python3-venv); \
	if (( $${#need[@]} )); then \
	  echo "apt-get install $${need[*]}"; \
	  apt-get $(APT_OPTS) update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get $(APT_OPTS) install -y -qq \
	    --no-install-recommends "$${need[@]}" >/dev/null; \
	fi

# the PostgreSQL server binaries the tests start a throwaway cluster from (tests/pgcluster.py);
# Debian's package also sets up a system cluster, which the tests leave alone
postgres:
	@if ! compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then \
	  echo "apt-get install postgresql"; \
	  apt-get $(APT_OPTS) update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get $(APT_OPTS) install -y -qq \
	    --no-install-recommends postgresql >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(VENV)/.installed

asterisk: host-tools
	@bash asterisk/provision.sh >/dev/null

up: install
	$(VL) lab up --demo

down:
	@test -x $(VL) && $(VL) lab down || true

doctor: venv
	$(VL) doctor

# lint-imports: the package boundaries ([tool.importlinter] in pyproject.toml)
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv
	$(PYTEST) tests/unit -q $(PYTEST_ARGS)

unit-pg: venv postgres
	VERIFYLINE_TEST_DB=postgresql $(PYTEST) tests/unit -q $(PYTEST_ARGS)

e2e: install
	$(VENV)/bin/python -m pytest tests/e2e -n $(E2E_WORKERS) -v $(PYTEST_ARGS)

# the unit tests on both database backends (tests/conftest.py reads VERIFYLINE_TEST_DB); the
# end-to-end suite on PostgreSQL (production), plus the end-to-end tests marked sqlite_too on
# SQLite (the lab's default, where it behaves differently), in $(E2E_WORKERS) workers. Every
# test's duration goes to var/test-durations-*.txt (tests/conftest.py); the 10 slowest are
# printed. Last, the container stack (test-compose: images, docker-compose.yml, a real call).
test: install lint docker
	VERIFYLINE_TEST_DB=sqlite $(PYTEST) tests/unit -q -rfE --durations=10 $(PYTEST_ARGS)
	VERIFYLINE_TEST_DB=postgresql $(PYTEST) tests/unit -q -rfE --durations=10 $(PYTEST_ARGS)
	VERIFYLINE_TEST_DB=postgresql $(PYTEST) tests/e2e -n $(E2E_WORKERS) -v -rA --durations=10 \
	  $(PYTEST_ARGS)
	VERIFYLINE_TEST_DB=sqlite $(PYTEST) tests/e2e -m sqlite_too -n $(E2E_WORKERS) -v -rA \
	  --durations=10 $(PYTEST_ARGS)
	$(COMPOSE_TEST)

# Debian's Docker engine and compose (1.29) for the container stack (docker-compose.yml)
docker:
	@if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null; then \
	  echo "apt-get install docker.io docker-compose"; \
	  apt-get $(APT_OPTS) update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get $(APT_OPTS) install -y -qq \
	    --no-install-recommends docker.io docker-compose >/dev/null; \
	fi

# the container stack for real: build the images (deploy/images/build.sh, no registry), bring
# docker-compose.yml up on this slot's ports, call through it, bring it down. with-dockerd.sh
# uses a running engine, else starts a dockerd of its own and stops it afterwards. `make test`
# runs it last (README: how long it takes).
COMPOSE_TEST = bash deploy/images/with-dockerd.sh $(PYTEST) tests/e2e/test_compose.py -m compose \
	-v -rA --durations=10 $(PYTEST_ARGS)

test-compose: install docker
	$(COMPOSE_TEST)

prompts:
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null || \
	  (apt-get $(APT_OPTS) update -qq && DEBIAN_FRONTEND=noninteractive \
	   apt-get $(APT_OPTS) install -y -qq --no-install-recommends espeak-ng sox >/dev/null)
	$(VENV)/bin/python -m ivr.prompts

clean: down
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

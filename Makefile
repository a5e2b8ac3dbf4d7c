# Two commands on a fresh Debian 12 machine, as root:
#   make run    set everything up, start the sandbox and the engine, place a demo call
#   make test   set everything up and run the tests
# Every step installs what it needs when it is missing, and is cheap when it is not.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOTLINE := $(VENV)/bin/hotline
# prometheus: for promtool, which checks deploy/prometheus; no Prometheus runs in the tests.
# chromium, chromium-driver: the wallboard and console tests drive a real headless browser.
# gcc, libc6-dev (only recommended by gcc), libhiredis-dev: the matcher bench's load generator,
# tests/bench/matcher_driver.c, which make bench runs and make test builds and checks (a change
# to the routing scripts' arguments must fail the tests, not the day someone measures).
APT_PACKAGES := debootstrap redis-server redis-tools espeak-ng sox python3-venv curl prometheus chromium chromium-driver \
	gcc libc6-dev libhiredis-dev
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: deps apt venv sandbox run test bench load down status clean

deps: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

sandbox: deps
	$(HOTLINE) sandbox up

run: sandbox
	deploy/sandbox/run-demo.sh

test: sandbox
	$(PY) -m pytest -q

# The engine against Asterisk's own app_queue on the sandbox (tests/bench/versus_app_queue.py):
# one table on stdout, the plot in tests/bench/versus_app_queue.png. About two minutes.
bench: sandbox $(BENCH_STAMP)
	$(PY) -m tests.bench.versus_app_queue

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,bench]'
	@rm -f $(VENV)/.bench-installed-*; touch $@

status:
	$(HOTLINE) sandbox status

down:
	$(HOTLINE) sandbox down

clean: down
	rm -rf $(VENV)

# The load test: simulated callers and advocates through the sandbox (loopback only).
#   make load                                    20 callers at once for 60 s
#   make load LOAD_ARGS="--callers 100 --duration 600 --fault restart-redis@120"
# Faults: kill-engine, restart-redis, redis-down, restart-asterisk, crash-asterisk, drop-ari
# (.venv/bin/python -m tests.load --help).
LOAD_ARGS ?=
load: sandbox
	$(PY) -m tests.load $(LOAD_ARGS)

# robostream: `make demo` and `make test` do all the set-up on a fresh Linux machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
RS     := $(VENV)/bin/robostream
PYTEST := $(VENV)/bin/pytest
UV     := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: help install system-deps demo test test-unit test-integration lint bench reliability stack-up stack-down stack-status lock clean

help:  ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

system-deps:  ## Debian packages: redis-server, kcat, Java 17 + Maven (Kafka), chromium (viewer tests)
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v kcat >/dev/null || missing="$$missing kcat"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(UV):
	python3 -m pip install -q --user 'uv>=0.5,<1' 2>/dev/null || python3 -m pip install -q 'uv>=0.5,<1'

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python 3.11
	@touch $@

install: system-deps $(VENV)/.synced  ## install everything: Debian packages, the venv, Kafka's jars
	@$(RS) stack install

# The demo's robots have no tokens in config.yaml, so the demo's services accept them unauthenticated.
DEMO_ENV := ROBOSTREAM_AUTH__ALLOW_UNAUTHENTICATED=true

demo: install  ## stack + services, 3 simulated robots for 60 s, then what landed and where to look
	$(RS) stack up
	$(RS) topics create
	$(DEMO_ENV) $(RS) stack up --services
	$(DEMO_ENV) $(RS) simulate --robots 3 --duration 60
	@sleep 5  # let the sinks land the last batches
	$(RS) stack report
	@echo
	@echo "Everything is still running. Stop it with: $(RS) stack down"

test: install lint  ## lint, then run the whole test suite against a test stack of real servers
	$(PYTEST) tests

bench: install  ## every benchmark on the local stack: bench/results/*.json and the table in BENCHMARKS.md
	$(RS) stack up
	$(VENV)/bin/python bench/run.py

reliability: install  ## crash/outage/bad-input suite at full size; regenerates RELIABILITY.md
	ROBOSTREAM_RELIABILITY_FULL=1 ROBOSTREAM_RELIABILITY_REPORT=$(CURDIR)/RELIABILITY.md $(PYTEST) tests/reliability

test-unit: $(VENV)/.synced  ## unit tests only (no servers)
	$(PYTEST) tests/unit

lint: $(VENV)/.synced  ## ruff + mypy
	$(VENV)/bin/ruff check src sdk tests $(wildcard bench) $(wildcard examples)
	$(VENV)/bin/mypy

stack-up: install  ## start the local stack
	$(RS) stack up

stack-down:  ## stop the local stack
	$(RS) stack down

stack-status:
	$(RS) stack status

lock:  ## re-resolve uv.lock after editing pyproject.toml
	$(UV) lock

clean:  ## stop the stack and remove the venv and all local state (data included)
	-$(RS) stack down
	rm -rf $(VENV) .robostream .mypy_cache .ruff_cache .pytest_cache

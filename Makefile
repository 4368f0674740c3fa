# Developer entry points. The stack's configuration lives in scripts/stack-env.sh.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export KAFKA_INGEST_CACHE ?= $(HOME)/.cache/kafka-ingest
export PIP_CACHE_DIR ?= $(KAFKA_INGEST_CACHE)/pip
INSTALLED := $(VENV)/.installed
PIP := $(PY) -m pip
WHEELS := $(KAFKA_INGEST_CACHE)/pip/wheels
REQS := -r requirements.txt -r requirements-dev.txt 'setuptools>=68'
OFFLINE := $(PIP) install -q --no-index --find-links $(WHEELS)
WITH_ENV := source scripts/stack-env.sh &&
PYTEST_ARGS ?=

.PHONY: help setup up down status test test-unit test-faults test-observability test-ui test-celery test-deploy test-cluster cluster-up cluster-down lint demo bench bench-backfill bench-cluster bench-clusters-down clean

help:
	@echo "make setup | up [EXECUTOR=local|celery] [KAFKA_BROKERS=3] [KAFKA_SECURITY=sasl_ssl] | down | status | test | test-unit | test-faults | test-observability | test-deploy | test-cluster | cluster-up | cluster-down | lint | demo | bench | bench-backfill | bench-cluster | bench-clusters-down | clean   (see docs/stack.md, docs/deploy.md, docs/security.md)"

setup: $(INSTALLED)
	scripts/stack fetch
	scripts/monitoring-tools

# Reinstalls only when a requirements file or pyproject.toml changes. Installs offline from a
# wheelhouse in the cache and refills it from the index only when a pin is missing (pip's HTTP
# cache alone is not enough: our PyPI mirror sends no caching headers).
$(INSTALLED): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(OFFLINE) $(REQS) 2>/dev/null || { $(PIP) wheel -q -w $(WHEELS) --find-links $(WHEELS) $(REQS) && $(OFFLINE) $(REQS); }
	$(OFFLINE) --no-deps -e .
	touch $@

up: setup
	scripts/stack up

down:
	scripts/stack down

status:
	scripts/stack status

# Integration tests must reach the stack: unreachable means failed, not skipped.
# pytest exit code 5 (no tests collected) fails the target like any other.
# The slow suites have their own targets below, which CI runs too: the fault suite (test-faults),
# the deploy suites (tests/deploy: a real browser, Celery faults) and the secured cluster's
# (tests/cluster).
test: setup up
	$(WITH_ENV) KAFKA_INGEST_REQUIRE_STACK=1 $(PY) -m pytest -m "not deploy and not faults and not cluster" $(PYTEST_ARGS)

# The browser test of the UI on whatever executor the running stack has (make up [EXECUTOR=...]).
test-ui: setup up
	$(WITH_ENV) KAFKA_INGEST_REQUIRE_STACK=1 $(PY) -m pytest tests/deploy -m "deploy and not celery" $(PYTEST_ARGS)

# Everything in tests/deploy on the Celery stack: the browser test again, and the worker and
# scheduler faults (the stack is switched to EXECUTOR=celery and stays so).
test-celery: setup
	EXECUTOR=celery scripts/stack up
	$(WITH_ENV) EXECUTOR=celery KAFKA_INGEST_REQUIRE_STACK=1 $(PY) -m pytest tests/deploy $(PYTEST_ARGS)

# Both executors, as CI runs them: the browser test on LocalExecutor, then all of tests/deploy on Celery.
test-deploy: setup
	EXECUTOR=local scripts/stack up
	$(WITH_ENV) EXECUTOR=local KAFKA_INGEST_REQUIRE_STACK=1 $(PY) -m pytest tests/deploy -m "deploy and not celery" $(PYTEST_ARGS)
	$(MAKE) test-celery

# The fault suite (tests/faults: SIGKILLs, zombies, broker, network and registry faults): it starts
# a private broker and registry of its own, so it needs the fetched artifacts but not the shared stack.
test-faults: setup
	$(WITH_ENV) KAFKA_INGEST_REQUIRE_STACK=1 $(PY) -m pytest tests/faults $(PYTEST_ARGS)

# Lineage, metrics (a real statsd_exporter), alert rules and run reports (part of `make test` too;
# docs/observability.md). `scripts/monitoring-tools promtool` first adds the promtool checks.
test-observability: setup up
	$(WITH_ENV) KAFKA_INGEST_REQUIRE_STACK=1 $(PY) -m pytest tests/observability $(PYTEST_ARGS)

# The secured 3-broker cluster (SASL_SSL, ACLs) of the cluster tests, in a stack dir and on ports of
# its own beside the main stack (whose registry the tests use); docs/security.md.
KAFKA_TEST_CLUSTER_BASE_PORT ?= 9292
CLUSTER := KAFKA_BROKERS=3 KAFKA_SECURITY=sasl_ssl STACK_DIR=$(CURDIR)/.stack-cluster KAFKA_CLUSTER_BASE_PORT=$(KAFKA_TEST_CLUSTER_BASE_PORT)
cluster-up: setup
	$(CLUSTER) scripts/stack kafka-up

cluster-down:
	$(CLUSTER) scripts/stack kafka-down

test-cluster: setup up cluster-up
	$(WITH_ENV) KAFKA_INGEST_REQUIRE_STACK=1 KAFKA_TEST_CLUSTER_BASE_PORT=$(KAFKA_TEST_CLUSTER_BASE_PORT) \
		$(PY) -m pytest tests/cluster -m cluster $(PYTEST_ARGS)

test-unit: $(INSTALLED)
	$(WITH_ENV) $(PY) -m pytest -m "not integration and not deploy and not cluster" $(PYTEST_ARGS)

# lint-imports: the package's import layers (pyproject.toml [tool.importlinter], docs/architecture.md).
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

demo: setup up
	scripts/demo

# Generates bench/data/ (reused while its parameters match), measures every variant in fresh
# processes, checks counts on the consumer side, writes docs/benchmarks.md and .png (~20 min),
# then the backfill benchmark: 10 days through the pipeline, then through the stack's scheduler
# on LocalExecutor and on Celery (the stack's executor is switched and put back; ~10 min more).
BENCH_ARGS ?=
bench: setup up
	$(WITH_ENV) $(PY) bench/run.py $(BENCH_ARGS)
	$(MAKE) bench-cluster

# The backfill benchmark alone; rewrites only its section of docs/benchmarks.md.
bench-backfill: setup up
	$(WITH_ENV) $(PY) bench/run.py --only pipeline-days,backfill-local,backfill-celery $(BENCH_ARGS)


# The pipeline on 1M CSV rows against one broker, the plaintext 3-broker cluster and the secured
# one: ratio cluster/single and sasl_ssl/plaintext (~10 min). Both clusters run beside the main
# stack, each in a stack dir and on ports of its own; `make bench-clusters-down` stops them.
KAFKA_BENCH_CLUSTER_BASE_PORT ?= 9192
PLAIN_CLUSTER := KAFKA_BROKERS=3 KAFKA_SECURITY=plaintext STACK_DIR=$(CURDIR)/.stack-plain KAFKA_CLUSTER_BASE_PORT=$(KAFKA_BENCH_CLUSTER_BASE_PORT)
BENCH_CLUSTER ?= $(shell p=$(KAFKA_BENCH_CLUSTER_BASE_PORT); echo 127.0.0.1:$$p,127.0.0.1:$$((p+2)),127.0.0.1:$$((p+4)))
bench-cluster: setup up cluster-up
	$(PLAIN_CLUSTER) scripts/stack kafka-up
	$(WITH_ENV) KAFKA_TEST_CLUSTER_BASE_PORT=$(KAFKA_TEST_CLUSTER_BASE_PORT) $(PY) bench/cluster.py --cluster '$(BENCH_CLUSTER)' $(BENCH_ARGS)

bench-clusters-down: cluster-down
	$(PLAIN_CLUSTER) scripts/stack kafka-down

# Also deletes the stack's data: Kafka's log dirs, the PostgreSQL cluster, Redis, the secrets, and
# the cluster tests' stack dir.
clean: down bench-clusters-down
	$(WITH_ENV) rm -rf "$$STACK_DIR"
	rm -rf .stack .stack-cluster .stack-plain .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

# Adds a topic outside the core package (docs/adding-a-topic.md), e.g.
#   make scaffold DATASET=refunds TOPIC=shopping.refund.created KEY=refund_number COLUMNS=refund_number,amount
.PHONY: scaffold
scaffold: $(INSTALLED)
	$(if $(and $(DATASET),$(TOPIC),$(KEY)),,$(error usage: make scaffold DATASET=refunds TOPIC=shopping.refund.created KEY=refund_number [COLUMNS=refund_number,order_number,amount]))
	$(PY) -m kafka_ingest scaffold '$(DATASET)' --topic '$(TOPIC)' --key '$(KEY)' $(if $(COLUMNS),--columns '$(COLUMNS)')

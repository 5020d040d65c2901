# checkout-chaos — `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/checkout-chaos
PYTEST_ARGS ?=

# The shop under test: a target file (default targets/reference.yaml, the reference shop).
# Every command reads it from CC_TARGET, gate lanes too.
ifdef TARGET
export CC_TARGET := $(abspath $(TARGET))
TARGET_SUFFIX := -$(basename $(notdir $(TARGET)))
endif

.DEFAULT_GOAL := help
.PHONY: help setup up down status observe grafana dashboards load load-worker chaos gate smoke gameday compare matrix \
	proof mutants \
	bench profile test test-unit lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## Install everything (idempotent): OS packages, Toxiproxy, virtualenv
	@bash scripts/setup.sh

up: setup ## Start the whole stack on loopback and print its URLs (TARGET=targets/basket.yaml: that shop)
	@$(CLI) up

down: ## Stop every process the stack started; sweep harness toxics
	@if [ -x $(CLI) ]; then $(CLI) down; else echo "nothing to stop (no virtualenv yet)"; fi

status: ## Show each process, its port and health
	@$(CLI) status

observe: setup ## Prometheus and Alertmanager beside the stack (brought up if down; CC_PROMETHEUS_PORT 9090, CC_ALERTMANAGER_PORT 9093)
	@$(CLI) observe

grafana: ## Grafana with the provisioning (Docker), or how to point your own Grafana at it
	@bash scripts/grafana.sh

dashboards: setup ## Regenerate grafana/dashboards/*.json from grafana/generate.py
	@$(PY) grafana/generate.py

PROFILE ?= steady
USERS ?= 20
DURATION ?= 60s
PROCESSES ?= 1
MASTER_PORT ?= 5557
load: setup ## Shopping load on the running stack: PROFILE=steady|ramp|labor-day USERS= DURATION= PROCESSES= UI=1 WORKERS_EXPECT=N
	@$(CLI) load --profile "$(PROFILE)" --users "$(USERS)" --duration "$(DURATION)" \
		--processes "$(PROCESSES)" $(if $(UI),--ui,) $(if $(SPAWN_RATE),--spawn-rate "$(SPAWN_RATE)",) \
		$(if $(DAY_MINUTES),--day-minutes "$(DAY_MINUTES)",) \
		$(if $(WORKERS_EXPECT),--workers-expect "$(WORKERS_EXPECT)" --master-port "$(MASTER_PORT)",)

MASTER ?= 127.0.0.1
load-worker: setup ## One Locust worker for `make load WORKERS_EXPECT=N` (MASTER=host MASTER_PORT=5557)
	@$(CLI) load-worker --master-host "$(MASTER)" --master-port "$(MASTER_PORT)"

EXPERIMENT ?= labor-day-payments-brownout
OBSERVE ?= 1
chaos: setup ## Run one experiment (default the flagship; EXPERIMENT=name, USERS=shoppers; OBSERVE=0: no Prometheus and Alertmanager): stack up if needed, report, stack down
	@$(CLI) run "$(EXPERIMENT)" --manage-stack $(if $(filter 1,$(OBSERVE)),--observe,) \
		$(if $(filter command line environment,$(origin USERS)),--users "$(USERS)",)

TAG ?=
TIME_SCALE ?= 0.4
SHOP ?=
LANES ?= 3
gate: setup ## The whole catalog as a CI gate over LANES=3 parallel stacks (TAG=, SHOP=fragile; OBSERVE=1: one lane, paging judged): JUnit + summary
	@$(CLI) gate --manage-stack --time-scale "$(TIME_SCALE)" $(if $(TAG),--tag "$(TAG)",) \
		--lanes "$(if $(filter command line environment,$(origin OBSERVE)),$(if $(filter 1,$(OBSERVE)),1,$(LANES)),$(LANES))" \
		$(if $(filter command line environment,$(origin OBSERVE)),$(if $(filter 1,$(OBSERVE)),--observe,),) \
		$(if $(SHOP),--shop "$(SHOP)",) \
		--out reports/gate$(if $(SHOP),-$(SHOP),)$(TARGET_SUFFIX)

smoke: setup ## The pull-request gate: one experiment per dependency and fault class (tag smoke)
	@$(CLI) gate --manage-stack --time-scale "$(TIME_SCALE)" --tag smoke --lanes "$(LANES)" \
		$(if $(SHOP),--shop "$(SHOP)",) --out reports/smoke$(if $(SHOP),-$(SHOP),)$(TARGET_SUFFIX)

SEED ?= 7
MINUTES ?= 3
gameday: setup ## A seeded game day (SEED=7 MINUTES=3 TARGET=): random faults, timeline, revenue at risk
	@$(CLI) gameday --manage-stack --seed "$(SEED)" --minutes "$(MINUTES)" \
		--out reports/gameday-$(SEED)$(TARGET_SUFFIX)

compare: setup ## Each dependency hard down, resilient vs fragile shop, side by side (table + chart)
	-@$(CLI) gate --manage-stack --time-scale "$(TIME_SCALE)" --tag hard-down --out reports/compare/resilient
	-@$(CLI) gate --manage-stack --time-scale "$(TIME_SCALE)" --tag hard-down --shop fragile \
		--out reports/compare/fragile
	@$(CLI) compare reports/compare/resilient reports/compare/fragile --out reports/compare

proof: setup ## Each safeguard removed alone must fail its experiment; the resilient shop must pass
	@$(CLI) proof --manage-stack --time-scale "$(or $(PROOF_TIME_SCALE),1.0)" --out reports/proof

mutants: setup ## The harness's mutation score: each shop defect must fail its experiments (QUICK=1: a subset)
	@$(CLI) mutants $(if $(QUICK),--quick,) --out reports/mutants

matrix: setup ## The resiliency matrix (dependency x degraded/down x feature; SHOP=fragile to compare)
	@$(CLI) matrix --manage-stack $(if $(SHOP),--shop "$(SHOP)",) --out reports/matrix$(if $(SHOP),-$(SHOP),)

fuzz: setup ## Schemathesis on the live shop's own OpenAPI document, through Toxiproxy (EXAMPLES=25; LONG=1: 300 per operation)
	@$(CLI) fuzz --manage-stack --examples "$(or $(EXAMPLES),$(if $(LONG),300,25))" \
		--seconds "$(if $(LONG),3600,300)" --out reports/fuzz

bench: setup ## Benchmarks side by side in one run (own stack, ~15 min; QUICK=1 ~3 min): reports/bench/
	@QUICK=$(QUICK) $(PY) benchmarks/bench.py

profile: setup ## py-spy on the shop's workers during checkout journeys: reports/profile/shop.{svg,txt}
	@$(PY) benchmarks/profile.py

test: setup ## Lint, then every test: unit, integration, e2e, browser
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup ## Run the unit tests only (no servers)
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: setup ## ruff and mypy
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy

clean: down ## Remove run folders, reports and test output
	rm -rf .run reports test-output

# credmesh — the front door. `make help` lists the targets.
#
#   make run    start every service in one process (credmesh dev) on 127.0.0.1:50051 / :8080
#   make test   install what the tests need, start real PostgreSQL and Redis, run every test
#   make lint   formatting, clippy with warnings as errors, buf lint and breaking of the protos
#   make bench  release build and benchmarks; the report lands in target/bench/

SHELL := /usr/bin/env bash
CARGO ?= cargo
DATA ?= ./data

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install the Debian, npm and Python tools the tests need (idempotent)
	@scripts/install-deps.sh test

.PHONY: build
build: ## build every crate (debug)
	$(CARGO) build --workspace --all-targets

.PHONY: run
run: ## start credmesh dev: every service in one process, data under ./data
	@scripts/install-deps.sh run
	$(CARGO) run -p credmesh -- dev --data $(DATA)

.PHONY: test
test: deps ## run every test against real SQLite, PostgreSQL and Redis (standalone and cluster)
	@scripts/test.sh

.PHONY: lint
lint: deps ## rustfmt check, clippy -D warnings, buf lint and buf breaking of the protos
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@scripts/proto-contract.sh check
	cd fuzz && $(CARGO) fmt -- --check

.PHONY: proto-publish
proto-publish: deps ## record the protos as published (proto/published.json): make test then refuses breaking them
	@scripts/proto-contract.sh publish

.PHONY: fmt
fmt: ## format the code
	$(CARGO) fmt --all

.PHONY: bench
bench: ## benchmarks in release; report in target/bench/
	@scripts/bench.sh

.PHONY: fuzz
fuzz: ## run every cargo-fuzz target for FUZZ_SECONDS (default 60) each; report in target/fuzz/
	@scripts/fuzz.sh

.PHONY: helm-test
helm-test: ## lint and render the Helm chart and k8s/ overlays, validate against the Kubernetes schemas
	@scripts/install-deps.sh helm
	@scripts/helm-test.sh

.PHONY: test-env-start test-env-stop
test-env-start: deps ## start the test servers and leave them running (source target/test-env/env)
	@scripts/test-env.sh start
test-env-stop: ## stop the test servers
	@scripts/test-env.sh stop

.PHONY: clean
clean: ## remove build output and dev data
	$(CARGO) clean
	rm -rf $(DATA)

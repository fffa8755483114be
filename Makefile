# Simptu — the front door. `make help` lists every target.
# Node 22 LTS is pinned in the repo (the `node` devDependency): its bin folder goes first on PATH
# so every target, npm script and test runs on it even where the machine carries an older Node.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
export PATH := $(ROOT)/node_modules/.bin:$(PATH)

TESTENV_ENV := $(ROOT)/.testenv/env
# Run a command with the test environment's addresses exported (KUBECONFIG, DATABASE_URL, …).
WITH_TESTENV = set -a; source $(TESTENV_ENV); set +a;
# Use the current KUBECONFIG, or the test environment's when none is set (kubebuilder's convention).
USE_CLUSTER = if [ -z "$${KUBECONFIG:-}" ] && [ -f $(TESTENV_ENV) ]; then set -a; source $(TESTENV_ENV); set +a; fi;

IMG_TAG ?= dev
KIND_CLUSTER ?= simptu
N ?= 200

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: deps
deps: node_modules/.deps-stamp ## Install npm dependencies (npm ci, Node 22 included) when the lockfile changed.
node_modules/.deps-stamp: package-lock.json
	@command -v npm >/dev/null || { echo "npm is required (any Node >= 18 bootstraps the pinned Node 22)"; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: build
build: deps ## Type-check every package (TypeScript project references).
	tsc -b

.PHONY: lint
lint: deps ## Lint (typescript-eslint) and check formatting (prettier).
	eslint .
	prettier --check .

.PHONY: format
format: deps ## Format the code with prettier.
	prettier --write .

.PHONY: test
test: deps testenv-up build ## Run every test against the real test environment (brings it up when needed).
	$(WITH_TESTENV) vitest run

.PHONY: dev
dev: deps testenv-up install ## Run the platform locally: test environment, CRD, operator, services, sample tenants.
	@bash hack/dev.sh

.PHONY: bench
bench: deps testenv-up ## Run the benchmarks under bench/ (figures as ratios against an in-run baseline).
	$(WITH_TESTENV) bash bench/run.sh

##@ Test environment (DESIGN §9)

.PHONY: testenv-up
testenv-up: ## Start (or reuse) Postgres, Redis, Kafka, etcd + kube-apiserver; writes .testenv/env.
	@bash hack/testenv/up.sh

.PHONY: testenv-down
testenv-down: ## Stop every test environment component (idempotent).
	@bash hack/testenv/down.sh

.PHONY: testenv-clean
testenv-clean: testenv-down ## Stop the test environment and delete its data (caches in .cache/ stay).
	rm -rf .testenv

##@ Operator

.PHONY: manifests
manifests: deps ## Generate crds/ from the typed Tenant API in operator/src/api.
	node operator/src/cmd/manifests.ts

.PHONY: check-manifests
check-manifests: deps ## Fail when crds/ is stale.
	node operator/src/cmd/manifests.ts --check

.PHONY: install
install: deps ## Install the CRD and the admission policy into the cluster of the current KUBECONFIG.
	@$(USE_CLUSTER) kubectl apply --server-side --force-conflicts --field-manager=simptu-install -f crds/

.PHONY: uninstall
uninstall: ## Remove the CRD and the admission policy (deletes every Tenant!).
	@$(USE_CLUSTER) kubectl delete --ignore-not-found -f crds/

.PHONY: run
run: deps ## Run the operator from source against the current KUBECONFIG (falls back to .testenv/env).
	@$(USE_CLUSTER) node operator/src/main.ts

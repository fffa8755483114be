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

##@ Platform as code (DESIGN §8)

.PHONY: synth
synth: deps ## Synthesize every environment (cdk8s/src/environments.ts) into dist/<env>/simptu.yaml.
	node cdk8s/src/main.ts

.PHONY: chart
chart: deps ## Regenerate the Helm chart charts/simptu from the cdk8s constructs.
	node cdk8s/src/chart.ts

.PHONY: check-chart
check-chart: deps ## Fail when charts/simptu is out of date with the constructs.
	node cdk8s/src/chart.ts --check

.PHONY: helm-lint
helm-lint: ## helm lint --strict the chart with its defaults and every ci/*-values.yaml (Helm built into .cache/helm).
	@HELM=$$(bash hack/helm.sh); $$HELM lint --strict charts/simptu; for f in charts/simptu/ci/*-values.yaml; do $$HELM lint --strict charts/simptu -f $$f; done

.PHONY: images
images: ## Build simptu/<service>:$(IMG_TAG) for every service with a Dockerfile (needs Docker).
	IMG_TAG=$(IMG_TAG) bash hack/kind/images.sh

.PHONY: kind-up
kind-up: ## Create the kind cluster $(KIND_CLUSTER) with ingress-nginx (needs Docker and kind).
	KIND_CLUSTER=$(KIND_CLUSTER) bash hack/kind/up.sh

.PHONY: kind-load
kind-load: ## Load the $(IMG_TAG) images into the kind cluster.
	KIND_CLUSTER=$(KIND_CLUSTER) IMG_TAG=$(IMG_TAG) bash hack/kind/load.sh

.PHONY: deploy
deploy: ## Install the chart (dev-kind values) into the kind cluster, then the sample tenants.
	KIND_CLUSTER=$(KIND_CLUSTER) IMG_TAG=$(IMG_TAG) bash hack/kind/deploy.sh

.PHONY: undeploy
undeploy: ## Delete the sample tenants (finalized by the operator), then uninstall the release.
	KIND_CLUSTER=$(KIND_CLUSTER) bash hack/kind/undeploy.sh

.PHONY: kind-down
kind-down: ## Delete the kind cluster.
	KIND_CLUSTER=$(KIND_CLUSTER) bash hack/kind/down.sh

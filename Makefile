# One entry point for people and CI. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

STACK ?= dev
# What comes from the command line (STACK=..., ARGS="...") is data, never code: `$(value)` keeps make
# from expanding a `$(...)` inside it, and recipes read it from their environment, quoted ("$$STACK"),
# so no shell parses it either. ARGS and STACKS are split into words by `read -ra`: no eval, no globbing.
override STACK := $(value STACK)
override STACKS := $(value STACKS)
override FROM := $(value FROM)
override TO := $(value TO)
override OUT := $(value OUT)
override KEY := $(value KEY)
override ARGS := $(value ARGS)
override QUICK := $(value QUICK)
# REASON: why `make promote` promotes an image without verification evidence; one argument, whatever it holds.
override REASON := $(value REASON)
export STACK STACKS FROM TO OUT KEY ARGS QUICK REASON
# SAVE: the folder where `make review` keeps each stack's review; REVIEWED: the review file `make up` is held to.
override SAVE := $(value SAVE)
override REVIEWED := $(value REVIEWED)
export SAVE REVIEWED
# TOOLCHAIN=auto|path|source: where the Pulumi CLI comes from (tooling/toolchain/mode.py validates it).
override TOOLCHAIN := $(value TOOLCHAIN)
export TOOLCHAIN
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every recipe that runs pulumi gets the platform's locations and the built toolchain (ops/backend.py makes the
# state backend on first use).
ENV := source tooling/platform/env.sh && source tooling/toolchain/env.sh && export PATH="$$HELLO_K8S_BIN:$$PATH" &&
# Everything that drives Pulumi goes through the operations core's one command line (ops/__main__.py).
OPS := $(PY) -m ops
# Starts the local platform for a STACK that uses it (its cluster or registry), and only then:
# `ops needs-platform` decides, and says why. A stack on another cluster and registry needs no root.
# REVIEWED holds only an up to a review: any other target refuses it rather than ignore it.
NOT_REVIEWED = [[ -z $$REVIEWED ]] || { printf 'REVIEWED holds only an up to a review, got it for make %s\n' "$@" >&2; exit 2; } &&
PLATFORM_IF_NEEDED = need=$$($(OPS) needs-platform "$$STACK") && \
  { [[ $$need != yes ]] || tooling/platform/up.sh; } &&

.PHONY: help plan venv unit lint tools platform platform-down test engine-test e2e preview up destroy refresh drift secret promote review recordings render bench

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## Create .venv with the pinned requirements

# requirements-dev.txt starts with `-r requirements.txt`: the program's pins, then the tools'.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# The type cache lives with this machine's other caches, so a fresh clone checks in a second, not in 12: mypy
	@# checks each cached module against its source's hash, so clones at other commits share it safely.
	source tooling/platform/env.sh && $(VENV)/bin/mypy --cache-dir "$$HELLO_CACHE/mypy" .

# The mock tests share nothing but the read-only checkout; many wait on a subprocess (`python -m ops`, make), so
# four workers share two cores, and an idle one takes tests queued for another (worksteal): measured on two cores,
# 30 s, against 33 s with three and 41 s with three and xdist's default (one worker was left with a run of the
# slow promotion tests while the others stood idle). The engine and platform tests
# mostly wait (for rollouts, pods, the engine), so four workers share two cores (7m33s and 7m44s, against 8m22s
# with three, the CPU still 10% idle); each test file keeps to one worker, since a file's tests share its stacks,
# and no two files share a namespace, node port or repository.
# Each worker rewrites the asserts of every test module it imports; with PYTHONDONTWRITEBYTECODE set it
# does so on every run (2 s of CPU a worker), so the tests keep their bytecode (__pycache__, git-ignored).
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(VENV)/bin/pytest
UNIT_TESTS := $(PYTEST) -n 4 --dist worksteal -m "not engine and not platform"
# The slowest 20 are printed after every run: where the next minute of `make test` is to be found.
REAL_TESTS := $(PYTEST) -n 4 --dist loadfile --no-loadscope-reorder --durations=20

unit: lint ## Fast tests with Pulumi's mocks: no engine, no root
	$(UNIT_TESTS)

plan: ## Say which long first-run builds `make up`/`make test` will do, with rough durations
	@tooling/platform/plan.sh

# As a prerequisite, `ready`: the target's own pulumi command starts the CLI next, so no version listing.
tools: ## Use the pulumi on PATH, or build the CLI and plugins (TOOLCHAIN=source forces the build)
	tooling/toolchain/build.sh $(if $(filter tools,$(MAKECMDGOALS)),all,ready)

platform: ## Start the local Docker engine, registries, cluster and its ingress controller (root)
	tooling/platform/up.sh

platform-down: ## Stop everything `make platform` started
	tooling/platform/down.sh

test: plan venv tools platform lint ## The test command: unit, real-engine and end-to-end tests
	$(UNIT_TESTS)
	$(ENV) $(REAL_TESTS) -m "engine or platform"

engine-test: venv tools ## Only the tests that run the real Pulumi engine
	$(ENV) $(REAL_TESTS) -m "engine and not platform"

e2e: venv tools platform ## Only the end-to-end tests on the local platform
	$(ENV) $(REAL_TESTS) -m platform

preview: venv tools ## pulumi preview of STACK (default dev)
	$(NOT_REVIEWED) $(ENV) $(PLATFORM_IF_NEEDED) $(OPS) preview "$$STACK"

up: plan venv tools ## Deploy STACK (default dev), roll back a failed rollout (ARGS=--no-rollback: don't)
	@[[ -z $$ARGS || $$ARGS == "--no-rollback" ]] || \
	  { printf 'ARGS for make up must be --no-rollback or nothing, got %q\n' "$$ARGS" >&2; exit 2; }
	reviewed=() && { [[ -z $$REVIEWED ]] || reviewed=("--reviewed=$$REVIEWED"); } && \
	  $(ENV) $(PLATFORM_IF_NEEDED) $(OPS) up "$$STACK" $${ARGS:+--no-rollback} "$${reviewed[@]}"

destroy: venv tools ## Destroy STACK's resources
	$(NOT_REVIEWED) $(ENV) $(PLATFORM_IF_NEEDED) $(OPS) destroy "$$STACK"

drift: venv tools ## Say which resources and fields STACK's cluster changed behind its state (exit 4); changes nothing
	$(NOT_REVIEWED) $(ENV) $(PLATFORM_IF_NEEDED) $(OPS) drift "$$STACK"

secret: venv tools ## Set KEY, a secret setting of STACK, on this machine from standard input (make secret KEY=... <file)
	$(ENV) $(OPS) secret "$$STACK" "$${KEY:?make secret needs KEY=<setting>}"

refresh: venv tools ## Refresh STACK's state from its cluster
	$(NOT_REVIEWED) $(ENV) $(PLATFORM_IF_NEEDED) $(OPS) refresh "$$STACK"

promote: venv tools ## Promote FROM's image to TO by digest (ARGS="--yes", "--digest sha256:..."; REASON="..." skips verification)
	$(ENV) read -ra args <<<"$${ARGS//$$'\n'/ }" && \
	  reason=() && { [[ -z $$REASON ]] || reason=("--skip-verification=$$REASON"); } && \
	  $(OPS) promote --from "$${FROM:?make promote needs FROM=<stack>}" \
	    --to "$${TO:?make promote needs TO=<stack>}" "$${args[@]}" "$${reason[@]}"

review: venv tools ## Markdown summary of a real preview of every stack, or of STACKS="..."; SAVE=<dir> keeps it for deploys
	$(ENV) read -ra stacks <<<"$${STACKS//$$'\n'/ }" && \
	  save=() && { [[ -z $$SAVE ]] || save=(--save "$$SAVE"); } && \
	  $(OPS) review "$${save[@]}" "$${stacks[@]}"

recordings: venv tools platform ## Re-record the real previews behind the review golden tests
	$(ENV) $(PY) -m tests.recordings.record

render: venv tools ## Write STACK's manifests to OUT for GitOps review (no cluster is touched)
	$(ENV) REGISTRY_PASSWORD=$$(cat "$$HELLO_REGISTRY_PASSWORD_FILE" 2>/dev/null || true) \
	  DOCKER_HOST=unix://$$HELLO_DOCKER_SOCK $(OPS) render "$$STACK" "$${OUT:?make render needs OUT=<folder>}"

bench: venv tools platform ## Time each step a user waits for beside Pulumi's floor; QUICK=1: one run each
	@[[ -z $$QUICK || $$QUICK == 0 || $$QUICK == 1 ]] || \
	  { printf 'QUICK for make bench must be 1, 0 or nothing, got %q\n' "$$QUICK" >&2; exit 2; }
	$(ENV) $(PY) -m tooling.bench $$([[ $$QUICK == 1 ]] && echo --quick) --out="$${OUT:-.state/bench}"

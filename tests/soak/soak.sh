#!/usr/bin/env bash
# The soak (`make soak`): `baton serve` in a loop of chat completions, OCR and
# transcription tasks, embeddings and model listings for SOAK_MINUTES (default 60), with
# memory, descriptors, threads, database size and worker restarts sampled every
# SOAK_INTERVAL seconds (default 10), plotted to artifacts/soak/soak.svg and checked for
# leaks by soak.py. Uses the models `make test` caches (SmolLM2 135M for chat, whisper-base,
# Silero VAD, all-MiniLM-L6-v2), in a fresh data dir.
#
#   tests/soak/soak.sh              # SOAK_MINUTES=5 for a short one
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export BATON_CLI="${BATON_CLI:-$TARGET/debug/baton}"
[[ -x "$BATON_CLI" ]] || { echo "soak: build first: $BATON_CLI is missing" >&2; exit 1; }
for tool in convert espeak-ng python3; do command -v "$tool" >/dev/null || { echo "soak: $tool is missing (apt)" >&2; exit 1; }; done

export SOAK_WORK="$(mktemp -d /tmp/baton-soak.XXXXXX)"
export SOAK_OUT="${SOAK_OUT:-$ROOT/artifacts/soak}"
cleanup() {
  local status=$?
  if ((status == 0)); then rm -rf "$SOAK_WORK"; else echo "soak: kept $SOAK_WORK for inspection" >&2; fi
  exit $status
}
trap cleanup EXIT INT TERM

export BATON_MODELS_DIR="${BATON_MODELS_DIR:-$HOME/.cache/baton/test-models}"
export BATON_DATA_DIR="$SOAK_WORK/data" BATON_CONFIG="$SOAK_WORK/config.toml" XDG_STATE_HOME="$SOAK_WORK/state"
export OMP_THREAD_LIMIT=1
: >"$BATON_CONFIG"
"$BATON_CLI" models fetch smollm2-135m-instruct whisper-base silero-vad all-minilm-l6-v2 >/dev/null
python3 "$ROOT/tests/soak/soak.py"

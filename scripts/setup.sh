#!/usr/bin/env bash
# Installs what Baton needs to build, run and test on Debian 12 (run as root, or with sudo
# available). Idempotent: when everything is present it only checks and returns in well
# under a second. Only Debian's package archive and PyPI are contacted, and only when
# something is missing.
set -euo pipefail

# System packages, one group per purpose.
APT_PACKAGES=(
  # Rust crates with C parts (sqlite is bundled by sqlx).
  build-essential pkg-config
  # llama.cpp (llama-cpp-2) and bindgen.
  cmake clang libclang-dev
  # Screen capture, OCR and image processing (xcap, tesseract, opencv).
  libopencv-dev libtesseract-dev libleptonica-dev tesseract-ocr tesseract-ocr-eng
  libpipewire-0.3-dev libgbm-dev libwayland-dev libxcb1-dev libegl-dev libdbus-1-dev libxrandr-dev
  # Test fixtures and services: rendered text, a virtual X display with a window manager,
  # and the Redis server the shared task queue is tested and benchmarked on.
  imagemagick fonts-dejavu-core xvfb openbox redis-server
  # Python for model tooling (tiny test-model generators, model fetch).
  python3 python3-pip python3-venv
  # Unpacking model wheels.
  unzip
  # The desktop app (Tauri 2 on WebKitGTK), its tray, and its end-to-end tests.
  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libssl-dev libxdo-dev
  webkit2gtk-driver dbus x11-xserver-utils xdotool
  # A real GTK form for the element-detection test.
  python3-gi gir1.2-gtk-3.0
  # API keys of remote engines (keyring crate, Secret Service) and its test's keyring daemon.
  libdbus-1-dev gnome-keyring
  # Voice: audio I/O (cpal/rodio over ALSA -> PulseAudio), speech for tests and the
  # espeak-ng voice and phonemiser, audio file conversion, and the virtual audio devices
  # the audio tests start (a null sink and a pipe source in a private PulseAudio).
  libasound2-dev libasound2-plugins alsa-utils pulseaudio pulseaudio-utils espeak-ng sox libsox-fmt-all
)

# Python packages for model tooling, installed into a private virtual environment.
PY_REQUIREMENTS=(
  "gguf==0.19.0"
  "numpy==2.4.6"
  # libonnxruntime.so for `ort` (load-dynamic): taken from this wheel.
  "onnxruntime==1.31.0"
  # The official OpenAI client: the local API's compatibility test drives it.
  "openai==3.57.0"
)

say() { printf '[setup] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The desktop UI is built with Vite 7, which needs Node.js 20.19 or newer (Debian 12's own
# nodejs is 18): use the machine's Node.js, and say what to do when it is missing or old.
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  say "error: Node.js 20.19 or newer (with npm) is needed to build the desktop UI; found: $(node --version 2>/dev/null || echo none)."
  say "Install it (for example from nodejs.org or NodeSource), then run this again."
  exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
  say "error: cargo (Rust 1.85 or newer) is not installed. Install the Rust toolchain with rustup, then run this again."
  exit 1
fi

# Model tooling venv: BATON_VENV (default ~/.cache/baton-venv).
VENV="${BATON_VENV:-$HOME/.cache/baton-venv}"
STAMP="$VENV/.baton-requirements"
WANT="$(printf '%s\n' "${PY_REQUIREMENTS[@]}")"
if [ ! -x "$VENV/bin/python3" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  say "preparing Python tools in $VENV"
  PY=python3
  # Prefer Debian's interpreter on a fresh machine; any python3 with venv works.
  [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
  "$PY" -m venv "$VENV"
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
  printf '%s' "$WANT" > "$STAMP"
fi

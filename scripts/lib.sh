# Shared by scripts/demo.sh and scripts/test.sh: make .venv and install Debian packages on demand.

PYTHON=${PYTHON:-}
find_python() {
  for candidate in "$PYTHON" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 or newer is needed" >&2; return 1
}

# Create .venv and install the project with its dev extras; reinstall when pyproject.toml changes.
ensure_venv() {
  local py stamp want
  py=$(find_python)
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  stamp=.venv/.diaolou-installed
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing Python packages into .venv ..." >&2
    .venv/bin/python -m pip install -q --upgrade pip >&2
    .venv/bin/python -m pip install -q -e '.[dev]' >&2
    echo "$want" > "$stamp"
  fi
}

# Install Debian packages that are missing (as root, or through sudo).
ensure_debian_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "error: need Debian packages ${missing[*]}; install them as root" >&2; return 1
    fi
  fi
  echo "installing Debian packages: ${missing[*]} ..." >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# What the tests need: ffmpeg/ffprobe (the reference tools), a real RTSP server (GStreamer's,
# driven by the system Python), Mosquitto for the MQTT tests, and Debian's Chromium with a CJK
# font for the web UI tests (Playwright drives it; `playwright install` is never run).
TEST_DEBIAN_PACKAGES=(ffmpeg mosquitto python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad chromium fonts-wqy-microhei)

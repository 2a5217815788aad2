#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian machine (as root, or
# with sudo): the test servers (PostgreSQL, Redis), the pinned npm tools (buf) and the
# Python interop checkers (PyJWT + cryptography). Safe to run again: it installs only
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-test}          # "run" needs nothing beyond cargo; "test" and "lint" need more
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_packages=()
need() { command -v "$1" >/dev/null 2>&1 || apt_packages+=("$2"); }

if [ "$what" = test ] || [ "$what" = lint ]; then
  need redis-server redis-server
  need redis-cli redis-tools
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)
  need node nodejs
  need npm npm
  need python3 python3
fi
need cc gcc
need pkg-config pkg-config

if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "installing Debian packages: ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

if [ "$what" = test ] || [ "$what" = lint ]; then
  # npm tools, pinned in tools/package.json and its lock file.
  if [ ! -x tools/node_modules/.bin/buf ]; then
    (cd tools && npm ci --silent --no-audit --no-fund)
  fi
  # Python interop checkers, pinned in tools/requirements.txt, in a private venv.
  if [ ! -x .tools/venv/bin/python ]; then
    python3 -m venv .tools/venv 2>/dev/null || {
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv .tools/venv
    }
  fi
  if ! .tools/venv/bin/python -c 'import jwt, cryptography' 2>/dev/null; then
    .tools/venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
  fi
fi

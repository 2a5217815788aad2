#!/usr/bin/env bash
# The protos are the public contract. `check` (part of make test and make lint): buf lint
# (every service, RPC, message, field and enum value documented; enums with an
# UNSPECIFIED zero) and buf breaking against proto/published.json, the contract as
# published, under the FILE rules: a field, RPC, enum value or message of a published
# version is never removed, renumbered, renamed or retyped; a change that must break
# goes into a new version package (credmesh.<service>.v2). `publish` (make
# proto-publish) records the current protos as published, after additions, so that they
# are held to the same rule from then on.
set -euo pipefail
cd "$(dirname "$0")/../proto"
buf=../tools/node_modules/.bin/buf

case "${1:-check}" in
  check)
    $buf lint
    $buf breaking --against published.json
    echo "protos: buf lint and buf breaking against proto/published.json passed"
    ;;
  publish)
    $buf build --exclude-source-info --exclude-imports -o published.json.tmp#format=json
    python3 -m json.tool --indent 1 published.json.tmp > published.json
    rm -f published.json.tmp
    echo "proto/published.json now records the contract as it is"
    ;;
  *)
    echo "usage: $0 [check|publish]" >&2
    exit 2
    ;;
esac

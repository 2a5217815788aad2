#!/usr/bin/env bash
# `make helm-test` (also the last step of `make test`): lint the Helm chart, render it
# for every value set under helm/credmesh/ci/ (and its defaults), build every kustomize
# overlay under k8s/, then validate and check all of it with scripts/helm_checks.py
# (Kubernetes API schemas with unknown fields refused, the operator assertions, the
# disabling and bad-value tests, k8s/ against the chart). Offline; the tools are the
# pinned ones scripts/install-deps.sh puts in .tools/.
#
#   scripts/helm-test.sh                    run every check
#   scripts/helm-test.sh --write-k8s-base   regenerate k8s/base/ from the chart
set -euo pipefail
cd "$(dirname "$0")/.."

HELM=.tools/bin/helm
KUBECTL=.tools/bin/kubectl
PYTHON=.tools/venv/bin/python
KUBE_VERSION=1.32.0
CHART=helm/credmesh
OUT=target/helm-test

for tool in "$HELM" "$KUBECTL" "$PYTHON"; do
  if [ ! -x "$tool" ]; then
    echo "$tool is missing: run scripts/install-deps.sh helm (or make deps)" >&2
    exit 1
  fi
done

if [ "${1:-}" = --write-k8s-base ]; then
  exec "$PYTHON" scripts/helm_checks.py --helm "$HELM" --kubectl "$KUBECTL" --write-k8s-base
fi

rm -rf "$OUT"
mkdir -p "$OUT"

echo "helm lint --strict (defaults and every ci/ value set)"
"$HELM" lint --strict --quiet --kube-version "$KUBE_VERSION" "$CHART" >/dev/null
for values in "$CHART"/ci/*-values.yaml; do
  "$HELM" lint --strict --quiet --kube-version "$KUBE_VERSION" -f "$values" "$CHART" >/dev/null \
    || { "$HELM" lint --strict --kube-version "$KUBE_VERSION" -f "$values" "$CHART"; exit 1; }
done

echo "helm template (defaults and every ci/ value set)"
"$HELM" template credmesh "$CHART" --kube-version "$KUBE_VERSION" >"$OUT/chart-defaults.yaml"
for values in "$CHART"/ci/*-values.yaml; do
  name=$(basename "$values" -values.yaml)
  "$HELM" template credmesh "$CHART" --kube-version "$KUBE_VERSION" -f "$values" >"$OUT/chart-$name.yaml"
done

echo "kubectl kustomize (k8s/base and every overlay)"
"$KUBECTL" kustomize k8s/base >"$OUT/kustomize-base.yaml"
for overlay in k8s/overlays/*/; do
  "$KUBECTL" kustomize "$overlay" >"$OUT/kustomize-$(basename "$overlay").yaml"
done

echo "schema validation (Kubernetes $KUBE_VERSION, strict) and rendering checks"
"$PYTHON" scripts/helm_checks.py --helm "$HELM" --kubectl "$KUBECTL" --rendered "$OUT"

# The alert rules, by Prometheus's own tool: the chart's PrometheusRule with its default
# thresholds, checked and unit-tested (each alert fires past its threshold after its
# `for`, stays quiet before, ignores healthy series and other namespaces).
echo "promtool check rules and test rules (helm/alert-tests/)"
"$HELM" template credmesh "$CHART" --kube-version "$KUBE_VERSION" --namespace credmesh \
  --set observability.prometheusRule.enabled=true --show-only templates/observability.yaml \
  | "$PYTHON" -c '
import sys, yaml
rules = [d for d in yaml.safe_load_all(sys.stdin) if d and d.get("kind") == "PrometheusRule"]
assert len(rules) == 1, f"expected one PrometheusRule, got {len(rules)}"
yaml.safe_dump(rules[0]["spec"], sys.stdout, sort_keys=False, allow_unicode=True)
' >"$OUT/alert-rules.yaml"
cp helm/alert-tests/*.test.yaml "$OUT/"
promtool check rules "$OUT/alert-rules.yaml" >/dev/null
promtool test rules "$OUT"/*.test.yaml

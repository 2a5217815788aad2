#!/usr/bin/env python3
"""Rendering checks for the Helm chart and the kustomize manifests (`make helm-test`).

scripts/helm-test.sh lints, renders every value set under helm/credmesh/ci/ and builds
every kustomize overlay into an output directory, then runs this script, which:

  1. validates every rendered object against the Kubernetes API schemas with unknown
     fields refused (kubernetes-validate, --strict); the Prometheus Operator
     ServiceMonitor and PrometheusRule, CRDs those schemas do not hold, against the
     subset of their CRD schemas the chart uses, strictly too; every alert expression
     and every dashboard query is parsed by a PromQL parser (promql-parser), and every
     credmesh metric they name must be in docs/OBSERVABILITY.md;
  2. asserts what operators rely on: every Deployment has gRPC probes, resources and the
     hardened securityContext (so do the Job and test pods); no Secret value appears in
     a ConfigMap or a plain env value; every Secret and ConfigMap a pod uses is rendered
     or named in values; only verify and the scan page are reachable from outside;
  3. disables each service in turn (and all of them) and checks nothing of it is left;
  4. feeds the chart bad values and checks the schema error is printed, readably;
  5. checks k8s/ against the chart: the base is exactly the chart's output for
     k8s/base/chart-values.yaml, and each overlay equals the chart's output for the
     overlay's chart-values.yaml.

`--write-k8s-base` regenerates k8s/base/ from the chart instead (after a chart change).
Needs PyYAML, kubernetes-validate and promql-parser (tools/requirements.txt).
"""

from __future__ import annotations

import argparse
import base64
import copy
import difflib
import functools
import json
import pathlib
import re
import subprocess
import sys

import jsonschema
import kubernetes_validate.utils as kv
import promql_parser
import yaml

KUBE_VERSION = "1.32.0"
RELEASE = "credmesh"
SERVICES = ["identity", "license", "entcode", "certificate", "inspection", "verify"]
GRPC_NAMES = {
    "identity": "credmesh.identity.v1.IdentityService",
    "license": "credmesh.license.v1.LicenseService",
    "entcode": "credmesh.entcode.v1.EnterpriseCodeService",
    "certificate": "credmesh.certificate.v1.CertificateService",
    "inspection": "credmesh.inspection.v1.InspectionService",
    "verify": "credmesh.verify.v1.VerifyService",
}
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
COMPONENT = "app.kubernetes.io/component"

# The kubernetes-validate CLI re-reads its (large) schema files for every object; the
# library call is the same check, cached.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)

# ServiceMonitor (monitoring.coreos.com/v1) is a CRD, not in the Kubernetes API
# schemas: validate it against the fields of the Prometheus Operator CRD the chart
# emits, refusing any other field, so a typo fails here as it would in the cluster.
_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
_KEY_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key"],
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}, "optional": {"type": "boolean"}},
}
_SECRET_OR_CONFIGMAP = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"secret": _KEY_SELECTOR, "configMap": _KEY_SELECTOR},
}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": _STRMAP,
                "annotations": _STRMAP,
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": _STRMAP,
                        "matchExpressions": {"type": "array"},
                    },
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            "honorLabels": {"type": "boolean"},
                            "tlsConfig": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "serverName": {"type": "string"},
                                    "insecureSkipVerify": {"type": "boolean"},
                                    "ca": _SECRET_OR_CONFIGMAP,
                                    "cert": _SECRET_OR_CONFIGMAP,
                                    "keySecret": _KEY_SELECTOR,
                                },
                            },
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    },
}

# PrometheusRule (monitoring.coreos.com/v1), the same way: the fields of the Prometheus
# Operator CRD the chart emits, nothing else. Expressions are parsed separately.
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": SERVICE_MONITOR_SCHEMA["properties"]["metadata"],
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                        "record": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string", "pattern": _DURATION},
                                        "keep_firing_for": {"type": "string", "pattern": _DURATION},
                                        "labels": _STRMAP,
                                        "annotations": _STRMAP,
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
CRD_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR_SCHEMA, "PrometheusRule": PROMETHEUS_RULE_SCHEMA}

# The alerts the issue asks for; docs/OBSERVABILITY.md has a runbook line for each.
ALERTS = {
    "CredmeshGrpcErrorRate", "CredmeshGrpcLatencyP99", "CredmeshTrustListStale",
    "CredmeshStatusListStale", "CredmeshDisputesOverdue", "CredmeshRateLimitStorm",
}
OBSERVABILITY_DOC = pathlib.Path("docs/OBSERVABILITY.md")
# Grafana's built-in interval variables, which are not PromQL: a dashboard query is parsed
# with them replaced by a duration, as Grafana does before sending it.
GRAFANA_DURATIONS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


class Checks:
    """Collects failures so one run reports all of them."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def ok(self, cond: bool, what: str) -> bool:
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
        return cond

    def fail(self, what: str) -> None:
        self.failures.append(what)


# ---------------------------------------------------------------------------------
# Rendering helpers


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(args, values: list[pathlib.Path], extra: list[str] = ()) -> subprocess.CompletedProcess:
    cmd = [args.helm, "template", RELEASE, str(args.chart), "--kube-version", KUBE_VERSION]
    for v in values:
        cmd += ["-f", str(v)]
    cmd += list(extra)
    return run(cmd)


def render(args, values, extra=()) -> list[dict]:
    res = helm_template(args, values, extra)
    if res.returncode != 0:
        raise SystemExit(f"helm template {values} {list(extra)} failed:\n{res.stderr}")
    return load_docs(res.stdout)


def deep_merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def chart_values(args, files: list[pathlib.Path]) -> dict:
    values = yaml.safe_load((args.chart / "values.yaml").read_text())
    for f in files:
        values = deep_merge(values, yaml.safe_load(f.read_text()) or {})
    return values


def key(doc: dict) -> tuple[str, str]:
    return (doc["kind"], doc["metadata"]["name"])


def labels(doc: dict) -> dict:
    return doc.get("metadata", {}).get("labels") or {}


def pod_spec(doc: dict) -> dict | None:
    kind = doc["kind"]
    if kind == "Pod":
        return doc["spec"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return doc["spec"]["template"]["spec"]
    return None


# ---------------------------------------------------------------------------------
# 1. Schema validation


def validate(c: Checks, docs: list[dict], where: str) -> None:
    for doc in docs:
        name = f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("kind") in CRD_SCHEMAS:
            errors = sorted(
                jsonschema.Draft202012Validator(CRD_SCHEMAS[doc["kind"]]).iter_errors(doc),
                key=lambda e: list(e.path),
            )
            c.ok(not errors, f"{name} does not match the {doc['kind']} CRD schema: "
                 + "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors))
            continue
        try:
            kv.validate(doc, KUBE_VERSION, strict=True)
            c.ok(True, name)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            c.fail(f"{name} is not a valid Kubernetes {KUBE_VERSION} object: {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            c.fail(f"{name}: {e.message} (a CRD must get its own schema in scripts/helm_checks.py)")


# ---------------------------------------------------------------------------------
# 2. What operators rely on


def check_hardened(c: Checks, doc: dict, where: str) -> None:
    spec = pod_spec(doc)
    if spec is None:
        return
    name = f"{where}: {doc['kind']}/{doc['metadata']['name']}"
    psc = spec.get("securityContext") or {}
    c.ok(psc.get("runAsNonRoot") is True, f"{name}: pod securityContext.runAsNonRoot must be true")
    c.ok((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
         f"{name}: pod seccompProfile must be RuntimeDefault")
    c.ok(spec.get("automountServiceAccountToken") is False,
         f"{name}: automountServiceAccountToken must be false (no pod talks to the API)")
    c.ok(not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"),
         f"{name}: no host namespaces")
    for ctr in spec.get("initContainers", []) + spec["containers"]:
        cn = f"{name} container {ctr['name']}"
        sc = ctr.get("securityContext") or {}
        c.ok(sc.get("runAsNonRoot") is True or psc.get("runAsNonRoot") is True, f"{cn}: runAsNonRoot")
        c.ok(sc.get("readOnlyRootFilesystem") is True, f"{cn}: readOnlyRootFilesystem must be true")
        c.ok(sc.get("allowPrivilegeEscalation") is False, f"{cn}: allowPrivilegeEscalation must be false")
        c.ok(not sc.get("privileged"), f"{cn}: must not be privileged")
        c.ok("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{cn}: capabilities.drop must hold ALL")
        c.ok(not (sc.get("capabilities") or {}).get("add"), f"{cn}: no capabilities added")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        c.ok(seccomp == "RuntimeDefault", f"{cn}: seccompProfile must be RuntimeDefault")
        res = ctr.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        c.ok("cpu" in req and "memory" in req, f"{cn}: resources.requests needs cpu and memory")
        c.ok("memory" in lim, f"{cn}: resources.limits needs memory")


def tls_probe_command(component: str, service: str, grpc_port, timeout_seconds: int) -> list[str]:
    """The exec probe a TLS deployment runs instead of the gRPC probe."""
    return ["/usr/local/bin/credmesh", "probe", f"--addr=127.0.0.1:{grpc_port}", f"--service={service}",
            f"--server-name={RELEASE}-{component}", f"--timeout-ms={timeout_seconds * 1000}"]


def check_deployment(c: Checks, doc: dict, where: str, tls: bool = False) -> None:
    name = f"{where}: Deployment/{doc['metadata']['name']}"
    component = labels(doc).get(COMPONENT)
    c.ok(component in SERVICES, f"{name}: component label {component!r} is not a credmesh service")
    spec = pod_spec(doc)
    c.ok(len(spec["containers"]) == 1, f"{name}: one container")
    ctr = spec["containers"][0]
    c.ok(ctr.get("args") == ["serve", component], f"{name}: runs `credmesh serve {component}`, not {ctr.get('args')}")
    ports = {p["name"]: p["containerPort"] for p in ctr.get("ports", [])}
    c.ok(set(ports) == {"grpc", "http"}, f"{name}: container ports must be grpc and http, not {sorted(ports)}")
    for probe, service in (("startupProbe", ""), ("livenessProbe", ""), ("readinessProbe", GRPC_NAMES.get(component))):
        p = ctr.get(probe) or {}
        grpc = p.get("grpc")
        if tls:
            # Kubernetes' gRPC probes cannot speak TLS: `credmesh probe` asks the same health.
            want = tls_probe_command(component, service, ports.get("grpc"), p.get("timeoutSeconds", 0))
            c.ok(grpc is None and (p.get("exec") or {}).get("command") == want,
                 f"{name}: with TLS {probe} must run {want}, not {p}")
            continue
        if c.ok(grpc is not None, f"{name}: {probe} must be a Kubernetes-native gRPC probe"):
            c.ok(grpc.get("port") == ports.get("grpc"), f"{name}: {probe} must use the grpc port {ports.get('grpc')}")
            c.ok(grpc.get("service", "") == service,
                 f"{name}: {probe} must ask health of {service!r}, not {grpc.get('service')!r}")
    mounts = {m["mountPath"] for m in ctr.get("volumeMounts", [])}
    c.ok("/tmp" in mounts, f"{name}: /tmp must be a writable emptyDir (the root filesystem is read-only)")
    env = {e["name"]: e for e in ctr.get("env", [])}
    db = env.get("DATABASE_URL", {})
    c.ok("secretKeyRef" in (db.get("valueFrom") or {}), f"{name}: DATABASE_URL must come from a Secret")
    if "REDIS_URL" in env:
        c.ok("secretKeyRef" in (env["REDIS_URL"].get("valueFrom") or {}), f"{name}: REDIS_URL must come from a Secret")
        c.ok(component in ("entcode", "verify"), f"{name}: only entcode and verify use Redis")


def secret_values(docs: list[dict]) -> set[str]:
    found: set[str] = set()
    for d in docs:
        if d["kind"] != "Secret":
            continue
        for v in (d.get("data") or {}).values():
            found.add(base64.b64decode(v).decode("utf-8", "replace"))
        for v in (d.get("stringData") or {}).values():
            found.add(v)
    out = set()
    for v in found:
        out.add(v.strip())
        # every line of a PEM, and the password part of URLs, count on their own
        out.update(line.strip() for line in v.splitlines() if len(line.strip()) >= 16 and "-----" not in line)
        m = re.match(r"^[a-z+-]+://[^:/@]*:([^@]+)@", v)
        if m:
            out.add(m.group(1))
    return {v for v in out if len(v) >= 8}


def check_no_secret_in_plain_config(c: Checks, docs: list[dict], where: str, extra_secrets: set[str]) -> None:
    secrets = secret_values(docs) | extra_secrets
    plain: list[tuple[str, str]] = []
    for d in docs:
        n = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] == "ConfigMap":
            for k, v in (d.get("data") or {}).items():
                plain.append((f"{n} {k}", str(v)))
                c.ok(not re.search(r"^(DATABASE_URL|REDIS_URL)$|PASSWORD", k),
                     f"{where}: {n} holds {k}, which belongs in a Secret")
        spec = pod_spec(d)
        if spec:
            for ctr in spec.get("initContainers", []) + spec["containers"]:
                for e in ctr.get("env", []):
                    if "value" in e:
                        plain.append((f"{n} env {e['name']}", str(e["value"])))
                for a in ctr.get("args", []) + ctr.get("command", []):
                    plain.append((f"{n} args", str(a)))
        for k, v in (d.get("metadata", {}).get("annotations") or {}).items():
            plain.append((f"{n} annotation {k}", str(v)))
    leaks = [w for w, text in plain for s in secrets if s in text]
    c.ok(not leaks, f"{where}: a Secret value appears in {', '.join(sorted(set(leaks)))}")


def check_references(c: Checks, docs: list[dict], where: str, external: set[str]) -> None:
    """Every ConfigMap/Secret/ServiceAccount a pod uses is rendered or named in values."""
    have = {key(d) for d in docs}
    for d in docs:
        spec = pod_spec(d)
        if not spec:
            continue
        n = f"{where}: {d['kind']}/{d['metadata']['name']}"
        hook = "helm.sh/hook" in (d["metadata"].get("annotations") or {})
        refs: list[tuple[str, str]] = []
        for v in spec.get("volumes", []):
            if "secret" in v:
                refs.append(("Secret", v["secret"]["secretName"]))
            if "configMap" in v:
                refs.append(("ConfigMap", v["configMap"]["name"]))
        for ctr in spec["containers"]:
            for ef in ctr.get("envFrom", []):
                if "configMapRef" in ef:
                    refs.append(("ConfigMap", ef["configMapRef"]["name"]))
                if "secretRef" in ef:
                    refs.append(("Secret", ef["secretRef"]["name"]))
            for e in ctr.get("env", []):
                vf = e.get("valueFrom") or {}
                if "secretKeyRef" in vf:
                    refs.append(("Secret", vf["secretKeyRef"]["name"]))
                if "configMapKeyRef" in vf:
                    refs.append(("ConfigMap", vf["configMapKeyRef"]["name"]))
        if spec.get("serviceAccountName"):
            refs.append(("ServiceAccount", spec["serviceAccountName"]))
        for kind, name in refs:
            c.ok((kind, name) in have or name in external,
                 f"{n} uses {kind}/{name}, which is neither rendered nor an existing Secret named in values")
            if hook and kind == "Secret" and (kind, name) in have:
                # a pre-install hook runs before the release's own objects exist
                target = next(x for x in docs if key(x) == (kind, name))
                c.ok("helm.sh/hook" in (target["metadata"].get("annotations") or {}),
                     f"{n} is a hook but uses {kind}/{name}, which is created only after the hooks ran")


def check_services_select_pods(c: Checks, docs: list[dict], where: str) -> None:
    pods = [d for d in docs if d["kind"] == "Deployment"]
    for s in (d for d in docs if d["kind"] == "Service"):
        sel = s["spec"].get("selector") or {}
        match = [p for p in pods if all(p["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        if c.ok(len(match) == 1, f"{where}: Service/{s['metadata']['name']} selects {len(match)} Deployments, not 1"):
            names = {p["name"] for p in match[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
            for port in s["spec"]["ports"]:
                c.ok(port["targetPort"] in names, f"{where}: Service/{s['metadata']['name']} targets missing port {port['targetPort']}")


def check_network_policies(c: Checks, docs: list[dict], where: str, values: dict | None) -> None:
    """Only verify (HTTP, gRPC) and the scan page service take traffic from outside the
    release; the rest only from their callers, the test pod and the metrics scrapers."""
    policies = {labels(d).get(COMPONENT): d for d in docs if d["kind"] == "NetworkPolicy"}
    deployments = [labels(d).get(COMPONENT) for d in docs if d["kind"] == "Deployment"]
    if not policies:
        return
    scan = (values or {}).get("ingress", {}).get("scanPageService", "entcode")
    metrics_from = (values or {}).get("networkPolicy", {}).get("metricsFrom")
    for comp in deployments:
        np = policies.get(comp)
        if not c.ok(np is not None, f"{where}: no NetworkPolicy for {comp}"):
            continue
        spec = np["spec"]
        c.ok(sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"],
             f"{where}: NetworkPolicy of {comp} must restrict both ingress and egress")
        for rule in spec.get("ingress", []):
            peers = rule.get("from")
            ports = sorted(str(p.get("port")) for p in rule.get("ports", []))
            c.ok(bool(peers) and bool(ports), f"{where}: NetworkPolicy of {comp} has an ingress rule open to every source or port")
            outside = [p for p in peers or [] if "namespaceSelector" in p or "ipBlock" in p]
            if not outside:
                continue
            if comp == "verify":
                continue
            if comp == scan and ports == ["http"]:
                continue
            if comp in PUBLISHERS and ports == ["http"] and (values or {}).get("ingress", {}).get("publicDocuments"):
                continue
            c.ok(ports == ["http"] and (metrics_from is None or outside == metrics_from),
                 f"{where}: {comp} is reachable from outside the release ({outside} on {ports}); only verify and the scan page may be")
        if values is not None:
            deps = [d for d in values["services"][comp].get("dependsOn", []) if values["services"][d]["enabled"]]
            reached = set()
            for rule in spec.get("egress", []):
                for p in rule.get("to", []) or []:
                    other = ((p.get("podSelector") or {}).get("matchLabels") or {}).get(COMPONENT)
                    if other and "namespaceSelector" not in p:
                        reached.add(other)
            c.ok(reached == set(deps), f"{where}: {comp} may reach {sorted(reached)}, but depends on {sorted(deps)}")


# Services that publish public documents (JWKS, trust list, status lists, dispute notices).
PUBLISHERS = ("identity", "license", "certificate", "inspection")


def public_documents(region: str) -> list[tuple[str, str]]:
    """The public document paths (and identity's token endpoint, for partners' HTTP
    clients) the Ingress must route, with the service behind each."""
    return [
        ("/.well-known/jwks.json", "identity"),
        ("/v1/trust/", "identity"),
        ("/v1/token", "identity"),
        (f"/v1/status/{region}/license/", "license"),
        (f"/v1/status/{region}/certificate/", "certificate"),
        (f"/v1/status/{region}/inspection/", "inspection"),
        (f"/v1/disputes/{region}/certificate", "certificate"),
    ]


def check_chart_render(c: Checks, docs: list[dict], where: str, values: dict) -> None:
    enabled = [s for s in SERVICES if values["services"][s]["enabled"]]
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    comps = lambda kind: sorted(labels(d).get(COMPONENT) for d in by_kind.get(kind, []))  # noqa: E731
    c.ok(comps("Deployment") == sorted(enabled), f"{where}: Deployments {comps('Deployment')} != enabled {enabled}")
    c.ok(comps("Service") == sorted(enabled), f"{where}: Services {comps('Service')} != enabled {enabled}")
    for s in enabled:
        merged = deep_merge(values["defaults"], values["services"][s])
        dep = next(d for d in by_kind["Deployment"] if labels(d)[COMPONENT] == s)
        hpa = [d for d in by_kind.get("HorizontalPodAutoscaler", []) if labels(d)[COMPONENT] == s]
        pdb = [d for d in by_kind.get("PodDisruptionBudget", []) if labels(d)[COMPONENT] == s]
        if merged["autoscaling"]["enabled"]:
            c.ok(len(hpa) == 1 and "replicas" not in dep["spec"], f"{where}: {s} autoscales: one HPA, no fixed replicas")
            if hpa:
                c.ok(hpa[0]["spec"]["minReplicas"] == merged["autoscaling"]["minReplicas"], f"{where}: HPA {s} minReplicas")
        else:
            c.ok(not hpa and dep["spec"].get("replicas") == merged["replicas"], f"{where}: {s} has {merged['replicas']} replicas, no HPA")
        c.ok(bool(pdb) == merged["podDisruptionBudget"]["enabled"], f"{where}: PodDisruptionBudget of {s}")
        cm = next((d for d in by_kind["ConfigMap"] if d["metadata"]["name"] == f"{RELEASE}-{s}"), None)
        if c.ok(cm is not None, f"{where}: ConfigMap of {s}"):
            data = cm["data"]
            c.ok(data.get("CREDMESH_REGION") == values["region"]["code"], f"{where}: {s} CREDMESH_REGION")
            c.ok(data.get("CREDMESH_GRPC_ADDR") == "0.0.0.0:50051" or values["ports"]["grpc"] != 50051,
                 f"{where}: {s} listens on 0.0.0.0 for gRPC")
            c.ok(data.get("CREDMESH_MIGRATE") == ("false" if values["migrations"]["enabled"] else "true"),
                 f"{where}: {s} CREDMESH_MIGRATE must be false exactly when the migration Jobs run")
            c.ok(("OTEL_EXPORTER_OTLP_ENDPOINT" in data) == bool(values["otlp"]["endpoint"]), f"{where}: {s} OTLP endpoint")
        jobs = [d for d in by_kind.get("Job", []) if labels(d)[COMPONENT] == f"{s}-migrate"]
        if values["migrations"]["enabled"]:
            if c.ok(len(jobs) == 1, f"{where}: one migration Job for {s}"):
                j = jobs[0]
                ann = j["metadata"].get("annotations") or {}
                c.ok(ann.get("helm.sh/hook") == "pre-install,pre-upgrade", f"{where}: migration Job of {s} is a pre-install/pre-upgrade hook")
                c.ok(j["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate", s], f"{where}: Job runs `credmesh migrate {s}`")
        else:
            c.ok(not jobs, f"{where}: no migration Job for {s} when migrations are off")
    monitors = comps("ServiceMonitor")
    c.ok(monitors == (sorted(enabled) if values["metrics"]["serviceMonitor"]["enabled"] else []), f"{where}: ServiceMonitors {monitors}")
    tests = [d for d in by_kind.get("Pod", []) if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
    if values["tests"]["enabled"] and enabled:
        if c.ok(len(tests) == 1, f"{where}: one helm test Pod"):
            got = {}
            for ctr in tests[0]["spec"]["containers"]:
                args = dict(a.lstrip("-").partition("=")[::2] for a in ctr["args"])
                got[ctr["name"]] = (args.get("addr"), args.get("service"))
            want = {s: (f"{RELEASE}-{s}:{values['ports']['grpc']}", GRPC_NAMES[s]) for s in enabled}
            c.ok(got == want, f"{where}: helm test must check the gRPC health of every enabled service: {got} != {want}")
    ingresses = by_kind.get("Ingress", [])
    if values["ingress"]["enabled"] and "verify" in enabled:
        backends = set()
        for ing in ingresses:
            for rule in ing["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    backends.add((p["path"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"]))
        c.ok(("/", f"{RELEASE}-verify", "http") in backends, f"{where}: the Ingress sends / to verify's http port")
        region = values["region"]["code"]
        documents = set()
        if values["ingress"].get("publicDocuments"):
            for path, service in public_documents(region):
                if values["services"][service]["enabled"]:
                    documents.add((path, f"{RELEASE}-{service}", "http"))
        c.ok(documents <= backends, f"{where}: the Ingress routes the public documents: missing {sorted(documents - backends)}")
        others = {b for b in backends if b not in documents}
        c.ok(all(b[1] in (f"{RELEASE}-verify", f"{RELEASE}-{values['ingress']['scanPageService']}") and b[2] == "http" or b[0] == "/" and b[2] == "grpc"
                 for b in others),
             f"{where}: besides the public documents, the Ingress reaches only verify and the scan page: {sorted(others)}")
    else:
        c.ok(not ingresses, f"{where}: no Ingress")


def check_promql(c: Checks, expr: str, what: str) -> None:
    """`expr` parses as PromQL and every credmesh metric it names is documented."""
    try:
        promql_parser.parse(expr)
        c.ok(True, what)
    except ValueError as e:
        c.fail(f"{what}: not valid PromQL ({e}):\n{expr}")
    documented = OBSERVABILITY_DOC.read_text() if OBSERVABILITY_DOC.exists() else ""
    for metric in set(re.findall(r"\bcredmesh_[a-z0-9_]+", expr)):
        base = re.sub(r"_(bucket|sum|count)$", "", metric)
        c.ok(f"`{metric}" in documented or f"`{base}" in documented,
             f"{what}: {metric} is not in the metric catalogue of {OBSERVABILITY_DOC}")


def dashboard_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels") or [])


def check_observability(c: Checks, docs: list[dict], where: str, values: dict) -> None:
    """The alert rules and the dashboard: there exactly when asked for, every alert of the
    issue present, every expression valid PromQL, the dashboard valid JSON."""
    obs = values["observability"]
    any_enabled = any(values["services"][s]["enabled"] for s in SERVICES)
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    c.ok(len(rules) == (1 if obs["prometheusRule"]["enabled"] and any_enabled else 0),
         f"{where}: {len(rules)} PrometheusRules")
    for doc in rules:
        alerts = set()
        for group in doc["spec"]["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                alerts.add(name)
                check_promql(c, rule["expr"], f"{where}: PrometheusRule {group['name']}/{name}")
                ann = rule.get("annotations") or {}
                c.ok("record" in rule or all(ann.get(k) for k in ("summary", "description", "runbook")),
                     f"{where}: alert {name} needs summary, description and runbook annotations")
                c.ok("record" in rule or (rule.get("labels") or {}).get("severity") in ("warning", "critical"),
                     f"{where}: alert {name} needs a severity label")
                ns = doc["metadata"].get("namespace") or "default"  # helm template's release namespace
                c.ok(f'namespace="{ns}"' in rule["expr"], f"{where}: alert {name} is scoped to the release namespace")
        c.ok(ALERTS <= alerts, f"{where}: PrometheusRule lacks alerts {sorted(ALERTS - alerts)}")
        documented = OBSERVABILITY_DOC.read_text() if OBSERVABILITY_DOC.exists() else ""
        for a in sorted(alerts):
            c.ok(f"### {a}" in documented, f"{where}: alert {a} has no runbook section in {OBSERVABILITY_DOC}")
    dashboards = [d for d in docs if d["kind"] == "ConfigMap"
                  and (d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"]
    c.ok(len(dashboards) == (1 if obs["grafanaDashboard"]["enabled"] and any_enabled else 0),
         f"{where}: {len(dashboards)} Grafana dashboard ConfigMaps")
    for doc in dashboards:
        for file, text in doc.get("data", {}).items():
            try:
                dash = json.loads(text)
            except json.JSONDecodeError as e:
                c.fail(f"{where}: dashboard {file} is not JSON: {e}")
                continue
            c.ok(bool(dash.get("uid")) and bool(dash.get("title")), f"{where}: dashboard {file} has a uid and a title")
            exprs = 0
            for panel in dashboard_panels(dash.get("panels") or []):
                for target in panel.get("targets") or []:
                    expr = target.get("expr")
                    if not expr:
                        continue
                    exprs += 1
                    for var, duration in GRAFANA_DURATIONS.items():
                        expr = expr.replace(var, duration)
                    check_promql(c, expr, f"{where}: dashboard panel {panel.get('title')!r} {target.get('refId')}")
            c.ok(exprs > 0, f"{where}: dashboard {file} has queries")


def check_common(c: Checks, docs: list[dict], where: str, values: dict | None,
                 extra_secrets: set[str], external: set[str] = frozenset()) -> None:
    """The checks every rendering gets: the chart's value sets (values given) and the
    kustomize overlays (values None; `external` names the Secrets the operator makes)."""
    validate(c, docs, where)
    for d in docs:
        check_hardened(c, d, where)
        if d["kind"] == "Deployment":
            check_deployment(c, d, where, tls=bool(values and values.get("tls", {}).get("enabled")))
    check_no_secret_in_plain_config(c, docs, where, extra_secrets)
    external = set(external)
    if values is not None:
        external |= existing_secrets(values)
    check_references(c, docs, where, external - {""})
    check_services_select_pods(c, docs, where)
    check_network_policies(c, docs, where, values)
    if values is not None:
        check_chart_render(c, docs, where, values)
        check_observability(c, docs, where, values)


def existing_secrets(values: dict) -> set[str]:
    out = {values["postgresql"].get("existingSecret") or "", values["redis"].get("existingSecret") or ""}
    out |= {values["services"][s]["keys"].get("existingSecret") or "" for s in SERVICES}
    out.add((values.get("tls") or {}).get("existingSecret") or "")
    return out - {""}


def literal_secrets(values_file: pathlib.Path) -> set[str]:
    """Secret material written in a values file (passwords, URLs with credentials, PEMs):
    it must end up only in Secrets."""
    v = yaml.safe_load(values_file.read_text()) or {}
    out: set[str] = set()
    pg = v.get("postgresql") or {}
    if pg.get("password"):
        out.add(pg["password"])
    for url in (pg.get("urls") or {}).values():
        out.add(url)
    if (v.get("redis") or {}).get("url"):
        out.add(v["redis"]["url"])
    for s in (v.get("services") or {}).values():
        for k, pem in ((s or {}).get("keys") or {}).items():
            if isinstance(pem, str) and "PRIVATE KEY" in pem:
                out.update(line for line in pem.splitlines() if "-----" not in line and line.strip())
    return {x for x in out if len(x) >= 8}


# ---------------------------------------------------------------------------------
# 3. Disabling a service removes all its objects


def check_disabling(c: Checks, args, base_values: pathlib.Path) -> None:
    full = render(args, [base_values])
    full_keys = {key(d) for d in full}
    for s in SERVICES:
        extra = ["--set", f"services.{s}.enabled=false"]
        if s == "identity":
            extra += ["--set", "externalIdentity.url=http://identity.shared.svc:50051"]
        docs = render(args, [base_values], extra)
        where = f"{base_values.name} without {s}"
        mine = {key(d) for d in full if labels(d).get(COMPONENT) in (s, f"{s}-migrate")}
        c.ok(len(mine) >= 5, f"{where}: expected the objects of {s} in the full render, found {sorted(mine)}")
        left = {key(d) for d in docs}
        c.ok(left == full_keys - mine,
             f"{where}: disabling {s} must remove exactly its objects; extra: {sorted(left - (full_keys - mine))}, "
             f"missing: {sorted((full_keys - mine) - left)}")
        text = yaml.safe_dump_all(docs)
        c.ok(re.search(rf"\b{RELEASE}-{s}\b(?!-keys)", text) is None and f"{COMPONENT}: {s}\n" not in text,
             f"{where}: something still names or selects {s}")
        c.ok(GRPC_NAMES[s] not in text, f"{where}: the test pod or a probe still checks {GRPC_NAMES[s]}")
        c.ok(f"CREDMESH_{s.upper()}_URL" not in text or s == "identity", f"{where}: a service still points at {s}")
        values = chart_values(args, [base_values])
        values["services"][s]["enabled"] = False
        check_common(c, docs, where, values, set())
    extra = []
    for s in SERVICES:
        extra += ["--set", f"services.{s}.enabled=false"]
    c.ok(render(args, [base_values], extra) == [], f"{base_values.name} with every service disabled must render nothing")


# ---------------------------------------------------------------------------------
# 3b. In-process TLS: off, on and mutual


TLS_DIR = "/etc/credmesh/tls"
TLS_SECRET = "credmesh-mesh-tls"


def check_tls(c: Checks, args) -> None:
    """tls.* renders what docs/SECURITY.md and the chart README promise: the Secret
    mounted read-only in every service, the CREDMESH_TLS_* variables, https:// between
    services, exec probes running `credmesh probe` with each Service's name, a checksum
    that rolls the pods, an https ServiceMonitor and ingress-nginx told the backend
    speaks TLS; nothing of it when off."""
    common = ["--set", "metrics.serviceMonitor.enabled=true", "--set", "ingress.enabled=true",
              "--set", "ingress.className=nginx", "--set", "ingress.grpc.enabled=true",
              "--set", "ingress.grpc.className=nginx",
              "--set", "ingress.grpc.annotations.nginx\\.ingress\\.kubernetes\\.io/backend-protocol=GRPC"]
    on = ["--set", "tls.enabled=true", "--set", f"tls.existingSecret={TLS_SECRET}"]
    cases = {"off": common, "on": common + on, "mutual": common + on + ["--set", "tls.mutual=true"]}
    for case, extra in cases.items():
        where = f"tls {case}"
        docs = render(args, [], extra)
        enabled, mutual = case != "off", case == "mutual"
        values = chart_values(args, [])
        values["tls"] = {"enabled": enabled, "existingSecret": TLS_SECRET if enabled else "", "mutual": mutual}
        values["metrics"]["serviceMonitor"]["enabled"] = True
        values["ingress"]["enabled"] = True
        values["ingress"]["grpc"]["enabled"] = True
        check_common(c, docs, where, values, set())
        scheme = "https" if enabled else "http"
        want_env = {"CREDMESH_TLS_CERT_FILE": f"{TLS_DIR}/tls.crt", "CREDMESH_TLS_KEY_FILE": f"{TLS_DIR}/tls.key",
                    "CREDMESH_TLS_CA_FILE": f"{TLS_DIR}/ca.crt"} if enabled else {}
        if mutual:
            want_env["CREDMESH_TLS_CLIENT_CA_FILE"] = f"{TLS_DIR}/ca.crt"
        for d in docs:
            n = f"{where}: {d['kind']}/{d['metadata']['name']}"
            comp = labels(d).get(COMPONENT)
            if d["kind"] == "ConfigMap" and comp in SERVICES:
                data = d["data"]
                got = {k: v for k, v in data.items() if k.startswith("CREDMESH_TLS_")}
                c.ok(got == want_env, f"{n}: TLS variables {got} != {want_env}")
                for k, v in data.items():
                    if k.endswith("_URL") and k.startswith("CREDMESH_") and k != "CREDMESH_PUBLIC_URL":
                        c.ok(v.startswith(f"{scheme}://{RELEASE}-"), f"{n}: {k}={v} must be {scheme}://")
            if d["kind"] == "Deployment":
                spec = pod_spec(d)
                ctr = spec["containers"][0]
                mounts = [m for m in ctr.get("volumeMounts", []) if m["mountPath"] == TLS_DIR]
                vols = [v for v in spec.get("volumes", []) if v["name"] == "tls"]
                ann = d["spec"]["template"]["metadata"].get("annotations") or {}
                if enabled:
                    c.ok(len(mounts) == 1 and mounts[0].get("readOnly") is True and mounts[0]["name"] == "tls",
                         f"{n}: the TLS Secret must be mounted read-only at {TLS_DIR}: {mounts}")
                    c.ok(len(vols) == 1 and vols[0].get("secret", {}).get("secretName") == TLS_SECRET
                         and {i["key"] for i in vols[0]["secret"].get("items", [])} == {"tls.crt", "tls.key", "ca.crt"},
                         f"{n}: the tls volume must be the Secret {TLS_SECRET} with tls.crt, tls.key and ca.crt: {vols}")
                    c.ok("checksum/tls" in ann, f"{n}: a checksum/tls annotation rolls the pods when tls changes")
                    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                        cmd = (ctr[probe].get("exec") or {}).get("command") or []
                        c.ok(f"--server-name={RELEASE}-{comp}" in cmd,
                             f"{n}: {probe} must check the certificate names the Service {RELEASE}-{comp}: {cmd}")
                else:
                    c.ok(not mounts and not vols and "checksum/tls" not in ann, f"{n}: nothing of TLS when tls is off")
            if d["kind"] == "ServiceMonitor":
                ep = d["spec"]["endpoints"][0]
                c.ok(ep["scheme"] == scheme, f"{n}: scheme {ep['scheme']} != {scheme}")
                tc = ep.get("tlsConfig")
                if enabled:
                    ok = (tc is not None and tc.get("serverName") == f"{RELEASE}-{comp}"
                          and tc.get("ca") == {"secret": {"name": TLS_SECRET, "key": "ca.crt"}})
                    if mutual:
                        ok = ok and tc.get("cert") == {"secret": {"name": TLS_SECRET, "key": "tls.crt"}} \
                            and tc.get("keySecret") == {"name": TLS_SECRET, "key": "tls.key"}
                    else:
                        ok = ok and "cert" not in tc and "keySecret" not in tc
                    c.ok(ok, f"{n}: tlsConfig {tc}")
                else:
                    c.ok(tc is None, f"{n}: no tlsConfig when tls is off")
            if d["kind"] == "Ingress":
                ann = d["metadata"].get("annotations") or {}
                grpc = d["metadata"]["name"].endswith("-grpc")
                want = ("GRPCS" if grpc else "HTTPS") if enabled else ("GRPC" if grpc else None)
                c.ok(ann.get("nginx.ingress.kubernetes.io/backend-protocol") == want,
                     f"{n}: nginx backend-protocol {ann.get('nginx.ingress.kubernetes.io/backend-protocol')} != {want}")
                want_secret = f"default/{TLS_SECRET}" if mutual else None
                c.ok(ann.get("nginx.ingress.kubernetes.io/proxy-ssl-secret") == want_secret,
                     f"{n}: nginx proxy-ssl-secret {ann.get('nginx.ingress.kubernetes.io/proxy-ssl-secret')} != {want_secret}")
            if d["kind"] == "Pod":
                for ctr in d["spec"]["containers"]:
                    flags = set(ctr["args"])
                    c.ok(("-tls" in flags) == enabled
                         and (f"-tls-server-name={RELEASE}-{ctr['name']}" in flags) == enabled
                         and ("-tls-client-cert=/etc/credmesh/tls/tls.crt" in flags) == mutual,
                         f"{n}: the helm test of {ctr['name']} must speak TLS exactly when tls is on: {ctr['args']}")
    # Another ingress class gets none of the nginx annotations.
    docs = render(args, [], cases["mutual"] + ["--set", "ingress.className=traefik"])
    for d in docs:
        if d["kind"] == "Ingress" and not d["metadata"]["name"].endswith("-grpc"):
            ann = d["metadata"].get("annotations") or {}
            c.ok(not any(k.startswith("nginx.") for k in ann), f"tls with class traefik: no nginx annotations: {ann}")
    # The checksum follows the tls values, so changing them rolls the pods.
    def checksum(extra):
        return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/tls"]
                for d in render(args, [], extra) if d["kind"] == "Deployment"}
    c.ok(checksum(on) != checksum(on[:-1] + ["tls.existingSecret=other"]) != checksum(on + ["--set", "tls.mutual=true"]),
         "checksum/tls must change with the tls values")


# ---------------------------------------------------------------------------------
# 4. Bad values are refused with the reason


BAD_VALUES = [
    (["--set", "services.identity.replicas=two"], ["/services/identity/replicas", "got string, want integer"]),
    (["--set", "region.code=SX"], ["/region/code", "'SH', 'JS', 'ZJ', 'AH'"]),
    (["--set", "services.verify.replicaz=3"], ["/services/verify", "additional properties 'replicaz' not allowed"]),
    (["--set", "networkPolicy.enabled=yes"], ["/networkPolicy/enabled", "want boolean"]),
    (["--set", "redis.url=http://redis:6379"], ["/redis/url"]),
    (["--set", "region.publicUrl=https://verify.sh.example.gov.cn/?from=qr"], ["/region/publicUrl"]),
    (["--set", "ingress.scanPageService=verify"], ["/ingress/scanPageService", "'entcode'"]),
    (["--set-json", 'region.partners=[{"code":"SH","url":"https://verify.sh.example","anchorPublicKey":"'
      + "A" * 43 + '"}]'], ["SH is this deployment's own region"]),
    (["--set", "services.identity.enabled=false"], ["externalIdentity.url"]),
    (["--set", "keys.generate=false"], ["services.identity.keys.anchor is empty"]),
    (["--set", "observability.prometheusRule.errorRatio=5"], ["/observability/prometheusRule/errorRatio"]),
    (["--set", "observability.grafanaDashboard.enable=true"], ["/observability/grafanaDashboard", "'enable' not allowed"]),
    (["--set", "tls.enabled=true"], ["tls.enabled is true but tls.existingSecret is empty", "tls.crt, tls.key and ca.crt"]),
    (["--set", "tls.mutual=true"], ["tls.mutual is true but tls.enabled is false"]),
    (["--set", "tls.enabled=on"], ["/tls/enabled", "want boolean"]),
    (["--set", "tls.secret=x"], ["/tls", "additional properties 'secret' not allowed"]),
]


def check_bad_values(c: Checks, args) -> None:
    for extra, expect in BAD_VALUES:
        res = helm_template(args, [], extra)
        what = " ".join(extra)
        if c.ok(res.returncode != 0, f"helm template {what} must fail, it rendered"):
            for e in expect:
                c.ok(e in res.stderr, f"helm template {what}: the error must say {e!r}; it said:\n{res.stderr.strip()}")


# ---------------------------------------------------------------------------------
# 5. k8s/ against the chart


def strip_helm(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for meta in (doc.get("metadata"), (doc.get("spec") or {}).get("template", {}).get("metadata")):
        if meta and meta.get("labels"):
            for label in HELM_ONLY_LABELS:
                meta["labels"].pop(label, None)
    return doc


def normalise(doc: dict, drop_checksums: bool) -> dict:
    doc = strip_helm(doc)
    doc["metadata"].pop("namespace", None)
    if drop_checksums:
        tmeta = (doc.get("spec") or {}).get("template", {}).get("metadata") or {}
        ann = tmeta.get("annotations") or {}
        for k in [k for k in ann if k.startswith("checksum/")]:
            del ann[k]
    return doc


def compare(c: Checks, chart_docs: list[dict], kustomize_docs: list[dict], where: str, drop_checksums: bool) -> None:
    a = {key(d): normalise(d, drop_checksums) for d in chart_docs}
    b = {key(d): normalise(d, drop_checksums) for d in kustomize_docs}
    c.ok(set(a) == set(b), f"{where}: objects differ: only in the chart {sorted(set(a) - set(b))}, "
         f"only in kustomize {sorted(set(b) - set(a))}")
    for k in sorted(set(a) & set(b)):
        if a[k] != b[k]:
            diff = "\n".join(difflib.unified_diff(
                yaml.safe_dump(a[k], sort_keys=True).splitlines(),
                yaml.safe_dump(b[k], sort_keys=True).splitlines(),
                "chart", "kustomize", lineterm="", n=2))
            c.fail(f"{where}: {k[0]}/{k[1]} differs from the chart's:\n{diff}")
        else:
            c.ok(True, where)


def kustomize(args, path: pathlib.Path) -> list[dict]:
    res = run([args.kubectl, "kustomize", str(path)])
    if res.returncode != 0:
        raise SystemExit(f"kubectl kustomize {path} failed:\n{res.stderr}")
    return load_docs(res.stdout)


def check_k8s(c: Checks, args) -> None:
    base = args.k8s / "base"
    compare(c, render(args, [base / "chart-values.yaml"]), kustomize(args, base), "k8s/base", drop_checksums=False)
    for overlay in sorted((args.k8s / "overlays").iterdir()):
        compare(c, render(args, [base / "chart-values.yaml", overlay / "chart-values.yaml"]),
                kustomize(args, overlay), f"k8s/overlays/{overlay.name}", drop_checksums=True)


class _BlockDumper(yaml.SafeDumper):
    pass


def _str(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str)


def write_k8s_base(args) -> None:
    base = args.k8s / "base"
    docs = [strip_helm(d) for d in render(args, [base / "chart-values.yaml"])]
    for d in docs:
        c = labels(d).get(COMPONENT, "")
        if "helm.sh/hook" in (d["metadata"].get("annotations") or {}):
            raise SystemExit(f"{key(d)} is a Helm hook: k8s/base/chart-values.yaml must turn migrations and tests off")
        if d["kind"] == "Secret":
            raise SystemExit(f"{key(d)}: the base must reference existing Secrets only (set existingSecret in chart-values.yaml)")
        d.setdefault("_file", c if c in SERVICES else "shared")
    header = ("# Generated from the Helm chart (helm/credmesh) with k8s/base/chart-values.yaml by\n"
              "# `scripts/helm-test.sh --write-k8s-base`. Do not edit: change the chart or the\n"
              "# values, regenerate, and `make helm-test` checks they agree.\n")
    files: dict[str, list[dict]] = {}
    for d in docs:
        files.setdefault(d.pop("_file"), []).append(d)
    for old in base.glob("*.yaml"):
        if old.name not in ("chart-values.yaml", "kustomization.yaml"):
            old.unlink()
    names = []
    for f in [s for s in SERVICES if s in files] + [f for f in files if f not in SERVICES]:
        path = base / f"{f}.yaml"
        path.write_text(header + yaml.dump_all(files[f], Dumper=_BlockDumper, sort_keys=False, width=1000))
        names.append(path.name)
    (base / "kustomization.yaml").write_text(
        header + yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                 "resources": names}, sort_keys=False))
    print(f"wrote {', '.join(names)} and kustomization.yaml under {base}")


# ---------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--helm", required=True)
    p.add_argument("--kubectl", required=True)
    p.add_argument("--chart", type=pathlib.Path, default=pathlib.Path("helm/credmesh"))
    p.add_argument("--k8s", type=pathlib.Path, default=pathlib.Path("k8s"))
    p.add_argument("--rendered", type=pathlib.Path, help="directory of rendered value sets and overlays")
    p.add_argument("--write-k8s-base", action="store_true")
    args = p.parse_args()
    if args.write_k8s_base:
        write_k8s_base(args)
        return 0

    c = Checks()
    ci = sorted((args.chart / "ci").glob("*-values.yaml"))
    for vf in ci:
        f = args.rendered / f"chart-{vf.name.removesuffix('-values.yaml')}.yaml"
        check_common(c, load_docs(f.read_text()), f.name, chart_values(args, [vf]), literal_secrets(vf))
    defaults = args.rendered / "chart-defaults.yaml"
    check_common(c, load_docs(defaults.read_text()), defaults.name, chart_values(args, []), set())
    operator_secrets = existing_secrets(chart_values(args, [args.k8s / "base" / "chart-values.yaml"]))
    for f in sorted(args.rendered.glob("kustomize-*.yaml")):
        check_common(c, load_docs(f.read_text()), f.name, None, set(), operator_secrets)
    check_disabling(c, args, args.chart / "ci" / "production-values.yaml")
    check_bad_values(c, args)
    check_tls(c, args)
    check_k8s(c, args)
    check_readme(c, args)
    check_dockerfile(c, pathlib.Path("."))

    for f in c.failures:
        print(f"FAIL {f}", file=sys.stderr)
    print(f"helm checks: {c.passed} passed, {len(c.failures)} failed")
    return 1 if c.failures else 0


def check_readme(c: Checks, args) -> None:
    """The chart README's values table names every value."""
    readme = (args.chart / "README.md").read_text()
    values = yaml.safe_load((args.chart / "values.yaml").read_text())
    paths = []
    for top, v in values.items():
        if top == "services":
            for svc, sv in v.items():
                for k in sv:
                    paths.append((f"services.{svc}.{k}", f"services.<name>.{k}"))
        elif isinstance(v, dict) and v:
            paths += [(f"{top}.{k}", None) for k in v]
        else:
            paths.append((top, None))
    for path, general in paths:
        c.ok(f"`{path}" in readme or (general is not None and f"`{general}" in readme),
             f"helm/credmesh/README.md: the values table does not describe `{path}`")


def check_dockerfile(c: Checks, root: pathlib.Path) -> None:
    """No Docker engine here: check the Dockerfile's shape statically. Multi-stage, a
    minimal runtime stage holding only the binary, a non-root user, a lean context."""
    lines = [ln.strip() for ln in (root / "Dockerfile").read_text().splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    c.ok(len(froms) >= 2, "Dockerfile: multi-stage (a build stage and a runtime stage)")
    c.ok(any("cargo build --release -p credmesh --locked" in ln for ln in lines),
         "Dockerfile: builds with `cargo build --release -p credmesh --locked`")
    runtime = lines[lines.index(froms[-1]):]
    c.ok(re.search(r"distroless|-slim", froms[-1]) is not None, f"Dockerfile: minimal runtime image, not {froms[-1]}")
    c.ok(not any(ln.upper().startswith("RUN ") for ln in runtime), "Dockerfile: nothing installed in the runtime stage")
    copies = [ln for ln in runtime if ln.upper().startswith(("COPY ", "ADD "))]
    c.ok(len(copies) == 1 and "--from=" in copies[0] and copies[0].endswith("/usr/local/bin/credmesh"),
         f"Dockerfile: the runtime stage gets only the binary: {copies}")
    users = [ln.split()[1] for ln in runtime if ln.upper().startswith("USER ")]
    c.ok(bool(users) and users[-1].split(":")[0] not in ("0", "root"), "Dockerfile: runs as a non-root user")
    ignored = set((root / ".dockerignore").read_text().split())
    for entry in ("target", "data", "node_modules", ".tools"):
        c.ok(entry in ignored, f".dockerignore: excludes {entry}")


if __name__ == "__main__":
    sys.exit(main())

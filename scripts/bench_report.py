"""Collect criterion estimates into one report: each figure beside its reference from
the same run, as a ratio, with the goal it is held to. Writes target/bench/report.md
and target/bench/report.json. Exits non-zero only when nothing could be measured."""

import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(__file__), "..")
CRIT = os.path.join(ROOT, "target", "criterion")
OUT = os.path.join(ROOT, "target", "bench")

# (label, measured, reference, goal kind, goal value)
# speed ratio = reference time / measured time (higher is better).
PAIRS = [
    ("native verify vs raw ed25519-dalek verify", "native/credmesh_verify_native", "native/ed25519_dalek_verify_strict", "ratio>=", 0.9),
    ("VC-JWT verify vs jsonwebtoken::decode", "vc_jwt/credmesh_verify_vc_jwt", "vc_jwt/jsonwebtoken_decode", "ratio>=", 1.1),
    ("batch verify of 64 vs 64 single verifies", "batch_64/verify_batch", "batch_64/single_verify_x64", "ratio>=", 2.0),
    ("token validation vs jsonwebtoken::decode", "token/credmesh_validate", "token/jsonwebtoken_decode", "ratio>=", 1.0),
    ("verification, 200 million credentials vs 10,000", "status_scale/verify_200m", "status_scale/verify_10k", "ratio>=", 0.8),
    ("status lookup alone, 200 million credentials vs 10,000", "status_scale/lookup_200m", "status_scale/lookup_10k", "info", None),
    ("revocation (set a bit), 200 million credentials vs 10,000", "status_scale/revoke_200m", "status_scale/revoke_10k", "ratio>=", 0.8),
    ("token validation vs raw ed25519-dalek verify", "token/credmesh_validate", "token/ed25519_dalek_verify_strict", "info", None),
]
ABSOLUTE = [
    ("status-list lookup (1,000,000-bit list)", "status_cache_lookup_1m_bits", "ns<", 1000.0),
]


def estimate(name):
    path = os.path.join(CRIT, *name.split("/"), "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["mean"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    rows, measured = [], 0
    for label, m, r, kind, goal in PAIRS:
        tm, tr = estimate(m), estimate(r)
        row = {"figure": label, "measured": m, "reference": r, "measured_ns": tm, "reference_ns": tr}
        if tm and tr:
            measured += 1
            ratio = tr / tm
            row["ratio"] = round(ratio, 3)
            row["goal"] = f">= {goal}x" if kind == "ratio>=" else "reference only"
            row["met"] = (ratio >= goal) if kind == "ratio>=" else None
        rows.append(row)
    for label, m, kind, goal in ABSOLUTE:
        tm = estimate(m)
        row = {"figure": label, "measured": m, "measured_ns": tm, "goal": f"< {fmt_ns(goal)}"}
        if tm:
            measured += 1
            row["met"] = tm < goal
        rows.append(row)
    machine = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "report.json"), "w") as f:
        json.dump({"machine": machine, "figures": rows}, f, indent=2, ensure_ascii=False)
    lines = [
        "# credmesh benchmarks",
        "",
        f"{machine['time']} · {machine['cores']} cores · {machine['cpu']} · {machine['rustc']}",
        "",
        "| figure | measured | reference | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        tm = fmt_ns(row["measured_ns"]) if row.get("measured_ns") else "not measured"
        tr = fmt_ns(row["reference_ns"]) if row.get("reference_ns") else "—"
        ratio = f"{row['ratio']}x" if "ratio" in row else "—"
        met = {True: "yes", False: "no", None: "—"}[row.get("met")]
        lines.append(f"| {row['figure']} | {tm} | {tr} | {ratio} | {row.get('goal', '')} | {met} |")
    with open(os.path.join(OUT, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())

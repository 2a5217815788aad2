"""Collect criterion estimates into one report: each figure beside its reference from
the same run, as a ratio, with the goal it is held to. Also the load generator's figures
(target/bench/load.json, tests/benches/load.rs), the redis-benchmark GET reference
(target/bench/redis-benchmark.txt) and the hot paths' instruction counts
(target/bench/instructions.json, scripts/bench_callgrind.py), and the tables the custom
harnesses print (national scale, license registrations, inspection planning, the verify
gateway, memory and start-up), when they were measured. Writes target/bench/report.md and
target/bench/report.json, the same figures in both. Exits non-zero only when
nothing could be measured."""

import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(__file__), "..")
# criterion writes under the cargo target directory, which may be shared.
CRIT = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "criterion")
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


def read_json(name):
    try:
        with open(os.path.join(OUT, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


LOADS = [
    ("verify_distinct", "Verify, distinct credentials (uncached)", "raw_verify_server", "raw-verify server", 0.9),
    ("verify_cached", "Verify, repeated credential (cached)", "empty_rpc", "empty RPC", 0.8),
    ("issuance", "EstablishEnterprise (issuance)", "raw_insert", "raw INSERT", 0.5),
    # The same issuance beside the reference that pays the same transport: no goal.
    ("issuance", "… vs the raw-INSERT tonic server", "raw_insert_server", "raw-INSERT server", None),
]
PER_BACKEND = ("raw_insert", "raw_insert_server")


def ms(v):
    return f"{v:.2f}" if isinstance(v, (int, float)) else "—"


def load_section():
    """The load generator against credmesh serve processes: (json, markdown lines, count)."""
    data = read_json("load.json")
    if not data:
        return None, [], 0
    refs = data.get("references", {})
    lines = [
        "",
        f"## Load: credmesh serve processes on loopback ({data.get('concurrency')} streams, "
        f"{data.get('seconds')} s each)",
        "",
        "identity, license and verify as separate processes; one tonic client over one "
        "HTTP/2 connection, latencies in HdrHistogram (ms). References are measured in the "
        "same run: the tonic ones (empty RPC, raw verify, raw INSERT) with the same client, the "
        "raw INSERT loop in process without transport. The empty RPC and the raw-verify server "
        "take turns with each configuration's verify loads (one-second slices), and each verify "
        "figure is divided by its own turns; their reference rows sum up every turn.",
        "",
        "| configuration | load | req/s | p50 | p90 | p99 | max | errors | reference | ref req/s | ratio | goal | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ref_rows = [("empty tonic RPC", refs.get("empty_rpc")), ("raw-verify tonic server", refs.get("raw_verify_server"))]
    for backend, m in (refs.get("raw_insert") or {}).items():
        ref_rows.append((f"raw INSERT, {backend}", m))
    for backend, m in (refs.get("raw_insert_server") or {}).items():
        ref_rows.append((f"raw-INSERT tonic server, {backend}", m))
    for name, m in ref_rows:
        if m:
            lines.append(f"| reference | {name} | {m['per_second']:.0f} | {ms(m.get('p50_ms'))} | {ms(m.get('p90_ms'))} | "
                         f"{ms(m.get('p99_ms'))} | {ms(m.get('max_ms'))} | {m.get('errors', 0)} | | | | | |")
    count = 0
    figures = []
    for c in data.get("configurations", []):
        if c.get("skipped"):
            lines.append(f"| {c['name']} | skipped: {c['skipped']} | | | | | | | | | | | |")
            continue
        for key, label, ref_key, ref_label, goal in LOADS:
            m = (c.get("loads") or {}).get(key)
            if not m:
                continue
            # A verify load's reference took turns with it in its configuration; the
            # run-wide one (the sum of every turn) stands in for older reports.
            turn = m.get("reference") or {}
            ref = turn if turn.get("name") == ref_key else refs.get(ref_key)
            if ref_key in PER_BACKEND:
                ref = (ref or {}).get(c.get("backend"))
            if goal is None and not ref:
                continue
            ratio = met = None
            if ref and ref.get("per_second") and m.get("per_second") is not None:
                ratio = m["per_second"] / ref["per_second"]
                met = ratio >= goal if goal is not None else None
            goal_text = f">= {goal}x" if goal is not None else "reference only"
            ratio_text = f"{ratio:.2f}x" if ratio is not None else "—"
            met_text = dict([(True, "yes"), (False, "no"), (None, "—")])[met]
            ref_rate = f"{(ref or {}).get('per_second', 0):.0f}"
            if goal is None:
                # A second reference for a figure already counted: its own row, no goal.
                figures.append({"configuration": c["name"], "load": key, "per_second": m.get("per_second"),
                                "reference": ref_key, "reference_per_second": ref.get("per_second"),
                                "ratio": ratio and round(ratio, 3), "goal": goal_text, "met": None})
                lines.append(f"| {c['name']} | {label} | | | | | | | {ref_label} | {ref_rate} | "
                             f"{ratio_text} | {goal_text} | — |")
                continue
            if m.get("requests"):
                count += 1
            figures.append({"configuration": c["name"], "load": key, **m,
                            "reference": ref_key, "reference_per_second": ref and ref.get("per_second"),
                            "ratio": ratio and round(ratio, 3), "goal": goal_text, "met": met})
            lines.append(
                f"| {c['name']} | {label} | {m['per_second']:.0f} | {ms(m.get('p50_ms'))} | {ms(m.get('p90_ms'))} | "
                f"{ms(m.get('p99_ms'))} | {ms(m.get('max_ms'))} | {m.get('errors', 0)} | {ref_label} | "
                f"{ref_rate} | {ratio_text} | {goal_text} | {met_text} |")
            if m.get("first_error"):
                lines.append(f"| | first error ({m.get('errors')}): {str(m['first_error'])[:200].replace('|', '/')} | | | | | | | | | | | |")
    return {"settings": {k: data.get(k) for k in ("concurrency", "seconds", "distinct_credentials")},
            "references": refs, "figures": figures}, lines, count


def redis_section(load):
    """redis-benchmark GET beside the cached Verify of the Redis configurations."""
    try:
        with open(os.path.join(OUT, "redis-benchmark.txt")) as f:
            text = f.read()
    except OSError:
        return None, [], 0
    # -q prints progress lines separated by carriage returns, then "GET: 123.45 requests per second, ...".
    found = re.findall(r"GET: ([\d.]+) requests per second", text)
    if not found:
        return {"error": text.strip()[-300:]}, ["", "## redis-benchmark GET", "", "not measured: " + text.strip()[-300:]], 0
    get = float(found[-1])
    cmd = text.splitlines()[0] if text.startswith("$ ") else ""
    lines = ["", "## redis-benchmark GET", "", f"`{cmd[2:]}`" if cmd else "", "",
             "| figure | req/s | redis GET req/s | ratio |", "|---|---|---|---|",
             f"| redis-benchmark GET (64 clients) | {get:.0f} | | |"]
    ratios = []
    for f in (load or {}).get("figures", []):
        if f["load"] == "verify_cached" and "redis" in f["configuration"]:
            r = f["per_second"] / get
            ratios.append({"configuration": f["configuration"], "cached_verify_per_second": f["per_second"], "ratio": round(r, 3)})
            lines.append(f"| cached Verify, {f['configuration']} | {f['per_second']:.0f} | {get:.0f} | {r:.2f}x |")
    return {"get_per_second": get, "cached_verify": ratios}, lines, 1


def instructions_section():
    data = read_json("instructions.json")
    if not data:
        return None, [], 0
    lines = ["", "## Instructions per operation (callgrind)", ""]
    if data.get("skipped"):
        return data, lines + [f"not measured: {data['skipped']}"], 0
    lines += [f"{data.get('tool', '')}; only the measured loop is collected (`--toggle-collect`), "
              "so the counts repeat run to run on a busy machine. Reference: raw ed25519-dalek "
              "strict verify of the same signed bytes, unless the figure names another.", "",
              "| path | instructions/op | reference instructions/op | ratio | goal | met |",
              "|---|---|---|---|---|---|"]
    count = 0
    for p in data.get("pairs", []):
        if p.get("per_operation"):
            count += 1
        per = f"{p['per_operation']:,}" if p.get("per_operation") else "not counted"
        ref = f"{p['reference_per_operation']:,}" if p.get("reference_per_operation") else "—"
        ratio = f"{p['ratio']}x" if "ratio" in p else "—"
        met = {True: "yes", False: "no", None: "—"}[p.get("met")]
        lines.append(f"| {p['figure']} | {per} | {ref} | {ratio} | {p.get('goal', 'reference only')} | {met} |")
    for p in data.get("pairs", []):
        if p.get("wasteful") and p.get("top"):
            lines += ["", f"{p['figure']}: {p['ratio']}x raw verify; where the instructions go "
                      f"(own cost, per operation):", ""]
            ops = data["paths"][p["path"]]["operations"]
            for t in p["top"]:
                lines.append(f"- {t['instructions'] / ops:,.0f} — `{t['function']}`")
    return data, lines, count


# What the custom harnesses print (each to its own text file under target/bench), taken
# into the report: (key in report.json, heading, file, the lines that belong to the report).
SECTIONS = [
    ("national_scale", "National scale", "credential.txt", r"^status lists for"),
    ("license_registrations", "License registrations", "license.txt", r"^(\||license|without|goals)"),
    ("inspection_planning", "Inspection planning", "inspection.txt", r"^(\||inspection|goals)"),
    ("verify_gateway", "Verify gateway", "verify.txt", r"^(\||goals)"),
    ("footprint", "Memory and start-up", "footprint.txt", r"^\|"),
]


def markdown_tables(lines):
    """The Markdown tables among `lines`: each a list of rows, each row {header: cell},
    cells as printed. A header that repeats names the column before it, as in
    "goal (of idle RSS)"."""
    tables, header = [], None
    for line in lines:
        line = line.strip()
        if not line.startswith("|") or not line.endswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line[1:-1].split("|")]
        if header is None:
            header = []
            for i, name in enumerate(cells):
                header.append(f"{name} (of {cells[i - 1]})" if name in cells[:i] else name)
            tables.append([])
        elif not all(re.fullmatch(r"-*", c) for c in cells):
            tables[-1].append(dict(zip(header, cells)))
    return tables


def national_scale(lines):
    """The status lists' memory at national scale, from the credential bench's line."""
    for line in lines:
        m = re.match(r"status lists for (\d+) credentials: .*?([\d.]+) MiB held; ([\d.]+) MiB per 100 million", line)
        if m:
            return {"credentials": int(m.group(1)), "held_mib": float(m.group(2)),
                    "mib_per_100_million": float(m.group(3))}
    return None


def harness_sections():
    """The custom harnesses' sections: for report.json, {key: {lines, tables}}; for
    report.md, the lines to append; and how many sections had figures."""
    data, lines, count = {}, [], 0
    for key, heading, name, pattern in SECTIONS:
        try:
            with open(os.path.join(OUT, name), encoding="utf-8") as f:
                taken = [line.rstrip("\n") for line in f if re.match(pattern, line)]
        except OSError:
            continue
        if not taken:
            continue
        count += 1
        section = {"lines": [line for line in taken if not line.startswith("|")],
                   "tables": markdown_tables(taken)}
        if key == "national_scale":
            section["figures"] = national_scale(taken)
        data[key] = section
        lines += ["", f"## {heading}", ""] + taken
    return data, lines, count


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
    load, load_lines, n = load_section()
    measured += n
    redis, redis_lines, n = redis_section(load)
    measured += n
    instructions, instruction_lines, n = instructions_section()
    measured += n
    sections, section_lines, n = harness_sections()
    measured += n
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "report.json"), "w") as f:
        json.dump({"machine": machine, "figures": rows, "load": load, "redis_benchmark": redis,
                   "instructions": instructions, **sections}, f, indent=2, ensure_ascii=False)
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
    lines += load_lines + redis_lines + instruction_lines + section_lines
    with open(os.path.join(OUT, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())

"""Instruction counts of the hot paths (`make bench`): each path of
tests/benches/instructions.rs runs under `valgrind --tool=callgrind`, collecting only
inside its measured loop, and is reported as instructions per operation beside raw
ed25519-dalek verify of the same signed bytes. Counts are repeatable on a shared, noisy
machine where wall time is not.

Writes target/bench/instructions.json (read by bench_report.py) and, per path, the
callgrind output and `callgrind_annotate` (functions by own instructions) under
target/bench/callgrind/. Settings: CREDMESH_CALLGRIND_SCALE multiplies the operations
per path (default 1); CREDMESH_CALLGRIND_BIN names an instructions bench binary already
built (else it is built here). Exits non-zero when nothing could be counted."""

import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "target", "bench")
CG = os.path.join(OUT, "callgrind")

# path -> operations measured (a warm-up operation runs before, uncounted).
PATHS = {
    "raw_verify": 200,
    "native": 200,
    "raw_verify_jwt": 200,
    "vc_jwt": 200,
    "jsonwebtoken_jwt": 200,
    "raw_verify_token": 200,
    "token_first": 200,
    "token_cached": 5000,
    "status_lookup": 20000,
}

# (label, path, reference path or None, most instructions allowed relative to it or None)
# Native verify's goal is ≥ 0.9× raw verify's speed: at most 1/0.9 ≈ 1.11× its work.
PAIRS = [
    ("native verify", "native", "raw_verify", 1 / 0.9),
    ("VC-JWT verify", "vc_jwt", "raw_verify_jwt", None),
    ("jsonwebtoken::decode of the same VC-JWT", "jsonwebtoken_jwt", "raw_verify_jwt", None),
    # The foundation issue's goal, VC-JWT verify ≥ 1.1× jsonwebtoken::decode's speed: at
    # most 1/1.1 ≈ 0.91× its work.
    ("VC-JWT verify vs jsonwebtoken::decode", "vc_jwt", "jsonwebtoken_jwt", 1 / 1.1),
    ("token validation, first sight", "token_first", "raw_verify_token", None),
    ("token validation, cached", "token_cached", "raw_verify_token", None),
    ("status lookup (1,000,000-bit list)", "status_lookup", "raw_verify", None),
]
# Above this many times its raw verify a path is called wasteful and its top functions
# are listed; the references are other code, measured only to compare with.
WASTEFUL = 1.2
REFERENCES = {"raw_verify", "raw_verify_jwt", "raw_verify_token", "jsonwebtoken_jwt"}


def bench_binary():
    """Builds the instructions bench (release) and returns its path."""
    out = subprocess.run(
        ["cargo", "bench", "-p", "credmesh-e2e", "--bench", "instructions", "--no-run",
         "--message-format=json"],
        cwd=ROOT, capture_output=True, text=True,
    )
    for line in out.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (msg.get("reason") == "compiler-artifact"
                and msg.get("target", {}).get("name") == "instructions"
                and msg.get("executable")):
            return msg["executable"]
    sys.stderr.write(out.stderr[-4000:])
    return None


def totals(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    return None


def top_functions(out_file, limit=12):
    """`callgrind_annotate` of `out_file`: (instructions, share, function) by own cost."""
    res = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=99", out_file],
        capture_output=True, text=True,
    )
    text = res.stdout
    # "1,234,567 (12.34%)  file:function [object]" (valgrind ≥ 3.21 adds the share); one
    # line per source file of a function (inlining), summed here per function.
    pat = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.+)$")
    by_fn, started = {}, False
    for line in text.splitlines():
        if "file:function" in line:
            started = True
            continue
        if started and by_fn and (not line.strip() or line.startswith("---")):
            break
        m = pat.match(line) if started else None
        if not m or "PROGRAM TOTALS" in line:
            continue
        fn = re.sub(r"^[^:]*:", "", m.group(2).strip(), count=1)
        fn = re.sub(r" \[[^\]]*\]$", "", fn)
        by_fn[fn] = by_fn.get(fn, 0) + int(m.group(1).replace(",", ""))
    rows = [{"instructions": n, "function": fn[:160]}
            for fn, n in sorted(by_fn.items(), key=lambda kv: -kv[1])[:limit]]
    return text, rows


def main():
    os.makedirs(CG, exist_ok=True)
    result = {"tool": None, "paths": {}, "pairs": []}
    valgrind = shutil.which("valgrind")
    if not valgrind:
        result["skipped"] = "valgrind is not installed (scripts/install-deps.sh bench)"
        print(result["skipped"])
        write(result)
        return 1
    result["tool"] = subprocess.run([valgrind, "--version"], capture_output=True,
                                    text=True).stdout.strip()
    binary = os.environ.get("CREDMESH_CALLGRIND_BIN") or bench_binary()
    if not binary:
        result["skipped"] = "the instructions bench did not build"
        print(result["skipped"])
        write(result)
        return 1
    scale = float(os.environ.get("CREDMESH_CALLGRIND_SCALE", "1") or 1)
    for path, n in PATHS.items():
        n = max(1, int(n * scale))
        out_file = os.path.join(CG, f"{path}.out")
        run = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out_file}",
             "--toggle-collect=*measured*", binary, path, str(n)],
            capture_output=True, text=True,
        )
        total = totals(out_file) if run.returncode == 0 and os.path.exists(out_file) else None
        if not total:
            print(f"{path}: not counted\n{run.stderr[-2000:]}")
            result["paths"][path] = {"operations": n, "error": run.stderr[-500:]}
            continue
        text, top = top_functions(out_file)
        with open(os.path.join(CG, f"{path}.txt"), "w") as f:
            f.write(text)
        result["paths"][path] = {"operations": n, "instructions": total,
                                 "per_operation": round(total / n), "top": top}
        print(f"{path}: {total / n:,.0f} instructions per operation ({n} operations)")
    counted = 0
    for label, path, ref, most in PAIRS:
        p, r = result["paths"].get(path, {}), result["paths"].get(ref, {})
        row = {"figure": label, "path": path, "reference": ref,
               "per_operation": p.get("per_operation"),
               "reference_per_operation": r.get("per_operation")}
        if p.get("per_operation"):
            counted += 1
        if p.get("per_operation") and r.get("per_operation"):
            ratio = p["per_operation"] / r["per_operation"]
            row["ratio"] = round(ratio, 3)
            if most is not None:
                row["goal"] = f"<= {most:.2f}x"
                row["met"] = ratio <= most
            if ratio > WASTEFUL and path not in REFERENCES:
                row["wasteful"] = True
                row["top"] = p.get("top", [])[:8]
        result["pairs"].append(row)
    write(result)
    return 0 if counted else 1


def write(result):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "instructions.json"), "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    sys.exit(main())

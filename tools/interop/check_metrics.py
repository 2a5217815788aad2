#!/usr/bin/env python3
"""Scrape a credmesh /metrics endpoint as Prometheus does and parse it with the official
Prometheus Python client's OpenMetrics parser, which refuses anything the format does
not allow (a missing `# EOF`, a counter sample without `_total`, bad label escaping,
histogram buckets out of order, …).

    check_metrics.py http://127.0.0.1:8080/metrics

Prints the parsed families as JSON on stdout, for the end-to-end tests to assert on:
{"families": {"<name>": {"type": "counter", "unit": "", "samples":
  [{"name": "<sample name>", "labels": {...}, "value": 1.0}, ...]}, ...}}
Exits non-zero, with the parser's message, if the exposition does not parse.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    request = urllib.request.Request(sys.argv[1], headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=10) as response:
        content_type = response.headers.get("Content-Type", "")
        text = response.read().decode("utf-8")
    if not content_type.startswith("application/openmetrics-text"):
        print(f"Content-Type is {content_type!r}, not OpenMetrics", file=sys.stderr)
        return 1
    families = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name in families:
                raise ValueError(f"family {family.name} exposed twice")
            families[family.name] = {
                "type": family.type,
                "unit": family.unit,
                "help": family.documentation,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": s.value}
                    for s in family.samples
                ],
            }
    except ValueError as e:
        print(f"the exposition does not parse as OpenMetrics: {e}", file=sys.stderr)
        return 1
    json.dump({"families": families}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

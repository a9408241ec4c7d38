#!/usr/bin/env python3
"""Checks that the Grafana dashboard parses as JSON and that it, and the PromQL
in docs/operations.md, name only metrics Atelier exports.

The catalogue is read from the code: every `"atelier_..."` name declared in
crates/telemetry/src/metrics.rs, plus the `process_*` metrics of the
metrics-process crate and Prometheus' own `up`. A histogram's `_bucket`,
`_sum` and `_count` series count as its name.

Usage: check_metrics_refs.py [DASHBOARD.json [DOC.md]]
"""
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "crates/telemetry/src/metrics.rs"
PROCESS = {
    "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
    "process_virtual_memory_bytes", "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes", "process_start_time_seconds", "process_threads",
}
BUILTIN = {"up"}
NAME = re.compile(r"\b((?:atelier|process)_[a-z0-9_]+)")


def catalogue():
    names = set(re.findall(r'"(atelier_[a-z0-9_]+)"', CATALOGUE.read_text()))
    if not names:
        sys.exit(f"no metric names found in {CATALOGUE}")
    return names | PROCESS | BUILTIN


def base(name, known):
    if name in known:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in known:
            return name[: -len(suffix)]
    return None


def exprs_in(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("expr", "query", "definition") and isinstance(item, str):
                yield item
            else:
                yield from exprs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from exprs_in(item)


def check(where, exprs, known):
    bad = []
    count = 0
    for expr in exprs:
        for name in NAME.findall(expr):
            count += 1
            if base(name, known) is None:
                bad.append(f"{where}: unknown metric {name} in: {expr}")
    return bad, count


def main():
    dashboard = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "deploy/grafana/atelier-dashboard.json"
    doc = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs/operations.md"
    known = catalogue()
    try:
        board = json.loads(dashboard.read_text())
    except json.JSONDecodeError as error:
        sys.exit(f"{dashboard}: not JSON: {error}")
    if not board.get("panels"):
        sys.exit(f"{dashboard}: no panels")
    problems, used = check(dashboard.name, list(exprs_in(board)), known)
    blocks = re.findall(r"```promql\n(.*?)```", doc.read_text(), re.S)
    doc_problems, doc_used = check(doc.name, blocks, known)
    problems += doc_problems
    if used == 0 or doc_used == 0:
        problems.append(f"no metric referenced ({dashboard.name}: {used}, {doc.name}: {doc_used})")
    if problems:
        sys.exit("\n".join(problems))
    print(f"{dashboard.name}: {used} metric references, {doc.name}: {doc_used}, all exported")


if __name__ == "__main__":
    main()

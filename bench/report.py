"""Markdown tables of the last full results: ``python -m bench.report`` (reads
bench/results/<name>.json, written by each benchmark; quick runs are left out)."""

from __future__ import annotations

import json
from typing import Any

from bench._harness import RESULTS_DIR, fmt

ORDER = (
    "history_import",
    "live_ingest",
    "ingest_socketio",
    "fanout",
    "rest",
    "outbox",
    "sessions",
    "neonize_sessions",
)


def _spread(metric: dict[str, Any]) -> str:
    if len(metric["values"]) < 2:
        return fmt(metric["median"])
    return f"{fmt(metric['median'])} ({fmt(metric['min'])}..{fmt(metric['max'])})"


def table(data: dict[str, Any]) -> str:
    lines = [
        f"`python -m bench.{data['name']}` — {data['runs']} runs, "
        f"{data['machine']['date']}, git {data['machine']['git']}",
        "",
        "| metric | median (min..max) | unit |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {_spread(v)} | {v['unit']} |" for k, v in data["metrics"].items()]
    lines.append("")
    for check in data["checks"]:
        verdict = "**pass**" if check["passed"] else "**miss**"
        lines.append(f"- {verdict}: {check['target']} (measured {fmt(check['value'])})")
    lines += [f"- note: {n}" for n in data["notes"]]
    params = ", ".join(f"{k}={v}" for k, v in data["params"].items())
    lines.append(f"- params: {params}")
    return "\n".join(lines)


def main() -> None:
    machine: dict[str, Any] | None = None
    for name in ORDER:
        path = RESULTS_DIR / f"{name}.json"
        if not path.exists():
            print(f"### {name}\n\nnot measured (no {path.name})\n")
            continue
        data = json.loads(path.read_text())
        machine = machine or data["machine"]
        print(f"### {name}\n\n{table(data)}\n")
    if machine is not None:
        packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
        print(
            f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_mb']} MB, "
            f"{machine['os']}, Python {machine['python']}; {packages}"
        )


if __name__ == "__main__":
    main()

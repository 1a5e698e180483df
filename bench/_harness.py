"""What every benchmark shares: repeat a measurement, take medians, check targets, record.

A benchmark module defines ``main(quick=False, runs=None) -> dict`` and ends with
``if __name__ == "__main__": cli(main)``. ``main`` measures the reference and the measured
path in the same run (same process, same machine state), so every ratio compares like with
like, prints a table and writes ``bench/results/<name>.json``.

This machine is small and shared: each measurement is repeated (``runs``) and the median is
what counts; min and max are kept to show the spread. ``--quick`` uses tiny sizes and one run:
it proves the benchmark still works (CI), its figures mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent

PACKAGES = (
    "whatsgate",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "litestar",
    "uvicorn",
    "python-socketio",
    "python-engineio",
    "aiohttp",
    "msgspec",
    "neonize",
)


def machine_info() -> dict[str, Any]:
    """What a figure depends on: CPU, cores, memory, Python, package versions, date."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = _cpu_name(Path("/proc/cpuinfo").read_text()) or cpu
    memory_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": memory_mb,
        "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "packages": versions,
        "git": _git_revision(),
        "whatsgate_from": _whatsgate_path(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _cpu_name(cpuinfo: str) -> str | None:
    """The first CPU's model name with its family and model numbers: a virtual machine may
    name only the vendor's line ("AMD EPYC"), and sessions here have run on two generations
    of it, ~40 % apart in speed."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block only
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if name is None:
        return None
    family, model = fields.get("cpu family"), fields.get("model")
    return f"{name} (family {family} model {model})" if family and model else name


def _whatsgate_path() -> str | None:
    """Where whatsgate was imported from (another tree than this one via PYTHONPATH?)."""
    try:
        import whatsgate
    except ImportError:
        return None
    return str(Path(whatsgate.__file__).resolve().parent)


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass(frozen=True, slots=True)
class Stat:
    """The runs of one metric: the median counts, min/max show the spread."""

    unit: str
    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "values": list(self.values),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """A target from docs/benchmarks.md, evaluated on medians."""

    target: str
    value: float
    passed: bool


@dataclass(slots=True)
class Results:
    """The collected runs of one benchmark."""

    name: str
    quick: bool
    runs: int
    params: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Stat] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, unit: str, values: Iterable[float]) -> Stat:
        stat = Stat(unit, tuple(float(v) for v in values))
        self.stats[metric] = stat
        return stat

    def median(self, metric: str) -> float:
        return self.stats[metric].median

    def ratio(self, name: str, numerator: str, denominator: str) -> float:
        """A ratio of medians, recorded as a metric of its own."""
        value = self.median(numerator) / self.median(denominator)
        self.stats[name] = Stat("x", (value,))
        return value

    def check(self, target: str, value: float, passed: bool) -> None:
        self.checks.append(Check(target=target, value=value, passed=passed))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quick": self.quick,
            "runs": self.runs,
            "params": self.params,
            "machine": machine_info(),
            "metrics": {k: v.as_dict() for k, v in self.stats.items()},
            "checks": [
                {"target": c.target, "value": c.value, "passed": c.passed} for c in self.checks
            ],
            "notes": self.notes,
        }


def repeat(runs: int, measure: Callable[[], dict[str, float]]) -> dict[str, list[float]]:
    """Call ``measure`` ``runs`` times; each call returns ``{metric: value}``."""
    collected: dict[str, list[float]] = {}
    for _ in range(runs):
        for metric, value in measure().items():
            collected.setdefault(metric, []).append(value)
    return collected


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2e}"


def render(results: Results) -> str:
    lines = [f"## {results.name}" + ("  (--quick: figures mean nothing)" if results.quick else "")]
    if results.params:
        lines.append("params: " + ", ".join(f"{k}={v}" for k, v in results.params.items()))
    width = max((len(k) for k in results.stats), default=6)
    lines.append(f"{'metric':<{width}}  {'median':>12}  {'min':>12}  {'max':>12}  unit  runs")
    for metric, stat in results.stats.items():
        lines.append(
            f"{metric:<{width}}  {fmt(stat.median):>12}  {fmt(min(stat.values)):>12}  "
            f"{fmt(max(stat.values)):>12}  {stat.unit:<4}  {len(stat.values)}"
        )
    for check in results.checks:
        verdict = "PASS" if check.passed else "MISS"
        lines.append(f"[{verdict}] {check.target}  (measured {fmt(check.value)})")
    lines.extend(f"note: {note}" for note in results.notes)
    return "\n".join(lines)


def finish(results: Results) -> dict[str, Any]:
    """Print the table, write bench/results/<name>.json (quick runs to <name>.quick.json, so a
    CI run never overwrites a real measurement) and return the result dict."""
    data = results.as_dict()
    print(render(results), flush=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    suffix = ".quick.json" if results.quick else ".json"
    (RESULTS_DIR / f"{results.name}{suffix}").write_text(json.dumps(data, indent=2) + "\n")
    return data


def cli(main: Callable[..., dict[str, Any]]) -> None:
    parser = argparse.ArgumentParser(description=(main.__module__ or "").split(".")[-1])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run (CI)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (default 5)")
    args = parser.parse_args()
    main(quick=args.quick, runs=args.runs)


def default_runs(quick: bool, runs: int | None, full: int = 5) -> int:
    if runs is not None:
        return max(1, runs)
    return 1 if quick else full


def python() -> str:
    return sys.executable


def elapsed(start: float) -> float:
    return time.perf_counter() - start

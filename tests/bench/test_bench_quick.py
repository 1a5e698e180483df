"""Each benchmark still runs: ``main(quick=True)`` completes and reports positive figures
(scheduler waits may be 0).

Speed is not asserted (CI machines vary); the figures of a quick run mean nothing. A
benchmark whose measured path is not on this branch yet reports its reference only and the
test skips, saying which module is missing.

The benchmarks with a PostgreSQL row run it once more on the database at
``WHATSGATE_TEST_POSTGRES_URL`` (given to them as ``WHATSGATE_BENCH_POSTGRES_URL``); without
it that test skips and says so, and the runs above check that the row is skipped with a note.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from typing import Any

import pytest

from bench._fixtures import POSTGRES_ENV
from bench._harness import RESULTS_DIR
from tests.databases import POSTGRES_ENV as POSTGRES_TEST_ENV
from tests.databases import drop_schema, new_schema_or_skip

#: Each benchmark and the figure of its measured path.
BENCHMARKS = {
    "fanout": "deliveries_per_s",
    "history_import": "import_msgs_per_s",
    "ingest_socketio": "p99_ms",
    "live_ingest": "ingest_msgs_per_s",
    "outbox": "sends_per_s",
    "rest": "get_p99_ms",
    "neonize_sessions": "restore_per_client_ms",
    "sessions": "restore_s",
}

#: Each benchmark with a PostgreSQL row and that row's figures.
POSTGRES_ROWS = {
    "history_import": ("pg_import_msgs_per_s", "pg_import_cpu_us_per_msg"),
    "live_ingest": ("pg_ingest_msgs_per_s", "pg_ingest_cpu_us_per_msg"),
    "rest": ("pg_get_p99_ms", "pg_post_rps"),
}


def _run(name: str) -> dict[str, Any]:
    module = importlib.import_module(f"bench.{name}")
    result: dict[str, Any] = module.main(quick=True)
    return result


@pytest.mark.parametrize(("name", "headline"), sorted(BENCHMARKS.items()))
def test_quick_run_reports_positive_figures(
    name: str, headline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(POSTGRES_ENV, raising=False)
    result = _run(name)

    assert result["name"] == name
    assert result["quick"] is True
    metrics = result["metrics"]
    skipped = [n for n in result["notes"] if n.startswith("measured path skipped")]
    assert metrics or skipped, "no metric reported"
    for metric, stat in metrics.items():
        assert stat["values"], metric
        # A wait for a core (``*_runq_wait_*``) is 0 when the machine had a core free.
        floor_ok = (lambda v: v >= 0) if "_wait_" in metric else (lambda v: v > 0)
        assert all(math.isfinite(v) and floor_ok(v) for v in stat["values"]), (metric, stat)
    assert not any(metric.startswith("pg_") for metric in metrics), "PostgreSQL row without URL"
    written = json.loads((RESULTS_DIR / f"{name}.quick.json").read_text())
    assert written["metrics"].keys() == metrics.keys()
    if skipped:
        pytest.skip(f"{name}: {skipped[0]}")
    assert headline in metrics
    assert result["checks"], "no target evaluated"
    if name in POSTGRES_ROWS:
        pg_skipped = [n for n in result["notes"] if n.startswith("PostgreSQL row skipped")]
        assert pg_skipped, "PostgreSQL row skipped without a note"


@pytest.mark.parametrize(("name", "figures"), sorted(POSTGRES_ROWS.items()))
def test_quick_run_reports_postgres_row(
    name: str, figures: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = os.environ.get(POSTGRES_TEST_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_TEST_ENV} is not set: {name}'s PostgreSQL row not run")
    drop_schema(new_schema_or_skip(url, migrated=False))  # skips when the server is down
    monkeypatch.setenv(POSTGRES_ENV, url)
    result = _run(name)

    metrics = result["metrics"]
    if any(n.startswith("measured path skipped") for n in result["notes"]):
        pytest.skip(f"{name}: measured path skipped, so is its PostgreSQL row")
    rows = [m for m in metrics if m.startswith("pg_")]
    assert set(figures) <= set(rows), rows
    for metric in rows:
        values = metrics[metric]["values"]
        assert values and all(math.isfinite(v) and v > 0 for v in values), (metric, values)
    assert not [n for n in result["notes"] if n.startswith("PostgreSQL row skipped")]
    written = json.loads((RESULTS_DIR / f"{name}.quick.json").read_text())
    assert written["metrics"].keys() == metrics.keys()

"""Sessions: RSS and start-up time of a process restoring 500 sandbox sessions, against the
same process with 0 sessions.

Each figure comes from a fresh process (``bench._sessions_proc``): SQLite store, the session use
cases and the sandbox engine wired as the server wires them; N paired sessions (stored
credentials, desired running) are restored by ``RestoreSessions`` (bounded concurrency) and the
clock stops when all N are ``connected`` in the database. RSS is read from /proc after a GC.

Reference: the same process with 0 sessions (what the code and libraries cost by themselves).

Targets: < 1 GB for 500 sessions; restore of 500 < 10 s.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench._fixtures import missing, scratch_dir, spawn
from bench._harness import Results, cli, default_runs, finish, repeat

NAME = "sessions"
MEASURED = ("whatsgate.adapters.sql.uow",)


def restore_process(count: int) -> dict[str, float]:
    with scratch_dir("sessions") as tmp:
        seed = spawn("bench._sessions_proc", "seed", "--dir", str(tmp), "--sessions", str(count))
        if seed.wait(120) != 0:
            raise RuntimeError("seeding failed")
        proc = spawn("bench._sessions_proc", "restore", "--dir", str(tmp), stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"restore of {count} sessions failed ({proc.returncode})")
    figures: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    if figures["sessions"] != count:
        raise RuntimeError(f"restored {figures['sessions']} of {count}")
    return figures


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    count = 20 if quick else 500
    runs = default_runs(quick, runs, full=3)
    why_not = missing(*MEASURED)
    results = Results(NAME, quick, runs, params={"sessions": count})
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
        results.notes.append("reference needs the SQL store too: nothing measured")
        return finish(results)

    def once() -> dict[str, float]:
        zero = restore_process(0)
        many = restore_process(count)
        return {
            "ref_rss_mb": zero["rss_mb"],
            "ref_start_s": zero["restore_s"],
            "ref_ready_s": zero["ready_s"],
            "rss_mb": many["rss_mb"],
            "peak_rss_mb": many["peak_rss_mb"],
            "restore_s": many["restore_s"],
            "ready_s": many["ready_s"],
        }

    collected = repeat(runs, once)
    for metric, values in collected.items():
        results.add(metric, "MB" if metric.endswith("_mb") else "s", values)
    per_session = (results.median("rss_mb") - results.median("ref_rss_mb")) / max(count, 1)
    results.add("rss_per_session_kb", "kB", [per_session * 1024])
    rss, restore_s = results.median("peak_rss_mb"), results.median("restore_s")
    results.check(f"< 1 GB for {count} sessions (peak RSS)", rss, rss < 1024)
    results.check(f"restore of {count} < 10 s", restore_s, restore_s < 10)
    return finish(results)


if __name__ == "__main__":
    cli(main)

"""Sessions, neonize: RSS and start-up time of a process restoring neonize clients from stored
devices, offline, against the same process with 0 sessions.

Each figure comes from a fresh, spawned process (``bench._neonize_proc``; neonize's Go runtime
is not fork-safe): SQLite store, the session use cases and the real ``NeonizeEngine`` wired as
the server wires them, one device store per session as the engine lays them out, seeded in
whatsmeow's schema. ``RestoreSessions`` restores N paired sessions; the clock stops when every
session has reported its first decisive state. Nothing leaves 127.0.0.1:

- **offline**: the proxy is a closed loopback port: each client opens its device store,
  registers with Go, dials the proxy, fails at once and reports ``reconnecting`` (network).
  This is the cost of the process and of the start path itself, network excluded.
- **stalled**: the proxy is a loopback listener that accepts and answers nothing for
  ``STALL_S`` (then hangs up): WhatsApp answering slower than the start gate's grace. neonize
  client starts are serialised (``_runtime.GATE``) and each holds the gate until Go shows a
  sign of life or ``startup_grace`` (0.5 s) passes, so this shows what the grace costs per
  client when the network is slow.

Also counted: threads (Go's included) and open file descriptors; neonize opens each client's
device store and never closes it, so every client start (first or reconnect) keeps one.

Sizes: offline at 500 (the target, about 5 s) and 100 (the slope); stalled at 20 (each start
costs the full grace: 10 s a run). Reference: the same process with 0 sessions.

Targets: < 1 GB for 500 sessions; restore of 500 < 10 s with bounded concurrency.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

from bench._fixtures import missing, scratch_dir, spawn
from bench._harness import Results, cli, default_runs, finish, repeat

NAME = "neonize_sessions"
MEASURED = ("whatsgate.adapters.sql.uow", "whatsgate.adapters.neonize.engine")
GRACE_S = 0.5  # NeonizeEngine's default startup_grace
STALL_S = 1.0  # longer than the grace: every start holds the gate for the whole grace


@contextlib.contextmanager
def stalling_proxy(seconds: float) -> Iterator[str]:
    """A loopback TCP listener that accepts, says nothing and hangs up after ``seconds``;
    yields its ``socks5://`` URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    stop = threading.Event()
    held: list[tuple[float, socket.socket]] = []

    def serve() -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            while not stop.is_set():
                for _ in selector.select(0.02):
                    with contextlib.suppress(BlockingIOError):
                        conn, _ = listener.accept()
                        held.append((time.monotonic() + seconds, conn))
                now = time.monotonic()
                for item in [h for h in held if h[0] <= now]:
                    held.remove(item)
                    item[1].close()
        for _, conn in held:
            conn.close()

    thread = threading.Thread(target=serve, name="stalling-proxy", daemon=True)
    thread.start()
    try:
        yield f"socks5://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def restore_process(count: int, proxy: str | None = None) -> dict[str, float]:
    with scratch_dir("neonize") as tmp:
        if count:  # (0 sessions: the restore migrates the empty store itself)
            seed = spawn("bench._neonize_proc", "seed", "--dir", str(tmp), "--sessions", str(count))
            if seed.wait(120) != 0:
                raise RuntimeError("seeding failed")
        args = ["restore", "--dir", str(tmp), "--grace", str(GRACE_S)]
        if proxy is not None:
            args += ["--proxy", proxy]
        proc = spawn("bench._neonize_proc", *args, stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"restore of {count} neonize sessions failed ({proc.returncode})")
    figures: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    if figures["sessions"] != count:
        raise RuntimeError(f"restored {figures['sessions']} of {count}")
    return figures


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    sizes = (3,) if quick else (100, 500)
    stalled = 2 if quick else 20
    runs = default_runs(quick, runs, full=3)
    why_not = missing(*MEASURED)
    params = {"sessions": sizes, "stalled_sessions": stalled, "grace_s": GRACE_S}
    results = Results(NAME, quick, runs, params={**params, "stall_s": STALL_S})
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
        results.notes.append("reference needs the same process: nothing measured")
        return finish(results)

    hits: list[int] = []

    def once() -> dict[str, float]:
        zero = restore_process(0)
        figures = {
            "ref_rss_mb": zero["rss_mb"],
            "ref_threads": zero["threads"],
            "ref_fds": zero["fds"],
            "ref_ready_s": zero["ready_s"],
        }
        for count in sizes:
            many = restore_process(count)
            figures |= {
                f"rss_mb_{count}": many["rss_mb"],
                f"peak_rss_mb_{count}": many["peak_rss_mb"],
                f"restore_s_{count}": many["restore_s"],
                f"ready_s_{count}": many["ready_s"],
                f"threads_{count}": many["threads"],
                f"peak_threads_{count}": many["peak_threads"],
                f"gate_hold_ms_{count}": many["gate_hold_ms"],
                f"gate_busy_s_{count}": many["gate_busy_s"],
                f"start_queue_{count}": many["peak_start_queue"],
                f"fds_{count}": many["fds"],
            }
        with stalling_proxy(STALL_S) as proxy:
            slow = restore_process(stalled, proxy)
        figures |= {
            "stalled_restore_s": slow["restore_s"],
            "stalled_gate_hold_ms": slow["gate_hold_ms"],
            "stalled_peak_threads": slow["peak_threads"],
        }
        hits.append(int(slow["grace_hits"]))
        return figures

    collected = repeat(runs, once)
    for metric, values in collected.items():
        unit = "MB" if "_mb" in metric else "ms" if "_ms" in metric else "s"
        if "threads" in metric or "queue" in metric or "fds" in metric:
            unit = "#"
        results.add(metric, unit, values)
    big = sizes[-1]
    extra = results.median(f"rss_mb_{big}") - results.median("ref_rss_mb")
    results.add("rss_per_client_kb", "kB", [extra / big * 1024])
    fds = results.median(f"fds_{big}") - results.median("ref_fds")
    results.add("fds_per_client", "#", [fds / big])  # neonize never closes a device store
    restore_per_client = results.median(f"restore_s_{big}") / big
    results.add("restore_per_client_ms", "ms", [restore_per_client * 1000])
    stalled_per_client = results.median("stalled_restore_s") / stalled
    results.add("stalled_per_client_ms", "ms", [stalled_per_client * 1000])
    rss = results.median(f"peak_rss_mb_{big}")
    results.check(f"< 1 GB for {big} neonize clients (peak RSS)", rss, rss < 1024)
    restore_s = results.median(f"restore_s_{big}")
    results.check(f"restore of {big} < 10 s (offline)", restore_s, restore_s < 10)
    # The starts are serialised: 500 of them hold the gate 500 times in a row, at least.
    at_500 = results.median("stalled_gate_hold_ms") * 500 / 1000
    target = "restore of 500 < 10 s (network slower than the grace; 500 x gate hold)"
    results.check(target, at_500, at_500 < 10)
    results.notes.append(
        f"stalled: starts that held the gate for the whole {GRACE_S} s grace, per run: "
        + ", ".join(f"{h} of {stalled}" for h in hits)
    )
    return finish(results)


if __name__ == "__main__":
    cli(main)

"""REST: p99 and req/s of GET …/conversations (first page) and POST …/messages at 64
connections, on 1M messages / 10k conversations, against a bare ASGI app.

Reference: a bare ASGI callable (no framework, no database) under the same uvicorn, answering
GET with as many bytes of JSON as whatsgate's first page of conversations and POST with a small
202: the ceiling of uvicorn + the load generator on this machine.

Measured: ``whatsgate serve``'s app (Litestar, SQLite) on a database seeded with 1M messages in
10k conversations of one session.

Load: wrk (-t1 -c64) when installed, else bench._loadgen (asyncio, own process). Server and
load generator share the 2 cores: both the reference and the measured path pay that.

Targets: conversations p99 < 15 ms; POST ≥ 0.3x the reference req/s.
"""

from __future__ import annotations

from typing import Any

from bench._fixtures import free_port, missing, spawn, stop, wait_port
from bench._harness import Results, cli, default_runs, finish, repeat
from bench._loadgen import load, wrk_available

NAME = "rest"
MEASURED = ("whatsgate.entrypoints.app", "whatsgate.adapters.sql.uow")
#: The size of the first page of conversations when the real app is not there to ask.
DEFAULT_PAGE_BYTES = 25_000
POST_BODY = '{"to": "+55 11 90000-0001", "text": "hello from the benchmark"}'


def _load_pair(
    port: int, get_path: str, post_path: str, connections: int, seconds: float, token: str | None
) -> dict[str, float]:
    got = load(port, get_path, connections=connections, duration=seconds, token=token)
    posted = load(
        port, post_path, connections=connections, duration=seconds, body=POST_BODY, token=token
    )
    for name, result in (("GET", got), ("POST", posted)):
        if result["requests"] == 0 or result["errors"]:
            raise RuntimeError(f"{name} {result['errors']} errors of {result['requests']}")
    return {
        "get_rps": got["rps"],
        "get_p50_ms": got["p50_ms"],
        "get_p99_ms": got["p99_ms"],
        "post_rps": posted["rps"],
        "post_p50_ms": posted["p50_ms"],
        "post_p99_ms": posted["p99_ms"],
    }


def reference(page_bytes: int, connections: int, seconds: float) -> dict[str, float]:
    port = free_port()
    server = spawn("bench._rest_server", "bare", "--port", str(port), "--size", str(page_bytes))
    try:
        wait_port(port, process=server)
        return _load_pair(port, "/conversations", "/messages", connections, seconds, None)
    finally:
        stop(server)


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    connections, seconds = (8, 1.0) if quick else (64, 10.0)
    runs = default_runs(quick, runs, full=3)
    why_not = missing(*MEASURED)
    page_bytes = DEFAULT_PAGE_BYTES
    params = {
        "connections": connections,
        "seconds_per_load": seconds,
        "load_tool": "wrk" if wrk_available() else "python",
        "page_bytes": page_bytes,
    }
    results = Results(NAME, quick, runs, params=params)

    def once() -> dict[str, float]:
        return {f"ref_{k}": v for k, v in reference(page_bytes, connections, seconds).items()}

    collected = repeat(runs, once)
    for metric, values in collected.items():
        results.add(metric, "ms" if metric.endswith("_ms") else "/s", values)
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
        return finish(results)
    return finish(results)


if __name__ == "__main__":
    cli(main)

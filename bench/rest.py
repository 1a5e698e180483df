"""REST: p99 and req/s of GET …/conversations (first page) and POST …/messages at 64
connections, on 1M messages / 10k conversations, against a bare ASGI app.

Reference: a bare ASGI callable (no framework, no database) under the same uvicorn, answering
GET with as many bytes of JSON as whatsgate's first page of conversations and POST with a small
202: the ceiling of uvicorn + the load generator on this machine.

Measured: ``whatsgate serve``'s app (Litestar, SQLite) on a database seeded with 1M messages in
10k conversations of one session, each with its contact (a direct chat, as ingest leaves it).

Load: wrk (-t1 -c64) when installed, else bench._loadgen (asyncio, own process). Server and
load generator share the 2 cores: both the reference and the measured path pay that.

Targets: conversations p99 < 15 ms; POST ≥ 0.3x the reference req/s.

With ``WHATSGATE_BENCH_POSTGRES_URL`` set, the same app also serves the same data from
PostgreSQL (``pg_*``): a new database per invocation, seeded like the SQLite one (multi-row
INSERTs, then ANALYZE) and dropped at the end; a figure to report, no target.

Seeding 1M messages takes a minute or two. ``WHATSGATE_BENCH_REST_SEED=<dir>`` keeps a seeded
database there (one per size) and copies it for each invocation, so runs while iterating skip
the seeding; every invocation still starts from the same freshly seeded state.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from bench._fixtures import (
    add_postgres_row,
    missing,
    postgres_database,
    postgres_url,
    scratch_dir,
    spawn,
    start_server,
    stop,
)
from bench._harness import Results, cli, default_runs, finish, repeat
from bench._loadgen import load, wrk_available

NAME = "rest"
MEASURED = ("whatsgate.entrypoints.app", "whatsgate.entrypoints.cli", "whatsgate.usecases.auth")
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


def reference(page_bytes: int, connections: int, seconds: float, warm_up: bool) -> dict[str, float]:
    server, port, _ = start_server("bench._rest_server", "bare", "--size", str(page_bytes))
    try:
        if warm_up:
            load(port, "/conversations", connections=connections, duration=1)
        return _load_pair(port, "/conversations", "/messages", connections, seconds, None)
    finally:
        stop(server)


def _get(port: int, path: str, token: str) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
    return body


def seed(
    directory: Path, messages: int, conversations: int, database_url: str | None = None
) -> None:
    database = () if database_url is None else ("--database-url", database_url)
    process = spawn(
        "bench._rest_app",
        "seed",
        "--dir",
        str(directory),
        "--messages",
        str(messages),
        "--conversations",
        str(conversations),
        *database,
    )
    if process.wait(1800) != 0:
        raise RuntimeError("seeding the REST database failed")


def seeded(directory: Path, messages: int, conversations: int) -> None:
    """Seed ``directory``, or copy the seeded database kept in WHATSGATE_BENCH_REST_SEED."""
    cache = os.environ.get("WHATSGATE_BENCH_REST_SEED")
    if not cache:
        seed(directory, messages, conversations)
    else:
        kept = Path(cache) / f"{messages}-{conversations}-contacts"
        if not (kept / "done").exists():
            shutil.rmtree(kept, ignore_errors=True)
            seed(kept, messages, conversations)
            (kept / "done").write_text("")
        for name in ("whatsgate.db", "bench-info.json"):
            shutil.copy2(kept / name, directory / name)
    on_disk(directory / "whatsgate.db")


def on_disk(path: Path) -> None:
    """Waits until ``path``'s bytes are on the disk. A seeded or copied database left them to
    the kernel, and the server's first sync of the file then wrote them all: ~250 ms of a
    checkpoint holding the writers' turn in the first run's POSTs (its p99 ~200 ms against
    ~50 in the runs after it), a cost of the seeding, not of the path measured."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def page_size(directory: Path) -> int:
    """The bytes of the first page of conversations, as whatsgate answers it."""
    server, port, info = start_server(
        "bench._rest_app", "serve", "--dir", str(directory), log=directory / "server.log"
    )
    try:
        body = _get(port, f"/api/v1/sessions/{info['session_id']}/conversations", info["token"])
    finally:
        stop(server)
    if len(json.loads(body)["items"]) == 0:
        raise RuntimeError("the first page of conversations is empty")
    return len(body)


def _last_error(log: Path) -> str:
    """The server's last logged error line, to say why a run failed ("" if none)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if "Error" in line or "error" in line]
    return f" (server log: {errors[-1].strip()[:300]})" if errors else ""


def measured(
    directory: Path,
    connections: int,
    seconds: float,
    warm_up: bool,
    database_url: str | None = None,
) -> dict[str, float]:
    database = () if database_url is None else ("--database-url", database_url)
    server, port, info = start_server(
        "bench._rest_app", "serve", "--dir", str(directory), *database, log=directory / "server.log"
    )
    base = f"/api/v1/sessions/{info['session_id']}"
    try:
        load(
            port, f"{base}/conversations", connections=connections, duration=1, token=info["token"]
        )
        return _load_pair(
            port, f"{base}/conversations", f"{base}/messages", connections, seconds, info["token"]
        )
    finally:
        stop(server)


def main(quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    connections, seconds = (8, 1.0) if quick else (64, 10.0)
    messages, conversations = (1_000, 100) if quick else (1_000_000, 10_000)
    runs = default_runs(quick, runs, full=3)
    why_not = missing(*MEASURED)
    params: dict[str, Any] = {
        "connections": connections,
        "seconds_per_load": seconds,
        "load_tool": "wrk" if wrk_available() else "python",
    }
    results = Results(NAME, quick, runs, params=params)
    pg_url, pg_why_not = postgres_url()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(scratch_dir("rest"))
        page_bytes = DEFAULT_PAGE_BYTES
        if why_not is None:
            params.update(messages=messages, conversations=conversations)
            seeded(tmp, messages, conversations)
            if not quick:  # a quick run keeps the default size: one server start less
                page_bytes = page_size(tmp)
        params["page_bytes"] = page_bytes
        pg_database = None
        pg_failures: list[str] = []
        if why_not is None and pg_url is not None:
            pg_database = stack.enter_context(postgres_database(pg_url, "rest"))
            (tmp / "pg").mkdir()
            seed(tmp / "pg", messages, conversations, pg_database)

        def once() -> dict[str, float]:
            figures = {
                f"ref_{k}": v
                for k, v in reference(page_bytes, connections, seconds, not quick).items()
            }
            if why_not is None:
                figures.update(measured(tmp, connections, seconds, not quick))
            if pg_database is not None:
                try:
                    on_pg = measured(tmp / "pg", connections, seconds, not quick, pg_database)
                except RuntimeError as exc:
                    # The SQLite figures of this run stand; the failure is reported.
                    pg_failures.append(f"{exc}{_last_error(tmp / 'pg' / 'server.log')}")
                else:
                    figures.update({f"pg_{k}": v for k, v in on_pg.items()})
            return figures

        collected = repeat(runs, once)
    for metric, values in collected.items():
        if not metric.startswith("pg_"):
            results.add(metric, "ms" if metric.endswith("_ms") else "/s", values)
    if why_not is not None:
        results.notes.append(f"measured path skipped: {why_not}")
        return finish(results)
    ratio = results.ratio("post_ratio", "post_rps", "ref_post_rps")
    results.ratio("get_ratio", "get_rps", "ref_get_rps")
    p99 = results.median("get_p99_ms")
    results.check("conversations p99 < 15 ms", p99, p99 < 15)
    results.check("POST >= 0.3x the reference req/s", ratio, ratio >= 0.3)
    how = (
        "a new database per invocation, seeded like the SQLite one, then ANALYZE; the database"
        " server shares the cores with whatsgate and the load generator"
    )
    add_postgres_row(results, collected, pg_url, pg_why_not, how)
    results.notes.extend(f"PostgreSQL run failed: {failure}" for failure in pg_failures)
    return finish(results)


if __name__ == "__main__":
    cli(main)

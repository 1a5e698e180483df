"""HTTP load: wrk when installed, else a small asyncio generator (run as its own process).

``python -m bench._loadgen --port P --path /x --connections 64 --duration 5 [--post BODY]``
prints one JSON line: ``{"requests", "errors", "seconds", "rps", "p50_ms", "p99_ms"}``.

The asyncio generator speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) to stay
cheap; it is still Python, so on a 2-core machine it competes with the server for CPU and caps
what can be measured. wrk (C, one thread) leaves more of the machine to the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

AUTH_HEADER = "Authorization"


def wrk_available() -> bool:
    """wrk is on the PATH (``WHATSGATE_BENCH_LOAD=python`` forces the asyncio generator)."""
    if os.environ.get("WHATSGATE_BENCH_LOAD") == "python":
        return False
    return shutil.which("wrk") is not None


def _wrk_ms(value: str, unit: str) -> float:
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]
    return float(value) * factor


def run_wrk(
    port: int,
    path: str,
    *,
    connections: int,
    duration: float,
    body: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """wrk -t1 -c<connections> on 127.0.0.1; latency percentiles from --latency."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers[AUTH_HEADER] = f"Bearer {token}"
    script_lines = [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if body is not None:
        script_lines += ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(script_lines) + "\n")
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--latency",
                "--timeout",
                "30s",  # a slow answer is latency to report, not an error
                "-s",
                script.name,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        ).stdout
    finally:
        Path(script.name).unlink(missing_ok=True)
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.M))
    p = {k: _wrk_ms(*re.match(r"([\d.]+)(us|ms|s|m)", v).groups()) for k, v in percentiles.items()}  # type: ignore[union-attr]
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if total is None or rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return {
        "tool": "wrk",
        "requests": int(total.group(1)),
        "errors": errors,
        "rps": float(rps.group(1)),
        "p50_ms": p.get("50", 0.0),
        "p99_ms": p.get("99", 0.0),
    }


async def _connection(
    port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            match = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if match:
                await reader.readexactly(int(match.group(1)))
            else:  # chunked
                while True:
                    size = int((await reader.readline()).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            latencies.append(time.perf_counter() - start)
            if status >= 400:
                errors.append(status)
    finally:
        writer.close()


async def _python_load(
    port: int, path: str, connections: int, duration: float, body: str | None, token: str | None
) -> dict[str, Any]:
    method = "POST" if body is not None else "GET"
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: keep-alive"]
    if token:
        lines.append(f"{AUTH_HEADER}: Bearer {token}")
    payload = (body or "").encode()
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(
        *(_connection(port, request, deadline, latencies, errors) for _ in range(connections))
    )
    seconds = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "tool": "python",
        "requests": len(ordered),
        "errors": len(errors),
        "rps": len(ordered) / seconds,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else 0.0,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        if ordered
        else 0.0,
    }


def run_python(
    port: int,
    path: str,
    *,
    connections: int,
    duration: float,
    body: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The asyncio generator in its own process (so it does not share the server's loop)."""
    import sys

    args = [sys.executable, "-m", "bench._loadgen", "--port", str(port), "--path", path]
    args += ["--connections", str(connections), "--duration", str(duration)]
    if body is not None:
        args += ["--post", body]
    if token:
        args += ["--token", token]
    from bench._harness import ROOT

    out = subprocess.run(
        args, capture_output=True, text=True, timeout=duration + 60, check=True, cwd=ROOT
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def load(
    port: int,
    path: str,
    *,
    connections: int,
    duration: float,
    body: str | None = None,
    token: str | None = None,
    tool: str = "auto",
) -> dict[str, Any]:
    if tool == "wrk" or (tool == "auto" and wrk_available()):
        return run_wrk(
            port, path, connections=connections, duration=duration, body=body, token=token
        )
    return run_python(
        port, path, connections=connections, duration=duration, body=body, token=token
    )


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--post", default=None)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    result = asyncio.run(
        _python_load(args.port, args.path, args.connections, args.duration, args.post, args.token)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _main()

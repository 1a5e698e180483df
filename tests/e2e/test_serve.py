"""``whatsgate serve`` as a real process: uvicorn on a free port, the sandbox engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import whatsgate

pytestmark = pytest.mark.e2e

KEY = "wg_e2e-operator-key-0123456789"
SRC = str(Path(whatsgate.__file__).resolve().parent.parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_over_http_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "WHATSGATE_ADMIN_API_KEY": KEY,
        "WHATSGATE_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "whatsgate",
            "serve",
            "--engine",
            "sandbox",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--database-url",
            "memory://",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not come up:\n{process.communicate()[0]}")
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
            created = client.post("/api/v1/sessions", json={"name": "e2e"})
            assert created.status_code == 201
            qr = client.get(f"/api/v1/sessions/{created.json()['id']}/qr")
            assert qr.status_code == 200 and qr.json()["qr"].startswith("2@")
            assert client.get("/api/v1/sessions", headers={"Authorization": "x"}).status_code == 401
            assert client.get("/schema/openapi.json").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0]
            pytest.fail(f"the server did not stop on SIGTERM:\n{output}")
    assert process.returncode == 0, output
    assert "whatsgate stopped" in output, output
    assert "Traceback" not in output, output
    assert f"on http://127.0.0.1:{port}" in output and "/socket.io" in output

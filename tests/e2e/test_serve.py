"""``whatsgate serve`` as a real process: uvicorn on a free port, the sandbox engine, the API
and socket.io on the same port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

import whatsgate

pytestmark = pytest.mark.e2e

KEY = "wg_e2e-operator-key-0123456789"
SRC = str(Path(whatsgate.__file__).resolve().parent.parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "WHATSGATE_ADMIN_API_KEY": KEY,
        "WHATSGATE_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "whatsgate", "serve", "--engine", "sandbox"]
    command += ["--port", str(port), "--data-dir", str(data_dir)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


async def wait_until_up(process: subprocess.Popen[str], base: str) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(f"{base}/health", timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not come up:\n{process.communicate()[0]}")
            await asyncio.sleep(0.1)


async def test_serve_answers_http_and_socketio_on_one_port_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(tmp_path, port)
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()
    try:
        await wait_until_up(process, base)
        auth = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as client:
            assert (
                await client.get("/api/v1/sessions", headers={"Authorization": "x"})
            ).status_code == 401
            sid = (await client.post("/api/v1/sessions", json={"name": "e2e"})).json()["id"]
            token = (await client.post("/api/v1/auth/token")).json()["token"]

            refused = socketio.AsyncClient(reconnection=False)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(base, auth={"token": "wrong"}, transports=["websocket"])

            sio = socketio.AsyncClient(reconnection=False)

            async def on_qr(data: dict[str, Any]) -> None:
                received.append(data)
                arrived.set()

            sio.on("session.qr", on_qr)
            await sio.connect(base, auth={"token": token}, transports=["websocket"])
            ack = await sio.call("subscribe", {"session_id": sid}, timeout=5)
            assert ack["ok"] is True
            qr = await client.get(f"/api/v1/sessions/{sid}/qr")
            assert qr.status_code == 200 and qr.json()["qr"].startswith("2@")
            async with asyncio.timeout(5):
                await arrived.wait()
            assert received[0]["session_id"] == sid and received[0]["data"]["qr"] == qr.json()["qr"]
            await sio.disconnect()
            assert (await client.get("/schema/openapi.json")).status_code == 200
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
    assert (tmp_path / "whatsgate.db").exists()  # the default: SQLite in the data dir

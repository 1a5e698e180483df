"""The real stack on SQLite: the default a newcomer gets."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from whatsgate.entrypoints.app import create_app
from whatsgate.entrypoints.cli import main
from whatsgate.entrypoints.settings import Settings


def sandbox_on_sqlite(data_dir: Path, said: list[str]) -> Any:
    return create_app(
        Settings(engine="sandbox", data_dir=data_dir, qr_wait_seconds=2),
        announce=said.append,
    )


async def wait_for(client: Any, key: str, sid: str, status: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(300):
        r = await client.get(f"/api/v1/sessions/{sid}", headers={"X-Api-Key": key})
        body = r.json()
        if body["status"] == status:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {status}: {body}")


async def test_first_start_stores_the_admin_key_privately_and_a_restart_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WHATSGATE_ADMIN_API_KEY", raising=False)
    monkeypatch.delenv("WHATSGATE_DATABASE_URL", raising=False)
    said: list[str] = []
    async with AsyncTestClient(sandbox_on_sqlite(tmp_path, said)) as client:
        key_file = tmp_path / "admin-api-key"
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert said == [f"Admin API key (shown once; also stored in {key_file}): {key}"]
        auth = {"X-Api-Key": key}
        sid = (await client.post("/api/v1/sessions", headers=auth, json={"name": "s"})).json()["id"]
        await client.get(f"/api/v1/sessions/{sid}/qr", headers=auth)
        await client.post(f"/api/v1/sandbox/sessions/{sid}/scan", headers=auth, json={})
        jid = (await wait_for(client, key, sid, "connected"))["jid"]
        token = (await client.post("/api/v1/auth/token", headers=auth)).json()["token"]
    assert (tmp_path / "whatsgate.db").exists()

    async with AsyncTestClient(sandbox_on_sqlite(tmp_path, said)) as client:
        assert len(said) == 1  # nothing new to show
        restored = await wait_for(client, key, sid, "connected")
        assert restored["jid"] == jid
        # Tokens survive a restart: the signing secret is kept in the data directory.
        r = await client.get("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and [s["id"] for s in r.json()["items"]] == [sid]


def test_users_from_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WHATSGATE_DATABASE_URL", raising=False)
    monkeypatch.setenv("WHATSGATE_ADMIN_API_KEY", "wg_cli-operator-key-0123456789")
    where = ["--data-dir", str(tmp_path)]
    assert main(["users", "create", "Bea", "--email", "bea@acme.test", *where]) == 0
    out = capsys.readouterr().out
    user_id = out.split("user:", 1)[1].split()[0]
    key = out.split("api key:", 1)[1].split()[0]
    assert key.startswith("wg_")
    assert main(["users", "list", *where]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[1:3] for line in listing] == [["admin", "admin"], ["agent", "Bea"]]
    assert main(["users", "key", user_id, *where]) == 0
    second = capsys.readouterr().out.split("api key:", 1)[1].split()[0]
    assert second.startswith("wg_") and second != key
    assert main(["users", "list", "--organization", "nope", *where]) == 1
    assert "No organization" in capsys.readouterr().err
    assert main(["users", "key", "not-a-user", *where]) == 1
    assert "permission_denied" in capsys.readouterr().err


def test_users_on_a_fresh_data_dir_keeps_the_admin_key_it_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WHATSGATE_DATABASE_URL", raising=False)
    monkeypatch.delenv("WHATSGATE_ADMIN_API_KEY", raising=False)
    assert main(["users", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    key = (tmp_path / "admin-api-key").read_text().strip()
    assert key in out and stat.S_IMODE((tmp_path / "admin-api-key").stat().st_mode) == 0o600

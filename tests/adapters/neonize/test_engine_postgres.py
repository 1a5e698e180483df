"""The device store in PostgreSQL: sessions pick their device by account JID (offline)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.adapters.neonize import protos as p
from tests.adapters.neonize.conftest import OFFLINE_PROXY, Recorder, until
from whatsgate.adapters.neonize.engine import NeonizeEngine, list_devices
from whatsgate.domain.jid import Jid
from whatsgate.ports.engine import CredentialsUnreadable, Disconnected, QrCode, SessionRef

pytestmark = pytest.mark.postgres

SCHEMA = "whatsgate_neonize_test"
ME = Jid.phone(p.ME)


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    url = os.environ.get("WHATSGATE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("WHATSGATE_TEST_POSTGRES_URL is not set")
    asyncpg = pytest.importorskip("asyncpg")
    try:
        db = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    await db.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}search_path={SCHEMA}"
    await db.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    await db.close()


async def add_device(url: str, device_jid: str) -> None:
    import asyncpg

    db = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await db.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key,"
            " signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details,"
            " adv_account_sig, adv_account_sig_key, adv_device_sig)"
            " VALUES ($1, 1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10)",
            device_jid,
            os.urandom(32),
            os.urandom(32),
            os.urandom(32),
            os.urandom(64),
            os.urandom(32),
            b"details",
            os.urandom(64),
            os.urandom(32),
            os.urandom(64),
        )
    finally:
        await db.close()


async def test_sessions_share_the_store_and_pick_their_device(
    tmp_path: Path, database_url: str
) -> None:
    engine = NeonizeEngine(tmp_path, database_url=database_url, proxy=OFFLINE_PROXY)
    assert engine.postgres_url is not None
    fresh = Recorder()
    await engine.open(SessionRef("new"), fresh)  # creates whatsmeow's tables in PostgreSQL
    await until(lambda: bool(fresh.events), within=10)
    assert fresh.events == [Disconnected(reason="network")]
    assert not (tmp_path / "neonize").exists()  # nothing in the data dir

    await add_device(database_url, f"{p.ME}:7@s.whatsapp.net")
    restored = Recorder()
    await engine.open(SessionRef("paired", jid=ME), restored)
    await until(lambda: bool(restored.events), within=10)
    assert restored.events == [Disconnected(reason="network")]  # resumed: no QR
    assert not restored.of(QrCode)

    other = Recorder()
    await engine.open(SessionRef("lost", jid=Jid.phone(p.ALICE)), other)
    await until(lambda: bool(other.events), within=10)
    assert isinstance(other.events[0], CredentialsUnreadable)

    await engine.forget(SessionRef("paired", jid=ME))
    assert engine.postgres_url is not None
    assert list_devices(engine.postgres_url) == []
    await engine.close()

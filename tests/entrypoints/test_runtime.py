"""Runtime start-up failures are clear, and leave nothing running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from whatsgate.domain.errors import FeatureUnavailable
from whatsgate.domain.session import SessionStatus
from whatsgate.entrypoints.runtime import Runtime
from whatsgate.entrypoints.settings import Settings
from whatsgate.usecases.sessions import CreateSessionCommand, InitializeCommand


async def test_a_missing_neonize_says_to_try_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "whatsgate.adapters.neonize.engine", None)
    settings = Settings(engine="neonize", data_dir=tmp_path, database_url="memory://")
    with pytest.raises(FeatureUnavailable, match="--engine sandbox"):
        await Runtime.start(settings)


async def test_the_neonize_engine_offline_says_network_and_stops_cleanly(tmp_path: Path) -> None:
    """The default engine, served, with WhatsApp out of reach (a proxy on a closed loopback
    port, so this holds on a machine with internet too and never reaches WhatsApp)."""
    settings = Settings(
        engine="neonize",
        data_dir=tmp_path,
        database_url="memory://",
        neonize_proxy="socks5://127.0.0.1:9",
        qr_wait_seconds=5,
    )
    runtime = await Runtime.start(settings)
    try:
        assert runtime.bootstrap is not None
        assert runtime.objects["engine"].proxy == "socks5://127.0.0.1:9"  # the setting arrives
        admin = runtime.bootstrap.admin
        session = await runtime.objects["create_session"](
            CreateSessionCommand(organization_id=admin.organization_id, owner_id=admin.id, name="s")
        )
        started = await runtime.objects["initialize_client"](
            InitializeCommand(session_id=session.id)
        )
        assert (started.session.status, started.session.status_reason) == (
            SessionStatus.RECONNECTING,
            "network",
        )
        assert started.qr is None
    finally:
        await runtime.stop()
    assert (tmp_path / "neonize" / f"{session.id}.db").exists()

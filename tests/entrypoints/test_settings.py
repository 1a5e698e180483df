"""Settings from the environment reach what they configure: the sandbox, the outbox, the
log level."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from pydantic import ValidationError

from whatsgate.adapters.clock import SystemClock
from whatsgate.adapters.sandbox import SandboxEngine, SandboxSettings
from whatsgate.entrypoints.app import create_app
from whatsgate.entrypoints.cli import main
from whatsgate.entrypoints.container import open_engine, outbox_settings
from whatsgate.entrypoints.settings import MEMORY_DATABASE, Settings


async def test_the_sandbox_takes_its_timings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "QR_FIRST": "2",
        "QR_NEXT": "1.5",
        "DELIVERED_AFTER": "0.2",
        "READ_AFTER": "0.5",
        "HISTORY_MESSAGES": "25",
        "HISTORY_DAYS": "10",
        "PHONE": "+1 415 555 0100",
    }.items():
        monkeypatch.setenv(f"WHATSGATE_SANDBOX_{name}", value)
    settings = Settings(engine="sandbox", data_dir=tmp_path)
    engines = open_engine(settings, SystemClock())
    engine = await anext(engines)
    try:
        assert isinstance(engine, SandboxEngine)
        assert engine.settings == SandboxSettings(
            qr_first=2,
            qr_next=1.5,
            delivered_after=0.2,
            read_after=0.5,
            history_messages=25,
            history_days=10,
            default_phone="+1 415 555 0100",
        )
    finally:
        await engines.aclose()


def test_the_sandbox_defaults_are_whatsapps(tmp_path: Path) -> None:
    settings = Settings(engine="sandbox", data_dir=tmp_path)
    assert (settings.sandbox_qr_first, settings.sandbox_qr_next) == (60.0, 20.0)
    assert settings.sandbox_history_messages == 0


def test_the_outbox_retry_ladder_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHATSGATE_OUTBOX_RETRY_SECONDS", "[0.5, 2]")
    monkeypatch.setenv("WHATSGATE_OUTBOX_MAX_ATTEMPTS", "3")
    retry = outbox_settings(Settings()).retry
    assert (retry.ladder, retry.max_attempts) == ((0.5, 2.0), 3)


@pytest.mark.parametrize(
    "bad",
    [
        {"sandbox_delivered_after": 2, "sandbox_read_after": 1},
        {"sandbox_qr_first": 0},
        {"outbox_retry_seconds": []},
        {"outbox_retry_seconds": [1, -1]},
        {"outbox_max_attempts": 0},
    ],
)
def test_impossible_timings_are_refused_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


async def test_the_app_keeps_the_log_level_the_host_set(tmp_path: Path) -> None:
    """``whatsgate serve`` configures logging from WHATSGATE_LOG_LEVEL; the app must not
    reset it (Litestar's default logging config sets the root logger to INFO)."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.WARNING)
    try:
        settings = Settings(
            engine="sandbox",
            database_url=MEMORY_DATABASE,
            data_dir=tmp_path,
            admin_api_key="wg_log-operator-key-0123456789",
        )
        async with AsyncTestClient(create_app(settings, announce=None)) as client:
            assert (await client.get("/health")).status_code == 200
            assert root.level == logging.WARNING
            assert not logging.getLogger("whatsgate.sessions").isEnabledFor(logging.INFO)
    finally:
        root.setLevel(before)


def test_serve_with_impossible_settings_says_which_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WHATSGATE_SANDBOX_QR_NEXT", "soon")
    assert main(["serve", "--engine", "sandbox"]) == 2
    err = capsys.readouterr().err
    assert "error: WHATSGATE_SANDBOX_QR_NEXT: " in err and "Traceback" not in err
    monkeypatch.delenv("WHATSGATE_SANDBOX_QR_NEXT")
    monkeypatch.setenv("WHATSGATE_SANDBOX_READ_AFTER", "0.1")
    assert main(["serve", "--engine", "sandbox"]) == 2
    assert "sandbox_read_after cannot come before" in capsys.readouterr().err

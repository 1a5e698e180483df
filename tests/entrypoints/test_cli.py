"""The ``whatsgate`` command, in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from whatsgate.entrypoints.cli import build_parser, main, settings_from


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WHATSGATE_PORT", "9000")
    monkeypatch.setenv("WHATSGATE_ENGINE", "sandbox")
    args = build_parser().parse_args(["serve", "--port", "8123", "--data-dir", str(tmp_path)])
    settings = settings_from(args)
    assert (settings.port, settings.engine, settings.data_dir) == (8123, "sandbox", tmp_path)
    defaults = settings_from(build_parser().parse_args(["serve"]))
    assert (defaults.port, defaults.host) == (9000, "127.0.0.1")


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENGINE", "HOST", "PORT", "DATA_DIR", "DATABASE_URL"):
        monkeypatch.delenv(f"WHATSGATE_{name}", raising=False)
    settings = settings_from(build_parser().parse_args(["serve"]))
    assert (settings.engine, settings.host, settings.port) == ("neonize", "127.0.0.1", 8000)
    assert settings.data_dir == Path("./whatsgate-data")
    assert settings.database.startswith("sqlite+aiosqlite:///")
    assert settings.database.endswith("whatsgate-data/whatsgate.db")


def test_pair_draws_the_qr_in_the_terminal_and_gives_up_after_the_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSGATE_ADMIN_API_KEY", "wg_cli-operator-key-0123456789")
    code = main(
        [
            "pair",
            "phone",
            "--engine",
            "sandbox",
            "--data-dir",
            str(tmp_path),
            "--database-url",
            "memory://",
            "--timeout",
            "0.6",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "▀" in out or "█" in out  # the QR, drawn with block characters
    assert "Linked devices" in out and "Gave up waiting" in err


def test_migrate_in_memory_has_nothing_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--database-url", "memory://"]) == 0
    assert "no migration" in capsys.readouterr().out


async def test_pair_exits_once_the_phone_has_scanned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from whatsgate.entrypoints import cli
    from whatsgate.entrypoints.runtime import Runtime

    started: list[Runtime] = []
    ready = asyncio.Event()
    original = Runtime.start.__func__  # type: ignore[attr-defined]

    async def spy(cls: type[Runtime], *args: object, **kwargs: object) -> Runtime:
        runtime: Runtime = await original(cls, *args, **kwargs)
        started.append(runtime)
        ready.set()
        return runtime

    monkeypatch.setattr(Runtime, "start", classmethod(spy))
    monkeypatch.setenv("WHATSGATE_ADMIN_API_KEY", "wg_cli-operator-key-0123456789")
    settings = cli.settings_from(
        build_parser().parse_args(
            ["pair", "phone", "--engine", "sandbox", "--data-dir", str(tmp_path)]
        )
    )

    async def phone() -> None:
        await ready.wait()
        runtime = started[0]
        while True:
            async with runtime.objects["uow"]() as uow:
                sessions = await uow.sessions.all()
            if sessions and sessions[0].qr:
                await runtime.objects["engine"].scan(sessions[0].id, "+55 11 98888-7777")
                return
            await asyncio.sleep(0.01)

    scanning = asyncio.create_task(phone())
    code = await asyncio.wait_for(cli._pair(settings, "phone", 10), 15)
    await scanning
    out = capsys.readouterr().out
    assert code == 0
    assert "connected as 5511988887777@s.whatsapp.net" in out
    # The pairing is kept: pairing again says so at once.
    assert await cli._pair(settings, "phone", 1) == 0
    assert "already paired" in capsys.readouterr().out

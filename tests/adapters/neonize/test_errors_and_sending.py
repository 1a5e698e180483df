"""neonize's errors in the domain's words; what a send needs before it reaches Go."""

from __future__ import annotations

import asyncio
import shutil
import threading
from typing import Any

import pytest

from tests.adapters.neonize import protos as p
from tests.adapters.neonize.conftest import HandDrivenNeonizeEngine, Recorder, until
from whatsgate.adapters.neonize import mapping
from whatsgate.adapters.neonize._runtime import aioze_client
from whatsgate.adapters.neonize.errors import translate
from whatsgate.domain.errors import (
    EngineError,
    EngineTimeout,
    FeatureUnavailable,
    MediaNotFound,
    RateLimited,
    SendFailed,
    SessionNotConnected,
)
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Media, MessageKind
from whatsgate.ports.engine import IncomingMessage, OutgoingMessage, SessionRef

exc = aioze_client  # neonize's exception classes are re-exported by its client module
ALICE = Jid.phone(p.ALICE)
GROUP = Jid.group(p.GROUP)


@pytest.mark.parametrize(
    ("error", "action", "expected"),
    [
        (exc.SendMessageError("websocket not connected"), "send", SessionNotConnected),
        (exc.SendMessageError("client is nil"), "send", SessionNotConnected),
        (exc.SendMessageError("server returned error 429: rate-overlimit"), "send", RateLimited),
        (exc.SendMessageError("context deadline exceeded"), "send", EngineTimeout),
        (exc.SendMessageError("failed to get device list: 500"), "send", SendFailed),
        (exc.DownloadError("download failed with status code 404"), "download", MediaNotFound),
        (exc.IsOnWhatsAppError("unexpected response"), "number check", EngineError),
        (FileNotFoundError("ffprobe"), "send", FeatureUnavailable),
    ],
)
def test_neonize_errors_become_domain_errors(error: Exception, action: str, expected: type) -> None:
    translated = translate(error, action)
    assert type(translated) is expected
    assert action in translated.message or expected is FeatureUnavailable


@pytest.mark.parametrize("kind", [MessageKind.VOICE, MessageKind.VIDEO, MessageKind.STICKER])
async def test_media_needing_ffmpeg_says_so_clearly(
    wired: Any, monkeypatch: pytest.MonkeyPatch, kind: MessageKind
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    connection, _ = wired(Recorder())
    media = Media(mime="audio/ogg")
    with pytest.raises(FeatureUnavailable, match="ffmpeg"):
        await connection.send(
            OutgoingMessage(to=ALICE, kind=kind, media=media, media_data=b"\x00" * 10)
        )


async def test_download_without_a_reference_is_media_not_found(wired: Any) -> None:
    connection, _ = wired(Recorder())
    with pytest.raises(MediaNotFound):
        await connection.download_media(Media(mime="image/jpeg"))


async def test_replies_and_reactions_name_the_sender_seen_for_their_target(wired: Any) -> None:
    recorder = Recorder()
    connection, go = wired(recorder)
    group_message = p.message_event(
        p.text("in the group"), wa_id="G1", chat=p.jid(p.GROUP, "g.us"), group=True
    )
    await asyncio.to_thread(go.fire, mapping.MESSAGE, group_message)
    await until(lambda: bool(recorder.of(IncomingMessage)))
    reply = await connection._build(
        None, OutgoingMessage(to=GROUP, kind=MessageKind.TEXT, text="ok", quoted_wa_id="G1")
    )
    context = reply.extendedTextMessage.contextInfo
    assert (context.stanzaID, context.participant) == ("G1", str(ALICE))


async def test_the_executor_grows_with_the_sessions(tmp_path: Any) -> None:
    """Each live client holds an executor thread for its life: calls must not queue behind."""
    engine = HandDrivenNeonizeEngine(tmp_path)
    for n in range(12):
        await engine.open(SessionRef(f"s{n}"), Recorder())
    release = threading.Event()
    # Twelve threads taken, as twelve connected clients take them.
    held = [asyncio.ensure_future(asyncio.to_thread(release.wait, 10)) for _ in range(12)]
    try:
        answer = await asyncio.wait_for(asyncio.to_thread(lambda: "sent"), timeout=2)
        assert answer == "sent"
    finally:
        release.set()
        await asyncio.gather(*held)
        await engine.close()

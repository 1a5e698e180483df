from __future__ import annotations

import asyncio
import hashlib

import pytest

from whatsgate.domain.errors import MediaNotFound, MessageNotFound, SessionNotConnected
from whatsgate.domain.jid import Jid
from whatsgate.domain.message import Direction, Media, Message, MessageKind, MessageStatus
from whatsgate.domain.session import Session
from whatsgate.usecases._chats import conversation_for
from whatsgate.usecases.media import MediaCommand
from whatsgate.usecases.send import OutgoingMedia, SendMessageCommand
from whatsgate.usecases.sessions import SessionCommand

from .harness import World

CONTACT = Jid.phone("5566999990001")
PHOTO = b"\xff\xd8\xff" + b"p" * 2048


@pytest.fixture
def world() -> World:
    return World()


async def inbound(world: World, session: Session, media: Media | None) -> Message:
    now = world.clock.now()
    async with world.uow() as uow:
        conversation, _ = await conversation_for(uow, session, CONTACT, now)
        message = Message(
            organization_id=session.organization_id,
            session_id=session.id,
            conversation_id=conversation.id,
            wa_id=f"3EB0{len(world.store.messages):04d}",
            chat=CONTACT,
            sender=CONTACT,
            direction=Direction.IN,
            kind=MessageKind.IMAGE if media else MessageKind.TEXT,
            text=None if media else "hi",
            media=media,
            timestamp=now,
            status=MessageStatus.RECEIVED,
            created_at=now,
        )
        await uow.conversations.save(conversation)
        await uow.messages.save(message)
        await uow.commit()
    return message


async def test_inbound_media_is_downloaded_once_then_served_from_the_store(world: World) -> None:
    session = await world.connected_session()
    world.fake.media["ref-1"] = PHOTO
    message = await inbound(
        world, session, Media(mime="image/jpeg", file_name="p.jpg", engine_ref="ref-1")
    )
    content = await world.get_media(MediaCommand(message_id=message.id))
    assert (content.data, content.mime, content.file_name) == (PHOTO, "image/jpeg", "p.jpg")
    stored = (await world.message(message.id)).media
    assert stored is not None and stored.storage_key is not None
    assert (stored.size, stored.sha256) == (len(PHOTO), hashlib.sha256(PHOTO).hexdigest())
    assert world.media.blobs[stored.storage_key] == PHOTO
    del world.fake.media["ref-1"]  # WhatsApp forgets it; we do not need it any more
    again = await world.get_media(MediaCommand(message_id=message.id))
    assert again.data == PHOTO
    assert world.fake.connection(session.id).downloads == ["ref-1"]


async def test_concurrent_first_requests_download_once(world: World) -> None:
    session = await world.connected_session()
    world.fake.media["ref-1"] = PHOTO
    message = await inbound(world, session, Media(mime="image/jpeg", engine_ref="ref-1"))
    contents = await asyncio.gather(
        *(world.get_media(MediaCommand(message_id=message.id)) for _ in range(3))
    )
    assert [c.data for c in contents] == [PHOTO] * 3
    assert world.fake.connection(session.id).downloads == ["ref-1"]


async def test_sent_media_comes_from_the_store_without_the_engine(world: World) -> None:
    session = await world.connected_session()
    result = await world.send(
        SendMessageCommand(
            session_id=session.id,
            to=str(CONTACT),
            kind=MessageKind.IMAGE,
            media=OutgoingMedia(data=PHOTO, mime="image/jpeg"),
        )
    )
    await world.stop(SessionCommand(session_id=session.id))
    content = await world.get_media(MediaCommand(message_id=result.id))
    assert (content.data, content.mime) == (PHOTO, "image/jpeg")


async def test_what_cannot_be_served_says_why(world: World) -> None:
    session = await world.connected_session()
    with pytest.raises(MessageNotFound):
        await world.get_media(MediaCommand(message_id="nope"))
    text = await inbound(world, session, None)
    with pytest.raises(MediaNotFound):
        await world.get_media(MediaCommand(message_id=text.id))
    gone = await inbound(world, session, Media(mime="image/jpeg", engine_ref="expired"))
    with pytest.raises(MediaNotFound):
        await world.get_media(MediaCommand(message_id=gone.id))
    world.fake.media["ref-2"] = PHOTO
    later = await inbound(world, session, Media(mime="image/jpeg", engine_ref="ref-2"))
    await world.stop(SessionCommand(session_id=session.id))
    with pytest.raises(SessionNotConnected):
        await world.get_media(MediaCommand(message_id=later.id))
    assert (await world.message(later.id)).media == Media(mime="image/jpeg", engine_ref="ref-2")

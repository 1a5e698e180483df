"""Sending, reading one message and its media, checking numbers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from whatsgate.adapters.http.auth import principal_of
from whatsgate.adapters.http.errors import error_responses
from whatsgate.adapters.http.fetch import MediaFetcher
from whatsgate.adapters.http.schemas import (
    CheckNumbersIn,
    MediaIn,
    MessageOut,
    NumberCheckOut,
    SendMessageIn,
    SendMessageOut,
)
from whatsgate.domain.auth import Principal
from whatsgate.domain.errors import InvalidMessage
from whatsgate.domain.message import ContactCard, Location, MessageKind
from whatsgate.usecases.access import Access
from whatsgate.usecases.media import GetMessageMedia, MediaCommand
from whatsgate.usecases.send import (
    CheckNumbers,
    CheckNumbersCommand,
    OutgoingMedia,
    ReactionSpec,
    SendMessage,
    SendMessageCommand,
)

#: A media send carries its bytes base64-encoded in the JSON body.
MEDIA_BODY_LIMIT = 64 * 1024 * 1024


async def _provided(request: Request[Any, Any, Any], name: str) -> Any:
    """A dependency of the app, resolved only where a handler needs it (see ``send``)."""
    return await request.route_handler.resolve_dependencies()[name]()


async def _media(given: MediaIn | None, request: Request[Any, Any, Any]) -> OutgoingMedia | None:
    if given is None:
        return None
    if (given.data is None) == (given.url is None):
        raise InvalidMessage("media needs exactly one of data (base64) or url.", field="media")
    mime = given.mime
    if given.data is not None:
        data = given.data
    else:
        assert given.url is not None
        fetcher: MediaFetcher = await _provided(request, "media_fetcher")
        data, served = await fetcher.fetch(given.url)
        mime = mime or served
    if not mime:
        raise InvalidMessage("media.mime is required.", field="media.mime")
    return OutgoingMedia(data=data, mime=mime, file_name=given.filename, caption=given.caption)


class SessionMessageController(Controller):
    path = "/sessions/{session_id:str}"
    tags = ["Messages"]

    @post(
        "/messages",
        summary="Send a message",
        description="Validated, stored as `queued` and handed to the outbox; answers at once. "
        "`throttled` says pacing holds it back for now. Status changes arrive as "
        "`message.status` events.",
        status_code=HTTP_202_ACCEPTED,
        request_max_body_size=MEDIA_BODY_LIMIT,
        responses=error_responses(403, 404, 409, 413),
    )
    async def send(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[str],
        data: JSONBody[SendMessageIn],
        send_message: NamedDependency[SendMessage],
    ) -> SendMessageOut:
        # One dependency, so Litestar resolves it directly, not in an anyio task group
        # (~85 us per request): the caller comes from the request, and ``access`` and the
        # media fetcher are resolved only for a media send, which needs them.
        principal = principal_of(request)
        # Fetching media waits for the access check, as before; without media the check
        # runs in SendMessage's own unit of work (one transaction for the sends made at once).
        checked = data.media is not None
        if checked:
            access: Access = await _provided(request, "access")
            await access.sender(principal, session_id, data.to)
        result = await send_message(
            SendMessageCommand(
                session_id=session_id,
                to=data.to,
                kind=MessageKind(data.type),
                text=data.text,
                media=await _media(data.media, request),
                reply_to=data.reply_to,
                location=(
                    Location(
                        latitude=data.location.latitude,
                        longitude=data.location.longitude,
                        name=data.location.name,
                        address=data.location.address,
                    )
                    if data.location
                    else None
                ),
                contact=(
                    ContactCard(display_name=data.contact.display_name, vcard=data.contact.vcard)
                    if data.contact
                    else None
                ),
                reaction=(
                    ReactionSpec(message_id=data.reaction.message_id, emoji=data.reaction.emoji)
                    if data.reaction
                    else None
                ),
            ),
            principal=None if checked else principal,
        )
        return SendMessageOut(
            id=result.id,
            status="queued",
            throttled=result.throttled,
            conversation_id=result.message.conversation_id,
        )

    @post(
        "/contacts/check",
        summary="Which numbers have WhatsApp",
        description="One answer per number, in order. Asked in small, spaced batches.",
        status_code=HTTP_200_OK,
        responses=error_responses(403, 404, 409),
    )
    async def check_numbers(
        self,
        session_id: FromPath[str],
        data: JSONBody[CheckNumbersIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        check_numbers: NamedDependency[CheckNumbers],
    ) -> list[NumberCheckOut]:
        await access.session(principal, session_id)
        checks = await check_numbers(
            CheckNumbersCommand(session_id=session_id, numbers=tuple(data.numbers))
        )
        return [
            NumberCheckOut(number=c.number, jid=str(c.jid) if c.jid else None, exists=c.exists)
            for c in checks
        ]


class MessageController(Controller):
    path = "/messages"
    tags = ["Messages"]

    @get("/{message_id:str}", summary="One message", responses=error_responses(403, 404))
    async def get_message(
        self,
        message_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
    ) -> MessageOut:
        return MessageOut.of(await access.message(principal, message_id))

    @get(
        "/{message_id:str}/media",
        summary="The media bytes of a message",
        description="With their content type; fetched from WhatsApp on first request.",
        responses={
            **error_responses(403, 404, 409),
            200: ResponseSpec(data_container=bytes, description="The media bytes"),
        },
    )
    async def media(
        self,
        message_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        get_message_media: NamedDependency[GetMessageMedia],
    ) -> Response[bytes]:
        await access.message(principal, message_id)
        content = await get_message_media(MediaCommand(message_id=message_id))
        headers: dict[str, Any] = {}
        if content.file_name:
            headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(content.file_name)}"
        return Response(content.data, media_type=content.mime, headers=headers)

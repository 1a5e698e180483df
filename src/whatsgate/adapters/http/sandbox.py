"""``/api/v1/sandbox``: play the phone and the contacts of a sandbox session.

Mounted only with ``--engine sandbox``. The phone scans the QR, contacts send messages and
type, WhatsApp misbehaves on request: everything a demo or an end-to-end test needs.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from msgspec import Meta

from whatsgate.adapters.http.errors import error_responses
from whatsgate.adapters.http.schemas import SessionOut
from whatsgate.adapters.sandbox import InboundSpec, SandboxEngine
from whatsgate.domain.auth import Principal
from whatsgate.usecases.access import Access

#: Inbound media travel base64-encoded in the JSON body.
MEDIA_BODY_LIMIT = 64 * 1024 * 1024

Text = Annotated[str, Meta(max_length=65_536)]
Short = Annotated[str, Meta(max_length=256)]


class ScanIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    phone: Annotated[str, Meta(max_length=40, examples=["+55 11 99999-0001"])] | None = None


class InboundIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a contact sends. ``from`` is a phone number or JID; ``chat`` a group JID."""

    sender: Short = msgspec.field(name="from")
    type: Short = "text"
    chat: Short | None = None
    text: Text | None = None
    id: Short | None = None
    push_name: Short | None = None
    quoted_id: Short | None = None
    target_id: Short | None = None
    #: Media bytes, base64.
    data: bytes | None = None
    mime: Short | None = None
    file_name: Short | None = None
    latitude: float | None = None
    longitude: float | None = None
    name: Short | None = None
    address: Short | None = None
    vcard: Text | None = None
    options: list[Short] = msgspec.field(default_factory=list)
    chat_name: Short | None = None


class InboundOut(msgspec.Struct, kw_only=True):
    id: Annotated[str, Meta(description="The WhatsApp message id.")]


class SandboxTypingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sender: Short = msgspec.field(name="from")
    state: Literal["composing", "recording", "paused"] = "composing"
    chat: Short | None = None


class FaultsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    fail_sends: Annotated[int, Meta(ge=0, le=10_000)] | None = None
    disconnect: bool = False
    logout: bool = False
    ban_seconds: Annotated[float, Meta(gt=0)] | None = None
    replace: bool = False
    outdated: bool = False


class SandboxController(Controller):
    path = "/sandbox/sessions"
    tags = ["Sandbox"]

    @post(
        "/{session_id:str}/scan",
        summary="The phone scans the QR",
        description="Pairs the session (with `phone`, or the sandbox's default number).",
        status_code=HTTP_200_OK,
        responses=error_responses(403, 404, 409),
    )
    async def scan(
        self,
        session_id: FromPath[str],
        data: JSONBody[ScanIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        sandbox_engine: NamedDependency[SandboxEngine],
    ) -> SessionOut:
        await access.session(principal, session_id)
        await sandbox_engine.scan(session_id, data.phone)
        return SessionOut.of(await access.session(principal, session_id))

    @post(
        "/{session_id:str}/inbound",
        summary="A contact sends a message",
        description="`chat` is a group JID for group messages; `id` an explicit WhatsApp "
        "message id (a repeated id is de-duplicated by the gateway).",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(403, 404, 409, 413),
        request_max_body_size=MEDIA_BODY_LIMIT,
    )
    async def inbound(
        self,
        session_id: FromPath[str],
        data: JSONBody[InboundIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        sandbox_engine: NamedDependency[SandboxEngine],
    ) -> InboundOut:
        await access.session(principal, session_id)
        spec = InboundSpec(
            sender=data.sender,
            type=data.type,
            chat=data.chat,
            text=data.text,
            id=data.id,
            push_name=data.push_name,
            quoted_id=data.quoted_id,
            target_id=data.target_id,
            data=data.data,
            mime=data.mime,
            file_name=data.file_name,
            latitude=data.latitude,
            longitude=data.longitude,
            name=data.name,
            address=data.address,
            vcard=data.vcard,
            options=tuple(data.options),
            chat_name=data.chat_name,
        )
        return InboundOut(id=await sandbox_engine.inbound(session_id, spec))

    @post(
        "/{session_id:str}/typing",
        summary="A contact types",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(403, 404, 409),
    )
    async def typing(
        self,
        session_id: FromPath[str],
        data: JSONBody[SandboxTypingIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        sandbox_engine: NamedDependency[SandboxEngine],
    ) -> None:
        await access.session(principal, session_id)
        await sandbox_engine.typing(session_id, data.sender, data.state, data.chat)

    @post(
        "/{session_id:str}/faults",
        summary="Make WhatsApp misbehave",
        description="`fail_sends`: the next N sends fail. At most one of `disconnect`, "
        "`logout`, `ban_seconds`, `replace`; `outdated` refuses the next connection.",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(403, 404, 409),
    )
    async def faults(
        self,
        session_id: FromPath[str],
        data: JSONBody[FaultsIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        sandbox_engine: NamedDependency[SandboxEngine],
    ) -> SessionOut:
        await access.session(principal, session_id)
        await sandbox_engine.faults(
            session_id,
            fail_sends=data.fail_sends,
            disconnect=data.disconnect,
            logout=data.logout,
            ban_seconds=data.ban_seconds,
            replace=data.replace,
            outdated=data.outdated,
        )
        return SessionOut.of(await access.session(principal, session_id))

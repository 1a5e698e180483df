"""``/api/v1/sessions``: WhatsApp accounts, their lifecycle and their pairing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from whatsgate.adapters.http.errors import error_responses
from whatsgate.adapters.http.qr import PNG, SVG, qr_png, qr_svg
from whatsgate.adapters.http.schemas import (
    CreateSessionIn,
    PairingCodeIn,
    PairingCodeOut,
    QrOut,
    SessionList,
    SessionOut,
    UpdateSessionIn,
)
from whatsgate.domain.auth import Principal
from whatsgate.domain.pagination import decode_cursor, encode_cursor
from whatsgate.domain.session import Session, iso
from whatsgate.usecases.access import Access
from whatsgate.usecases.pairing import GetQrCode, OwnDefaultSession, require_qr
from whatsgate.usecases.session_admin import UpdateSession, UpdateSessionCommand
from whatsgate.usecases.sessions import (
    CreateSession,
    CreateSessionCommand,
    DeleteSession,
    InitializeCommand,
    InitializeWhatsAppClient,
    LogoutSession,
    PairingCodeCommand,
    RequestPairingCode,
    SessionCommand,
    StopSession,
)

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size (at most 500).")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page.")]
QrFormat = Annotated[
    Literal["json", "png", "svg"] | None,
    QueryParameter(
        name="format",
        description="`png` or `svg` answers with the image (so does `Accept: image/png`).",
    ),
]

_QR_RESPONSES = {
    **error_responses(403, 404, 409),
    HTTP_200_OK: ResponseSpec(
        data_container=QrOut,
        description="The QR as JSON; with `?format=png|svg` (or `Accept: image/png`) the "
        "image itself (`image/png`, `image/svg+xml`).",
    ),
}


def _qr_answer(session: Session, fmt: str | None, request: Request[Any, Any, Any]) -> Response[Any]:
    accept = request.headers.get("accept", "")
    if fmt is None and PNG in accept:
        fmt = "png"
    elif fmt is None and SVG in accept:
        fmt = "svg"
    if fmt == "png":
        return Response(qr_png(require_qr(session)), media_type=PNG)
    if fmt == "svg":
        return Response(qr_svg(require_qr(session)), media_type=SVG)
    return Response(QrOut.of(session))


class SessionController(Controller):
    path = "/sessions"
    tags = ["Sessions"]

    @post(
        "/",
        summary="Create a session",
        description="A new WhatsApp account connection, owned by the caller. With "
        "`start: true` it starts at once (then ask for its QR).",
        responses=error_responses(409),
    )
    async def create(
        self,
        data: JSONBody[CreateSessionIn],
        principal: NamedDependency[Principal],
        create_session: NamedDependency[CreateSession],
        initialize_client: NamedDependency[InitializeWhatsAppClient],
    ) -> SessionOut:
        session = await create_session(
            CreateSessionCommand(
                organization_id=principal.organization_id,
                owner_id=principal.user_id,
                name=data.name,
            )
        )
        if data.start:
            started = await initialize_client(InitializeCommand(session_id=session.id, wait=False))
            session = started.session
        return SessionOut.of(session)

    @get(
        "/",
        summary="List sessions",
        description="The sessions the caller may see, oldest first, cursor paginated.",
        responses=error_responses(),
    )
    async def list_sessions(
        self,
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> SessionList:
        sessions = await access.sessions(principal)
        if cursor:
            _, after = decode_cursor(cursor)
            sessions = [s for s in sessions if s.id > after]
        page = sessions[:limit]
        more = len(sessions) > limit
        return SessionList(
            items=[SessionOut.of(s) for s in page],
            next_cursor=encode_cursor(None, page[-1].id) if more and page else None,
        )

    @get("/{session_id:str}", summary="Get a session", responses=error_responses(403, 404))
    async def get_session(
        self,
        session_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
    ) -> SessionOut:
        return SessionOut.of(await access.session(principal, session_id))

    @patch(
        "/{session_id:str}",
        summary="Rename a session or share it with agents",
        description="`shared_with` replaces the list of agents that may see and use it. "
        "Only an admin or the owner may change a session.",
        responses=error_responses(403, 404, 409),
    )
    async def update(
        self,
        session_id: FromPath[str],
        data: JSONBody[UpdateSessionIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        update_session: NamedDependency[UpdateSession],
    ) -> SessionOut:
        await access.session(principal, session_id, manage=True)
        session = await update_session(
            UpdateSessionCommand(
                session_id=session_id,
                name=data.name,
                shared_with=frozenset(data.shared_with) if data.shared_with is not None else None,
            )
        )
        return SessionOut.of(session)

    @delete(
        "/{session_id:str}",
        summary="Delete a session",
        description="Logs out if paired, then removes the session and all its data.",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(403, 404),
    )
    async def remove(
        self,
        session_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        delete_session: NamedDependency[DeleteSession],
    ) -> None:
        await access.session(principal, session_id, manage=True)
        await delete_session(SessionCommand(session_id=session_id))

    @post(
        "/{session_id:str}/start",
        summary="Start or resume a session",
        description="Opens the WhatsApp client: a paired session reconnects, a new one "
        "starts issuing QR codes (see `/qr` and the `session.qr` event).",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(403, 404, 409),
    )
    async def start(
        self,
        session_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        initialize_client: NamedDependency[InitializeWhatsAppClient],
    ) -> SessionOut:
        await access.session(principal, session_id)
        result = await initialize_client(InitializeCommand(session_id=session_id, wait=False))
        return SessionOut.of(result.session)

    @post(
        "/{session_id:str}/stop",
        summary="Stop a session",
        description="Disconnects and keeps the pairing: the next start needs no QR.",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(403, 404, 409),
    )
    async def stop(
        self,
        session_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        stop_session: NamedDependency[StopSession],
    ) -> SessionOut:
        await access.session(principal, session_id)
        return SessionOut.of(await stop_session(SessionCommand(session_id=session_id)))

    @post(
        "/{session_id:str}/logout",
        summary="Log a session out",
        description="Unlinks the device from the phone and forgets the credentials; the "
        "next start needs a new QR. Only an admin or the owner may do it.",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(403, 404, 409),
    )
    async def logout(
        self,
        session_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        logout_session: NamedDependency[LogoutSession],
    ) -> SessionOut:
        await access.session(principal, session_id, manage=True)
        return SessionOut.of(await logout_session(SessionCommand(session_id=session_id)))

    @get(
        "/{session_id:str}/qr",
        summary="The QR code to pair a session",
        description="Starts a session that is not running and waits briefly for its first "
        "QR. `qr` is null while none is available yet (see `status`). 409 "
        "`already_connected` once paired.",
        responses=_QR_RESPONSES,
    )
    async def qr(
        self,
        session_id: FromPath[str],
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        get_qr_code: NamedDependency[GetQrCode],
        fmt: QrFormat = None,
    ) -> Response[Any]:
        await access.session(principal, session_id)
        return _qr_answer(await get_qr_code(session_id), fmt, request)

    @post(
        "/{session_id:str}/pairing-code",
        summary="Pair by phone code",
        description="A code to type on the phone (Linked devices → Link with phone number) "
        "instead of scanning the QR.",
        status_code=HTTP_200_OK,
        responses=error_responses(403, 404, 409),
    )
    async def pairing_code(
        self,
        session_id: FromPath[str],
        data: JSONBody[PairingCodeIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        request_pairing_code: NamedDependency[RequestPairingCode],
    ) -> PairingCodeOut:
        await access.session(principal, session_id)
        code = await request_pairing_code(
            PairingCodeCommand(session_id=session_id, phone=data.phone)
        )
        return PairingCodeOut(code=code.code, expires_at=iso(code.expires_at) or "")


class WhatsAppController(Controller):
    path = "/whatsapp"
    tags = ["Sessions"]

    @get(
        "/qr",
        summary="The QR code of the caller's own session",
        description="The same as `/sessions/{id}/qr` for the caller's own default session, "
        "created on first use.",
        responses=_QR_RESPONSES,
    )
    async def my_qr(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        own_default_session: NamedDependency[OwnDefaultSession],
        get_qr_code: NamedDependency[GetQrCode],
        fmt: QrFormat = None,
    ) -> Response[Any]:
        session = await own_default_session(principal)
        return _qr_answer(await get_qr_code(session.id), fmt, request)

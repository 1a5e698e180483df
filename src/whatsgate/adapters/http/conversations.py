"""The attendants' inbox: conversations, their messages, contacts, history sync."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from whatsgate.adapters.http.auth import principal_of
from whatsgate.adapters.http.errors import error_responses
from whatsgate.adapters.http.schemas import (
    ContactList,
    ContactOut,
    ConversationList,
    ConversationOut,
    HistorySyncIn,
    MessageList,
    MessageOut,
    TypingStateIn,
    UpdateContactIn,
    UpdateConversationIn,
)
from whatsgate.domain.auth import Principal
from whatsgate.domain.conversation import ConversationStatus
from whatsgate.domain.errors import ConversationNotFound, NotFound, PermissionDenied
from whatsgate.domain.jid import Jid
from whatsgate.ports.engine import TypingState
from whatsgate.usecases.access import Access
from whatsgate.usecases.contacts import ListContacts, ListContactsQuery
from whatsgate.usecases.history import RequestHistorySync, RequestHistorySyncCommand
from whatsgate.usecases.inbox import (
    UNSET,
    GetMessages,
    GetMessagesQuery,
    ListConversations,
    ListConversationsQuery,
    MarkConversationRead,
    MarkReadCommand,
    SendTyping,
    SendTypingCommand,
    UpdateContact,
    UpdateContactCommand,
    UpdateConversation,
    UpdateConversationCommand,
)

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size (at most 500).")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page.")]


class SessionInboxController(Controller):
    path = "/sessions/{session_id:str}"
    tags = ["Conversations"]

    @get(
        "/conversations",
        summary="A session's conversations",
        description="Newest activity first, cursor paginated. Filters: `status`, `assignee` "
        "(a user id), `unread=true`, `q` (name, chat or contact name).",
        responses=error_responses(403, 404),
    )
    async def list_conversations(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[str],
        list_conversations: NamedDependency[ListConversations],
        status: Annotated[Literal["pending", "active", "closed"] | None, QueryParameter()] = None,
        assignee: Annotated[str | None, QueryParameter(description="A user id.")] = None,
        unread: Annotated[bool, QueryParameter(description="Only unread ones.")] = False,
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> ConversationList:
        # The caller from the request, not the ``principal`` dependency: with one dependency
        # left Litestar resolves it directly, not in a task group (~85 µs per request).
        principal = principal_of(request)
        page = await list_conversations.views(
            ListConversationsQuery(
                session_id=session_id,
                status=ConversationStatus(status) if status else None,
                assignee_id=assignee,
                unread_only=unread,
                text=q,
                cursor=cursor,
                limit=limit,
            ),
            principal=principal,
        )
        return ConversationList(
            items=[ConversationOut.of_view(v) for v in page.items], next_cursor=page.next_cursor
        )

    @get(
        "/contacts",
        summary="A session's contacts",
        description="Cursor paginated; `q` matches names and JIDs.",
        responses=error_responses(403, 404),
    )
    async def list_contacts(
        self,
        session_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        list_contacts: NamedDependency[ListContacts],
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> ContactList:
        await access.session(principal, session_id)
        page = await list_contacts(
            ListContactsQuery(session_id=session_id, text=q, cursor=cursor, limit=limit)
        )
        return ContactList(
            items=[ContactOut.of(c) for c in page.items], next_cursor=page.next_cursor
        )

    @patch(
        "/contacts/{jid:str}",
        summary="Link a contact to your own records",
        description='`external_ref` ("" clears it) and `metadata` (replaced), each only '
        "when given. The contact is named by phone number, JID or LID.",
        responses=error_responses(403, 404),
    )
    async def update_contact(
        self,
        session_id: FromPath[str],
        jid: FromPath[str],
        data: JSONBody[UpdateContactIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        update_contact: NamedDependency[UpdateContact],
    ) -> ContactOut:
        await access.session(principal, session_id)
        contact = await update_contact(
            UpdateContactCommand(
                session_id=session_id,
                jid=Jid.parse(jid),
                external_ref=data.external_ref,
                metadata=data.metadata,
            )
        )
        return ContactOut.of(contact)

    @post(
        "/history/sync",
        summary="Ask WhatsApp for more history",
        description="Of one chat, or recent history; it arrives later (`history.progress` "
        "events) and is imported like the history of a first pairing.",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(403, 404, 409),
    )
    async def history_sync(
        self,
        session_id: FromPath[str],
        data: JSONBody[HistorySyncIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        list_conversations: NamedDependency[ListConversations],
        request_history_sync: NamedDependency[RequestHistorySync],
    ) -> None:
        await access.session(principal, session_id)
        conversation_id = None
        if data.chat is not None:
            conversation_id = await _conversation_of_chat(
                principal, access, list_conversations, session_id, data.chat
            )
        await request_history_sync(
            RequestHistorySyncCommand(
                session_id=session_id, conversation_id=conversation_id, count=data.count
            )
        )


async def _conversation_of_chat(
    principal: Principal,
    access: Access,
    list_conversations: ListConversations,
    session_id: str,
    chat: str,
) -> str:
    """A conversation id given as such, or found by its chat (number or JID)."""
    try:
        conversation = await access.conversation(principal, chat)
    except (NotFound, PermissionDenied):
        conversation = None
    if conversation is not None and conversation.session_id == session_id:
        return conversation.id
    jid = Jid.parse(chat)
    page = await list_conversations(
        ListConversationsQuery(session_id=session_id, text=str(jid), limit=500)
    )
    found = next((c for c in page.items if c.chat == jid), None)
    if found is None:
        raise ConversationNotFound(chat=str(jid))
    return found.id


class ConversationController(Controller):
    path = "/conversations"
    tags = ["Conversations"]

    @get("/{conversation_id:str}", summary="One conversation", responses=error_responses(403, 404))
    async def get_conversation(
        self,
        conversation_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
    ) -> ConversationOut:
        return ConversationOut.of(await access.conversation(principal, conversation_id))

    @patch(
        "/{conversation_id:str}",
        summary="Assign, set the status, link to your records",
        description="Each field only when given; `assignee_id: null` returns it to the queue.",
        responses=error_responses(403, 404),
    )
    async def update(
        self,
        conversation_id: FromPath[str],
        data: JSONBody[UpdateConversationIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        update_conversation: NamedDependency[UpdateConversation],
    ) -> ConversationOut:
        await access.conversation(principal, conversation_id)
        assignee = UNSET if data.assignee_id is msgspec.UNSET else data.assignee_id
        conversation = await update_conversation(
            UpdateConversationCommand(
                conversation_id=conversation_id,
                status=ConversationStatus(data.status) if data.status else None,
                assignee_id=assignee,
                external_ref=data.external_ref,
                metadata=data.metadata,
            )
        )
        return ConversationOut.of(conversation)

    @post(
        "/{conversation_id:str}/read",
        summary="Mark read",
        description="Unread drops to 0 and read receipts go to WhatsApp (when connected).",
        status_code=HTTP_200_OK,
        responses=error_responses(403, 404),
    )
    async def read(
        self,
        conversation_id: FromPath[str],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        mark_conversation_read: NamedDependency[MarkConversationRead],
    ) -> ConversationOut:
        await access.conversation(principal, conversation_id)
        result = await mark_conversation_read(MarkReadCommand(conversation_id=conversation_id))
        return ConversationOut.of(result.conversation)

    @post(
        "/{conversation_id:str}/typing",
        summary="Show typing",
        description="`composing`, `recording` or `paused`; needs the session connected.",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(403, 404, 409),
    )
    async def typing(
        self,
        conversation_id: FromPath[str],
        data: JSONBody[TypingStateIn],
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        send_typing: NamedDependency[SendTyping],
    ) -> None:
        await access.conversation(principal, conversation_id)
        await send_typing(
            SendTypingCommand(conversation_id=conversation_id, state=TypingState(data.state))
        )

    @get(
        "/{conversation_id:str}/messages",
        summary="A conversation's messages",
        description="A page runs oldest to newest; the first page is the newest; "
        "`next_cursor` (pass it as `before`) leads to older messages.",
        responses=error_responses(403, 404),
    )
    async def messages(
        self,
        request: Request[Any, Any, Any],
        conversation_id: FromPath[str],
        get_messages: NamedDependency[GetMessages],
        before: Cursor = None,
        limit: Limit = 50,
    ) -> MessageList:
        principal = principal_of(request)  # one dependency: see list_conversations
        page = await get_messages(
            GetMessagesQuery(conversation_id=conversation_id, before=before, limit=limit),
            principal=principal,
        )
        return MessageList(
            items=[MessageOut.of(m) for m in page.items], next_cursor=page.next_cursor
        )

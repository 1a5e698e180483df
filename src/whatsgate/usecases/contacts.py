"""Listing a session's contacts."""

from __future__ import annotations

from dataclasses import dataclass

from whatsgate.domain.conversation import Contact
from whatsgate.domain.errors import InvalidInput, SessionNotFound
from whatsgate.ports.repositories import Page, UnitOfWorkFactory

MAX_PAGE = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class ListContactsQuery:
    session_id: str
    #: Matches name, push name, business name or JID, case-insensitively.
    text: str | None = None
    cursor: str | None = None
    limit: int = 50


class ListContacts:
    """The contacts a session knows, a page at a time (cursor pagination).

    - ``limit`` is 1 to 500; an unknown session is ``session_not_found``.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(self, query: ListContactsQuery) -> Page[Contact]:
        if not 1 <= query.limit <= MAX_PAGE:
            raise InvalidInput(f"limit is between 1 and {MAX_PAGE}.", field="limit")
        async with self.uow() as uow:
            if await uow.sessions.get(query.session_id) is None:
                raise SessionNotFound(session_id=query.session_id)
            return await uow.contacts.search(
                query.session_id,
                text=(query.text or "").strip() or None,
                cursor=query.cursor,
                limit=query.limit,
            )

"""Reading the event log: what a client missed while it was away."""

from __future__ import annotations

from dataclasses import dataclass

from whatsgate.domain.auth import Principal
from whatsgate.domain.events import StoredEvent
from whatsgate.ports.repositories import Page, UnitOfWorkFactory

_SCAN_BATCH = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadEventsQuery:
    principal: Principal
    after: int = 0
    session_id: str | None = None
    limit: int = 100


class ReadEvents:
    """Stored events after an event id, oldest first, of the caller's organization only.

    - Admins read every session's events; agents those of the sessions they may see, plus the
      conversation events of conversations assigned to them.
    - ``next_cursor`` is the id of the last event when the page is full (pass it as ``after``).
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self.uow = uow

    async def __call__(self, query: ReadEventsQuery) -> Page[StoredEvent]:
        principal = query.principal
        found: list[StoredEvent] = []
        after = query.after
        async with self.uow() as uow:
            visible = {
                s.id
                for s in await uow.sessions.all(principal.organization_id)
                if principal.can_see(s)
            }
            while len(found) < query.limit:
                batch = await uow.events.after(
                    after,
                    organization_id=principal.organization_id,
                    session_id=query.session_id,
                    limit=_SCAN_BATCH if not principal.is_admin else query.limit,
                )
                if not batch:
                    break
                for event in batch:
                    if (
                        principal.is_admin
                        or event.session_id in visible
                        or (event.assignee_id == principal.user_id)
                    ):
                        found.append(event)
                        if len(found) == query.limit:
                            break
                after = batch[-1].id
        page = found[: query.limit]
        full = len(page) == query.limit
        return Page(page, str(page[-1].id) if full and page else None)

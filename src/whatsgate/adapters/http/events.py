"""``/api/v1/events``: the event log, for clients that were away."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from whatsgate.adapters.http.errors import error_responses
from whatsgate.adapters.http.schemas import EventList, EventOut
from whatsgate.domain.auth import Principal
from whatsgate.usecases.access import Access
from whatsgate.usecases.events import ReadEvents, ReadEventsQuery


class EventController(Controller):
    path = "/events"
    tags = ["Events"]

    @get(
        "/",
        summary="Read the event log",
        description="Stored events after `after` (an event id), oldest first: what a client "
        "missed. The same `{id, event, session_id, timestamp, data}` as socket.io and webhooks.",
        responses=error_responses(403, 404),
    )
    async def list_events(
        self,
        principal: NamedDependency[Principal],
        access: NamedDependency[Access],
        read_events: NamedDependency[ReadEvents],
        after: Annotated[
            int, QueryParameter(ge=0, description="Only events with a greater id.")
        ] = 0,
        session_id: Annotated[str | None, QueryParameter(description="One session only.")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="At most 1000.")] = 100,
    ) -> EventList:
        if session_id is not None:
            await access.session(principal, session_id)
        page = await read_events(
            ReadEventsQuery(principal=principal, after=after, session_id=session_id, limit=limit)
        )
        return EventList(
            items=[EventOut.of(e) for e in page.items],
            next_cursor=page.next_cursor,
        )

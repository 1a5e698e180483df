"""Units of work that lose a race to create a row another one created meanwhile."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from whatsgate.domain.errors import AlreadyExists, WriteConflict

log = logging.getLogger("whatsgate.races")

T = TypeVar("T")

#: How many times a unit of work runs when it keeps losing such races.
ATTEMPTS = 3


async def again_if_raced(run: Callable[[], Awaitable[T]], *, session_id: str, what: str) -> T:
    """``run()``, one unit of work, run again when it failed on a unique key (``AlreadyExists``)
    because another unit of work created the same conversation or contact meanwhile (the
    first messages to a new number sent at once, a send or a contact sync while its history
    is imported), or when the database ended it for another's sake (``WriteConflict``: on
    PostgreSQL, two units of work each waiting for rows the other had locked): the failed
    one wrote nothing, and the next finds the winner's rows. Up to ``ATTEMPTS`` runs; the
    last one's error is raised."""
    for _ in range(ATTEMPTS - 1):
        try:
            return await run()
        except (AlreadyExists, WriteConflict) as exc:
            log.info(
                "session %s: %s raced another write (%s); again",
                session_id,
                what,
                exc.code,
                extra={"session_id": session_id},
            )
    return await run()

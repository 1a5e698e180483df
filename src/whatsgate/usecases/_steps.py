"""Large deletes in steps: each its own short unit of work, so that other writers get their
turns in between (on SQLite one transaction deleting a million rows held the writers for
seconds, past their busy timeout)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from whatsgate.ports.repositories import UnitOfWork, UnitOfWorkFactory

#: Rows removed per unit of work.
DELETE_STEP = 5_000


async def clear_in_steps(
    uow: UnitOfWorkFactory, clear: Callable[[UnitOfWork, int], Awaitable[int]]
) -> None:
    """``clear(unit_of_work, DELETE_STEP)`` (it removes up to that many rows and says how
    many), each in its own committed unit of work, until a step comes back short."""
    removed = DELETE_STEP
    while removed == DELETE_STEP:
        async with uow() as unit:
            removed = await clear(unit, DELETE_STEP)
            await unit.commit()

"""Storage on SQLAlchemy 2 async: SQLite (the default, through aiosqlite) or PostgreSQL
(through asyncpg), one code base, Alembic migrations shipped in the package.

    engine = create_engine_for(sqlite_url("./whatsgate-data"))
    await migrate(engine)
    uow_factory = SqlUnitOfWorkFactory(engine, on_commit=dispatcher.wake)
"""

from whatsgate.adapters.sql.database import async_url, create_engine_for, sqlite_url
from whatsgate.adapters.sql.migrations import migrate
from whatsgate.adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "async_url",
    "create_engine_for",
    "migrate",
    "sqlite_url",
]

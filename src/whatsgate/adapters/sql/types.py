"""Column types that keep the domain's value types intact on both databases."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from whatsgate.domain.jid import Jid

_JSON = msgspec.json.Encoder()


def json_text(value: Any) -> str:
    """The text of a JSON column, for every write (the engine's ``json_serializer`` and the
    prepared bulk inserts alike): the same JSON as ``json.dumps`` (read back with
    ``json.loads``) without the spaces and ASCII escapes, in a seventh of the time; the event
    log's payloads and the messages' JSON columns were a tenth of live ingest (bench/
    live_ingest.py)."""
    return _JSON.encode(value).decode()


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as
    naive UTC text (which sorts correctly) and made aware again when read. A naive value
    given to the database is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC, as ``UtcDateTime`` binds it on PostgreSQL (naive taken as UTC)."""
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_text(value: datetime) -> str:
    """The text ``UtcDateTime`` stores on SQLite for ``value``: naive UTC, as SQLAlchemy's
    SQLite ``DATETIME`` writes it (``YYYY-MM-DD HH:MM:SS.ffffff``, microseconds always), so
    rows written from it compare and sort with every other. For bulk inserts that skip bind
    processing (``SqlMessages.add_new``); a test holds it to the type's own output."""
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def sqlite_time(text: str) -> datetime:
    """What ``UtcDateTime`` reads from the text SQLite stores (naive UTC): for look-ups that
    skip result processing (``SqlContacts.get_many``)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def postgresql_time(value: datetime) -> datetime:
    """What ``UtcDateTime`` reads from PostgreSQL's ``timestamptz``."""
    return value.astimezone(UTC)


def json_object(value: Any) -> dict[str, Any]:
    """A JSON object column as the driver returns it (SQLite: its text; asyncpg: already
    decoded), as the ``JSON`` type reads it."""
    if isinstance(value, dict):
        return dict(value)
    if value == "{}":
        return {}
    decoded: dict[str, Any] = json.loads(value)  # as the engine's json_deserializer
    return decoded


def json_list(value: Any) -> list[Any]:
    """A JSON array column as the driver returns it (SQLite: its text; asyncpg: already
    decoded), as the ``JSON`` type reads it."""
    if isinstance(value, list):
        return value
    if value == "[]":
        return []
    decoded: list[Any] = json.loads(value)
    return decoded


class JidType(TypeDecorator[Jid]):
    """A ``Jid`` stored as its text form, ``user@server``."""

    impl = String(128)
    cache_ok = True

    def process_bind_param(self, value: Jid | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Jid | None:
        if value is None:
            return None
        return jid_of(str(value))


@functools.lru_cache(maxsize=16_384)
def jid_of(text: str) -> Jid:
    """The ``Jid`` of a stored text, shared (a ``Jid`` is immutable): validating the same
    addresses again on every row read was a tenth of a batched contact look-up's CPU
    (bench/live_ingest.py)."""
    user, _, server = text.partition("@")
    return Jid(user, server)

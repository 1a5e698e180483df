"""SQLite statements take one round trip to the connection's thread (``onehop``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from whatsgate.adapters.sql.database import create_engine_for
from whatsgate.adapters.sql.onehop import OneHopConnection


async def test_each_statement_is_one_round_trip_and_answers_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    hand_over = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", "?"))
        return await hand_over(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            assert isinstance(raw.driver_connection, OneHopConnection)
            await connection.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
            trips.clear()
            inserted = await connection.execute(
                text("INSERT INTO t (a, b) VALUES (:a, :b)"),
                [{"a": 1, "b": "one"}, {"a": 2, "b": "two"}, {"a": 3, "b": "three"}],
            )
            assert inserted.rowcount == 3
            rows = (await connection.execute(text("SELECT a, b FROM t ORDER BY a"))).all()
            assert [tuple(r) for r in rows] == [(1, "one"), (2, "two"), (3, "three")]
            returned = await connection.execute(
                text("INSERT INTO t (b) VALUES ('four') RETURNING a")
            )
            assert returned.scalar_one() == 4
            assert trips == ["_call", "_call", "_call"]  # one each, rows included
            await connection.commit()
            assert trips[3:] == ["commit"]
        trips.clear()
        async with engine.connect() as connection:
            count = (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one()
            assert count == 4
            await connection.rollback()
        # Reads open no transaction: neither the rollback nor the pool's on return cost a trip.
        assert trips == ["_call"]
        async with engine.connect() as connection:
            await connection.execute(text("INSERT INTO t (b) VALUES ('five')"))
            await connection.rollback()  # a write is rolled back, for real
            count = (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one()
            assert count == 4
            with pytest.raises(IntegrityError, match="UNIQUE constraint failed"):
                await connection.execute(text("INSERT INTO t (a, b) VALUES (1, 'again')"))
    finally:
        await engine.dispose()


async def test_a_statement_armed_to_commit_commits_in_its_own_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    hand_over = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", "?"))
        return await hand_over(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as connection:
            await connection.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
            await connection.commit()
            raw = (await connection.get_raw_connection()).driver_connection
            assert isinstance(raw, OneHopConnection)
            await connection.execute(text("INSERT INTO t (a, b) VALUES (1, 'one')"))
            raw.commit_with_next_statement()
            trips.clear()
            returned = await connection.execute(
                text("INSERT INTO t (b) VALUES ('two') RETURNING a")
            )
            assert returned.scalar_one() == 2
            assert not raw.commit_next
            await connection.commit()  # nothing left to commit: no round trip
            assert trips == ["_call"]
            # Armed, a failing statement commits nothing (and rolls back as before).
            await connection.execute(text("INSERT INTO t (a, b) VALUES (3, 'three')"))
            raw.commit_with_next_statement()
            with pytest.raises(IntegrityError):
                await connection.execute(text("INSERT INTO t (a, b) VALUES (1, 'again')"))
            assert not raw.commit_next
            await connection.rollback()
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT a, b FROM t ORDER BY a"))).all()
            assert [tuple(r) for r in rows] == [(1, "one"), (2, "two")]
    finally:
        await engine.dispose()

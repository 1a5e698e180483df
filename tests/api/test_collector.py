"""The server keeps what start-up built out of the garbage collector's full collections."""

from __future__ import annotations

import gc
from pathlib import Path

from litestar.testing import AsyncTestClient

from whatsgate.testing import FakeEngine, MemoryStore

from .conftest import make_app


async def test_start_up_objects_are_frozen_while_the_server_runs(
    tmp_path: Path, engine: FakeEngine, store: MemoryStore
) -> None:
    """Full collections walked every object start-up built (~180,000), stopping the event
    loop for 70-115 ms each, ten times a REST benchmark run; frozen, they walk only what
    requests made since. A stopped server makes them collectable again."""
    app = make_app(tmp_path, engine, store)
    assert gc.get_freeze_count() == 0
    async with AsyncTestClient(app) as client:
        assert (await client.get("/health")).status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0

"""Runtime start-up failures are clear, and leave nothing running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from whatsgate.domain.errors import FeatureUnavailable
from whatsgate.entrypoints.runtime import Runtime
from whatsgate.entrypoints.settings import Settings


async def test_a_missing_neonize_says_to_try_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "whatsgate.adapters.neonize.engine", None)
    settings = Settings(engine="neonize", data_dir=tmp_path, database_url="memory://")
    with pytest.raises(FeatureUnavailable, match="--engine sandbox"):
        await Runtime.start(settings)

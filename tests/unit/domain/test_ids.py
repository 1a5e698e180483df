from __future__ import annotations

import time
import uuid

from whatsgate.domain.ids import new_id


def test_ids_are_canonical_uuid7_strings_in_creation_order() -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(5_000)]  # many within one millisecond
    after_ms = time.time_ns() // 1_000_000
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in (ids[0], ids[-1]):
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical lower-case 8-4-4-4-12
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms + 1

from __future__ import annotations

import os
import time
import uuid

from whatsgate.domain.ids import new_id


def test_ids_are_canonical_uuid7_strings_in_creation_order() -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(5_000)]  # many within one millisecond
    after_ms = time.time_ns() // 1_000_000
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical lower-case 8-4-4-4-12
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms + 1
    # The variant digit carries two random bits: all four values turn up.
    assert {text[19] for text in ids} == set("89ab")


def test_a_forked_child_draws_its_own_random_bits() -> None:
    """Random bits are drawn from the OS in batches; a child forked mid-batch must not hand
    out the bits its parent will."""
    new_id()  # a batch drawn and started in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = new_id()
    assert len(child) == 36
    assert child[19:] != parent[19:]  # variant and 62 random bits

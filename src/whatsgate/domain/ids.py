"""Identifiers: time-ordered, application-generated, opaque strings.

Ids are made here rather than by the database so bulk inserts need no ``RETURNING`` round trip
per row, and so that sorting by id sorts by creation time (UUIDv7 layout, RFC 9562).
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = -1
_counter = 0
#: The first 14 characters of every id of ``_last_ms``: its 48 bits and the version, ``7``.
_prefix = ""


def new_id() -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds, then a counter and random bits.

    Ids made in the same process are strictly increasing, even within one millisecond.
    """
    global _last_ms, _counter, _prefix
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter >= 1 << 12:  # counter exhausted: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = 0
        if ms != _last_ms:
            stamp = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
            _prefix = f"{stamp[:8]}-{stamp[8:]}-7"
            _last_ms = ms
        prefix, counter = _prefix, _counter
    rand = int.from_bytes(os.urandom(8), "big")
    # The canonical 8-4-4-4-12 form, written directly: the variant (0b10) and 62 random bits
    # make the last 16 hex digits.
    tail = f"{rand & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000:016x}"
    return f"{prefix}{counter:03x}-{tail[:4]}-{tail[4:]}"

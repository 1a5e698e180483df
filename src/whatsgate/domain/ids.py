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
#: Random bits from ``os.urandom`` as hex digits, 16 per id: one system call per 512 ids (on
#: a busy machine the call per id was a tenth of a history import's message construction).
_POOL_SIZE = 16 * 512
_pool = ""
_taken = _POOL_SIZE
#: The variant digit (``10xx`` in binary) carrying two random bits of a random hex digit.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _forget_pool() -> None:
    """A forked child must not hand out the random bits its parent will."""
    global _pool, _taken
    _pool, _taken = "", _POOL_SIZE


os.register_at_fork(after_in_child=_forget_pool)


def new_id() -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds, then a counter and random bits.

    Ids made in the same process are strictly increasing, even within one millisecond.
    """
    global _last_ms, _counter, _prefix, _pool, _taken
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
        if _taken >= _POOL_SIZE:
            _pool, _taken = os.urandom(_POOL_SIZE // 2).hex(), 0
        rand = _pool[_taken : _taken + 16]
        _taken += 16
    # The canonical 8-4-4-4-12 form, written directly: the variant and 62 random bits make
    # the last 16 hex digits.
    return f"{prefix}{counter:03x}-{_VARIANT[rand[0]]}{rand[1:4]}-{rand[4:]}"

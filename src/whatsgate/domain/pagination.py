"""Opaque cursors for keyset pagination: a sort key and an id, base64-encoded."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from whatsgate.domain.errors import InvalidCursor


def encode_cursor(at: datetime | None, item_id: str) -> str:
    stamp = at.isoformat() if at is not None else ""
    return base64.urlsafe_b64encode(f"{stamp}|{item_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, sep, item_id = raw.partition("|")
        if not sep or not item_id:
            raise ValueError(cursor)
        return (datetime.fromisoformat(stamp) if stamp else None), item_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor(cursor=cursor) from exc

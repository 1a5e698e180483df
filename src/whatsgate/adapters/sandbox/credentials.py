"""The sandbox's device store: one small JSON file per paired session.

``<data_dir>/sandbox/<session id>.json`` holds ``{"jid", "lid", "push_name"}``. It plays the
part of neonize's device store: while it exists the session reconnects without a QR; logout
and ``forget`` delete it; a file that cannot be read is reported as unreadable credentials.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from whatsgate.domain.errors import InvalidInput, WhatsgateError
from whatsgate.domain.jid import Jid

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")


class CredentialsError(Exception):
    """The stored credentials exist but cannot be read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    jid: Jid
    lid: Jid | None = None
    push_name: str | None = None


class CredentialStore:
    def __init__(self, data_dir: Path | str) -> None:
        self.root = Path(data_dir) / "sandbox"

    def path(self, session_id: str) -> Path:
        if not _SAFE_ID.match(session_id):
            raise InvalidInput(f"{session_id!r} is not a usable session id.", value=session_id)
        return self.root / f"{session_id}.json"

    def load(self, session_id: str) -> Credentials | None:
        """The stored credentials, None when the session never paired (or was forgotten).

        Raises ``CredentialsError`` for a file that is not what ``save`` writes."""
        path = self.path(session_id)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CredentialsError(f"{path}: {exc}") from exc
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("jid"), str):
                raise CredentialsError(f"{path}: no account JID")
            lid = data.get("lid")
            push_name = data.get("push_name")
            return Credentials(
                jid=Jid.parse(data["jid"]),
                lid=Jid.parse(lid) if isinstance(lid, str) else None,
                push_name=push_name if isinstance(push_name, str) else None,
            )
        except (ValueError, WhatsgateError) as exc:
            raise CredentialsError(f"{path}: {exc}") from exc

    def save(self, session_id: str, credentials: Credentials) -> None:
        path = self.path(session_id)
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "jid": str(credentials.jid),
            "lid": str(credentials.lid) if credentials.lid else None,
            "push_name": credentials.push_name,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, path)

    def delete(self, session_id: str) -> None:
        self.path(session_id).unlink(missing_ok=True)

"""Tenants and the people in them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from whatsgate.domain.errors import InvalidInput
from whatsgate.domain.ids import new_id

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Role(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"


@dataclass(eq=False, slots=True, kw_only=True)
class Organization:
    """A tenant. Users, sessions and everything under them belong to exactly one."""

    id: str = field(default_factory=new_id)
    name: str
    created_at: datetime

    def __post_init__(self) -> None:
        self.name = self.name.strip()
        if not 1 <= len(self.name) <= 200:
            raise InvalidInput("An organization needs a name of 1 to 200 characters.")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Organization) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


@dataclass(eq=False, slots=True, kw_only=True)
class User:
    """Someone who uses the gateway: an admin of the organization or an agent (attendant)."""

    id: str = field(default_factory=new_id)
    organization_id: str
    name: str
    email: str | None = None
    role: Role = Role.AGENT
    created_at: datetime

    def __post_init__(self) -> None:
        self.name = self.name.strip()
        if not 1 <= len(self.name) <= 200:
            raise InvalidInput("A user needs a name of 1 to 200 characters.")
        if self.email is not None and not _EMAIL.match(self.email):
            raise InvalidInput(f"{self.email!r} is not an email address.")

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

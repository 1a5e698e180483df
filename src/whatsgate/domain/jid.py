"""WhatsApp addresses (JIDs) and phone numbers.

``Jid.parse`` accepts what people type (``+55 (66) 99628-5154``, ``0055 66 99628 5154``) and what
WhatsApp sends (``5566996285154:12@s.whatsapp.net``, ``1203...@g.us``, ``2716...@lid``). Phone
numbers keep their digits as given: no country-specific digit is dropped or added, since the
engine may later resolve a number to the JID WhatsApp reports for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import phonenumbers

from whatsgate.domain.errors import InvalidJid, InvalidPhoneNumber

USER_SERVER = "s.whatsapp.net"
GROUP_SERVER = "g.us"
LID_SERVER = "lid"
BROADCAST_SERVER = "broadcast"
NEWSLETTER_SERVER = "newsletter"
_SERVERS = frozenset({USER_SERVER, GROUP_SERVER, LID_SERVER, BROADCAST_SERVER, NEWSLETTER_SERVER})
_LEGACY_USER_SERVER = "c.us"

_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-/]+$")
_GROUP_USER = re.compile(r"^\d{5,32}(-\d{5,20})?$")
_DIGITS = re.compile(r"^\d{1,32}$")
_BROADCAST_USER = re.compile(r"^(status|\d{5,32})$")


def normalize_phone(text: str) -> str:
    """The digits of a phone number given in any usual human format, country code first.

    Raises ``InvalidPhoneNumber`` for anything that is not a possible international number.
    """
    raw = text.strip()
    if not raw or not _PHONE_CHARS.match(raw):
        raise InvalidPhoneNumber(f"{text!r} is not a phone number.", value=text)
    if raw.count("+") > 1 or ("+" in raw and not raw.startswith("+")):
        raise InvalidPhoneNumber(f"{text!r} is not a phone number.", value=text)
    digits = re.sub(r"\D", "", raw)
    if not raw.startswith("+") and digits.startswith("00"):
        digits = digits[2:]  # the international call prefix most of the world dials
    if not 7 <= len(digits) <= 15:
        raise InvalidPhoneNumber(
            f"{text!r} has {len(digits)} digits; an international number has 7 to 15.",
            value=text,
        )
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{text!r} is not a phone number.", value=text) from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber(
            f"{text!r} is not a possible number for country code +{parsed.country_code}.",
            value=text,
        )
    return digits


@dataclass(frozen=True, slots=True)
class Jid:
    """A WhatsApp address: ``user@server``, device and agent suffixes stripped."""

    user: str
    server: str

    USER_SERVER: ClassVar[str] = USER_SERVER
    GROUP_SERVER: ClassVar[str] = GROUP_SERVER
    LID_SERVER: ClassVar[str] = LID_SERVER

    def __post_init__(self) -> None:
        if self.server not in _SERVERS:
            raise InvalidJid(f"Unknown WhatsApp server {self.server!r}.", value=str(self))
        ok = {
            USER_SERVER: _DIGITS,
            LID_SERVER: _DIGITS,
            GROUP_SERVER: _GROUP_USER,
            BROADCAST_SERVER: _BROADCAST_USER,
            NEWSLETTER_SERVER: _DIGITS,
        }[self.server].match(self.user)
        if not ok:
            raise InvalidJid(f"{self.user!r} is not a valid {self.server} address.")

    @classmethod
    def parse(cls, text: str) -> Jid:
        """A JID from a JID string or a phone number in any usual format."""
        value = text.strip()
        if "@" not in value:
            return cls.phone(value)
        user, _, server = value.partition("@")
        server = server.lower()
        if server == _LEGACY_USER_SERVER:
            server = USER_SERVER
        # "user.agent:device@server": identity is the user part alone.
        user = user.split(":", 1)[0]
        if server in (USER_SERVER, LID_SERVER):
            user = user.split(".", 1)[0]
        if not user:
            raise InvalidJid(f"{text!r} has no user part.", value=text)
        return cls(user, server)

    @classmethod
    def phone(cls, number: str) -> Jid:
        """The user JID of a phone number (``5566996285154@s.whatsapp.net``)."""
        return cls(normalize_phone(number), USER_SERVER)

    @classmethod
    def group(cls, group_id: str) -> Jid:
        return cls(group_id, GROUP_SERVER)

    @property
    def is_group(self) -> bool:
        return self.server == GROUP_SERVER

    @property
    def is_lid(self) -> bool:
        return self.server == LID_SERVER

    @property
    def is_user(self) -> bool:
        return self.server == USER_SERVER

    @property
    def phone_number(self) -> str | None:
        """The digits of the phone number, for a phone-number JID."""
        return self.user if self.server == USER_SERVER else None

    def __str__(self) -> str:
        return f"{self.user}@{self.server}"

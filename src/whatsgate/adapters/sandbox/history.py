"""The history a freshly paired sandbox phone pushes: a few chats and a group, spread over
the last 40 days (by default), some messages received and some sent from the phone."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from whatsgate.domain.jid import Jid
from whatsgate.domain.message import MessageKind
from whatsgate.ports.engine import ContactInfo, IncomingMessage


@dataclass(frozen=True, slots=True)
class SandboxContact:
    name: str
    phone: str

    @property
    def jid(self) -> Jid:
        return Jid.phone(self.phone)

    @property
    def lid(self) -> Jid:
        return lid_of(self.jid)


#: The people of the sandbox's address book.
CONTACTS = (
    SandboxContact("Ana Souza", "5511987651001"),
    SandboxContact("Bruno Lima", "5511987651002"),
    SandboxContact("Carla Dias", "5521987651003"),
    SandboxContact("Diego Rocha", "14155551004"),
)
GROUP = Jid.group("120363025246125486")
GROUP_NAME = "Sandbox team"

_LINES = (
    "Hi! Is the order on its way?",
    "Thanks, got it.",
    "Can we talk tomorrow at 10?",
    "Sending the invoice now.",
    "👍",
    "What time do you open on Saturday?",
    "Perfect, see you then.",
    "Could you send me the price list?",
)


def lid_of(jid: Jid) -> Jid:
    """The hidden id (LID) the sandbox gives a phone number: stable, 15 digits."""
    seed = random.Random(f"lid:{jid.user}")
    return Jid(str(seed.randrange(10**14, 10**15)), Jid.LID_SERVER)


def message_id(rng: random.Random) -> str:
    """A WhatsApp-looking message id as phones make them (``3A`` + 18 hex digits)."""
    return "3A" + "".join(rng.choice("0123456789ABCDEF") for _ in range(18))


def history_contacts() -> tuple[ContactInfo, ...]:
    return tuple(
        ContactInfo(jid=c.jid, lid=c.lid, name=c.name, push_name=c.name.split()[0])
        for c in CONTACTS
    )


def build_history(
    *,
    account: Jid,
    end: datetime,
    count: int,
    days: int,
    rng: random.Random,
    chat: Jid | None = None,
) -> list[IncomingMessage]:
    """``count`` text messages, oldest first, evenly spread over the ``days`` before ``end``.

    Chats take turns: each contact, then the group. Every third message was sent from the
    phone (``from_me``). With ``chat``, every message belongs to that chat."""
    chats: list[Jid] = [chat] if chat is not None else [*(c.jid for c in CONTACTS), GROUP]
    by_jid = {c.jid: c for c in CONTACTS}
    span = timedelta(days=days)
    messages: list[IncomingMessage] = []
    for i in range(count):
        chat_jid = chats[i % len(chats)]
        at = end - span + span * ((i + 0.5) / count)
        from_me = i % 3 == 0
        sender: Jid = account
        sender_alt: Jid | None = None
        push_name: str | None = None
        if not from_me:
            member = by_jid.get(chat_jid) or CONTACTS[i % len(CONTACTS)]
            sender, sender_alt, push_name = member.jid, member.lid, member.name.split()[0]
            if chat_jid.is_group:
                sender, sender_alt = member.lid, member.jid  # groups address members by LID
        messages.append(
            IncomingMessage(
                wa_id=message_id(rng),
                chat=chat_jid,
                sender=sender,
                sender_alt=sender_alt,
                from_me=from_me,
                push_name=push_name,
                timestamp=at,
                kind=MessageKind.TEXT,
                text=f"{_LINES[i % len(_LINES)]} (#{i + 1})",
                chat_name=GROUP_NAME if chat_jid == GROUP else None,
            )
        )
    return messages

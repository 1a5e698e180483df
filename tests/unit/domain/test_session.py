from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from whatsgate.domain.errors import InvalidInput, InvalidSessionTransition
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import Session, SessionStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def new_session() -> Session:
    return Session(organization_id="o", owner_id="u", name="s", created_at=NOW)


def test_each_transition_records_when_and_why() -> None:
    session = new_session()
    change = session.start(NOW)
    assert change is not None
    assert (change.previous, change.current) == (SessionStatus.STOPPED, SessionStatus.STARTING)
    later = NOW + timedelta(seconds=5)
    session.show_qr("2@x", later + timedelta(seconds=60), later)
    session.mark_connected(later, jid=Jid.parse("5566996285154"))
    dropped = session.mark_reconnecting("network", later)
    assert dropped is not None and dropped.reason == "network"
    assert (session.status, session.status_reason, session.status_changed_at) == (
        SessionStatus.RECONNECTING,
        "network",
        later,
    )
    assert session.mark_reconnecting("keepalive", later) is None  # no change, reason kept fresh
    assert session.status_reason == "keepalive"


@pytest.mark.parametrize(
    ("prepare", "attempt"),
    [
        (lambda s: None, lambda s: s.mark_connected(NOW)),
        (lambda s: None, lambda s: s.mark_reconnecting("network", NOW)),
        (lambda s: None, lambda s: s.mark_banned(None, NOW)),
        (lambda s: None, lambda s: s.show_qr("2@x", NOW, NOW)),
        (lambda s: s.mark_logged_out("x", NOW), lambda s: s.mark_failed("y", NOW)),
        (lambda s: s.start(NOW) and s.mark_replaced(NOW), lambda s: s.mark_connected(NOW)),
    ],
)
def test_a_disallowed_transition_raises_and_changes_nothing(prepare, attempt) -> None:  # type: ignore[no-untyped-def]
    session = new_session()
    prepare(session)
    before = (session.status, session.status_reason, session.status_changed_at)
    with pytest.raises(InvalidSessionTransition) as info:
        attempt(session)
    assert info.value.code == "invalid_session_transition"
    assert (session.status, session.status_reason, session.status_changed_at) == before


def test_names_are_validated() -> None:
    with pytest.raises(InvalidInput):
        Session(organization_id="o", owner_id="u", name=" ", created_at=NOW)
    with pytest.raises(InvalidInput):
        new_session().rename("x" * 101)

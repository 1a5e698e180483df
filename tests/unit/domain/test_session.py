from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from whatsgate.domain import session as session_module
from whatsgate.domain.errors import InvalidInput, InvalidSessionTransition
from whatsgate.domain.jid import Jid
from whatsgate.domain.session import Session, SessionStatus, iso

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


def test_iso_formats_every_time_as_the_api_does_memo_or_not() -> None:
    utc = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    assert iso(None) is None
    for _ in range(2):  # formatted, then answered from the memo
        assert iso(utc) == "2026-03-04T05:06:07.000890Z"
        assert iso(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)) == "2026-03-04T05:06:07Z"
        assert (
            iso(utc.astimezone(timezone(timedelta(hours=-3)))) == "2026-03-04T02:06:07.000890-03:00"
        )
        assert iso(datetime(2026, 3, 4, 5, 6, 7)) == "2026-03-04T05:06:07"
    # Many distinct times: the memo stays bounded and each is still its own text.
    times = [utc + timedelta(seconds=i) for i in range(3 * session_module._ISO_MEMO_SIZE)]
    assert [iso(t) for t in times] == [t.isoformat().replace("+00:00", "Z") for t in times]
    assert len(session_module._ISO_MEMO) <= session_module._ISO_MEMO_SIZE

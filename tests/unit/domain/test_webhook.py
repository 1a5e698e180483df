from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from whatsgate.domain.errors import InvalidInput
from whatsgate.domain.events import StoredEvent
from whatsgate.domain.webhook import (
    DeliveryNotReplayable,
    DeliveryStatus,
    InvalidWebhookUrl,
    RetrySchedule,
    Webhook,
    WebhookDelivery,
    is_public_address,
    is_retryable,
    sign,
    validate_webhook_url,
    verify_signature,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret-s3cret-s3cret"
OLD_SECRET = "old-secret-old-secret"
BODY = b'{"id":"7","event":"message.new"}'


# -- signature ------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    header = sign([SECRET], 1_700_000_000, BODY)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_a_receiver_verifies_a_fresh_signature() -> None:
    header = sign([SECRET], 1_700_000_000, BODY)
    assert verify_signature(header, BODY, SECRET, now=1_700_000_030)


@pytest.mark.parametrize(
    ("body", "secret", "now"),
    [
        (BODY + b" ", SECRET, 1_700_000_000),  # body changed
        (BODY, "another-secret-entirely", 1_700_000_000),  # wrong secret
        (BODY, SECRET, 1_700_000_000 + 301),  # replayed after the tolerance
        (BODY, SECRET, 1_700_000_000 - 301),  # from the future
    ],
)
def test_a_receiver_refuses_a_tampered_foreign_or_stale_signature(
    body: bytes, secret: str, now: int
) -> None:
    header = sign([SECRET], 1_700_000_000, BODY)
    assert not verify_signature(header, body, secret, now=now)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=1700000000", "t=x,v1=abc"])
def test_a_receiver_refuses_a_missing_or_malformed_header(header: str | None) -> None:
    assert not verify_signature(header, BODY, SECRET, now=1_700_000_000)


def test_during_a_rotation_both_secrets_sign_and_either_verifies() -> None:
    header = sign([SECRET, OLD_SECRET], 1_700_000_000, BODY)
    assert header.count("v1=") == 2
    assert verify_signature(header, BODY, OLD_SECRET, now=1_700_000_000)
    assert verify_signature(header, BODY, SECRET, now=1_700_000_000)
    assert verify_signature(header, BODY, [SECRET, OLD_SECRET], now=1_700_000_000)
    assert not verify_signature(header, BODY, "not-one-of-them-at-all", now=1_700_000_000)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(InvalidInput):
        sign([], 1, BODY)


# -- retry rules ----------------------------------------------------------------------------


def test_the_schedule_is_10s_30s_1min_2min_5min_then_every_5min() -> None:
    schedule = RetrySchedule()
    assert [schedule.delay_after(n) for n in range(1, 9)] == [10, 30, 60, 120, 300, 300, 300, 300]


def test_the_schedule_gives_up_once_the_waits_pass_24_hours() -> None:
    schedule = RetrySchedule()
    waited, failures = 0.0, 0
    while (delay := schedule.delay_after(failures + 1)) is not None:
        failures += 1
        waited += delay
    # 10+30+60+120+300 = 520 s, then 286 five-minute waits still fit in 86 400 s.
    assert waited == 520 + 286 * 300
    assert waited <= 24 * 3600 < waited + 300
    assert failures == 5 + 286


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (None, True),
        (500, True),
        (502, True),
        (503, True),
        (408, True),
        (429, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
        (422, False),
        (301, False),
    ],
)
def test_network_errors_5xx_408_and_429_are_retried_other_answers_are_not(
    status: int | None, retryable: bool
) -> None:
    assert is_retryable(status) is retryable


def _delivery() -> WebhookDelivery:
    return WebhookDelivery.new("wh1", 7, T0)


def test_a_2xx_delivers() -> None:
    delivery = _delivery()
    delivery.record(204, None, T0, RetrySchedule())
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.delivered_at == T0
    assert delivery.next_attempt_at is None


def test_a_404_fails_at_once() -> None:
    delivery = _delivery()
    delivery.record(404, None, T0, RetrySchedule())
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.last_error == "HTTP 404"
    assert delivery.next_attempt_at is None


def test_a_503_waits_for_the_next_step() -> None:
    delivery = _delivery()
    delivery.record(503, None, T0, RetrySchedule())
    delivery.record(None, "connection refused", T0 + timedelta(seconds=10), RetrySchedule())
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.attempts == 2
    assert delivery.next_attempt_at == T0 + timedelta(seconds=40)
    assert delivery.last_error == "connection refused"


def test_a_refused_destination_is_not_retried_even_without_a_status() -> None:
    delivery = _delivery()
    delivery.record(None, "private address", T0, RetrySchedule(), retryable=False)
    assert delivery.status is DeliveryStatus.FAILED


def test_past_the_window_the_delivery_is_dead_and_a_replay_starts_over() -> None:
    schedule = RetrySchedule(ladder=(10.0,), window=25.0)
    delivery = _delivery()
    for n in range(3):
        delivery.record(500, None, T0 + timedelta(seconds=10 * n), schedule)
    assert delivery.status is DeliveryStatus.DEAD
    later = T0 + timedelta(hours=30)
    delivery.replay(later)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.attempts == 0
    assert delivery.next_attempt_at == later


def test_only_failed_or_dead_deliveries_are_replayed() -> None:
    delivery = _delivery()
    with pytest.raises(DeliveryNotReplayable):
        delivery.replay(T0)
    delivery.record(200, None, T0, RetrySchedule())
    with pytest.raises(DeliveryNotReplayable):
        delivery.replay(T0)


# -- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost:8000/hook",
        "http://api.localhost/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_private_loopback_and_reserved_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl):
        validate_webhook_url(url)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "example.com/hook", "http:///nohost", "https://u:p@example.com/", ""],
)
def test_urls_that_are_not_plain_http_are_refused(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl):
        validate_webhook_url(url, allow_private=True)


def test_public_urls_pass_and_private_ones_pass_when_allowed() -> None:
    assert validate_webhook_url(" https://hooks.example.com/x ") == "https://hooks.example.com/x"
    assert validate_webhook_url("http://8.8.8.8/x") == "http://8.8.8.8/x"
    assert validate_webhook_url("http://127.0.0.1:9/x", allow_private=True)


def test_public_addresses() -> None:
    assert is_public_address("8.8.8.8")
    assert is_public_address("2606:4700::1111")
    assert not is_public_address("::ffff:10.0.0.1")
    assert not is_public_address("not-an-ip")


# -- webhook --------------------------------------------------------------------------------


def _event(name: str = "message.new", org: str = "o1", session: str = "s1") -> StoredEvent:
    return StoredEvent(id=1, name=name, organization_id=org, session_id=session, occurred_at=T0)


def test_unknown_event_names_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"message\.nwe"):
        Webhook(
            organization_id="o1",
            url="https://x.example",
            events=frozenset({"message.nwe"}),
            created_at=T0,
        )


def test_a_webhook_wants_its_organization_its_session_and_its_events() -> None:
    every = Webhook(organization_id="o1", url="https://x.example", created_at=T0)
    narrow = Webhook(
        organization_id="o1",
        session_id="s1",
        url="https://x.example",
        events=frozenset({"message.status"}),
        created_at=T0,
    )
    assert every.wants(_event())
    assert not every.wants(_event(org="o2"))
    assert narrow.wants(_event("message.status"))
    assert not narrow.wants(_event("message.new"))
    assert not narrow.wants(_event("message.status", session="s2"))
    every.active = False
    assert not every.wants(_event())


def test_a_rotation_keeps_the_new_and_the_current_secret_then_drops_the_old() -> None:
    webhook = Webhook(
        organization_id="o1", url="https://x.example", secrets=(OLD_SECRET,), created_at=T0
    )
    webhook.rotate_secret(SECRET)
    assert webhook.secrets == (SECRET, OLD_SECRET)
    webhook.finish_rotation()
    assert webhook.secrets == (SECRET,)
    assert SECRET not in str(webhook.to_dict())
    assert webhook.to_dict()["signed"] is True


def test_receivers_import_the_check_from_a_short_public_path() -> None:
    from whatsgate import webhooks

    header = webhooks.sign([SECRET], 1_700_000_000, BODY)
    assert webhooks.verify_signature(header, BODY, SECRET, now=1_700_000_100)
    assert webhooks.SIGNATURE_HEADER == "X-Whatsgate-Signature"
    assert webhooks.__all__ == sorted(webhooks.__all__)

"""Webhooks: where events are POSTed, each delivery's retry ladder, and the signature.

A webhook subscribes an URL to the events of an organization (or of one of its sessions).
Every stored event that matches gets one ``WebhookDelivery`` per webhook, tried until the
receiver answers 2xx (``delivered``), answers a 4xx that retrying cannot fix (``failed``),
or the 24-hour retry window is spent (``dead``). Every try is a ``DeliveryAttempt`` line in the
delivery log. A failed or dead delivery can be replayed.

Signing (Stripe's scheme): ``X-Whatsgate-Signature: t=<unix seconds>,v1=<hex>`` where the hex
is HMAC-SHA256 of ``"<t>.<body>"`` under the webhook's secret; during a secret rotation there
is one ``v1=`` per secret. A receiver checks it with ``verify_signature`` (no whatsgate server
needed, only this module), which also refuses a timestamp too far from now: a captured request
replayed later is detected.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from whatsgate.domain.errors import Conflict, InvalidInput, WhatsgateError
from whatsgate.domain.events import EVENT_NAMES, StoredEvent
from whatsgate.domain.ids import new_id
from whatsgate.domain.session import iso

SIGNATURE_HEADER = "X-Whatsgate-Signature"
EVENT_HEADER = "X-Whatsgate-Event"
DELIVERY_HEADER = "X-Whatsgate-Delivery"
#: A receiver refuses signatures older (or newer) than this, in seconds.
DEFAULT_TOLERANCE = 300
#: Secrets accepted at once: the current one, and the previous one during a rotation.
MAX_SECRETS = 2
MAX_URL_LENGTH = 2048


class InvalidWebhookUrl(InvalidInput):
    code = "invalid_webhook_url"
    default_message = "The webhook URL is not a valid public http(s) URL."


class DeliveryNotReplayable(Conflict):
    code = "delivery_not_replayable"
    default_message = "Only a failed or dead delivery can be replayed."


class DeliveryError(WhatsgateError):
    """A delivery attempt got no HTTP answer (network error, timeout). Retried."""

    code = "delivery_error"
    default_message = "The webhook receiver could not be reached."
    retryable: bool = True


class DestinationRefused(DeliveryError):
    """The URL resolved to a loopback, private or reserved address. Not retried."""

    code = "destination_refused"
    default_message = "The webhook URL resolves to an address that is not allowed."
    retryable = False


# -- addresses ------------------------------------------------------------------------------


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast IP; False for loopback, private (RFC 1918, ULA),
    link-local, carrier-grade NAT, multicast, reserved and unspecified addresses, and for an
    IPv4 address hidden in IPv6 (mapped, 6to4) that is one of those. Not an IP: False."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is not None and not is_public_address(str(inner)):
            return False
    return ip.is_global and not ip.is_multicast


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return None


def validate_webhook_url(url: str, *, allow_private: bool = False) -> str:
    """The URL, checked: http or https, a host, no credentials in it, at most 2048
    characters; unless ``allow_private``, no loopback, private, link-local or reserved IP
    literal and no ``localhost`` name. A host name is resolved when a delivery connects, and
    the addresses it resolves to are checked then (DNS can change after this check)."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl("The webhook URL must have 1 to 2048 characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidWebhookUrl(f"Not a valid URL: {exc}.") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhookUrl("A webhook URL must start with http:// or https://.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidWebhookUrl("The webhook URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("Put no credentials in the webhook URL; use a secret.")
    if not allow_private:
        literal = _literal_ip(host)
        local_name = host.lower() == "localhost" or host.lower().endswith(".localhost")
        if local_name or (literal is not None and not is_public_address(literal)):
            raise InvalidWebhookUrl(
                "Webhook URLs on loopback, private or reserved addresses are refused "
                "(set WHATSGATE_WEBHOOKS_ALLOW_PRIVATE to allow them).",
                host=host,
            )
    return url


# -- signature ------------------------------------------------------------------------------


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """The ``X-Whatsgate-Signature`` value: ``t=<timestamp>,v1=<hex>`` with one ``v1`` per
    secret, HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    keys = [s for s in secrets if s]
    if not keys:
        raise InvalidInput("Signing needs at least one secret.")
    return ",".join([f"t={int(timestamp)}", *(f"v1={_digest(k, timestamp, body)}" for k in keys)])


def verify_signature(
    header: str | None,
    body: bytes,
    secrets: str | Iterable[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Check a delivery's ``X-Whatsgate-Signature`` on the receiving side.

    ``body`` is the raw request body, exactly as received (not re-serialized JSON);
    ``secrets`` is your webhook secret (or both during a rotation). True when some ``v1``
    matches some secret and ``t`` is within ``tolerance`` seconds of ``now`` (default: the
    current time), so a captured request replayed later is refused. Comparison is in
    constant time. Use ``X-Whatsgate-Delivery`` to drop duplicates: delivery is at least once.

        from whatsgate.domain.webhook import verify_signature

        if not verify_signature(request.headers.get("X-Whatsgate-Signature"), raw, SECRET):
            return 400
    """
    if not header:
        return False
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = [_digest(k, timestamp, body) for k in keys if k]
    return any(hmac.compare_digest(e, c) for e in expected for c in candidates)


# -- the webhook ----------------------------------------------------------------------------


def validate_events(events: Iterable[str]) -> frozenset[str]:
    """The event names, each one of ``EVENT_NAMES``; empty means every event."""
    names = frozenset(e.strip() for e in events)
    unknown = sorted(names - set(EVENT_NAMES))
    if unknown:
        raise InvalidInput(
            f"Unknown event name(s): {', '.join(unknown)}.",
            field="events",
            allowed=list(EVENT_NAMES),
        )
    return names


def validate_secrets(secrets: Iterable[str]) -> tuple[str, ...]:
    found = tuple(secrets)
    if len(found) > MAX_SECRETS:
        raise InvalidInput("A webhook has at most two secrets (the new and the old one).")
    for secret in found:
        if not 16 <= len(secret) <= 256:
            raise InvalidInput("A webhook secret has 16 to 256 characters.", field="secret")
    return found


@dataclass(eq=False, slots=True, kw_only=True)
class Webhook:
    """An URL subscribed to events of an organization, or of one of its sessions.

    - ``events`` empty means every event; otherwise only those names (``EVENT_NAMES``).
    - ``secrets`` empty means deliveries are not signed (there is no default secret); one
      secret signs; two sign with both while a rotation is under way.
    """

    id: str = field(default_factory=new_id)
    organization_id: str
    session_id: str | None = None
    url: str
    events: frozenset[str] = frozenset()
    secrets: tuple[str, ...] = ()
    active: bool = True
    created_at: datetime

    def __post_init__(self) -> None:
        self.events = validate_events(self.events)
        self.secrets = validate_secrets(self.secrets)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Webhook) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def signed(self) -> bool:
        return bool(self.secrets)

    def wants(self, event: StoredEvent) -> bool:
        """Whether ``event`` is delivered to this webhook."""
        return (
            self.active
            and event.organization_id == self.organization_id
            and self.session_id in (None, event.session_id)
            and (not self.events or event.name in self.events)
        )

    def rotate_secret(self, new_secret: str) -> None:
        """Sign with ``new_secret`` and the current secret until ``finish_rotation``."""
        self.secrets = validate_secrets((new_secret, *self.secrets[:1]))

    def finish_rotation(self) -> None:
        """Drop the old secret: sign with the newest only."""
        self.secrets = self.secrets[:1]

    def to_dict(self) -> dict[str, object]:
        """The public form: secrets are never shown, only whether there are any."""
        return {
            "id": self.id,
            "organization_id": self.organization_id,
            "session_id": self.session_id,
            "url": self.url,
            "events": sorted(self.events),
            "signed": self.signed,
            "active": self.active,
            "created_at": iso(self.created_at),
        }


# -- deliveries -----------------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    #: The receiver answered a 4xx that retrying cannot fix (not 408 or 429), or a 3xx
    #: (redirects are not followed).
    FAILED = "failed"
    #: Retried for 24 hours without success.
    DEAD = "dead"


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300


def is_retryable(status_code: int | None) -> bool:
    """Whether a failed attempt is worth retrying: a network error (no status), a 5xx, 408
    (timeout) or 429 (slow down). Every other answer fails the delivery at once."""
    return status_code is None or status_code >= 500 or status_code in (408, 429)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySchedule:
    """Waits after each failed attempt: 10 s, 30 s, 1 min, 2 min, 5 min, then every 5 min
    (the last step repeats) while the waits add up to at most ``window`` (24 h)."""

    ladder: tuple[float, ...] = (10.0, 30.0, 60.0, 120.0, 300.0)
    window: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not self.ladder or any(step <= 0 for step in self.ladder) or self.window < 0:
            raise InvalidInput("A retry schedule needs positive steps and a window.")

    def _waited(self, failures: int) -> float:
        """The waits after the first ``failures`` failed attempts, added up."""
        head = sum(self.ladder[: min(failures, len(self.ladder))])
        return head + max(0, failures - len(self.ladder)) * self.ladder[-1]

    def delay_after(self, failures: int) -> float | None:
        """The wait after the ``failures``-th failed attempt (1-based); None when the window
        is spent and the delivery is dead."""
        if failures < 1:
            return 0.0
        if self._waited(failures) > self.window:
            return None
        return self.ladder[min(failures, len(self.ladder)) - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryAttempt:
    """One line of the delivery log: when, what came back, how long it took."""

    id: str = field(default_factory=new_id)
    delivery_id: str
    #: 1-based, counted over the whole life of the delivery (replays included).
    attempt: int
    at: datetime
    status_code: int | None = None
    error: str | None = None
    latency_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and is_success(self.status_code)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "attempt": self.attempt,
            "at": iso(self.at),
            "status_code": self.status_code,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "ok": self.ok,
        }


@dataclass(eq=False, slots=True, kw_only=True)
class WebhookDelivery:
    """One event on its way to one webhook. Its ``event_id`` is the ``X-Whatsgate-Delivery``
    header, the same on every retry, so a receiver can drop duplicates.

    ``attempts`` counts the tries of the current round (a replay starts a new one); the log
    keeps every try."""

    id: str = field(default_factory=new_id)
    webhook_id: str
    event_id: int
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebhookDelivery) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def new(cls, webhook_id: str, event_id: int, at: datetime) -> WebhookDelivery:
        return cls(
            webhook_id=webhook_id,
            event_id=event_id,
            next_attempt_at=at,
            created_at=at,
            updated_at=at,
        )

    @property
    def is_pending(self) -> bool:
        return self.status is DeliveryStatus.PENDING

    def record(
        self,
        status_code: int | None,
        error: str | None,
        at: datetime,
        schedule: RetrySchedule,
        *,
        retryable: bool | None = None,
    ) -> None:
        """Record the outcome of an attempt that ended at ``at``: a 2xx delivers; a
        retryable failure waits for the next step of ``schedule`` (or is dead past its
        window); any other answer fails at once. ``retryable`` overrides the rule of
        ``is_retryable`` (a refused destination is not retried)."""
        self.attempts += 1
        self.last_status_code = status_code
        self.updated_at = at
        if status_code is not None and is_success(status_code):
            self.status = DeliveryStatus.DELIVERED
            self.delivered_at = at
            self.last_error = None
            self.next_attempt_at = None
            return
        self.last_error = error or f"HTTP {status_code}"
        if not (is_retryable(status_code) if retryable is None else retryable):
            self.status = DeliveryStatus.FAILED
            self.next_attempt_at = None
            return
        delay = schedule.delay_after(self.attempts)
        if delay is None:
            self.status = DeliveryStatus.DEAD
            self.next_attempt_at = None
        else:
            self.next_attempt_at = at + timedelta(seconds=delay)

    def claim(self, until: datetime) -> None:
        """Taken by a worker: not due again before ``until`` unless its attempt is recorded
        first (a worker that dies mid-attempt only delays the delivery)."""
        self.next_attempt_at = until

    def give_up(self, reason: str, at: datetime) -> None:
        """Fail without an attempt (the event or the webhook is gone)."""
        self.status = DeliveryStatus.FAILED
        self.last_error = reason
        self.next_attempt_at = None
        self.updated_at = at

    def replay(self, at: datetime) -> None:
        """A failed or dead delivery starts over: pending now, with a fresh retry window."""
        if self.status not in (DeliveryStatus.FAILED, DeliveryStatus.DEAD):
            raise DeliveryNotReplayable(delivery_id=self.id, status=str(self.status))
        self.status = DeliveryStatus.PENDING
        self.attempts = 0
        self.next_attempt_at = at
        self.updated_at = at

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event_id": str(self.event_id),
            "status": str(self.status),
            "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "delivered_at": iso(self.delivered_at),
        }

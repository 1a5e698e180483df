"""For the receiving end of whatsgate webhooks: check a delivery's signature.

    from whatsgate.webhooks import SIGNATURE_HEADER, verify_signature

    raw = await request.body()                      # the raw bytes, not re-encoded JSON
    if not verify_signature(request.headers.get(SIGNATURE_HEADER), raw, WEBHOOK_SECRET):
        return Response(status_code=401)            # forged, altered or replayed later
    delivery_id = request.headers[DELIVERY_HEADER]  # the same on every retry: skip repeats

Deliveries are at least once: answer 2xx quickly and drop a ``X-Whatsgate-Delivery`` you
have already handled. Answers 5xx, 408 and 429 (and no answer) are retried for 24 hours;
any other 4xx fails the delivery at once.
"""

from whatsgate.domain.webhook import (
    DEFAULT_TOLERANCE,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    sign,
    verify_signature,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "sign",
    "verify_signature",
]

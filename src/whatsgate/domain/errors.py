"""Every error whatsgate raises on purpose, each with a stable ``code``.

The HTTP and socket.io adapters turn these into statuses; nothing else does. The codes are
part of the public contract: clients branch on them, so they never change once published.

    WhatsgateError
    ├── InvalidInput                      invalid_input            (bad data from a caller)
    │   ├── InvalidPhoneNumber            invalid_phone_number
    │   ├── InvalidJid                    invalid_jid
    │   ├── InvalidMessage                invalid_message
    │   ├── MediaTooLarge                 media_too_large
    │   └── InvalidCursor                 invalid_cursor
    ├── NotFound                          not_found
    │   ├── OrganizationNotFound          organization_not_found
    │   ├── UserNotFound                  user_not_found
    │   ├── SessionNotFound               session_not_found
    │   ├── ConversationNotFound          conversation_not_found
    │   ├── ContactNotFound               contact_not_found
    │   ├── MessageNotFound               message_not_found
    │   ├── MediaNotFound                 media_not_found
    │   └── WebhookNotFound               webhook_not_found
    ├── Conflict                          conflict
    │   ├── InvalidSessionTransition      invalid_session_transition
    │   ├── SessionAlreadyConnected       already_connected
    │   ├── SessionNotConnected           session_not_connected
    │   ├── SessionNotRunning             session_not_running
    │   ├── QrNotReady                    qr_not_ready
    │   ├── AlreadyExists                 already_exists
    │   └── WriteConflict                 write_conflict           (ran again where it can)
    ├── AuthError
    │   ├── NotAuthenticated              not_authenticated
    │   └── PermissionDenied              permission_denied
    └── EngineError                       engine_error             (WhatsApp or the engine failed)
        ├── SendFailed                    send_failed              (retryable)
        ├── RateLimited                   rate_limited             (pause, do not spend attempts)
        ├── EngineTimeout                 engine_timeout
        ├── CredentialsCorrupted          credentials_corrupted
        └── FeatureUnavailable            feature_unavailable      (e.g. ffmpeg missing)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar


class WhatsgateError(Exception):
    """Base of every whatsgate error: a stable ``code``, a human message, optional details."""

    code: ClassVar[str] = "error"
    default_message: ClassVar[str] = "Something went wrong."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details: Mapping[str, Any] = details
        super().__init__(self.message)


class InvalidInput(WhatsgateError):
    code = "invalid_input"
    default_message = "The input is not valid."


class InvalidPhoneNumber(InvalidInput):
    code = "invalid_phone_number"
    default_message = "Not a valid phone number (include the country code, e.g. +55 66 99628-5154)."


class InvalidJid(InvalidInput):
    code = "invalid_jid"
    default_message = "Not a valid WhatsApp address."


class InvalidMessage(InvalidInput):
    code = "invalid_message"
    default_message = "The message is not valid."


class MediaTooLarge(InvalidInput):
    code = "media_too_large"
    default_message = "The media is larger than WhatsApp accepts for this kind."


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"
    default_message = "The cursor is not valid; start again without one."


class NotFound(WhatsgateError):
    code = "not_found"
    default_message = "Not found."


class OrganizationNotFound(NotFound):
    code = "organization_not_found"
    default_message = "No such organization."


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "No such user."


class SessionNotFound(NotFound):
    code = "session_not_found"
    default_message = "No such session."


class ConversationNotFound(NotFound):
    code = "conversation_not_found"
    default_message = "No such conversation."


class ContactNotFound(NotFound):
    code = "contact_not_found"
    default_message = "No such contact."


class MessageNotFound(NotFound):
    code = "message_not_found"
    default_message = "No such message."


class MediaNotFound(NotFound):
    code = "media_not_found"
    default_message = "This message has no media, or it is no longer available."


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    default_message = "No such webhook."


class Conflict(WhatsgateError):
    code = "conflict"
    default_message = "The request conflicts with the current state."


class InvalidSessionTransition(Conflict):
    code = "invalid_session_transition"
    default_message = "The session cannot make that change from its current status."


class SessionAlreadyConnected(Conflict):
    code = "already_connected"
    default_message = "The session is already paired and connected."


class SessionNotConnected(Conflict):
    code = "session_not_connected"
    default_message = "The session is not connected to WhatsApp."


class SessionNotRunning(Conflict):
    code = "session_not_running"
    default_message = "The session is not running; start it first."


class QrNotReady(Conflict):
    code = "qr_not_ready"
    default_message = "There is no QR code to show yet; try again in a moment."


class AlreadyExists(Conflict):
    code = "already_exists"
    default_message = "That already exists."


class WriteConflict(Conflict):
    """Two units of work waited for each other's rows (PostgreSQL found the deadlock and
    ended one): the one ended wrote nothing and can run again."""

    code = "write_conflict"
    default_message = "Another change to the same records was being saved; try again."


class AuthError(WhatsgateError):
    code = "auth_error"


class NotAuthenticated(AuthError):
    code = "not_authenticated"
    default_message = "Missing or invalid credentials."


class PermissionDenied(AuthError):
    code = "permission_denied"
    default_message = "You are not allowed to do that."


class EngineError(WhatsgateError):
    code = "engine_error"
    default_message = "The WhatsApp engine failed."


class SendFailed(EngineError):
    code = "send_failed"
    default_message = "WhatsApp did not accept the message."


class RateLimited(EngineError):
    """WhatsApp asked us to slow down; ``until`` says when sending may resume, if known."""

    code = "rate_limited"
    default_message = "WhatsApp is rate limiting this account."

    def __init__(self, message: str | None = None, *, until: datetime | None = None) -> None:
        super().__init__(message, until=until.isoformat() if until else None)
        self.until = until


class EngineTimeout(EngineError):
    code = "engine_timeout"
    default_message = "The WhatsApp engine did not answer in time."


class CredentialsCorrupted(EngineError):
    code = "credentials_corrupted"
    default_message = "The stored WhatsApp credentials cannot be read; log out and pair again."


class FeatureUnavailable(EngineError):
    code = "feature_unavailable"
    default_message = "This feature is not available with the current engine or setup."

"""neonize's and whatsmeow's errors in the domain's words.

neonize raises one exception class per call (``SendMessageError``, ``DownloadError``…) whose
message is whatsmeow's error text; what matters (not connected, rate limited, timed out, media
gone) is only in that text. Callers ``raise translate(exc, action) from exc``.
"""

from __future__ import annotations

import re

from whatsgate.domain.errors import (
    EngineError,
    EngineTimeout,
    FeatureUnavailable,
    MediaNotFound,
    RateLimited,
    SendFailed,
    SessionNotConnected,
    WhatsgateError,
)

_NOT_CONNECTED = re.compile(
    r"not connected|client is nil|client not found|websocket (is )?(not|closed)|not logged in|"
    r"doesn't contain a device JID",
    re.IGNORECASE,
)
_RATE_LIMITED = re.compile(r"rate.?over.?limit|rate.?limit|\b429\b|too many", re.IGNORECASE)
_TIMEOUT = re.compile(r"timed out|timeout|deadline exceeded", re.IGNORECASE)
_MEDIA_GONE = re.compile(r"\b(404|410)\b|not found|media.*(expired|gone)", re.IGNORECASE)
_FFMPEG = re.compile(r"ffmpeg|ffprobe", re.IGNORECASE)

FFMPEG_MISSING = (
    "Sending audio, video and stickers needs ffmpeg and ffprobe on the PATH "
    "(e.g. `apt-get install ffmpeg`)."
)


def translate(exc: BaseException, action: str) -> WhatsgateError:
    """The domain error for an exception neonize raised while doing ``action``."""
    if isinstance(exc, WhatsgateError):
        return exc
    text = str(exc) or type(exc).__name__
    message = f"WhatsApp {action} failed: {text}"
    if isinstance(exc, FileNotFoundError) or _FFMPEG.search(text):
        return FeatureUnavailable(FFMPEG_MISSING, action=action, error=text)
    if _NOT_CONNECTED.search(text):
        return SessionNotConnected(message)
    if _RATE_LIMITED.search(text):
        return RateLimited(message)
    if _TIMEOUT.search(text):
        return EngineTimeout(message)
    if action == "download" and _MEDIA_GONE.search(text):
        return MediaNotFound(message)
    if action in ("send", "reaction", "edit", "revoke", "upload"):
        return SendFailed(message)
    return EngineError(message)


_NETWORK = re.compile(
    r"dial|no such host|connection refused|network|i/o timeout|websocket|eof|tls|"
    r"timeout|unreachable|reset by peer|proxy",
    re.IGNORECASE,
)
_STORE = re.compile(
    r"database|sql|not a database|malformed|no such table|upgrade|store|device|"
    r"permission denied|read-only|disk",
    re.IGNORECASE,
)


def is_store_error(text: str) -> bool:
    """Whether a failed start is about the device store rather than the network."""
    return bool(_STORE.search(text)) and not _NETWORK.search(text)

"""What WhatsApp accepts to send: text length, media types and sizes per kind.

The limits are WhatsApp's own (the same as its Cloud API documents and its apps enforce):
text up to 65,536 characters; image, video, audio and voice notes up to 16 MB; documents up
to 100 MB (newer apps take 2 GB, older recipients cannot open them); stickers are WebP, at most
100 KB static or 500 KB animated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from whatsgate.domain.errors import InvalidMessage, MediaTooLarge
from whatsgate.domain.message import MessageKind

MAX_TEXT = 65_536
MB = 1024 * 1024
KB = 1024

_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


@dataclass(frozen=True, slots=True)
class MediaRule:
    max_bytes: int
    #: Accepted mime types (without parameters); empty means any well-formed type.
    mimes: frozenset[str]


_AUDIO = frozenset(
    {"audio/aac", "audio/mp4", "audio/mpeg", "audio/amr", "audio/ogg", "audio/opus", "audio/wav"}
)

MEDIA_RULES: dict[MessageKind, MediaRule] = {
    MessageKind.IMAGE: MediaRule(16 * MB, frozenset({"image/jpeg", "image/png", "image/webp"})),
    MessageKind.VIDEO: MediaRule(16 * MB, frozenset({"video/mp4", "video/3gpp"})),
    MessageKind.AUDIO: MediaRule(16 * MB, _AUDIO),
    # A voice note is Opus in Ogg; the engine converts the other audio types (with ffmpeg).
    MessageKind.VOICE: MediaRule(16 * MB, _AUDIO),
    MessageKind.DOCUMENT: MediaRule(100 * MB, frozenset()),
    MessageKind.STICKER: MediaRule(500 * KB, frozenset({"image/webp"})),
}

STATIC_STICKER_MAX = 100 * KB


def base_mime(mime: str) -> str:
    """``audio/ogg; codecs=opus`` → ``audio/ogg``, lower-cased."""
    return mime.split(";", 1)[0].strip().lower()


def is_animated_webp(data: bytes) -> bool:
    """A WebP with the animation flag set in its extended (VP8X) header."""
    return (
        len(data) > 20
        and data[:4] == b"RIFF"
        and data[8:12] == b"WEBP"
        and data[12:16] == b"VP8X"
        and bool(data[20] & 0x02)
    )


def check_text(text: str | None, *, what: str = "text") -> None:
    if text is not None and len(text) > MAX_TEXT:
        raise InvalidMessage(f"The {what} is longer than {MAX_TEXT} characters.", field=what)


def check_media(kind: MessageKind, mime: str, data: bytes) -> str:
    """Check media bytes against WhatsApp's rules for the kind; returns the clean mime."""
    rule = MEDIA_RULES.get(kind)
    if rule is None:
        raise InvalidMessage(f"A {kind} message carries no media.", field="media")
    clean = base_mime(mime)
    if not _MIME.match(clean):
        raise InvalidMessage(f"{mime!r} is not a media type.", field="media.mime")
    if rule.mimes and clean not in rule.mimes:
        allowed = ", ".join(sorted(rule.mimes))
        raise InvalidMessage(
            f"A {kind} cannot be {clean}; WhatsApp takes {allowed}.", field="media.mime"
        )
    if not data:
        raise InvalidMessage("The media is empty.", field="media.data")
    limit = rule.max_bytes
    if kind is MessageKind.STICKER and not is_animated_webp(data):
        limit = STATIC_STICKER_MAX
    if len(data) > limit:
        raise MediaTooLarge(
            f"A {kind} is at most {_size(limit)}; this one is {_size(len(data))}.",
            kind=str(kind),
            limit=limit,
            size=len(data),
        )
    _, has_params, params = mime.partition(";")
    return f"{clean};{params}" if has_params else clean


def _size(n: int) -> str:
    if n >= MB:
        return f"{n / MB:.1f} MB"
    return f"{n / KB:.0f} KB"

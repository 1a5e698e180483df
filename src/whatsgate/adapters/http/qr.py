"""QR codes as images: PNG (through Pillow) and SVG (pure Python)."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg

PNG = "image/png"
SVG = "image/svg+xml"


def qr_png(payload: str) -> bytes:
    image = qrcode.make(payload, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def qr_svg(payload: str) -> bytes:
    image = qrcode.make(payload, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    rendered: bytes = image.to_string(encoding="unicode").encode()
    return rendered


def qr_text(payload: str) -> str:
    """The QR drawn with block characters, for a terminal."""
    code = qrcode.QRCode(border=1)
    code.add_data(payload)
    code.make(fit=True)
    buffer = io.StringIO()
    code.print_ascii(out=buffer, invert=True)
    return buffer.getvalue()

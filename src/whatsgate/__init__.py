"""whatsgate: a WhatsApp gateway for Python backends."""

__version__ = "0.1.0"

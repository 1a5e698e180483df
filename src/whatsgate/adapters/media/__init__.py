"""Media stores: where media bytes live."""

from whatsgate.adapters.media.filesystem import FilesystemMediaStore

__all__ = ["FilesystemMediaStore"]

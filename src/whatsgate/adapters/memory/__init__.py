"""In-memory repositories and unit of work, for tests and for library users' own tests."""

from whatsgate.adapters.memory.media import MemoryMediaStore
from whatsgate.adapters.memory.uow import MemoryStore, MemoryUnitOfWork

__all__ = ["MemoryMediaStore", "MemoryStore", "MemoryUnitOfWork"]

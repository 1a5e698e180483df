"""The domain: entities, value objects, domain events and errors. Pure Python, no I/O."""

from tests.databases import postgres_schema, sqlite_template

__all__ = ["postgres_schema", "sqlite_template"]

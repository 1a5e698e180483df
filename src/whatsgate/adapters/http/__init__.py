"""The HTTP API (Litestar): controllers, request and response schemas, auth guards, errors."""

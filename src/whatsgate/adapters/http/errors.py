"""Every error answer is ``{"error": {"code", "message", "details"}}``.

Domain errors carry their own stable code; this module alone maps them to HTTP statuses.
Litestar's own errors (validation, unknown routes, wrong methods, bodies too large) get the
same shape, so a client parses one format whatever went wrong.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from whatsgate.domain import errors as e

log = logging.getLogger("whatsgate.http")


class ErrorDetail(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class ErrorBody(msgspec.Struct, kw_only=True):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail


def status_of(error: e.WhatsgateError) -> int:
    match error:
        case e.MediaTooLarge():
            return 413
        case e.InvalidInput():
            return 422
        case e.NotFound():
            return 404
        case e.Conflict():
            return 409
        case e.NotAuthenticated():
            return 401
        case e.PermissionDenied():
            return 403
        case e.RateLimited():
            return 429
        case e.EngineTimeout() | e.FeatureUnavailable():
            return 503
        case _:
            return 502


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response[ErrorBody]:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details or {}))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(body, status_code=status, headers=headers)


def _jsonable(value: Any) -> Any:
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)


def handle_domain_error(_: Request[Any, Any, Any], exc: e.WhatsgateError) -> Response[ErrorBody]:
    status = status_of(exc)
    if status >= 500:
        log.warning("engine error: %s (%s)", exc.message, exc.code)
    return error_response(status, exc.code, exc.message, _jsonable(dict(exc.details)))


def handle_validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[ErrorBody]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    if any("JSON is malformed" in str(item.get("message", "")) for item in extra):
        return error_response(400, "malformed_json", "The body is not valid JSON.")
    fields = [
        {
            "field": item.get("key"),
            "source": item.get("source"),
            "message": item.get("message"),
        }
        for item in extra
        if isinstance(item, dict)
    ]
    return error_response(
        422, "invalid_input", "The request is not valid.", {"fields": _jsonable(fields)}
    )


#: Litestar's detail when the body's ``receive`` reports a disconnect (it raises a 500).
CLIENT_GONE = "client disconnected prematurely"


def handle_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    if exc.detail == CLIENT_GONE:
        # The client hung up while sending its body: nothing went wrong on our side, and
        # nobody is left to read an answer.
        log.info(
            "%s %s: the client disconnected before its request was read",
            request.method,
            request.url.path,
        )
        return error_response(400, "client_disconnected", "The request was not received in full.")
    if status >= 500:
        log.error("internal error: %s", exc.detail, exc_info=exc)
        return error_response(status, "internal_error", "Something went wrong on our side.")
    code = _HTTP_CODES.get(status, "http_error")
    details: dict[str, Any] = {}
    if status == 405 and exc.headers and "allow" in {k.lower() for k in exc.headers}:
        details["allow"] = next(v for k, v in exc.headers.items() if k.lower() == "allow")
    message = exc.detail or code.replace("_", " ")
    if status == 400 and "json" in request.headers.get("content-type", ""):
        # Litestar's only 400s come from decoding the body.
        code, message = "malformed_json", f"The body is not valid JSON: {message}."
    if status == 413:
        message = "The request body is larger than this endpoint accepts."
    return error_response(status, code, message, details)


def handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "Something went wrong on our side.")


exception_handlers: dict[type[Exception] | int, Any] = {
    e.WhatsgateError: handle_domain_error,
    ValidationException: handle_validation_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected,
}


_DESCRIPTIONS = {
    400: "The body is not valid JSON (`malformed_json`).",
    401: "Missing or invalid credentials.",
    403: "Authenticated, but not allowed to do this.",
    404: "No such thing (or it belongs to another organization).",
    409: "Conflicts with the current state (e.g. already_connected).",
    413: "The request body is too large.",
    422: "The input is not valid; `details.fields` says which.",
    429: "WhatsApp is rate limiting this account.",
    502: "The WhatsApp engine failed.",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the error answers of an endpoint."""
    return {
        status: ResponseSpec(
            data_container=ErrorBody,
            description=_DESCRIPTIONS.get(status, "Error"),
            examples=None,
        )
        for status in sorted({400, 401, 422, *statuses})
    }

"""HTTP plumbing of the server: OpenAI-style JSON errors for every failure, and a middleware that refuses oversized
bodies and counts every answer with its latency."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AdalinkError
from .metrics import ServerMetrics

__all__ = ["ApiError", "LimitAndObserve", "error_response", "install_error_handlers"]


class ApiError(AdalinkError, HTTPException):
    """An answer with a 4xx/5xx status and an OpenAI-style error body (``kind``: its ``type``, by default the
    status's own, e.g. 404 ``not_found_error``; ``param``: the request field at fault)."""

    def __init__(self, status: int, message: str, kind: str | None = None, param: str | None = None):
        super().__init__(status, message)
        self.message, self.kind, self.param = message, kind, param


_KINDS = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
}


def error_response(status: int, message: str, kind: str | None = None, param: str | None = None) -> JSONResponse:
    kind = kind or _KINDS.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _field_path(location: tuple) -> str | None:
    """The request field a pydantic error location names, as ``inputs`` or ``inputs[0]``; None for the whole body.

    The request models are flat, so the first part is a field; later strings are the union member pydantic tried
    (``inputs.list[str].0``): dropped, indices kept.
    """
    parts = [part for part in location if part != "body"]
    if not parts:
        return None
    return str(parts[0]) + "".join(f"[{part}]" for part in parts[1:] if isinstance(part, int))


def _validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    """(message naming every problem, the field at fault: the most precise path of the first field named)."""
    problems, params = [], []
    for problem in err.errors():
        if problem.get("type") == "json_invalid":
            return f"The body is not valid JSON: {problem.get('ctx', {}).get('error', problem.get('msg'))}.", None
        param = _field_path(tuple(problem.get("loc", ())))
        params.append(param)
        problems.append(f"{param or 'body'}: {problem.get('msg')}")
    problems = list(dict.fromkeys(problems))  # one line per problem, whichever union member reported it
    named = [p for p in params if p is not None]
    field = named[0].split("[")[0] if named else None
    param = max((p for p in named if p.split("[")[0] == field), key=len) if named else None
    return "Invalid request: " + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "") + ".", param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(err)
        return error_response(400, message, param=param)

    @app.exception_handler(HTTPException)
    async def httperror_response(_: Request, err: HTTPException) -> JSONResponse:
        if isinstance(err, ApiError):
            return error_response(err.status_code, err.message, err.kind, err.param)
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def internal(_: Request, err: Exception) -> JSONResponse:
        return error_response(500, f"Internal error ({type(err).__name__}); the server keeps running.")


class _BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class LimitAndObserve:
    """ASGI middleware: refuse oversized bodies (413) and count every answer with its latency."""

    def __init__(self, app: ASGIApp, *, limit: int, metrics: ServerMetrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status, received = time.perf_counter(), 500, 0
        endpoint = _endpoint(scope["path"])

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge(self.limit)  # FastAPI re-raises HTTPExceptions met while reading the body
            return message

        try:
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.limit:
                await error_response(413, f"The request body is larger than {self.limit} bytes.")(
                    scope, receive, observed_send
                )
            else:
                await self.app(scope, limited_receive, observed_send)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - began)


_ENDPOINTS = (
    "/v1/classify",
    "/v1/completions",
    "/v1/chat/completions",
    "/v1/models",
    "/v1/adapters",
    "/health",
    "/metrics",
)


def _endpoint(path: str) -> str:
    """A bounded set of metric labels, whatever paths clients try."""
    if path in _ENDPOINTS:
        return path
    return "/v1/adapters/{name}" if path.startswith("/v1/adapters/") else "other"

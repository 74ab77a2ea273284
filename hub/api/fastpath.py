"""``POST /v1/checkins`` served by a pure ASGI handler ahead of FastAPI's routing.

The check-in is nearly all of the hub's request volume, and FastAPI's per-request
machinery (nested router matching that walks the route table, dependency solving, the
request/response wrappers and anyio's threadpool hop) cost more CPU than the verified,
recorded check-in itself. This middleware serves the common request directly:

- ``Authorization: Bearer sws_...`` (a phone session token), the body JSON
  (``Content-Type: application/json``) that validates as ``storewave.wire.CheckinRequest``;
- the caller is resolved exactly as the route's ``PhoneSessionCaller`` does
  (:func:`hub.services.auth.deferred_phone_principal`): the session row itself is checked
  under the customer lock inside the check-in's transaction (401 when unknown, expired or
  revoked), so this adds no trust the route does not have;
- the transaction runs on a small executor of its own (see :func:`checkin_threads`);
- refusals and database errors answer exactly as ``hub.app``'s exception handlers do
  (same status, JSON body and headers); anything else propagates to the server-error
  middleware as it would from the route.

Everything else goes to the FastAPI route unchanged (the body already read is replayed):
no or a non-bearer ``Authorization``, any token that is not a phone session (the route
authenticates it and answers 401/403), another content type, a body that is not JSON or
does not validate (FastAPI's 422 with field locations). The route stays the one that is
documented (OpenAPI) and audited (the role x route matrix test calls through this too).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError

from hub.context import HubContext
from hub.db import session_scope
from hub.services import checkins
from hub.services.auth import SESSION_PREFIX, Principal, deferred_phone_principal
from hub.services.errors import HubError
from storewave.wire import CheckinRequest

CHECKIN_PATH = "/v1/checkins"
# A check-in body is ~150 bytes; anything far larger is not one (the route decides).
MAX_FAST_BODY = 4096
_BEARER = "bearer"
_TOKEN_START = SESSION_PREFIX + "_"
_JSON = b"application/json"
_JSON_HEADERS = [(b"content-type", _JSON)]
# SQLite has one writer at a time (hub.db's gate) and a check-in is one write transaction:
# a second thread only queues on the gate and contends for the GIL (paired runs: 2 threads
# cost more CPU per check-in than 1). PostgreSQL runs check-ins of different customers in
# parallel while the server's own processes work on the other core.
SQLITE_CHECKIN_THREADS = 1
POSTGRES_CHECKIN_THREADS = 6

ErrorBody = tuple[int, dict[str, Any], dict[str, str] | None]


def checkin_threads(dialect: str) -> int:
    """How many threads run check-in transactions in one worker for this database."""
    return SQLITE_CHECKIN_THREADS if dialect == "sqlite" else POSTGRES_CHECKIN_THREADS


def run_checkin(ctx: HubContext, caller: Principal, body: CheckinRequest) -> bytes:
    """The check-in's transaction (committed here, rolled back on any refusal) as JSON."""
    with session_scope(ctx.engine) as session:
        result = checkins.check_in(
            session, ctx.crypto, ctx.clock, caller.customer_id, body, caller.session_hash
        )
    return result.model_dump_json().encode()


class CheckinFastPath:
    """Pure ASGI middleware: serve well-formed phone check-ins, pass the rest on."""

    def __init__(
        self,
        app: Any,
        *,
        ctx: HubContext,
        route: Any,
        error_body: Callable[[Exception], ErrorBody | None],
    ) -> None:
        """Wrap ``app``; ``route`` is the FastAPI route (for metrics' route template),
        ``error_body`` maps an exception to (status, JSON body, headers) like the app's
        exception handlers, or None when they would not handle it."""
        self.app = app
        self.ctx = ctx
        self.route = route
        self.error_body = error_body
        self._executor: ThreadPoolExecutor | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve ``POST /v1/checkins`` from a phone session; everything else goes on."""
        if (
            scope["type"] != "http"
            or scope["path"] != CHECKIN_PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        token, json_body = _phone_json_request(scope["headers"])
        if token is None or not json_body:
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive)
        if body is None:
            return  # the client went away
        caller = deferred_phone_principal(self.ctx.crypto, self.ctx.clock, token)
        request = _parse(body) if complete and caller is not None else None
        if request is None or caller is None:
            await self.app(scope, _replay(body, complete, receive), send)
            return
        scope["route"] = self.route  # what the metrics middleware labels the request with
        loop = asyncio.get_running_loop()
        try:
            payload = await loop.run_in_executor(
                self._pool(), run_checkin, self.ctx, caller, request
            )
        except (HubError, OperationalError, IntegrityError) as exc:
            mapped = self.error_body(exc)
            if mapped is None:
                raise
            status, content, headers = mapped
            await _respond(send, status, _dumps(content), headers)
            return
        await _respond(send, 200, payload, None)

    def _pool(self) -> ThreadPoolExecutor:
        """This app's check-in threads (started on first use)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=checkin_threads(self.ctx.engine.dialect.name),
                thread_name_prefix="checkin",
            )
        return self._executor


def _phone_json_request(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
    """The phone session token of ``Authorization: Bearer sws_...`` (else None), and
    whether the body is declared ``application/json`` (first header of each name, as
    Starlette reads them)."""
    authorization: bytes | None = None
    content_type: bytes | None = None
    for name, value in headers:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"content-type" and content_type is None:
            content_type = value
    media_type = content_type.split(b";", 1)[0].strip().lower() if content_type else b""
    json_body = media_type == _JSON
    if authorization is None:
        return None, json_body
    scheme, _, credentials = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != _BEARER or not credentials.startswith(_TOKEN_START):
        return None, json_body
    return credentials, json_body


async def _read_body(receive: Any) -> tuple[bytes | None, bool]:
    """The request body (None if the client disconnected) and whether it was read whole
    (False: it is larger than any check-in, the rest is left for the route to read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_FAST_BODY:
            return b"".join(chunks), False


def _parse(body: bytes) -> CheckinRequest | None:
    """The check-in request, or None when the route should answer (its 422 says why)."""
    try:
        return CheckinRequest.model_validate_json(body)
    except ValidationError:
        return None


def _replay(body: bytes, complete: bool, receive: Any) -> Any:
    """A ``receive`` that hands the route the part of the body already read first."""
    pending = True

    async def replay() -> dict[str, Any]:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()  # type: ignore[no-any-return]

    return replay


def _dumps(content: dict[str, Any]) -> bytes:
    """JSON exactly as Starlette's JSONResponse renders it."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


async def _respond(send: Any, status: int, body: bytes, headers: dict[str, str] | None) -> None:
    """Send a complete JSON response."""
    raw = [(b"content-length", str(len(body)).encode()), *_JSON_HEADERS]
    if headers:
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

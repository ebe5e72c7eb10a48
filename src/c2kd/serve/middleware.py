"""ASGI middleware of the service: HEAD answered wherever GET is (RFC 9110), and a limit on request bodies.

Both wrap the whole app (``app.add_middleware``), so every route gets them without a line of its own.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: the largest request body read, in bytes: a search or moments request is a few hundred bytes
MAX_BODY_BYTES = 64 * 1024
#: the scope key that marks a HEAD request routed as GET (see `HeadAsGet`)
HEAD = "c2kd.head"


class HeadAsGet:
    """Answer ``HEAD`` on every route that answers ``GET`` (RFC 9110, section 9.3.2): the request is routed as
    ``GET`` and the response keeps its status and headers (``Content-Length`` included) but sends no body.

    A route that streams a file may read ``scope[HEAD]`` and skip reading the file (see `head_only`).
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "method": "GET", HEAD: True}
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.body":
                if ended:
                    return
                ended = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, receive, headers_only)


def head_only(scope: MutableMapping[str, Any]) -> bool:
    """Whether this request is a HEAD routed as GET; the scope then says HEAD again, so that a file response
    sends its headers without reading the file."""
    if scope.get(HEAD):
        scope["method"] = "HEAD"
        return True
    return False


class BodyTooLarge(HTTPException):
    """A request body over :data:`MAX_BODY_BYTES` (413), raised while the body is read."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit} bytes; a search or moments request is "
                              "a few hundred bytes: send the query, not documents")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413: at once when ``Content-Length`` says so, else as
    soon as the bytes read pass the limit (a chunked upload), so no large body is ever held in memory."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.limit:
                    message = (BodyTooLarge(self.limit).detail if declared > self.limit
                               else "the Content-Length header is not a number of bytes")
                    response = JSONResponse({"error": message}, status_code=413 if declared > 0 else 400,
                                            headers={"Connection": "close"})
                    await response(scope, receive, send)
                    return
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)

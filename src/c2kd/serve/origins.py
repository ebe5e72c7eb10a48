"""Cross-origin access (CORS) for pages hosted elsewhere: off unless ``c2kd serve --cors-origin ORIGIN``."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from fastapi import FastAPI

from c2kd.errors import ConfigError


def check_origin(origin: str) -> str:
    """An origin as browsers send it: ``scheme://host[:port]`` with no path (or ``*`` for any page)."""
    if origin == "*":
        return origin
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query \
            or parts.fragment:
        raise ConfigError(f"--cors-origin {origin!r} is not an origin: give scheme://host[:port], e.g. "
                          "https://example.org or http://localhost:3000 (no path)")
    return f"{parts.scheme}://{parts.netloc}".lower()


def add_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Let pages from ``origins`` call the API (search, moments, fields) and play the videos; nothing when empty."""
    if not origins:
        return
    from starlette.middleware.cors import CORSMiddleware

    app.add_middleware(CORSMiddleware, allow_origins=[check_origin(o) for o in origins],
                       allow_methods=["GET", "POST", "HEAD", "OPTIONS"], allow_headers=["Content-Type", "Range"],
                       expose_headers=["Content-Range", "Accept-Ranges", "Content-Length"], max_age=600)

"""The HTTP service: search, moments, health, video streaming (byte ranges) and the web page.

Endpoints::

    GET  /                       the search page (static HTML/JS/CSS from c2kd/serve/static)
    GET  /api/health             status, number of videos, backend
    GET  /api/search?q=&lang=&k=&filter=field=value&moments=true
    POST /api/search             {"query": ..., "lang": ..., "k": 10, "filters": {...}, "moments": true}
    GET  /api/moments?video_id=&q=&lang=&k=   (POST with a JSON body as well)
    GET  /api/videos/{video_id}  the file of an indexed video (Range requests supported)
    GET  /media/{path}           a file under the video folders (Range requests supported)

The model and index are loaded once, when the app is created; requests run in worker threads and share them
(query embedding is micro-batched across concurrent requests). Errors are JSON ``{"error": message}`` with a
4xx status: 400 bad query, 404 unknown video, 422 malformed request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional, Union

from fastapi import FastAPI, Query as Q, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from c2kd.errors import C2KDError, DataError
from c2kd.index import parse_filter_options
from c2kd.search.engine import SearchEngine
from c2kd.search.query import MAX_K, MAX_QUERY_CHARS, Query, QueryError
from c2kd.serve.media import MediaError, media_type, resolve_media, video_path_for

STATIC_DIR = Path(__file__).parent / "static"
FilterValue = Union[str, int, float, bool, list[Union[str, int, float, bool]]]


@dataclass
class ServeSettings:
    """What ``c2kd serve`` loads at start."""

    index: Path
    checkpoint: Optional[Path] = None
    features: Optional[Path] = None
    video_roots: list[Path] = field(default_factory=list)
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., max_length=10 * MAX_QUERY_CHARS)
    lang: Optional[str] = None
    k: int = Field(10, ge=1, le=MAX_K)
    filters: dict[str, FilterValue] = Field(default_factory=dict)
    moments: bool = False


class MomentsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_id: str = Field(..., min_length=1, max_length=1000)
    query: str = Field(..., max_length=10 * MAX_QUERY_CHARS)
    lang: Optional[str] = None
    k: int = Field(5, ge=1, le=100)
    lengths: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [2.0, 4.0, 8.0, 16.0], min_length=1, max_length=8)
    iou: float = Field(0.5, ge=0.0, lt=1.0)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]  # the request part: the field name is what the user needs
        where = ".".join(str(x) for x in loc)
        parts.append(f"{where or 'request'}: {err.get('msg')}")
    return "; ".join(parts) or "malformed request"


def create_app(settings: ServeSettings | None = None, engine: SearchEngine | None = None) -> FastAPI:
    """Build the app. Loads the engine from ``settings`` unless one is given (tests, embedding in other apps)."""
    if engine is None:
        if settings is None:
            raise ValueError("create_app needs settings or an engine")
        engine = SearchEngine.open(settings.index, checkpoint=settings.checkpoint, features=settings.features,
                                   device=settings.device, options=settings.options)
    roots = [Path(r).resolve() for r in (settings.video_roots if settings else [])]
    if not roots and engine.index is not None:
        roots = [Path(r) for r in engine.index.info.get("video_roots", []) if Path(r).is_dir()]
    for root in roots:
        if not root.is_dir():
            raise DataError(f"video folder {root} does not exist; fix --videos")

    app = FastAPI(title="c2kd search", version="1", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.engine = engine
    app.state.video_roots = roots

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc)}, status_code=422)

    @app.exception_handler(QueryError)
    async def _bad_query(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(MediaError)
    async def _media(request: Request, exc: MediaError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(C2KDError)
    async def _known(request: Request, exc: C2KDError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    def video_url(video_id: str, metadata: dict) -> str | None:
        rel = video_path_for(metadata, roots)
        return f"/media/{rel}" if rel and roots else None

    def run_search(body: SearchBody) -> dict[str, Any]:
        query = Query.make(body.query, body.lang)
        filters = {k: v for k, v in body.filters.items()}
        if body.moments:
            response, found = engine.search_with_moments(query, k=body.k, filters=filters)
        else:
            response, found = engine.search_many([query], k=body.k, filters=filters)[0], {}
        payload = response.to_dict()
        for item in payload["results"]:
            item["video_url"] = video_url(item["video_id"], item["metadata"])
            moment = found.get(item["video_id"])
            item["moment"] = moment.to_dict() if moment is not None else None
        return payload

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        index = engine.index
        return {"status": "ok", "videos": len(index) if index is not None else 0,
                "backend": index.backend.name if index is not None else None,
                "dim": index.dim if index is not None else None, "moments": engine._features is not None,
                "video_roots": len(roots), "max_query_chars": MAX_QUERY_CHARS}

    @app.get("/api/languages")
    def languages() -> dict[str, str]:
        from c2kd.languages import LANGUAGES

        return dict(LANGUAGES)

    @app.get("/api/search")
    def search_get(q: str = Q(..., max_length=10 * MAX_QUERY_CHARS, description="the query"),
                   lang: Optional[str] = None, k: int = Q(10, ge=1, le=MAX_K),
                   filter: list[str] = Q([], description="field=value[,value]"),
                   moments: bool = False) -> dict[str, Any]:
        filters = parse_filter_options(filter)
        return run_search(SearchBody(query=q, lang=lang, k=k, filters=filters, moments=moments))

    @app.post("/api/search")
    def search_post(body: SearchBody) -> dict[str, Any]:
        return run_search(body)

    def run_moments(body: MomentsBody) -> dict[str, Any]:
        if engine._features is None:
            raise QueryError("this server has no feature store for moments: start it with --features STORE")
        if body.video_id not in engine._features:
            raise MediaError(f"video {body.video_id!r} has no frame features in the server's feature store", 404)
        response = engine.moments(body.video_id, body.query, body.lang, body.k, body.lengths, body.iou)
        payload = response.to_dict()
        meta = engine.index.metadata(body.video_id) if engine.index is not None and body.video_id in engine.index \
            else {}
        payload["video_url"] = video_url(body.video_id, meta)
        return payload

    @app.get("/api/moments")
    def moments_get(video_id: str = Q(..., min_length=1, max_length=1000),
                    q: str = Q(..., max_length=10 * MAX_QUERY_CHARS), lang: Optional[str] = None,
                    k: int = Q(5, ge=1, le=100)) -> Any:
        return run_moments(MomentsBody(video_id=video_id, query=q, lang=lang, k=k))

    @app.post("/api/moments")
    def moments_post(body: MomentsBody) -> Any:
        return run_moments(body)

    @app.get("/api/videos/{video_id}")
    def video_by_id(video_id: str) -> FileResponse:
        index = engine.index
        if index is None or video_id not in index:
            raise MediaError(f"video {video_id!r} is not in the index", 404)
        rel = video_path_for(index.metadata(video_id), roots)
        if rel is None:
            raise MediaError(f"video {video_id!r} has no file under the video folders", 404)
        path = resolve_media(roots, rel)
        return FileResponse(path, media_type=media_type(path))

    @app.get("/media/{path:path}")
    def media(path: str) -> FileResponse:
        file = resolve_media(roots, path)
        return FileResponse(file, media_type=media_type(file))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app

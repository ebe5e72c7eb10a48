"""The HTTP service: search, moments, health, video streaming (byte ranges), poster frames and the web page.

Endpoints::

    GET  /                       the search page (static HTML/JS/CSS from c2kd/serve/static)
    GET  /api/docs               the API reference (a page of the package, rendered from /api/openapi.json)
    GET  /api/health             status, number of videos, backend, this worker's pid and readiness
    GET  /api/ready              200 once this worker has run its warm-up query, 503 before (load balancers)
    GET  /api/fields             the index's metadata fields, their values, and which ones the page filters on
    GET  /api/search?q=&lang=&k=&offset=&filter=field=value&moments=true   (``query=`` works as well as ``q=``)
    POST /api/search             {"query": ..., "lang": ..., "k": 10, "offset": 0, "filters": {...}, "moments": true}
    GET  /api/moments?video_id=&q=&lang=&k=   (POST with a JSON body as well)
    GET  /api/videos/{video_id}  the file of an indexed video (Range requests supported)
    GET  /api/posters/{video_id}?t=SECONDS  the still of the video taken at (or just before) ``t``
    GET  /media/{path}           a file under the video folders (Range requests supported)

The model and index are loaded once, when the app is created; requests run in worker threads and share them
(query embedding is micro-batched across concurrent requests). An app created with ``warmed=False`` (each
process of ``c2kd serve --workers N``, see :mod:`c2kd.serve.workers`) runs its warm-up query in a thread at
start-up and answers 503 on ``/api/ready`` until it is done; other routes answer meanwhile. Every error is JSON ``{"error": message}``:
400 bad query, 404 unknown video or path, 405 wrong method, 413 request body over 64 KB, 416 unsatisfiable byte
range, 422 malformed request, 503 the index folder was removed or damaged while serving. HEAD is answered wherever GET is (headers only).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi import Query as Q
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from c2kd.defaults import INDEX_LENGTHS
from c2kd.errors import C2KDError, DataError, UnavailableError
from c2kd.formats import BEST_AVERAGE_DIR, BEST_DIR, LAST_DIR
from c2kd.index import parse_filter_options
from c2kd.languages import MAX_CODE_CHARS
from c2kd.search.engine import SearchEngine
from c2kd.search.query import MAX_K, MAX_QUERY_CHARS, Query, QueryError
from c2kd.serve.media import MediaError, check_range, files_by_id, media_type, resolve_media, video_path_for
from c2kd.serve.middleware import BodyLimit, HeadAsGet, head_only
from c2kd.serve.origins import add_cors
from c2kd.serve.responses import FieldsOut, HealthOut, MomentsOut, ReadyOut, SearchOut

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
FilterValue = str | int | float | bool | list[str | int | float | bool]
#: metadata fields that describe a video rather than group videos: never offered as page filters
NOT_FACETS = frozenset({"video", "frames", "duration", "captions", "title", "description"})
#: a field with more distinct values than this is not offered as a page filter (a list would be too long)
MAX_FACET_VALUES = 50
#: what the page says of a model whose towers its maker declared aligned (`model aligned --i-know-they-are-aligned`)
DECLARED_NOTICE = ("this model's text and frame encoders were declared aligned by its maker, not known to c2kd to "
                   "share one space: if results look unrelated to the query, that is why")
#: a value longer than this is free text (a caption, a description), not a category to filter on
MAX_FACET_CHARS = 40


def offered_as_filter(name: str, counts: dict[Any, int]) -> bool:
    """Whether the page offers a metadata field as a filter: a few categories shared by several videos. Not a
    field that describes a video (its title, captions, length), one value per video (an id, a key, a caption),
    one value for every video (nothing to choose), or free text."""
    if name in NOT_FACETS or not 2 <= len(counts) <= MAX_FACET_VALUES:
        return False
    if all(count == 1 for count in counts.values()):
        return False
    return not any(isinstance(value, str) and len(value) > MAX_FACET_CHARS for value in counts)


@dataclass
class ServeSettings:
    """What ``c2kd serve`` loads at start."""

    index: Path
    checkpoint: Path | None = None
    features: Path | None = None
    video_roots: list[Path] = field(default_factory=list)
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    #: origins whose pages may call the API from a browser (CORS); none by default
    cors_origins: list[str] = field(default_factory=list)


QUERY_TEXT = Field(..., max_length=MAX_QUERY_CHARS, validation_alias=AliasChoices("query", "q"),
                   description=f"the query, in any language (`q` works as well), at most {MAX_QUERY_CHARS} characters")


LANG_HELP = "language of the query (a hint, validated), e.g. de, cs, ja"
LANG = Field(None, max_length=MAX_CODE_CHARS, description=LANG_HELP)
LANG_QUERY = Q(None, max_length=MAX_CODE_CHARS, description=LANG_HELP)


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = QUERY_TEXT
    lang: str | None = LANG
    k: int = Field(10, ge=1, le=MAX_K, description="results per page")
    offset: int = Field(0, ge=0, lt=MAX_K, description="results to skip (paging)")
    filters: dict[str, FilterValue] = Field(
        default_factory=dict, validation_alias=AliasChoices("filters", "filter"),
        description="metadata field -> accepted value or values")
    moments: bool = Field(False, description="find the best moment of results indexed as whole clips (from the "
                                             "feature store); results indexed as moments always carry theirs")
    group: bool = Field(True, description="rank videos by their best moment (true), or the moments themselves "
                                          "across the collection (false)")
    channel: Literal["shown", "said", "both"] | None = Field(
        None, description="what finds the videos: shown (pictures), said (subtitles, speech) or both (the default "
                          "when the index has said moments)")


class MomentsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_id: str = Field(..., min_length=1, max_length=1000)
    query: str = QUERY_TEXT
    lang: str | None = LANG
    k: int = Field(5, ge=1, le=100)
    lengths: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: list(INDEX_LENGTHS), min_length=1, max_length=8)
    iou: float = Field(0.5, ge=0.0, lt=1.0)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]  # the request part: the field name is what the user needs
        where = ".".join(str(x) for x in loc)
        if err.get("type") == "string_too_long" and where in ("q", "query"):  # as the CLI says it
            limit = (err.get("ctx") or {}).get("max_length")
            parts.append(f"the query has {len(str(err.get('input', '')))} characters; the limit is {limit}. Shorten it.")
            continue
        parts.append(f"{where or 'request'}: {err.get('msg')}")
    return "; ".join(parts) or "malformed request"


def _one_of(name: str, first: str | None, second: str | None, other: str) -> str:
    """A required query parameter that has two accepted names (``q`` / ``query``)."""
    if first is not None and second is not None and first != second:
        raise RequestValidationError([{"loc": ("query", name), "msg": f"give {name} or {other}, not both"}])
    value = first if first is not None else second
    if value is None:
        raise RequestValidationError([{"loc": ("query", name), "msg": f"Field required (or {other})"}])
    return value


def _http_error_message(request: Request, exc: StarletteHTTPException) -> tuple[str, int]:
    if exc.status_code == 404:
        return (f"no such path {request.url.path!r}: the page is at /, the API under /api (reference: /api/docs, "
                "schema: /api/openapi.json)"), 404
    if exc.status_code == 405:
        return f"{request.method} is not accepted on {request.url.path}", 405
    if exc.status_code == 400 and "parsing the body" in str(exc.detail):
        return "the request body could not be read as JSON (malformed, or nested too deeply)", 422
    return str(exc.detail), exc.status_code


class Readiness:
    """Whether this process has run its warm-up query (``/api/ready``), and why not if the warm-up failed."""

    def __init__(self, ready: bool):
        self.done = threading.Event()
        self.error: str | None = None
        if ready:
            self.done.set()

    def warm(self, engine: SearchEngine) -> None:
        """Run the engine's warm-up query, then mark this process ready (a failure is logged and kept)."""
        try:
            engine.warm_up()
        except Exception as exc:  # reported by /api/ready and the log: never ready
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("worker %d: the warm-up query failed; /api/ready stays 503", os.getpid(), exc_info=exc)
            return
        self.done.set()
        log.info("worker %d is ready (warm-up query done)", os.getpid())


def create_app(settings: ServeSettings | None = None, engine: SearchEngine | None = None,
               warmed: bool = True) -> FastAPI:
    """Build the app. Loads the engine from ``settings`` unless one is given (tests, embedding in other apps).

    ``warmed=False``: the engine's warm-up query has not run in this process yet; it runs in a thread when the
    server starts (the app's lifespan), and ``/api/ready`` answers 503 until it is done.
    """
    readiness = Readiness(warmed)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not readiness.done.is_set():
            threading.Thread(target=readiness.warm, args=(engine,), name="c2kd-warm-up", daemon=True).start()
        yield

    app = FastAPI(title="c2kd search", version="1", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan,
                  description="Multilingual text-to-video search: rank indexed videos for a query in any "
                              "language, find the moment inside a video, stream the files. Every error is JSON: "
                              "{\"error\": message}.")
    add_cors(app, settings.cors_origins if settings else [])  # checked before the slow model load
    app.add_middleware(BodyLimit)
    app.add_middleware(HeadAsGet)
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

    # videos indexed without --videos: their files <id>.<ext> under the folders served now
    unnamed = [] if engine.index is None or not roots else \
        [v for v in engine.index.ids if not video_path_for(engine.index.metadata(v), roots)]
    found = files_by_id(roots, unnamed) if unnamed else {}
    app.state.engine = engine
    app.state.video_roots = roots
    app.state.readiness = readiness
    #: indexed videos with no file under the video folders (what `c2kd serve` warns of once)
    app.state.without_files = [v for v in unnamed if v not in found]

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message, status = _http_error_message(request, exc)
        return JSONResponse({"error": message}, status_code=status, headers=getattr(exc, "headers", None))

    @app.exception_handler(QueryError)
    async def _bad_query(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(MediaError)
    async def _media(request: Request, exc: MediaError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(UnavailableError)
    async def _unavailable(request: Request, exc: UnavailableError) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"error": str(exc)}, status_code=503)

    @app.exception_handler(C2KDError)
    async def _known(request: Request, exc: C2KDError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]  # in the answer and in the log line with the traceback
        log.error("internal error %s on %s %s", incident, request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error", "id": incident}, status_code=500)

    def video_url(video_id: str, metadata: dict) -> str | None:
        rel = video_path_for(metadata, roots) or found.get(video_id)
        return f"/media/{quote(rel)}" if rel and roots else None

    def poster_url(video_id: str, start: float) -> str | None:
        from c2kd.search.posters import poster_at

        if engine.index is None or poster_at(engine.index.root, video_id, start) is None:
            return None
        return f"/api/posters/{quote(video_id, safe='')}?t={start:g}"

    def run_search(body: SearchBody) -> dict[str, Any]:
        page = engine.search_page(Query.make(body.query, body.lang), k=body.k, offset=body.offset,
                                  filters=dict(body.filters) or None, moments=body.moments, group=body.group,
                                  channel=body.channel)
        payload = page.to_dict()
        for item in payload["results"]:
            moment = item["moment"]
            item["video_url"] = video_url(item["video_id"], item["metadata"])
            item["poster_url"] = poster_url(item["video_id"], moment["start"] if moment is not None else 0.0)
        return payload

    @app.get("/api/health", response_model=HealthOut,
             responses={503: {"description": "the index can no longer be read (removed or damaged)"}})
    def health() -> dict[str, Any]:
        """Status, the index and model names, number of indexed videos, backend, embedding size, whether moments
        can be found (what other processes changed in the index is read first); 503 when the index is gone."""
        index = engine.fresh_index()
        checkpoint = Path(index.info["checkpoint"]) if index is not None and index.info.get("checkpoint") else None
        if checkpoint is not None and checkpoint.name in (BEST_DIR, BEST_AVERAGE_DIR, LAST_DIR):
            checkpoint = checkpoint.parent  # a run's checkpoint: the run names the model
        return {"status": "ok", "videos": len(index) if index is not None else 0,
                "index": index.root.name if index is not None else None,
                "model": checkpoint.name if checkpoint is not None else None,
                "frames": index.info.get("frames", "video") if index is not None else "video",
                "notice": DECLARED_NOTICE if getattr(getattr(engine.model, "config", None), "alignment",
                                                     None) == "declared" else None,
                "backend": index.backend.name if index is not None else None,
                "dim": index.dim if index is not None else None, "moments": engine.has_feature_store,
                "video_roots": len(roots), "max_query_chars": MAX_QUERY_CHARS, "pid": os.getpid(),
                "ready": readiness.done.is_set()}

    @app.get("/api/ready", response_model=ReadyOut, responses={503: {"description": "still warming up"}})
    def ready() -> Any:
        """200 once this worker process has run its warm-up query (its first real query is then as fast as the
        others), 503 with `Retry-After` before: what a load balancer or an orchestrator's readiness probe asks."""
        if readiness.done.is_set():
            return {"ready": True, "pid": os.getpid()}
        why = f"the warm-up query failed ({readiness.error}); see the server log" if readiness.error else \
            "it is running its warm-up query; ask again in a second"
        return JSONResponse({"error": f"worker {os.getpid()} is not ready: {why}"}, status_code=503,
                            headers={"Retry-After": "1"})

    @app.get("/api/languages")
    def languages() -> dict[str, str]:
        """The known language codes and their names (for the `lang` hint)."""
        from c2kd.languages import LANGUAGES

        return dict(LANGUAGES)

    @app.get("/api/fields", response_model=FieldsOut)
    def fields() -> dict[str, Any]:
        """Each metadata field: how many videos have it, its values (when at most 50) and whether the page
        offers it as a filter (a few categories shared by several videos: not one value per video, one value for
        all, or free text)."""
        out = []
        index = engine.fresh_index()
        for name, counts in sorted((index.fields() if index is not None else {}).items()):
            small = len(counts) <= MAX_FACET_VALUES
            values = [{"value": v, "count": c} for v, c in sorted(counts.items())] if small else None
            out.append({"name": name, "distinct": len(counts), "values": values,
                        "filter": offered_as_filter(name, counts)})
        return {"fields": out}

    @app.get("/api/search", response_model=SearchOut)
    def search_get(q: str | None = Q(None, max_length=MAX_QUERY_CHARS, description="the query"),
                   query: str | None = Q(None, max_length=MAX_QUERY_CHARS, description="same as q"),
                   lang: str | None = LANG_QUERY, k: int = Q(10, ge=1, le=MAX_K),
                   offset: int = Q(0, ge=0, lt=MAX_K, description="results to skip (paging)"),
                   filter: list[str] = Q([], description="field=value[,value] (repeatable)"),
                   filters: list[str] = Q([], description="same as filter"),
                   moments: bool = False,
                   group: bool = Q(True, description="false: rank moments across the collection"),
                   channel: Literal["shown", "said", "both"] | None = Q(
                       None, description="shown, said or both (default: both when the index has said moments)"),
                   ) -> dict[str, Any]:
        """Rank the indexed videos for a query in any language; `moments=true` adds each result's best moment.
        Each result has its metadata, `video_url` (when the file is served), `poster_url` (a still at the moment's
        start, when the index has stills) and `moment`; `more` says whether a next page (`offset`) exists."""
        text = _one_of("q", q, query, "query")
        return run_search(SearchBody(query=text, lang=lang, k=k, offset=offset,
                                     filters=parse_filter_options([*filter, *filters]), moments=moments,
                                     group=group, channel=channel))

    @app.post("/api/search", response_model=SearchOut)
    def search_post(body: SearchBody) -> dict[str, Any]:
        """The same search with a JSON body (`query` or `q`, `filters` or `filter`)."""
        return run_search(body)

    def run_moments(body: MomentsBody) -> dict[str, Any]:
        if not engine.can_find_moments(body.video_id):  # not indexed as moments, not in the feature store
            if not engine.has_feature_store:
                raise QueryError("this server has no feature store for moments: start it with --features STORE")
            raise MediaError(f"video {body.video_id!r} has no frame features in the server's feature store", 404)
        response = engine.moments(body.video_id, body.query, body.lang, body.k, body.lengths, body.iou)
        payload = response.to_dict()
        meta = engine.index.metadata(body.video_id) if engine.index is not None and body.video_id in engine.index \
            else {}
        payload["video_url"] = video_url(body.video_id, meta)
        return payload

    @app.get("/api/moments", response_model=MomentsOut)
    def moments_get(video_id: str = Q(..., min_length=1, max_length=1000),
                    q: str | None = Q(None, max_length=MAX_QUERY_CHARS, description="the query"),
                    query: str | None = Q(None, max_length=MAX_QUERY_CHARS, description="same as q"),
                    lang: str | None = LANG_QUERY, k: int = Q(5, ge=1, le=100)) -> Any:
        """The moments of one video (by id, from the server's feature store) that best match a query."""
        text = _one_of("q", q, query, "query")
        return run_moments(MomentsBody(video_id=video_id, query=text, lang=lang, k=k))

    @app.post("/api/moments", response_model=MomentsOut)
    def moments_post(body: MomentsBody) -> Any:
        """The same with a JSON body (window `lengths` in seconds and the overlap `iou` can be set)."""
        return run_moments(body)

    def stream(request: Request, path: Path) -> FileResponse:
        check_range(request.headers.get("range"), path.stat().st_size)
        head_only(request.scope)  # a HEAD request: the headers, the file unread
        return FileResponse(path, media_type=media_type(path))

    @app.get("/api/videos/{video_id}")
    def video_by_id(video_id: str, request: Request) -> FileResponse:
        """The file of an indexed video (HTTP byte ranges; 416 for a range the file cannot satisfy)."""
        index = engine.index
        if index is None or video_id not in index:
            raise MediaError(f"video {video_id!r} is not in the index", 404)
        rel = video_path_for(index.metadata(video_id), roots) or found.get(video_id)
        if rel is None:
            raise MediaError(f"video {video_id!r} has no file under the video folders", 404)
        return stream(request, resolve_media(roots, rel))

    @app.get("/api/posters/{video_id}")
    def poster(video_id: str,
               t: float = Q(0.0, ge=0.0, allow_inf_nan=False, description="seconds")) -> FileResponse:
        """The still of a video taken at `t` seconds or the latest one before (JPEG)."""
        from c2kd.search.posters import poster_at

        still = poster_at(engine.index.root, video_id, t) if engine.index is not None else None
        if still is None:
            raise MediaError(f"video {video_id!r} has no poster frames (only videos with a file when the index "
                             "was built have them)", 404)
        return FileResponse(still, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/media/{path:path}")
    def media(path: str, request: Request) -> FileResponse:
        """A video file under the server's video folders, by its percent-encoded relative path (byte ranges)."""
        return stream(request, resolve_media(roots, path))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "api.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    return app

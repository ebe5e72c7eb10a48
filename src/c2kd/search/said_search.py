"""The said channel of an index: its said entries (:mod:`c2kd.search.said`) as a search reads them
(:class:`SaidChannel`, which the engine ranks beside the shown entries by the rule of :mod:`c2kd.search.channels`),
and the writing of them and of the rule's settings beside an index (:func:`index_said`).

The rule's settings are kept in ``INDEX/said/said.json`` (``fusion``): by default each channel is standardised
with the scores of sample queries (lines of the indexed videos, embedded by each channel's text encoder) against
its entries, and the rest is what ``bench/bench_said_shown.py`` chose on val (said weight 0.4, the ``max`` rule,
videos standardised by those statistics, moments by the fused score: the ``DEFAULT_*`` of
:mod:`c2kd.search.channels`); :func:`~c2kd.search.channels.calibrate` learns them on validation queries instead
(:func:`record_fusion` writes them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from c2kd.io import write_json
from c2kd.search.channels import DEFAULT_BOTH_FIRST, DEFAULT_RULE, DEFAULT_SAID_WEIGHT, DEFAULT_SCALE, Fusion
from c2kd.search.said import FOLDER, SaidEncoder, SaidIndex

#: pseudo-queries used to standardise the channels when the rule is not calibrated
SAMPLE_QUERIES = 256


def read_fusion(said: SaidIndex) -> Fusion:
    """The rule's settings recorded beside the said entries (defaults when none are)."""
    return Fusion.from_dict(said.meta.get("fusion"))


def record_fusion(index_root: str | Path, fusion: Fusion, how: str) -> None:
    """Write the rule's settings into ``said.json`` (``how``: where they came from)."""
    path = Path(index_root) / FOLDER / "said.json"
    meta = json.loads(path.read_text())
    meta["fusion"] = {**fusion.to_dict(), "how": how}
    write_json(path, meta)


def default_fusion(index, said: SaidIndex, model, encoder: SaidEncoder, sample: int = SAMPLE_QUERIES,
                   seed: int = 0) -> Fusion:
    """Standardise each channel by the scores of up to ``sample`` of the indexed lines, used as queries, with a
    sample of its entries (the distribution a query's scores come from); the said weight, combination, video
    standardisation and moment order chosen on val (:data:`~c2kd.search.channels.DEFAULT_SAID_WEIGHT`,
    ``DEFAULT_RULE``, ``DEFAULT_SCALE``, ``DEFAULT_BOTH_FIRST``)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(said), size=min(sample, len(said)), replace=False)
    texts = [said.text[i] for i in picks]
    videos = list(index.ids)
    chosen = rng.choice(len(videos), size=min(sample, len(videos)), replace=False)
    shown_vectors = np.concatenate([index.entries_of(videos[i]).vectors for i in chosen])
    shown = model.embed_texts(texts).float().numpy() @ shown_vectors.T
    said_scores = encoder.embed_queries(texts) @ np.asarray(said.vectors[rng.choice(len(said), size=min(
        4 * sample, len(said)), replace=False)], np.float32).T
    return Fusion(float(shown.mean()), float(shown.std()) or 1.0, float(said_scores.mean()),
                  float(said_scores.std()) or 1.0, DEFAULT_SAID_WEIGHT, DEFAULT_RULE, DEFAULT_SCALE,
                  DEFAULT_BOTH_FIRST)


def index_said(index_root: str | Path, features: str | Path, encoder_name: str = "auto",
               checkpoint: str | Path | None = None, device: str = "cpu",
               ids: Sequence[str] | None = None, warn=None) -> SaidIndex | None:
    """Embed the timed text of the indexed videos (``ids``) of ``features`` as said entries beside the index,
    with the default ranking settings (:func:`default_fusion`); None when there is nothing to embed or
    ``encoder_name`` is ``none`` (see :func:`~c2kd.search.said.said_encoder_for`). ``warn`` is called with one
    line per subtitle language the encoder does not know (:func:`~c2kd.search.said.unknown_languages`)."""
    from c2kd.data.features import store_root
    from c2kd.index import VideoIndex
    from c2kd.search.model import load_search_model
    from c2kd.search.said import build_said, said_encoder_for

    store = store_root(Path(features))
    encoder = said_encoder_for(encoder_name, store, checkpoint, device)
    if encoder is None:
        return None
    said = build_said(index_root, store, encoder, ids=ids)
    if said is None:
        return None
    warn_unknown_languages(said, encoder, store, warn)
    with VideoIndex.open(index_root) as index:
        if checkpoint is None:
            checkpoint = index.info["checkpoint"]
        fusion = default_fusion(index, said, load_search_model(checkpoint, device), encoder)
    record_fusion(index_root, fusion, "default: channels standardised by the indexed lines as sample queries")
    return SaidIndex.open(index_root)


def warn_unknown_languages(said: SaidIndex, encoder: SaidEncoder, store: str | Path, warn=None) -> list[str]:
    """Call ``warn`` with (and return) a line per language of the said entries the encoder does not know."""
    from c2kd.search.said import unknown_languages

    if encoder.known_languages is None:
        return []
    lines = unknown_languages(said, encoder.known_languages, str(store))
    for line in lines if warn is not None else ():
        warn(line)
    return lines


class SaidChannel:
    """The said entries beside an index, as a search reads them: the entries, the rule's settings recorded with
    them, and the encoder that embeds queries for them (loaded on the first query; ``model``: the index model's
    own text tower, which the engine hands over)."""

    def __init__(self, said: SaidIndex, model=None, encoder: SaidEncoder | None = None) -> None:
        self.index = said
        self.fusion = read_fusion(said)
        self._model = model
        self._encoder = encoder

    @classmethod
    def open(cls, index_root: str | Path, model=None) -> SaidChannel | None:
        """The said channel of the index at ``index_root``; None when it has no said entries."""
        said = SaidIndex.open(index_root)
        return cls(said, model) if said is not None else None

    @property
    def encoder(self) -> SaidEncoder:
        if self._encoder is None:
            self._encoder = SaidEncoder(self.index.encoder, self._model)
        return self._encoder

    def embed(self, text: str) -> np.ndarray:
        """One query's vector in the said entries' space. Shape: [E] float32, unit length."""
        return self.encoder.embed_queries([text])[0]

    def videos(self, text: str) -> dict[str, tuple[float, list[tuple[float, float, float, str]]]]:
        """Each video's best said score for the query and its best said moments (start, end, cosine, line)."""
        found = self.index.search(self.embed(text), k=len(self.index.videos))
        return {h.video_id: (h.score, [(m.start, m.end, m.score, m.text) for m in h.moments]) for h in found}

    def moments(self, video_id: str, text: str, k: int, iou_threshold: float
                ) -> list[tuple[float, float, float, str]]:
        """One video's best said moments (start, end, cosine, line), best first."""
        scores = self.index.scores(self.embed(text))
        return [(m.start, m.end, m.score, m.text) for m in self.index.moments_of(video_id, scores, k, iou_threshold)]

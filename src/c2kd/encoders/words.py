"""A trainable bag of words beside the frozen backbones: what the training captions teach, word by word.

Frozen sentence encoders read some languages much better than others (multilingual-e5-small reads Czech far
worse than English; USE not at all). The captions themselves say what each word shows: a table with one vector
per word, learned from every training caption in every language, adds that knowledge to the text tower. Words are
hashed into a fixed number of buckets (no vocabulary to build or ship): NFKC-normalised, case-folded runs of
Unicode word characters, so any language written with spaces between words is read; a language without spaces
(Chinese, Japanese, Thai) gets one bucket per phrase, little use but no harm, since the bag starts silent (see
``TextEncoder``).

The table is large and each caption touches a dozen rows, so it trains with sparse gradients
(``c2kd.train.optim``): a step costs the rows it touches, not the table.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

_WORD = re.compile(r"\w+")


class WordBagConfig(BaseModel):
    """Size of the word table. Memory: ``buckets * dim`` float32 weights, plus twice that for Adam's moments."""

    model_config = ConfigDict(extra="forbid")

    buckets: int = Field(2**18, ge=2)
    dim: int = Field(256, ge=1)
    #: words read per caption (the rest is ignored)
    max_words: int = Field(64, ge=1)
    #: sparse gradients (a step touches only the rows of its words); ``c2kd train`` turns them off under DDP
    #: and with ``optim.grad_clip``, which cannot take them
    sparse: bool = True


def words(text: str) -> list[str]:
    """The words of ``text``: NFKC-normalised, case-folded runs of Unicode word characters."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def word_bucket(word: str, buckets: int) -> int:
    """A word's row, in ``1 .. buckets-1`` (row 0 is padding); CRC-32 of its UTF-8, stable across runs."""
    return zlib.crc32(word.encode("utf-8")) % (buckets - 1) + 1


class WordBag(nn.Module):
    """Mean of the word vectors of each caption (a caption without words gives zeros).

    Shape:
        prepare(B strings) -> {"ids": [B, L] long, 0 = padding}; forward(ids) -> [B, dim]
    """

    def __init__(self, config: WordBagConfig):
        super().__init__()
        self.config = config
        self.table = nn.EmbeddingBag(config.buckets, config.dim, mode="mean", padding_idx=0, sparse=config.sparse)
        nn.init.normal_(self.table.weight, std=0.1)
        with torch.no_grad():
            self.table.weight[0].zero_()

    def prepare(self, texts: Sequence[str]) -> dict[str, Tensor]:
        rows = [[word_bucket(w, self.config.buckets) for w in words(t)[: self.config.max_words]] for t in texts]
        ids = torch.zeros((len(rows), max((len(r) for r in rows), default=0) or 1), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return {"ids": ids}

    def forward(self, ids: Tensor) -> Tensor:
        return self.table(ids)

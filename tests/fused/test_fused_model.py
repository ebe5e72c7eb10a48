"""A fused checkpoint: two dual encoders reading different frame features, searched as one model.

Checked against independent computations: its vectors' inner products are the weighted mean of the members'
cosines computed here from each member alone; its evaluation on joined features equals the late fusion of the two
checkpoints on their own datasets; the index ranks like the late-fusion scores; the joined store is the
concatenation of the inputs, and resumes after an interruption.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from c2kd.checkpoint import load_checkpoint
from c2kd.data.concat import concat_features
from c2kd.data.dataset import VideoTextDataset
from c2kd.data.features import FeatureStore
from c2kd.errors import CheckpointError, ConfigError, DataError
from c2kd.evaluation.evaluator import flatten_metrics
from c2kd.evaluation.fusion import fuse_checkpoints, weight_grid
from c2kd.formats import checkpoint_fingerprint, checkpoint_frame_encoder, load_model
from c2kd.fused import fused_frames, read_fusion, save_fused_checkpoint
from c2kd.late_fusion import LateFusion
from c2kd_testkit import assert_one_line_error, run_c2kd

LANGS = ["en", "de"]


@pytest.fixture(scope="module")
def joined(fusion_members, tmp_path_factory):
    """The members' two datasets joined into one whose frames are [first's | second's]."""
    return concat_features(fusion_members["datasets"], tmp_path_factory.mktemp("joined") / "data", progress=False)


@pytest.fixture(scope="module")
def fused(fusion_members, tmp_path_factory):
    return save_fused_checkpoint(tmp_path_factory.mktemp("fused") / "model", fusion_members["checkpoints"], [1.0, 3.0])


def test_joined_store_is_the_concatenation_video_by_video(fusion_members, joined):
    first, second = (VideoTextDataset(d).features for d in fusion_members["datasets"])
    store = FeatureStore(joined / "features")
    assert sorted(store.ids) == sorted(first.ids) and store.dim == first.dim + second.dim
    for vid in first.ids:
        np.testing.assert_array_equal(store[vid], np.concatenate([first[vid], second[vid]], axis=1))
        np.testing.assert_array_equal(store.times(vid), first.times(vid))
    assert (joined / "captions.parquet").read_bytes() == (fusion_members["datasets"][0] / "captions.parquet").read_bytes()
    spec = VideoTextDataset(joined).features.meta
    assert spec["encoder"] == "concat" and [p["name"] for p in spec["extractor"]["parts"]] == [
        "synthetic", "other-frames"]


def member_cosines(fusion_members, own, texts) -> list[np.ndarray]:
    """Each member alone: its cosines [Q, N] between ``texts`` and its own frames of the split ``own[m]``."""
    cosines = []
    for checkpoint, data in zip(fusion_members["checkpoints"], own, strict=True):
        member = load_checkpoint(checkpoint)[0].eval()
        cosines.append(member.embed_texts(texts).numpy() @ member.embed_videos(
            [data.frames(i) for i in range(len(data))]).numpy().T)
    return cosines


def test_fused_vectors_score_the_weighted_mean_of_the_members_cosines(fusion_members, joined, fused):
    model = load_model(fused).eval()
    assert isinstance(model, LateFusion) and model.weights == [1.0, 3.0]
    split = VideoTextDataset(joined).split("test", LANGS)
    texts = [c for caps in split.captions["de"] for c in caps if c is not None]
    text, video = model.embed_texts(texts), model.embed_videos([split.frames(i) for i in range(len(split))])
    np.testing.assert_allclose(np.linalg.norm(text.numpy(), axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(video.numpy(), axis=1), 1.0, atol=1e-5)

    own = [VideoTextDataset(d).split("test", LANGS) for d in fusion_members["datasets"]]
    cosines = member_cosines(fusion_members, own, texts)
    np.testing.assert_allclose((text @ video.T).numpy(), (cosines[0] + 3 * cosines[1]) / 4, atol=1e-5)
    with pytest.raises(ConfigError, match=r"reads \[T, 48\]"):
        model.embed_videos([own[0].frames(0)])


def test_frames_are_shared_or_side_by_side(fusion_members):
    from c2kd.encoders.frames import FrameEncoderSpec

    clip = FrameEncoderSpec(name="clip-vit-b32", dim=8, options={"model": "m"})
    assert fused_frames([clip, clip], [8, 8]) == (clip, [(0, 8), (0, 8)])
    other = FrameEncoderSpec(name="clip-vit-b32", dim=8, options={"model": "other"})
    spec, slices = fused_frames([clip, other], [8, 8])
    assert spec.name == "concat" and spec.dim == 16 and slices == [(0, 8), (8, 16)]
    assert spec.options["parts"] == [clip.model_dump(mode="json"), other.model_dump(mode="json")]
    assert fused_frames([None, None], [8, 8]) == (None, [(0, 8), (0, 8)])
    with pytest.raises(ConfigError, match="records no frame encoder"):
        fused_frames([clip, None], [8, 4])
    assert [p.name for p in checkpoint_frame_encoder(fusion_members["checkpoints"][0])] == ["synthetic"]


def test_fuse_evaluate_index_and_search_through_the_commands(fusion_members, joined, tmp_path):
    ck, data = fusion_members["checkpoints"], fusion_members["datasets"]
    out = tmp_path / "fused"
    made = run_c2kd("model", "fuse", "--checkpoint", ck[0], "--checkpoint", ck[1], "--data", data[0], "--data",
                    data[1], "--languages", "en,de", "--out", out)
    assert made.returncode == 0, made.stderr
    record = read_fusion(out)
    values = {tuple(v["weights"]): v["t2v/average/R@1"] for v in record.validation}
    assert sorted(values) == weight_grid(2)  # every candidate tried on val
    chosen = next(w for w in weight_grid(2) if values[w] == max(values.values()))  # the first of the best
    assert [m.weight for m in record.members] == [w for w in chosen if w > 0] and record.chosen_on == "val"
    assert f"weights {list(chosen)} chosen on val" in made.stdout

    fixed = tmp_path / "fixed"  # weights given: the fused model's evaluation is the late fusion's
    assert run_c2kd("model", "fuse", "--checkpoint", ck[0], "--checkpoint", ck[1], "--weights", "1,0.5",
                    "--out", fixed).returncode == 0
    result = tmp_path / "fused.json"
    proc = run_c2kd("evaluate", "--checkpoint", fixed, "--data", joined, "--languages", "en,de", "--json", result)
    assert proc.returncode == 0, proc.stderr
    expected = fuse_checkpoints(ck, data, LANGS, weights=[1.0, 0.5])
    expected.pop("fusion")
    assert flatten_metrics(json.loads(result.read_text())) == pytest.approx(flatten_metrics(expected))

    index = tmp_path / "index"
    built = run_c2kd("index", "build", "--checkpoint", fixed, "--features", joined, "--split", "test", "--out", index)
    assert built.returncode == 0, built.stderr
    query = VideoTextDataset(joined).split("test", LANGS).captions["de"][3][0]
    hits = json.loads(run_c2kd("search", index, query, "--lang", "de", "-k", "5", "--json").stdout)["results"]
    own = [VideoTextDataset(d).split("test", LANGS) for d in data]
    cosines = member_cosines(fusion_members, own, [query])
    scores = (cosines[0][0] + 0.5 * cosines[1][0]) / 1.5
    best = np.argsort(-scores)[:5]
    assert [h["video_id"] for h in hits] == [own[0].video_ids[i] for i in best]
    assert [h["score"] for h in hits] == pytest.approx(scores[best].tolist(), abs=1e-4)
    moments = json.loads(run_c2kd("moments", hits[0]["video_id"], query, "--checkpoint", fixed, "--features",
                                  joined, "-k", "1", "--json").stdout)["moments"]
    assert len(moments) == 1

    # the index's members are its identity: other weights are another model
    other = save_fused_checkpoint(tmp_path / "other", ck, [1.0, 2.0])
    assert checkpoint_fingerprint(other) != checkpoint_fingerprint(fixed)
    assert_one_line_error(run_c2kd("search", index, query, "--checkpoint", other), "other weights")


def test_served_search_answers_like_the_command(fusion_members, joined, fused, tmp_path):
    from fastapi.testclient import TestClient

    from c2kd.search.building import build_index
    from c2kd.serve.app import ServeSettings, create_app

    index = build_index(fused, joined, tmp_path / "index", splits=["test"], progress=False)
    query = VideoTextDataset(joined).split("test", LANGS).captions["en"][0][0]
    with TestClient(create_app(ServeSettings(index=index))) as client:
        got = client.get("/api/search", params={"q": query, "lang": "en", "k": 3}).json()
    cli = json.loads(run_c2kd("search", index, query, "-k", "3", "--json").stdout)
    assert [r["video_id"] for r in got["results"]] == [r["video_id"] for r in cli["results"]]


def test_what_a_fused_model_refuses(fusion_members, joined, fused, tmp_path):
    ck, data = fusion_members["checkpoints"], fusion_members["datasets"]
    with pytest.raises(CheckpointError, match="members/0"):  # not a teacher nor a run to continue
        load_checkpoint(fused)
    with pytest.raises(ConfigError, match="itself a fused model"):
        save_fused_checkpoint(tmp_path / "nested", [fused, ck[0]], [1.0, 1.0])
    damaged = tmp_path / "damaged"
    shutil.copytree(fused, damaged)
    (damaged / "fusion.json").write_text('{"members": [')
    with pytest.raises(CheckpointError, match="fuse the models again"):
        load_model(damaged)
    alone = save_fused_checkpoint(tmp_path / "alone", ck, [2.0, 0.0])  # weight 0: left out
    assert [m.path for m in read_fusion(alone).members] == ["members/0"]
    assert checkpoint_frame_encoder(alone) == checkpoint_frame_encoder(ck[0])
    for weights in ([0.0, 0.0], [1.0, float("nan")], [1.0]):
        with pytest.raises(ConfigError, match="weight"):
            save_fused_checkpoint(tmp_path / "bad", ck, weights)
    # a store of one member's features is refused with the way to make the joined one
    assert_one_line_error(run_c2kd("index", "build", "--checkpoint", fused, "--features", data[0], "--out",
                                   tmp_path / "index"), "concat of synthetic", "c2kd data concat-features STORE1 STORE2")
    assert_one_line_error(run_c2kd("model", "fuse", "--checkpoint", ck[0], "--checkpoint", ck[1], "--out",
                                   tmp_path / "x"), "--weights", "--data")


def test_joining_refuses_what_does_not_line_up_and_resumes(fusion_members, tmp_path, monkeypatch):
    first, second = fusion_members["datasets"]
    with pytest.raises(DataError, match="only feature stores or only dataset folders"):
        concat_features([first, second / "features"], tmp_path / "mixed")
    with pytest.raises(DataError, match="at least two"):
        concat_features([first], tmp_path / "one")
    from c2kd.data.features import FeatureStoreWriter

    fewer = tmp_path / "fewer"  # a store missing a video, and one with another frame count
    longer = tmp_path / "longer"
    source = FeatureStore(second / "features")
    with FeatureStoreWriter(fewer, source.dim, encoder="other-frames") as a, \
            FeatureStoreWriter(longer, source.dim, encoder="other-frames") as b:
        for i, vid in enumerate(source.ids):
            if i:
                a.add(vid, source[vid])
            b.add(vid, np.concatenate([source[vid], source[vid][:1]]) if i == 0 else source[vid])
    with pytest.raises(DataError, match="hold different videos"):
        concat_features([first / "features", fewer], tmp_path / "out1", progress=False)
    with pytest.raises(DataError, match="same fps"):
        concat_features([first / "features", longer], tmp_path / "out2", progress=False)

    out = tmp_path / "resumed"  # interrupted after a few videos: the finished ones are kept, the rest added
    calls = {"n": 0}
    original = FeatureStore.__getitem__

    def interrupted(self, vid):
        calls["n"] += 1
        if calls["n"] > 9:
            raise KeyboardInterrupt
        return original(self, vid)

    monkeypatch.setattr(FeatureStore, "__getitem__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        concat_features([first / "features", second / "features"], out, progress=False)
    monkeypatch.setattr(FeatureStore, "__getitem__", original)
    assert 0 < len(FeatureStore(out)) < len(source)
    concat_features([first / "features", second / "features"], out, progress=False)
    joined = FeatureStore(out)
    assert sorted(joined.ids) == sorted(source.ids)
    for vid in source.ids:
        np.testing.assert_array_equal(joined[vid], np.concatenate([FeatureStore(first / "features")[vid],
                                                                   source[vid]], axis=1))

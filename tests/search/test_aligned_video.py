"""Search over real videos with no training: a CLIP text tower + CLIP frames, end to end, offline.

Tiny random-config CLIP models (full ``CLIPModel`` + a byte-level BPE ``CLIPTokenizer`` + an image processor) stand
in for ``openai/clip-vit-base-patch32``; the two real MSR-VTT clips are extracted with them, a ``c2kd model aligned``
checkpoint is written, and index build, search in German, moments and the HTTP service are run on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from clipkit import PROJECTION, make_tiny_clip_model, make_tiny_st_model
from typer.testing import CliRunner

from c2kd.cli import app
from c2kd.errors import ConfigError
from c2kd_testkit import put_in_hub_cache

runner = CliRunner()
QUERY = "ein Mann spricht"


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=True)


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory, clips):
    """Tiny CLIP folders, the real clips extracted with one of them, an aligned checkpoint and its index."""
    tmp = tmp_path_factory.mktemp("aligned")
    clip = make_tiny_clip_model(tmp / "clip")
    other = make_tiny_clip_model(tmp / "other-clip", seed=1)
    store = tmp / "store"
    ok("extract", *clips.values(), "--encoder", "clip-vit-b32", "--model", clip, "--out", store, "--workers", 0,
       "--no-progress")
    checkpoint = tmp / "aligned"
    made = ok("model", "aligned", "--text", clip, "--frame-encoder", "clip-vit-b32", "--frame-model", clip,
              "--out", checkpoint)
    assert "clip-vit-b32" in made.output
    index = tmp / "index"
    ok("index", "build", "--checkpoint", checkpoint, "--features", store, "--out", index,
       "--videos", clips["video9770"].parent)
    return {"tmp": tmp, "clip": clip, "other": other, "store": store, "checkpoint": checkpoint, "index": index}


def clip_text_features(folder: Path, texts: list[str]) -> np.ndarray:
    """CLIP's own text embeddings (``get_text_features``), L2-normalised."""
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(folder).eval()
    inputs = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.get_text_features(**inputs)
    out = out if torch.is_tensor(out) else out.pooler_output
    return torch.nn.functional.normalize(out, dim=-1).numpy()


def video_vector(frames: np.ndarray) -> np.ndarray:
    """The training-free video embedding: the mean of the L2-normalised frame features, L2-normalised."""
    x = np.asarray(frames, np.float64)
    mean = (x / np.linalg.norm(x, axis=1, keepdims=True)).mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_checkpoint_records_the_frame_encoder_and_scores_like_clip(work, clips):
    from c2kd.checkpoint import load_checkpoint
    from c2kd.data.features import FeatureStore
    from c2kd.features.decode import sample_frames
    from c2kd.features.encoders import build_frame_encoder
    from c2kd.formats import checkpoint_frame_encoder

    (spec,) = checkpoint_frame_encoder(work["checkpoint"])
    assert spec.name == "clip-vit-b32" and spec.dim == PROJECTION
    assert spec.options["model"] == str(work["clip"].resolve())
    model, config = load_checkpoint(work["checkpoint"])
    assert config.text.head == "aligned" and config.video.aligned
    assert config.text.embed_dim == config.video.feature_dim == PROJECTION

    store = FeatureStore(work["store"])
    assert store.meta["encoder"] == "clip-vit-b32" and sorted(store.ids) == sorted(clips)
    # the store holds CLIP's image features of the sampled frames (float16)
    from transformers import CLIPModel

    clip = CLIPModel.from_pretrained(work["clip"]).eval()
    encoder = build_frame_encoder("clip-vit-b32", model=str(work["clip"]), device="cpu")
    frames, _ = sample_frames(clips["video9770"], 1.0, transform=encoder.preprocess.resize)
    with torch.no_grad():
        image = clip.get_image_features(pixel_values=torch.from_numpy(encoder.preprocess(frames)))
    image = (image if torch.is_tensor(image) else image.pooler_output).numpy()
    np.testing.assert_allclose(np.asarray(store["video9770"], np.float32), image, rtol=2e-3, atol=2e-3)

    # search scores = cosine(CLIP text features, mean of normalised frame features), computed independently
    text = clip_text_features(work["clip"], [QUERY, "a dog runs"])
    payload = json.loads(ok("search", work["index"], QUERY, "--lang", "de", "--json").output)
    assert [r["video_id"] for r in payload["results"]] and len(payload["results"]) == 2
    for hit in payload["results"]:
        expected = float(video_vector(store[hit["video_id"]]) @ text[0])
        assert hit["score"] == pytest.approx(expected, abs=1e-5)
    model.eval()
    np.testing.assert_allclose(model.embed_texts([QUERY, "a dog runs"]).numpy(), text, atol=1e-5)


def test_moments_on_a_video_file_use_the_checkpoints_frame_encoder(work, clips):
    from c2kd.data.features import FeatureStore

    result = ok("moments", clips["video9771"], QUERY, "--checkpoint", work["checkpoint"], "--lang", "de", "-k", 3,
                "--lengths", "2,4", "--json")
    payload = json.loads(result.output)
    assert payload["video_id"] == "video9771" and 1 <= len(payload["moments"]) <= 3
    # the same moments as from the store: the file was encoded with the recorded CLIP model, not a guess
    from_store = json.loads(ok("moments", "video9771", QUERY, "--checkpoint", work["checkpoint"], "--features",
                               work["store"], "-k", 3, "--lengths", "2,4", "--json").output)
    assert [(m["start"], m["end"]) for m in payload["moments"]] == [(m["start"], m["end"])
                                                                   for m in from_store["moments"]]
    for got, want in zip(payload["moments"], from_store["moments"]):
        assert got["score"] == pytest.approx(want["score"], abs=5e-3)  # the store keeps float16
    # the best moment scores like CLIP: its peak is the best window inside it, cosine(text, mean of its
    # normalised frames)
    store = FeatureStore(work["store"])
    best = from_store["moments"][0]
    times, frames = store.times("video9771"), store["video9771"]
    text = clip_text_features(work["clip"], [QUERY])[0]
    inside = [float(video_vector(frames[i:i + n]) @ text) for n in (2, 4) for i in range(len(times) - n + 1)
              if times[i] >= best["start"] - 1e-6 and times[i + n - 1] < best["end"] - 1e-6]
    assert best["score"] == pytest.approx(max(inside), abs=1e-5)


def test_http_service_answers_search(work):
    from fastapi.testclient import TestClient

    from c2kd.serve.app import ServeSettings, create_app

    with TestClient(create_app(ServeSettings(index=work["index"]))) as client:
        got = client.get("/api/search", params={"q": QUERY, "lang": "de", "k": 2, "moments": True}).json()
    cli = json.loads(ok("search", work["index"], QUERY, "--json").output)
    assert [r["video_id"] for r in got["results"]] == [r["video_id"] for r in cli["results"]]
    assert all(r["moment"] is not None and r["video_url"] for r in got["results"])


def test_fused_models_reading_one_frame_encoder_share_its_frames(work, clips, tmp_path):
    """CLIP fused with a sentence-transformers tower aligned to the same CLIP frames: extract, index, search in
    German, moments on a file and the service, each scoring (cos_clip + 3 cos_st) / 4."""
    from fastapi.testclient import TestClient

    from c2kd.data.features import FeatureStore
    from c2kd.encoders.text.loading import build_text_backbone
    from c2kd.formats import checkpoint_frame_encoder
    from c2kd.serve.app import ServeSettings, create_app

    folder, _ = make_tiny_st_model(tmp_path / "st", [QUERY, "a man talks"])
    st = tmp_path / "st-aligned"
    ok("model", "aligned", "--text", folder, "--frame-encoder", "clip-vit-b32", "--frame-model", work["clip"],
       "--out", st, "--i-know-they-are-aligned")  # a tiny random tower: plumbing, not a real pair
    fused = tmp_path / "fused"
    ok("model", "fuse", "--checkpoint", work["checkpoint"], "--checkpoint", st, "--weights", "1,3", "--out", fused)
    assert checkpoint_frame_encoder(fused) == checkpoint_frame_encoder(work["checkpoint"])
    store = tmp_path / "store"
    ok("extract", *clips.values(), "--checkpoint", fused, "--out", store, "--workers", 0, "--no-progress")
    features = FeatureStore(store)
    np.testing.assert_array_equal(features["video9770"], FeatureStore(work["store"])["video9770"])
    index = tmp_path / "index"
    ok("index", "build", "--checkpoint", fused, "--features", store, "--out", index,
       "--videos", clips["video9770"].parent)

    backbone = build_text_backbone(f"st:{folder}")
    with torch.no_grad():
        st_text = torch.nn.functional.normalize(backbone(backbone.prepare([QUERY], 40)), dim=-1).numpy()[0]
    clip_text = clip_text_features(work["clip"], [QUERY])[0]
    payload = json.loads(ok("search", index, QUERY, "--lang", "de", "--json").output)
    assert len(payload["results"]) == 2
    for hit in payload["results"]:
        video = video_vector(features[hit["video_id"]])
        assert hit["score"] == pytest.approx(float(video @ clip_text + 3 * video @ st_text) / 4, abs=1e-5)
    moments = json.loads(ok("moments", clips["video9771"], QUERY, "--checkpoint", fused, "-k", 1, "--json").output)
    assert len(moments["moments"]) == 1
    with TestClient(create_app(ServeSettings(index=index))) as client:
        got = client.get("/api/search", params={"q": QUERY, "lang": "de", "k": 2}).json()
    assert [r["video_id"] for r in got["results"]] == [r["video_id"] for r in payload["results"]]


def test_fused_models_reading_two_frame_encoders_extract_both_in_one_pass(work, clips, tmp_path):
    """Two CLIP models' aligned checkpoints fused: `extract --checkpoint` runs both encoders on the same frames
    (= each encoder's own store, side by side), search scores (cos_a + cos_b) / 2, moments on a file agree."""
    from c2kd.data.features import FeatureStore
    from c2kd.formats import checkpoint_frame_encoder

    second = tmp_path / "other-aligned"
    ok("model", "aligned", "--text", work["other"], "--frame-encoder", "clip-vit-b32", "--out", second)
    fused = tmp_path / "fused"
    ok("model", "fuse", "--checkpoint", work["checkpoint"], "--checkpoint", second, "--weights", "1,1",
       "--out", fused)
    parts = checkpoint_frame_encoder(fused)
    assert [p.name for p in parts] == ["clip-vit-b32"] * 2 and sum(p.dim for p in parts) == 2 * PROJECTION
    assert [p.options["model"] for p in parts] == [str(work["clip"].resolve()), str(work["other"].resolve())]
    other_store = tmp_path / "other-store"
    ok("extract", *clips.values(), "--encoder", "clip-vit-b32", "--model", work["other"], "--out", other_store,
       "--workers", 0, "--no-progress")
    store = tmp_path / "store"
    ok("extract", *clips.values(), "--checkpoint", fused, "--out", store, "--workers", 1, "--no-progress")
    joined, first, other = FeatureStore(store), FeatureStore(work["store"]), FeatureStore(other_store)
    assert joined.meta["encoder"] == "concat"
    for vid in clips:
        np.testing.assert_allclose(np.asarray(joined[vid], np.float32),
                                   np.concatenate([first[vid], other[vid]], axis=1).astype(np.float32), atol=2e-3)
        np.testing.assert_array_equal(joined.times(vid), first.times(vid))

    index = tmp_path / "index"
    ok("index", "build", "--checkpoint", fused, "--features", store, "--out", index)
    texts = [clip_text_features(work[name], [QUERY])[0] for name in ("clip", "other")]
    for hit in json.loads(ok("search", index, QUERY, "--lang", "de", "--json").output)["results"]:
        frames = np.asarray(joined[hit["video_id"]], np.float64)
        expected = sum(float(video_vector(frames[:, i * PROJECTION:(i + 1) * PROJECTION]) @ text)
                       for i, text in enumerate(texts)) / 2
        assert hit["score"] == pytest.approx(expected, abs=1e-5)
    from_file = json.loads(ok("moments", clips["video9771"], QUERY, "--checkpoint", fused, "-k", 2, "--lengths",
                              "2,4", "--json").output)["moments"]
    from_store = json.loads(ok("moments", "video9771", QUERY, "--checkpoint", fused, "--features", store, "-k", 2,
                               "--lengths", "2,4", "--json").output)["moments"]
    assert [(m["start"], m["end"]) for m in from_file] == [(m["start"], m["end"]) for m in from_store]
    refused = run("index", "build", "--checkpoint", fused, "--features", work["store"], "--out", tmp_path / "bad")
    assert isinstance(refused.exception, ConfigError)
    assert f"c2kd extract VIDEOS --checkpoint {fused}" in str(refused.exception)
    bare = run("extract", clips["video9770"], "--encoder", "concat", "--out", tmp_path / "bare")
    assert isinstance(bare.exception, ConfigError) and "--checkpoint FUSED" in str(bare.exception)


def test_extract_with_checkpoint_uses_its_encoder_and_refuses_another(work, clips):
    from c2kd.data.features import FeatureStore
    from c2kd.encoders.frames import store_frame_encoder

    store = work["tmp"] / "from-checkpoint"
    ok("extract", clips["video9770"], "--checkpoint", work["checkpoint"], "--out", store, "--workers", 0,
       "--no-progress")
    made = FeatureStore(store)
    assert store_frame_encoder(made.meta) == store_frame_encoder(FeatureStore(work["store"]).meta)
    np.testing.assert_array_equal(made["video9770"], FeatureStore(work["store"])["video9770"])
    refused = run("extract", clips["video9770"], "--checkpoint", work["checkpoint"], "--model", work["other"],
                  "--out", work["tmp"] / "refused", "--workers", 0, "--no-progress")
    assert isinstance(refused.exception, ConfigError) and str(work["clip"].resolve()) in str(refused.exception)


def test_store_of_another_encoder_is_refused_naming_the_right_one(work, clips):
    from c2kd.data.features import FeatureStoreWriter

    other = work["tmp"] / "other-store"
    ok("extract", clips["video9770"], "--encoder", "clip-vit-b32", "--model", work["other"], "--out", other,
       "--workers", 0, "--no-progress")
    focus = work["tmp"] / "focus-store"  # features recorded as made by vit-s14-focus (same size, to pass dims)
    with FeatureStoreWriter(focus, PROJECTION, encoder="vit-s14-focus", fps=1.0,
                            extra={"extractor": {"encoder": "vit-s14-focus", "dim": PROJECTION, "pool": "cls"}}) as w:
        w.add("video9770", np.ones((3, PROJECTION), np.float32), np.arange(3, dtype=np.float32))
    right = str(work["clip"].resolve())
    for store, wrong in ((other, str(work["other"].resolve())), (focus, "vit-s14-focus")):
        for args in (("index", "build", "--checkpoint", work["checkpoint"], "--features", store, "--out",
                      work["tmp"] / "bad-index"),
                     ("moments", "video9770", QUERY, "--checkpoint", work["checkpoint"], "--features", store)):
            result = run(*args)
            assert isinstance(result.exception, ConfigError), (args, result.output, result.exception)
            message = str(result.exception)
            assert "clip-vit-b32" in message and right in message and wrong in message
            assert f"c2kd extract VIDEOS --checkpoint {work['checkpoint']}" in message


def test_evaluate_and_teacher_loading_accept_the_aligned_checkpoint(work, tiny_dataset):
    import shutil

    from c2kd.data.features import FeatureStore
    from c2kd.distill.teachers import load_teachers

    refused = run("evaluate", "--checkpoint", work["checkpoint"], "--data", tiny_dataset)
    assert isinstance(refused.exception, ConfigError) and "'synthetic' instead of 'clip-vit-b32'" in str(
        refused.exception)
    data = work["tmp"] / "relabelled"  # the tiny dataset, its 16-d features labelled as the checkpoint's CLIP ones
    shutil.copytree(tiny_dataset, data)
    meta_path = data / "features" / "store.json"
    meta = {**json.loads(meta_path.read_text()), **{k: FeatureStore(work["store"]).meta[k]
                                                    for k in ("encoder", "extractor")}}
    meta_path.write_text(json.dumps(meta))
    out = work["tmp"] / "eval.json"
    ok("evaluate", "--checkpoint", work["checkpoint"], "--data", data, "--split", "test", "--json", out)
    results = json.loads(out.read_text())  # every language of the test split, both directions, as R@K in percent
    assert set(results["t2v"]) == set(results["v2t"]) == {"en", "de", "fr", "cs", "average"}
    assert all(0 <= row["R@1"] <= row["R@5"] <= row["R@10"] <= 100 for d in ("t2v", "v2t") for row in results[d].values())
    (teacher,) = load_teachers([work["checkpoint"]], feature_dim=PROJECTION)
    assert teacher.config.text.head == "aligned"


def test_dims_must_agree_and_folders_must_exist(work, tmp_path):
    unknown = run("model", "aligned", "--text", work["clip"], "--frame-encoder", "s3d", "--out", tmp_path / "x")
    assert isinstance(unknown.exception, ConfigError) and "not known to embed" in str(unknown.exception)
    wrong = run("model", "aligned", "--text", work["clip"], "--frame-encoder", "s3d", "--out", tmp_path / "x",
                "--i-know-they-are-aligned")
    assert isinstance(wrong.exception, ConfigError)
    assert "16-d" in str(wrong.exception) and "1024-d" in str(wrong.exception)
    missing = run("model", "aligned", "--text", "clip:./no/such/clip", "--frame-encoder", "clip-vit-b32",
                  "--out", tmp_path / "y")
    assert isinstance(missing.exception, ConfigError) and "not found" in str(missing.exception)


def test_model_aligned_names_every_missing_model_in_one_message(tmp_path, monkeypatch):
    """Without a hub, both towers of the documented preset are named at once (each with its download command),
    before anything loads; a CLIP text tower and the frames of the same checkpoint are named once."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["model", "aligned", "--text", "mclip-vit-b32", "--frame-encoder",
                                      "clip-vit-b32", "--out", str(tmp_path / "x")])
    message = str(result.exception)
    assert isinstance(result.exception, ConfigError) and message.startswith("2 models are missing here"), message
    assert "hf download sentence-transformers/clip-ViT-B-32-multilingual-v1 --local-dir DIR" in message
    assert "st:DIR" in message and "hf download openai/clip-vit-base-patch32" in message
    assert "--frame-model DIR" in message and not (tmp_path / "x").exists()
    result = CliRunner().invoke(app, ["model", "aligned", "--text", "clip-vit-b32-text", "--frame-encoder",
                                      "clip-vit-b32", "--out", str(tmp_path / "x")])
    message = str(result.exception)
    assert "models are missing" not in message and message.count("openai/clip-vit-base-patch32") == 2, message


def test_aligned_checkpoint_with_a_sentence_transformers_tower_reloads_offline(work, tmp_path):
    from c2kd.checkpoint import load_checkpoint

    texts = ["ein mann spricht", "a man talks"]
    folder, _ = make_tiny_st_model(tmp_path / "st", texts)
    out = tmp_path / "st-aligned"
    ok("model", "aligned", "--text", folder, "--frame-encoder", "clip-vit-b32", "--frame-model", work["clip"],
       "--out", out, "--i-know-they-are-aligned")
    model, config = load_checkpoint(out)
    assert config.text.name == f"st:{folder}"
    from c2kd.encoders.text.loading import build_text_backbone

    direct = build_text_backbone(f"st:{folder}")
    with torch.no_grad():
        expected = torch.nn.functional.normalize(direct(direct.prepare(texts, 40)), dim=-1)
    torch.testing.assert_close(model.eval().embed_texts(texts), expected, atol=1e-5, rtol=1e-5)


def test_documented_presets_load_from_the_hub_cache(work, clips, tmp_path, monkeypatch):
    """`model aligned --text mclip-vit-b32 --frame-encoder clip-vit-b32` and `extract --checkpoint`, with tiny
    models standing in for the hub's in a Hugging Face cache (offline)."""
    import huggingface_hub.constants

    from c2kd.checkpoint import load_checkpoint
    from c2kd.data.features import FeatureStore
    from c2kd.encoders.text.loading import build_text_backbone
    from c2kd.encoders.text.presets import TEXT_PRESETS
    from c2kd.formats import checkpoint_frame_encoder

    cache = tmp_path / "hub"
    st_folder, _ = make_tiny_st_model(tmp_path / "st", ["ein mann spricht"])
    put_in_hub_cache(cache, TEXT_PRESETS["mclip-vit-b32"].source, st_folder)
    put_in_hub_cache(cache, "openai/clip-vit-base-patch32", work["clip"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    out = tmp_path / "mclip"
    ok("model", "aligned", "--text", "mclip-vit-b32", "--frame-encoder", "clip-vit-b32", "--out", out)
    assert [p.options["model"] for p in checkpoint_frame_encoder(out)] == ["openai/clip-vit-base-patch32"]
    model, config = load_checkpoint(out)
    assert config.text.name == "mclip-vit-b32"
    direct = build_text_backbone(f"st:{st_folder}")
    with torch.no_grad():
        expected = torch.nn.functional.normalize(direct(direct.prepare([QUERY], 40)), dim=-1)
    torch.testing.assert_close(model.eval().embed_texts([QUERY]), expected, atol=1e-5, rtol=1e-5)
    store = tmp_path / "store"
    ok("extract", clips["video9770"], "--checkpoint", out, "--out", store, "--workers", 0, "--no-progress")
    np.testing.assert_array_equal(FeatureStore(store)["video9770"], FeatureStore(work["store"])["video9770"])
    clip_text = build_text_backbone("clip-vit-b32-text")
    assert clip_text.dim == PROJECTION and clip_text.name == "clip-vit-b32-text"


def test_cached_hub_ids_load_from_the_cache_when_the_hub_is_out_of_reach(work, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from c2kd.encoders import hub

    put_in_hub_cache(tmp_path / "hub", "openai/clip-vit-base-patch32", work["clip"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    assert hub.ensure_hub_source("openai/clip-vit-base-patch32", "CLIP") == {"local_files_only": True}
    assert hub.ensure_hub_source(str(work["clip"]), "CLIP") == {}
    with pytest.raises(ConfigError, match=r"cannot be reached.*--local-dir DIR"):
        hub.ensure_hub_source("someone/uncached-clip", "CLIP")
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    assert hub.ensure_hub_source("someone/uncached-clip", "CLIP") == {}


def _join_clips(paths: list[Path], out: Path, fps: int = 10) -> list[float]:
    """Decode the clips in order and write them end to end as one MPEG-4 file at ``fps``; returns the
    second at which each clip starts in the joined file."""
    import av

    out.parent.mkdir(parents=True, exist_ok=True)
    starts, written = [], 0
    with av.open(str(out), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.bit_rate = 4_000_000
        for path in paths:
            starts.append(written / fps)
            with av.open(str(path)) as source:
                video = source.streams.video[0]
                first = None
                for frame in source.decode(video):
                    t = float(frame.time) if first is None else float(frame.time) - first
                    first = float(frame.time) if first is None else first
                    rgb = frame.to_ndarray(width=320, height=240, format="rgb24")
                    while written / fps - starts[-1] <= t:  # keep the source timing at the new rate
                        image = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
                        image.pts = written
                        for packet in stream.encode(image):
                            container.mux(packet)
                        written += 1
        for packet in stream.encode():
            container.mux(packet)
    return starts


def _frame_at(path: Path, seconds: float) -> np.ndarray:
    import av

    with av.open(str(path)) as source:
        first = None
        for frame in source.decode(source.streams.video[0]):
            first = float(frame.time) if first is None else first
            if float(frame.time) - first >= seconds - 1e-6:
                return np.asarray(frame.to_ndarray(format="rgb24"), np.float32)
    raise AssertionError(f"{path} is shorter than {seconds} s")


def test_a_long_video_joined_from_the_real_clips_is_indexed_as_moments(work, clips, tmp_path):
    from PIL import Image

    from c2kd.data.features import FeatureStore
    from c2kd.index import VideoIndex
    from c2kd.search.posters import poster_at

    joined = tmp_path / "videos" / "long.mp4"
    starts = _join_clips([clips["video9770"], clips["video9771"]], joined)
    store, index = tmp_path / "store", tmp_path / "index"
    ok("extract", joined, "--checkpoint", work["checkpoint"], "--out", store, "--workers", 0, "--no-progress")
    built = ok("index", "build", "--checkpoint", work["checkpoint"], "--features", store, "--out", index,
               "--videos", joined.parent, "--moment-lengths", "4,8", "--moment-stride", "0.5",
               "--whole-up-to", "0")
    assert "entries" in built.output
    features = FeatureStore(store)
    times = features.times("long")
    duration = float(times[-1] + 1.0)
    assert 24.0 <= duration <= 26.0 and starts[1] == pytest.approx(11.0, abs=0.2)
    with VideoIndex.open(index) as idx:
        entries = idx.entries_of("long")
        meta = idx.metadata("long")
    # windows by hand: lengths 4 and 8 s, strides 2 and 4 s, the last of each aligned with the end
    n = len(times)
    expected = sorted({(float(i), float(i + 4)) for i in [*range(0, n - 3, 2), n - 4]}
                      | {(float(i), float(i + 8)) for i in [*range(0, n - 7, 4), n - 8]})
    assert not entries.whole and sorted(zip(entries.start.tolist(), entries.end.tolist())) == expected
    assert meta["duration"] == pytest.approx(duration)
    # each entry scores like the training-free model over its own rows: cosine(text, mean of normalised frames)
    text = clip_text_features(work["clip"], [QUERY])[0]
    for start, end, vector in zip(entries.start, entries.end, entries.vectors):
        rows = (times >= start - 1e-6) & (times < end - 1e-6)
        assert float(vector @ text) == pytest.approx(float(video_vector(features["long"][rows]) @ text), abs=2e-3)
    # search: the hit carries its moments, the poster still at the best moment's start shows that second
    hit = json.loads(ok("search", index, QUERY, "--lang", "de", "--json").output)["results"][0]
    assert hit["video_id"] == "long" and hit["moment"] is not None and hit["moments"][0] == hit["moment"]
    assert hit["moment"]["score"] == pytest.approx(hit["score"], abs=1e-6)  # scored by its peak, the best window
    assert max(float(entries.vectors[i] @ text) for i in range(len(entries))) == pytest.approx(hit["score"], abs=1e-5)
    # poster stills match the source clips: a second of the first clip, and one of the second clip
    for second, source, at in ((4.0, clips["video9770"], 4.0), (starts[1] + 5.0, clips["video9771"], 5.0)):
        still = poster_at(index, "long", second)
        assert still is not None
        got = np.asarray(Image.open(still).convert("RGB").resize((320, 240)), np.float32)
        want = _frame_at(source, at)
        want = np.asarray(Image.fromarray(want.astype(np.uint8)).resize((320, 240)), np.float32)
        other = _frame_at(clips["video9771"] if source == clips["video9770"] else clips["video9770"], at)
        other = np.asarray(Image.fromarray(other.astype(np.uint8)).resize((320, 240)), np.float32)
        assert np.abs(got - want).mean() < np.abs(got - other).mean() / 2, second
    # moments of the indexed video read its entries (the same spans and scores, nothing re-embedded)
    moments = json.loads(ok("moments", "long", QUERY, "--index", index, "-k", 3, "--json").output)["moments"]
    spans = {(float(s), float(e)): float(v @ text) for s, e, v in zip(entries.start, entries.end, entries.vectors)}
    assert moments and all((m["start"], m["end"]) in spans for m in moments)
    for m in moments:  # each scored by its peak, a window inside it
        inside = [v for (s, e), v in spans.items() if s >= m["start"] and e <= m["end"]]
        assert min(abs(m["score"] - v) for v in inside) < 1e-5


def test_model_download_fetches_both_towers_and_prints_the_offline_command(work, tmp_path, monkeypatch):
    """`model download mclip-vit-b32` puts the text tower and the CLIP frame model in folders (here from a
    Hugging Face cache, the hub being out of reach); the printed `model aligned` command then works with no cache
    at all, and scores as the model made from the cache."""
    import shlex

    import huggingface_hub.constants

    from c2kd.checkpoint import load_checkpoint
    from c2kd.encoders.text.presets import TEXT_PRESETS

    cache = tmp_path / "hub"
    st_folder, _ = make_tiny_st_model(tmp_path / "st", ["ein mann spricht"])
    put_in_hub_cache(cache, TEXT_PRESETS["mclip-vit-b32"].source, st_folder)
    put_in_hub_cache(cache, "openai/clip-vit-base-patch32", work["clip"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = ok("model", "download", "mclip-vit-b32", "--out", tmp_path / "models")
    text_dir = tmp_path / "models" / "sentence-transformers--clip-ViT-B-32-multilingual-v1"
    frame_dir = tmp_path / "models" / "openai--clip-vit-base-patch32"
    assert (text_dir / "modules.json").exists() and (frame_dir / "config.json").exists()
    command = next(line for line in result.output.splitlines() if line.startswith("offline, for mclip-vit-b32: "))
    args = shlex.split(command.split(": ", 1)[1].replace("MODEL", str(tmp_path / "offline")))
    assert args[:3] == ["c2kd", "model", "aligned"] and f"st:{text_dir}" in args and str(frame_dir) in args
    ok("model", "aligned", "--text", "mclip-vit-b32", "--frame-encoder", "clip-vit-b32", "--out", tmp_path / "cached")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "no-cache"))
    ok(*args[1:])
    offline, _ = load_checkpoint(tmp_path / "offline")
    cached, _ = load_checkpoint(tmp_path / "cached")
    torch.testing.assert_close(offline.eval().embed_texts([QUERY]), cached.eval().embed_texts([QUERY]))

"""The SigLIP / SigLIP 2 pairs: `c2kd model download NAME` fetches the checkpoint both towers live in and prints the
`c2kd model aligned` command that builds the pair from that folder with no hub at all; the pair scores with SigLIP's
own text embedding (transformers' pipeline) and reads the `siglip` frame encoder of the same folder.

Tiny random-config SigLIP / SigLIP 2 / NaFlex folders (tests/siglipkit.py) stand in for the hub's, laid out as a
Hugging Face cache with the hub out of reach.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from siglipkit import HIDDEN, TEXT_LENGTH, make_tiny_siglip
from typer.testing import CliRunner

from c2kd.cli import app
from c2kd_testkit import put_in_hub_cache

#: frame preset -> (the text preset aligned with it, the hub id of both towers, the tiny stand-in's kind)
PAIRS = {
    "siglip2-base-patch16-256": ("siglip2-base-patch16-256-text", "google/siglip2-base-patch16-256", "siglip2"),
    "siglip2-so400m-patch14-384": ("siglip2-so400m-patch14-384-text", "google/siglip2-so400m-patch14-384",
                                   "siglip2"),
    "siglip2-base-patch16-naflex": ("siglip2-base-patch16-naflex-text", "google/siglip2-base-patch16-naflex",
                                    "siglip2-naflex"),
    "siglip-base-patch16-256-multilingual": ("siglip-base-patch16-256-multilingual-text",
                                             "google/siglip-base-patch16-256-multilingual", "siglip"),
}
TEXTS = ["ein Mann spricht über ein Auto", "a man is talking about a car", "一个男人在说话"]


def ok(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def reference(folder: Path, texts: list[str]) -> torch.Tensor:
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    inputs = tokenizer(texts, padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return F.normalize(model.get_text_features(**inputs).pooler_output, dim=-1)


@pytest.mark.parametrize("frames", list(PAIRS))
def test_download_then_build_the_pair_from_local_folders_with_no_hub(frames, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from c2kd.checkpoint import load_checkpoint
    from c2kd.formats import checkpoint_frame_encoder

    text_preset, hub_id, kind = PAIRS[frames]
    tiny = make_tiny_siglip(tmp_path / "tiny", kind=kind)
    put_in_hub_cache(tmp_path / "hub", hub_id, tiny)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    # the hub's name of the pair works from the cache: text preset + frame preset
    ok("model", "aligned", "--text", text_preset, "--frame-encoder", frames, "--out", tmp_path / "cached")
    (spec,) = checkpoint_frame_encoder(tmp_path / "cached")
    assert spec.name == "siglip" and spec.options["model"] == hub_id and spec.dim == HIDDEN

    # `model download` takes the frame preset's name (or the text preset's): one folder holds both towers
    result = ok("model", "download", frames, "--out", tmp_path / "models")
    folder = tmp_path / "models" / hub_id.replace("/", "--")
    assert (folder / "config.json").exists() and (folder / "preprocessor_config.json").exists()
    assert result.output.count(" -> ") == 1  # the checkpoint of both towers, fetched once
    line = next(line for line in result.output.splitlines() if line.startswith(f"offline, for {frames}: "))
    args = shlex.split(line.split(": ", 1)[1].replace("MODEL", str(tmp_path / "offline")))
    assert args[:3] == ["c2kd", "model", "aligned"] and str(folder) in args

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "no-cache"))
    shutil.rmtree(tmp_path / "hub")
    ok(*args[1:])  # no hub, no cache: the folders alone
    (spec,) = checkpoint_frame_encoder(tmp_path / "offline")
    assert spec.name == "siglip" and spec.options["model"] == str(folder)

    expected = reference(tiny, TEXTS)
    for built in ("offline", "cached"):
        model, config = load_checkpoint(tmp_path / built)
        assert config.text.head == "aligned" and config.video.aligned
        torch.testing.assert_close(model.eval().embed_texts(TEXTS), expected, atol=1e-5, rtol=1e-5)


def test_a_siglip2_pair_searches_the_real_clips_end_to_end(clips, tmp_path):
    """extract -> index build -> search -> serve on the two real clips with a random-config SigLIP 2 pair: each
    score is SigLIP's text embedding against the mean of the video's normalised SigLIP frame features."""
    import json

    import numpy as np
    from fastapi.testclient import TestClient

    from c2kd.data.features import FeatureStore
    from c2kd.serve.app import ServeSettings, create_app

    folder = make_tiny_siglip(tmp_path / "siglip2", kind="siglip2")
    model = tmp_path / "pair"
    ok("model", "aligned", "--text", folder, "--frame-encoder", "siglip", "--out", model)
    store, index = tmp_path / "store", tmp_path / "index"
    ok("extract", *clips.values(), "--checkpoint", model, "--out", store, "--workers", 0, "--no-progress")
    assert FeatureStore(store).meta["encoder"] == "siglip"
    ok("index", "build", "--checkpoint", model, "--features", store, "--out", index)
    query = "ein Mann spricht über ein Auto"
    text = reference(folder, [query])[0].double().numpy()
    payload = json.loads(ok("search", index, query, "--json").output)
    assert len(payload["results"]) == 2
    features = FeatureStore(store)
    for hit in payload["results"]:
        frames = np.asarray(features[hit["video_id"]], np.float64)
        mean = (frames / np.linalg.norm(frames, axis=1, keepdims=True)).mean(axis=0)
        assert hit["score"] == pytest.approx(float(mean @ text / np.linalg.norm(mean)), abs=1e-5)
    with TestClient(create_app(ServeSettings(index=index))) as client:
        served = client.get("/api/search", params={"q": query, "k": 2}).json()
    assert [r["video_id"] for r in served["results"]] == [r["video_id"] for r in payload["results"]]

"""The authors' checkpoint imported through the CLI gives their model's outputs (their parity fixture), and the
imported folder is evaluated, indexed and searched like any other checkpoint."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from c2kd.authors.importer import map_state, read_authors_checkpoint
from c2kd.cli import app
from c2kd.errors import CheckpointError, ConfigError, DataError
from c2kd.formats import checkpoint_frame_encoder, load_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def authors() -> Path:
    """``$C2KD_AUTHORS_FIXTURE`` or ``../shared/fixtures/authors-model`` beside the repository."""
    path = Path(os.environ.get("C2KD_AUTHORS_FIXTURE", REPO.parent / "shared" / "fixtures" / "authors-model"))
    if not (path / "checkpoint.pth").is_file():
        pytest.skip(f"the authors' parity fixture is not at {path}; set C2KD_AUTHORS_FIXTURE")
    return path


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, [*args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def imported(authors, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("authors") / "model"
    invoke("model", "import-authors", str(authors / "checkpoint.pth"), "--text-backbone",
           str(authors / "text-backbone"), "--out", str(out))
    return out


def test_import_gives_the_authors_embeddings(authors, imported):
    inputs, outputs = np.load(authors / "inputs.npz"), np.load(authors / "outputs.npz")
    model = load_model(imported).eval()
    with torch.no_grad():
        text = model.text_vectors(torch.as_tensor(inputs["input_ids"]), torch.as_tensor(inputs["attention_mask"]))
        video = model.video_vectors(torch.as_tensor(inputs["video"]), torch.as_tensor(inputs["video_mask"]))
        empty = model.video_vectors(torch.as_tensor(inputs["video_empty"]),
                                    torch.as_tensor(inputs["video_empty_mask"]))
    np.testing.assert_allclose(text.numpy(), outputs["text_embed"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(video.numpy(), outputs["video_embed"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(empty.numpy(), outputs["video_empty_embed"], atol=1e-5, rtol=0)
    # from raw strings and raw frames, as evaluation and search give them
    captions = [str(c) for c in inputs["captions"]]
    ids = model.prepare_texts(captions)["input_ids"].numpy()
    np.testing.assert_array_equal(ids, inputs["input_ids"][:, :ids.shape[1]])
    raw = np.split(inputs["video_raw"], np.cumsum(inputs["video_raw_lengths"])[:-1])
    texts, videos = model.embed_texts(captions), model.embed_videos(raw)
    np.testing.assert_allclose(texts.numpy(), outputs["text_embed_norm"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(videos.numpy(), outputs["video_embed_norm"], atol=1e-6, rtol=0)
    np.testing.assert_allclose((texts @ videos.T).numpy(), outputs["sim_t2v"], atol=1e-6, rtol=0)


def test_imported_folder_records_what_it_is(authors, imported):
    record = json.loads((imported / "authors.json").read_text())
    assert record["architecture"]["arch"] == "BaselineTokenFusionPerModModelLaBSE"
    assert (record["architecture"]["text_hidden"], record["architecture"]["depth"]) == (32, 2)
    assert record["source"]["epoch"] == 20 and "davenet" in record["source"]["left_out"]
    assert [p.name for p in checkpoint_frame_encoder(imported)] == ["clip-vit-b32"]
    # saved again, it loads to the same model (round trip of the format)
    model = load_model(imported)
    again = model.save(imported.parent / "again")
    reloaded = load_model(again)
    assert reloaded.fingerprint() == model.fingerprint()
    captions = ["a dog runs on the beach", "ein Hund"]
    assert torch.equal(model.embed_texts(captions), reloaded.embed_texts(captions))


def test_evaluate_index_and_search_read_the_imported_model(authors, tmp_path):
    model = tmp_path / "model"
    invoke("model", "import-authors", str(authors / "checkpoint.pth"), "--text-backbone",
           str(authors / "text-backbone"), "--out", str(model), "--frame-encoder", "synthetic")
    data = tmp_path / "data"
    invoke("data", "synthetic", "--out", str(data), "--train", "4", "--val", "4", "--test", "10", "--dim", "512")
    invoke("evaluate", "--checkpoint", str(model), "--data", str(data), "--split", "test",
           "--json", str(tmp_path / "r.json"))
    results = json.loads((tmp_path / "r.json").read_text())
    assert {"en", "de"} <= set(results["t2v"]) and 0 <= results["t2v"]["en"]["R@10"] <= 100
    invoke("index", "build", "--checkpoint", str(model), "--features", str(data / "features"),
           "--out", str(tmp_path / "index"))
    said = invoke("search", str(tmp_path / "index"), "ein Hund rennt", "-k", "3", "--json")
    hits = json.loads(said[said.index("{"):])["results"]
    assert len(hits) == 3
    # the same ranking as the model's own scores over the store's videos
    from c2kd.data.features import FeatureStore

    store = FeatureStore(data / "features")
    ids = list(store.ids)
    loaded = load_model(model).eval()
    scores = (loaded.embed_texts(["ein Hund rennt"]) @ loaded.embed_videos([store[i] for i in ids]).T)[0]
    assert [h["video_id"] for h in hits] == [ids[int(i)] for i in scores.argsort(descending=True)[:3]]
    # the HTTP service answers with the same ranking
    from fastapi.testclient import TestClient

    from c2kd.serve.app import ServeSettings, create_app

    with TestClient(create_app(ServeSettings(index=tmp_path / "index"))) as client:
        served = client.get("/api/search", params={"q": "ein Hund rennt", "k": 3}).json()["results"]
    assert [h["video_id"] for h in served] == [h["video_id"] for h in hits]


def test_features_of_another_encoder_are_refused(authors, imported, tmp_path):
    data = tmp_path / "data"
    invoke("data", "synthetic", "--out", str(data), "--train", "4", "--val", "4", "--test", "4", "--dim", "512")
    result = CliRunner().invoke(app, ["index", "build", "--checkpoint", str(imported), "--features",
                                      str(data / "features"), "--out", str(tmp_path / "index")])
    assert isinstance(result.exception, ConfigError) and "clip-vit-b32" in str(result.exception)


class _Payload:
    """Writes a file when unpickled: a checkpoint naming it must be refused before it runs."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_a_checkpoint_naming_other_code_is_refused_unrun(tmp_path):
    target = tmp_path / "ran"
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {}, "config": _Payload(str(target))}, bad)
    with pytest.raises(CheckpointError, match="refusing"):
        read_authors_checkpoint(bad)
    assert not target.exists()
    result = CliRunner().invoke(app, ["model", "import-authors", str(bad), "--out", str(tmp_path / "m")])
    assert isinstance(result.exception, CheckpointError) and "refusing" in str(result.exception)
    assert not (tmp_path / "m").exists()


def test_unknown_weights_are_refused(authors):
    state = read_authors_checkpoint(authors / "checkpoint.pth")["state_dict"]
    mapped, left_out = map_state(state, "ck")
    assert "text_encoder.embeddings.word_embeddings.weight" in mapped and "fusion (alias of fusion_video)" in left_out
    with pytest.raises(CheckpointError, match="unknown weight 'audio_cls'"):
        map_state({**state, "audio_cls": torch.zeros(1)}, "ck")
    changed = dict(state)
    changed["fusion.cls_token"] = state["fusion_video.cls_token"] + 1
    with pytest.raises(CheckpointError, match="alias"):
        map_state(changed, "ck")


def test_download_imports_the_release_from_the_archive(authors, tmp_path):
    archive = tmp_path / "weights.tar"
    with tarfile.open(archive, "w") as tar:  # the authors' layout is unknown: a student and a teacher
        tar.add(authors / "checkpoint.pth", arcname="weights/msrvtt_c2kd/latest_model.pth")
        tar.add(authors / "checkpoint.pth", arcname="weights/teachers/msrvtt_xlm/latest_model.pth")
    out = tmp_path / "models"
    said = invoke("model", "download", "authors-msrvtt", "--url", archive.as_uri(), "--text-backbone",
                  str(authors / "text-backbone"), "--out", str(out))
    assert "weights/msrvtt_c2kd/latest_model.pth" in said
    assert load_model(out / "authors-msrvtt").embed_texts(["a cat"]).shape == (1, 512)
    result = CliRunner().invoke(app, ["model", "download", "authors-vatex", "--archive", str(archive),
                                      "--text-backbone", str(authors / "text-backbone"), "--out", str(out)])
    assert isinstance(result.exception, DataError)
    assert "--member" in str(result.exception) and "teachers/msrvtt_xlm" in str(result.exception)


def test_import_replaces_only_what_c2kd_wrote(authors, imported, tmp_path):
    from c2kd.errors import OutputExistsError

    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["model", "import-authors", str(authors / "checkpoint.pth"), "--text-backbone",
                                      str(authors / "text-backbone"), "--out", str(foreign)])
    assert isinstance(result.exception, OutputExistsError) and (foreign / "mine.txt").read_text() == "keep me"
    again = tmp_path / "again"
    for _ in range(2):  # a folder holding an imported model is replaced
        invoke("model", "import-authors", str(authors / "checkpoint.pth"), "--text-backbone",
               str(authors / "text-backbone"), "--out", str(again))
    assert load_model(again).fingerprint() == load_model(imported).fingerprint()

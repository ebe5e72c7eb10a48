"""Dataset format: languages normalised, training requirements, missing videos kept for evaluation."""

import numpy as np
import pytest

from c2kd.data.dataset import TrainingPairs, VideoTextDataset, save_dataset
from c2kd.data.features import FeatureStoreWriter
from c2kd.errors import DataError
from c2kd_testkit import assert_one_line_error, run_c2kd, tiny_config


def make(tmp_path, rows, videos=("a", "b")):
    with FeatureStoreWriter(tmp_path / "features", dim=4) as w:
        for v in videos:
            w.add(v, np.ones((3, 4)))
    save_dataset(tmp_path, rows, name="t")
    return VideoTextDataset(tmp_path)


def rows_for(videos, langs, split="train", n=2):
    return [dict(video_id=v, split=split, lang=lang, caption_index=k, text=f"{v}-{lang}-{k}")
            for v in videos for lang in langs for k in range(n)]


def test_czech_alias_is_normalised_and_captions_align(tmp_path):
    ds = make(tmp_path, rows_for(["a", "b"], ["en", "cz"]))
    assert ds.languages == ["en", "cs"]
    split = ds.split("train", training=True)
    assert split.captions["cs"][1] == ["b-cz-0", "b-cz-1"]
    assert split.shared_caption_indices(0, ["en", "cs"]) == [0, 1]


def test_codes_written_by_other_tools_are_normalised_when_read(tmp_path):
    """Files written without save_dataset (e.g. by hand, with the original release's `cz`) still read as `cs`."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    make(tmp_path, rows_for(["a", "b"], ["en", "cs"]))
    rows = rows_for(["a", "b"], ["en", "cz"])
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), tmp_path / "captions.parquet")
    meta = json.loads((tmp_path / "dataset.json").read_text())
    (tmp_path / "dataset.json").write_text(json.dumps({**meta, "languages": ["en", "cz"]}))
    ds = VideoTextDataset(tmp_path)
    assert ds.languages == ["en", "cs"]
    assert ds.split("train", ["cs"], training=True).captions["cs"][0] == ["a-cz-0", "a-cz-1"]
    pq.write_table(pa.table({**{k: [r[k] for r in rows] for k in rows[0]}, "lang": ["xx"] * len(rows)}),
                   tmp_path / "captions.parquet")
    with pytest.raises(DataError, match=r"captions\.parquet.*'xx'"):
        VideoTextDataset(tmp_path)


def test_training_needs_every_language(tmp_path):
    rows = rows_for(["a", "b"], ["en"]) + rows_for(["a"], ["de"])
    ds = make(tmp_path, rows)
    with pytest.raises(DataError, match=r"'b'.*no 'de' caption"):
        ds.split("train", training=True)
    with pytest.raises(DataError, match="no captions in \\['fr'\\]"):
        ds.split("train", ["en", "fr"])


def test_training_needs_features_but_evaluation_counts_missing(tmp_path):
    rows = rows_for(["a", "b", "c"], ["en", "de"], split="test", n=1) + rows_for(["a", "b"], ["en"], n=1)
    rows = [r for r in rows if not (r["video_id"] == "c" and r["lang"] == "de")]  # no translation either
    ds = make(tmp_path, rows, videos=("a", "b"))
    test = ds.split("test")
    assert test.video_ids == ["a", "b"] and test.missing_video_ids == ["c"]
    assert test.missing_captions == {"en": 1, "de": 1}  # one miss in every language
    rows.append(dict(video_id="z", split="train", lang="en", caption_index=0, text="z"))
    save_dataset(tmp_path, rows, name="t")
    with pytest.raises(DataError, match="no features"):
        VideoTextDataset(tmp_path).split("train", ["en"], training=True)


def test_nan_features_are_reported_with_the_video(tmp_path):
    make(tmp_path, rows_for(["a", "b"], ["en"]))
    arr = np.load(next((tmp_path / "features" / "shards").glob("*.npy")), mmap_mode="r+")
    arr[0, 0] = np.nan
    arr.flush()
    with pytest.raises(DataError, match=r"'a'.*NaN"):
        VideoTextDataset(tmp_path).split("train", training=True)


def test_training_pairs_are_deterministic_per_epoch(tiny_dataset):
    split = VideoTextDataset(tiny_dataset).split("train", ["en", "de"], training=True)
    pairs = TrainingPairs(split, ["en", "de"], max_frames=5, seed=1)
    first = [pairs[i]["caption_index"] for i in range(len(pairs))]
    assert first == [pairs[i]["caption_index"] for i in range(len(pairs))]
    pairs.set_epoch(1)
    assert first != [pairs[i]["caption_index"] for i in range(len(pairs))]
    batch = pairs.collate([pairs[i] for i in range(4)])
    assert batch.frames.shape[0] == 4 and batch.frames.shape[1] <= 5
    item = pairs[0]
    k = item["caption_index"]
    assert item["texts"]["de"] == split.captions["de"][0][k]


def write_captions(root, rows) -> None:
    """captions.parquet written as another tool might (no save_dataset checks)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = ("video_id", "split", "lang", "caption_index", "text")
    table = pa.table({c: pa.array([r[c] for r in rows], pa.int32() if c == "caption_index" else pa.string())
                      for c in columns})
    pq.write_table(table, root / "captions.parquet")


def train_on(dataset, text_model, out_dir):
    from c2kd.train.run import train

    return train(tiny_config(dataset, text_model, out_dir, model__video__feature_dim=4))


@pytest.mark.parametrize("damage,message", [
    ("empty", "holds no captions"),
    ("no-val", "no split 'val'"),
    ("untranslated", "no 'de' caption"),
])
def test_data_check_refuses_what_train_refuses(tmp_path, tiny_text_models, damage, message):
    rows = rows_for(["a", "b"], ["en", "de"]) + rows_for(["a", "b"], ["en", "de"], split="val")
    make(tmp_path, rows)
    assert "ok: no problems found" in run_c2kd("data", "check", tmp_path).stdout
    if damage == "empty":
        write_captions(tmp_path, [])
    elif damage == "no-val":
        write_captions(tmp_path, [r for r in rows if r["split"] != "val"])
    else:
        write_captions(tmp_path, [r for r in rows if (r["video_id"], r["lang"]) != ("b", "de")])
    assert_one_line_error(run_c2kd("data", "check", tmp_path), message)
    with pytest.raises(DataError, match=message):  # the check agrees with training
        train_on(tmp_path, tiny_text_models["student"], tmp_path.parent / f"{tmp_path.name}-run")


def test_a_dataset_without_train_split_checks_ok_for_evaluation(tmp_path):
    make(tmp_path, rows_for(["a", "b"], ["en"], split="test"))
    proc = run_c2kd("data", "check", tmp_path)
    assert proc.returncode == 0 and "evaluation only" in proc.stdout, proc.stderr


@pytest.mark.parametrize("text", [None, "", "   "])
def test_captions_without_text_are_left_out_with_a_warning(tmp_path, caplog, text):
    rows = rows_for(["a", "b"], ["en", "de"])
    make(tmp_path, rows)
    rows[5]["text"] = text  # video b, en, caption 1
    if text is None:
        with pytest.raises(DataError, match=r"1 caption\(s\) have no text, e\.g\. video 'b'"):
            save_dataset(tmp_path, rows, name="t")  # it used to be written as the text "None"
    write_captions(tmp_path, rows)
    with caplog.at_level("WARNING"):
        split = VideoTextDataset(tmp_path).split("train", training=True)
    assert "1 caption(s) of split 'train' have no text" in caplog.text
    assert split.blank_captions == 1 and split.captions["en"][1] == ["b-en-0"]
    assert split.shared_caption_indices(1, ["en", "de"]) == [0]  # never drawn for training
    pairs = TrainingPairs(split, ["en"], seed=0)
    drawn = set()
    for epoch in range(8):
        pairs.set_epoch(epoch)
        drawn.add(pairs[1]["texts"]["en"])
    assert drawn == {"b-en-0"}

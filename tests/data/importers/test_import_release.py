"""Round trips of the four release layouts into our dataset format, and the errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from release_files import caption, features, write_pickle

from c2kd.data.dataset import VideoTextDataset
from c2kd.data.importers import LAYOUTS, get_layout, import_release
from c2kd.errors import ConfigError, DataError

MSRVTT_CODES = ["en", "de", "fr", "cs", "zh", "ru", "vi", "sw", "es"]


def msrvtt_files(tmp_path: Path, n_train: int = 5, n_test: int = 4, per_video: int = 3, dim: int = 16):
    """train: caption_<lang> lists; test: eval_caption_<lang> strings; both with 2d and 3d features."""
    rng = np.random.default_rng(1)
    train = [
        {
            "id": f"video{i}",
            "2d": features(rng, dim),
            "3d": features(rng, 2 * dim),
            "audio": None,
            **{f"caption_{c}": [caption(f"video{i}", c, k) for k in range(per_video)] for c in MSRVTT_CODES},
        }
        for i in range(n_train)
    ]
    test = [
        {
            "id": f"video{9000 + i}",
            "2d": features(rng, dim),
            "3d": features(rng, 2 * dim),
            **{f"eval_caption_{c}": caption(f"video{9000 + i}", c, 0) for c in MSRVTT_CODES},
        }
        for i in range(n_test)
    ]
    return train, test, write_pickle(tmp_path / "train.pkl", train), write_pickle(tmp_path / "test.pkl", test)


def check_split(
    ds: VideoTextDataset, split: str, items: list[dict], key: str, lang_keys: dict[str, str], training: bool
) -> None:
    data = ds.split(split, training=training)
    by_id = {it["id"]: it for it in items}
    assert data.video_ids == [it["id"] for it in items]
    for i, vid in enumerate(data.video_ids):
        np.testing.assert_array_equal(data.frames(i), by_id[vid][key].astype(np.float16))
        for lang, src_key in lang_keys.items():
            expected = by_id[vid][src_key]
            expected = [expected] if isinstance(expected, str) else list(expected)
            assert data.captions[lang][i] == expected


def test_msrvtt_round_trip_2d_and_3d(tmp_path: Path) -> None:
    train, test, train_pkl, test_pkl = msrvtt_files(tmp_path)
    for feat, dim in (("2d", 16), ("3d", 32)):
        out = tmp_path / f"ds-{feat}"
        report = import_release(
            LAYOUTS["msrvtt"], feat, {"train": train_pkl, "test": test_pkl}, out, progress=False
        )
        ds = VideoTextDataset(out)
        assert ds.languages == MSRVTT_CODES[:1] + sorted(MSRVTT_CODES[1:])
        assert ds.features.dim == dim and ds.meta["missing_videos"] == {"train": 0, "test": 0}
        check_split(ds, "train", train, feat, {c: f"caption_{c}" for c in MSRVTT_CODES}, training=True)
        check_split(ds, "test", test, feat, {c: f"eval_caption_{c}" for c in MSRVTT_CODES}, training=False)
        assert report.splits["train"].captions == dict.fromkeys(MSRVTT_CODES, 15)
        assert report.splits["train"].ignored_keys == sorted(["audio", "3d" if feat == "2d" else "2d"])
        assert json.loads((out / "import_report.json").read_text())["feature_dim"] == dim


def test_listing_csv_counts_missing_videos(tmp_path: Path) -> None:
    _train, test, train_pkl, test_pkl = msrvtt_files(tmp_path, n_test=4)
    csv = tmp_path / "split.csv"
    listed = [it["id"] for it in test] + ["video9100", "video9101"]
    csv.write_text(
        "key;vid_key;video_id;sentence\n"
        + "".join(f"ret{i};msr{v[5:]};{v};english {v}\n" for i, v in enumerate(listed))
    )
    report = import_release(
        LAYOUTS["msrvtt"],
        "2d",
        {"train": train_pkl, "test": test_pkl},
        tmp_path / "ds",
        listings={"test": csv},
        progress=False,
    )
    assert report.missing_videos == {"train": 0, "test": 2}
    assert (
        report.splits["test"].listing_caption_mismatches == 4
    )  # the pickle's English text differs from the CSV
    data = VideoTextDataset(tmp_path / "ds").split("test")
    assert data.missing_video_ids == ["video9100", "video9101"]
    # a missing video is one miss in every language, also where the release lacks its translations
    assert len(data.video_ids) == 4 and data.missing_captions["en"] == 2 and data.missing_captions["de"] == 2
    assert VideoTextDataset(tmp_path / "ds").meta["missing_videos"]["test"] == 2


def test_real_msrvtt_1ka_listing_gives_32_missing(tmp_path: Path, shared_data: Path) -> None:
    """968 of the 1,000 1k-A test videos have features in the release: 32 must be counted as missing."""
    csv = shared_data / "msrvtt" / "MSRVTT_JSFUSION_test.csv"
    ids = [line.split(";")[2] for line in csv.read_text().splitlines()[1:]]
    assert len(ids) == 1000
    rng = np.random.default_rng(0)
    dropped = set(rng.choice(ids, size=32, replace=False).tolist())
    # ids in the 'msr' form of the CSV's vid_key column exercise the alias lookup
    test = [
        {
            "id": "msr" + v[len("video") :],
            "2d": features(rng, 4, 2),
            **{f"eval_caption_{c}": f"{c} {v}" for c in MSRVTT_CODES},
        }
        for v in ids
        if v not in dropped
    ]
    train = [
        {"id": "video0", "2d": features(rng, 4, 2), **{f"caption_{c}": [f"{c} 0"] for c in MSRVTT_CODES}}
    ]
    report = import_release(
        LAYOUTS["msrvtt"],
        "2d",
        {
            "train": write_pickle(tmp_path / "train.pkl", train),
            "test": write_pickle(tmp_path / "test.pkl", test),
        },
        tmp_path / "ds",
        listings={"test": csv},
        progress=False,
    )
    assert report.splits["test"].videos_with_features == 968
    assert report.missing_videos["test"] == 32
    data = VideoTextDataset(tmp_path / "ds").split("test", validate_features=False)
    assert len(data.video_ids) == 968 and set(data.missing_video_ids) == dropped
    assert len(data.video_ids) + len(data.missing_video_ids) == 1000
    assert all(len(data.captions[c]) == 968 for c in MSRVTT_CODES)


def test_youcook2_layout_maps_cz_to_cs(tmp_path: Path) -> None:
    codes = ["de", "fr", "cz", "zh", "ru", "vi", "ja", "es"]
    rng = np.random.default_rng(2)

    def items(prefix: str) -> list[dict]:
        return [
            {
                "id": f"{prefix}{i}",
                "2d_full": features(rng, 8),
                "3d_full": features(rng, 12),
                "2d": rng.standard_normal(8).astype(np.float32),  # pooled features, not the per-frame ones
                "caption": [f"step {i}"],
                **{f"caption_{c}": [f"{c} step {i}"] for c in codes},
            }
            for i in range(3)
        ]

    train, val = items("tr"), items("va")
    out = tmp_path / "yc"
    report = import_release(
        LAYOUTS["youcook2"],
        "3d",
        {"train": write_pickle(tmp_path / "t.pkl", train), "val": write_pickle(tmp_path / "v.pkl", val)},
        out,
        progress=False,
    )
    ds = VideoTextDataset(out)
    assert "cz" not in ds.languages and "cs" in ds.languages and len(ds.languages) == 9
    assert (
        report.splits["train"].source_codes["cs"] == "cz"
        and report.splits["train"].source_codes["en"] == "caption"
    )
    keys = {"en": "caption", "cs": "caption_cz", "ja": "caption_ja"}
    check_split(ds, "train", train, "3d_full", keys, training=True)
    check_split(ds, "val", val, "3d_full", keys, training=False)
    assert ds.name == "multi-youcook2" and "machine translations" in ds.meta["notes"]


def test_vatex_aligns_independent_captions_by_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    train = [
        {
            "id": f"vx{i}",
            "2d": features(rng, 8),
            "caption_en": [f"en {i} {k}" for k in range(10)],
            "caption_zh": [f"zh {i} {k}" for k in range(10)],
        }
        for i in range(3)
    ]
    test = [
        {
            "id": f"vt{i}",
            "2d": features(rng, 8),
            "eval_caption_en": [f"en {i} {k}" for k in range(10)],
            "eval_caption_zh": [f"zh {i} {k}" for k in range(10)],
        }
        for i in range(2)
    ]
    out = tmp_path / "vatex"
    import_release(
        LAYOUTS["vatex"],
        "2d",
        {"train": write_pickle(tmp_path / "a.pkl", train), "test": write_pickle(tmp_path / "b.pkl", test)},
        out,
        progress=False,
    )
    ds = VideoTextDataset(out)
    data = ds.split("train", training=True)
    assert data.shared_caption_indices(0, ["en", "zh"]) == list(range(10))
    assert data.captions["zh"][1][7] == "zh 1 7" and data.captions["en"][1][7] == "en 1 7"
    check_split(ds, "test", test, "2d", {"en": "eval_caption_en", "zh": "eval_caption_zh"}, training=False)
    assert "not translations" in ds.meta["notes"]


def test_rudder_and_language_subset(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    codes = ["en", "hi", "mr", "kn", "ta"]
    train = [
        {"id": f"r{i}", "2d": features(rng, 8), **{f"caption_{c}": [f"{c} {i}"] for c in codes}}
        for i in range(3)
    ]
    pkl = write_pickle(tmp_path / "r.pkl", train)
    report = import_release(LAYOUTS["rudder"], "2d", {"train": pkl}, tmp_path / "r", progress=False)
    assert VideoTextDataset(tmp_path / "r").languages == ["en", "hi", "kn", "mr"]
    assert report.splits["train"].ignored_keys == ["caption_ta"]
    import_release(
        LAYOUTS["rudder"], "2d", {"train": pkl}, tmp_path / "r2", languages=["en", "Hindi"], progress=False
    )
    assert VideoTextDataset(tmp_path / "r2").languages == ["en", "hi"]


def test_rerun_reuses_stored_features(tmp_path: Path) -> None:
    train, test, train_pkl, test_pkl = msrvtt_files(tmp_path)
    out = tmp_path / "ds"
    import_release(LAYOUTS["msrvtt"], "2d", {"train": train_pkl}, out, progress=False)
    report = import_release(
        LAYOUTS["msrvtt"], "2d", {"train": train_pkl, "test": test_pkl}, out, progress=False
    )
    assert report.reused_videos == len(train)
    ds = VideoTextDataset(out)
    assert len(ds.features) == len(train) + len(test) and ds.splits == ["test", "train"]


# ---- errors ------------------------------------------------------------------------------------------------


def test_missing_language_for_some_items(tmp_path: Path) -> None:
    train, _test, _train_pkl, _ = msrvtt_files(tmp_path)
    del train[2]["caption_sw"]
    train[3]["caption_sw"] = ["", None]
    bad = write_pickle(tmp_path / "holes.pkl", train)
    with pytest.raises(DataError, match=r"holes\.pkl: 2 of 5 items .* no 'sw' caption.*video2"):
        import_release(LAYOUTS["msrvtt"], "2d", {"train": bad}, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists(), "nothing is written when a file is bad"
    import_release(
        LAYOUTS["msrvtt"],
        "2d",
        {"train": bad},
        tmp_path / "out",
        languages=[c for c in MSRVTT_CODES if c != "sw"],
        progress=False,
    )


def test_language_absent_from_whole_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pkl = write_pickle(tmp_path / "en.pkl", [{"id": "a", "2d": features(rng, 4), "caption_en": ["x"]}])
    with pytest.raises(DataError, match=r"en\.pkl: split 'train' has no 'de' captions at all"):
        import_release(LAYOUTS["msrvtt"], "2d", {"train": pkl}, tmp_path / "o", progress=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features(tmp_path: Path, bad: float) -> None:
    train, _, _, _ = msrvtt_files(tmp_path)
    train[1]["2d"][1, 3] = bad
    pkl = write_pickle(tmp_path / "nan.pkl", train)
    with pytest.raises(DataError, match=r"nan\.pkl: item 1 \(id 'video1'\): NaN or inf in 1 of"):
        import_release(LAYOUTS["msrvtt"], "2d", {"train": pkl}, tmp_path / "o", progress=False)


def test_mismatched_ids(tmp_path: Path) -> None:
    train, test, train_pkl, test_pkl = msrvtt_files(tmp_path)
    csv = tmp_path / "list.csv"
    csv.write_text("key;vid_key;video_id;sentence\nret0;msr9000;video9000;x\n")
    with pytest.raises(DataError, match=r"test\.pkl: 3 video id\(s\) .* not in .*list\.csv.*video9001"):
        import_release(
            LAYOUTS["msrvtt"],
            "2d",
            {"test": test_pkl},
            tmp_path / "o",
            listings={"test": csv},
            progress=False,
        )
    dup = write_pickle(tmp_path / "dup.pkl", [*train, train[0]])
    with pytest.raises(DataError, match=r"dup\.pkl: video id 'video0' occurs twice"):
        import_release(LAYOUTS["msrvtt"], "2d", {"train": dup}, tmp_path / "o", progress=False)
    clash = [dict(test[0], id="video0")]
    with pytest.raises(
        DataError, match=r"clash\.pkl: video 'video0' is also in split 'train' with different"
    ):
        import_release(
            LAYOUTS["msrvtt"],
            "2d",
            {"train": train_pkl, "test": write_pickle(tmp_path / "clash.pkl", clash)},
            tmp_path / "o",
            progress=False,
        )


def test_wrong_feature_key_shape_and_format(tmp_path: Path) -> None:
    train, _, train_pkl, _ = msrvtt_files(tmp_path)
    with pytest.raises(DataError, match=r"train\.pkl: no item has '2d_full' features"):
        import_release(LAYOUTS["youcook2"], "2d", {"train": train_pkl}, tmp_path / "o", progress=False)
    train[0]["2d"] = train[0]["2d"][0]
    with pytest.raises(DataError, match=r"flat\.pkl: item 0 .* expected \[T, D\]"):
        import_release(
            LAYOUTS["msrvtt"],
            "2d",
            {"train": write_pickle(tmp_path / "flat.pkl", train)},
            tmp_path / "o",
            progress=False,
        )
    not_list = write_pickle(tmp_path / "dict.pkl", {"id": "x"})  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"dict\.pkl: expected a list of dicts"):
        import_release(LAYOUTS["msrvtt"], "2d", {"train": not_list}, tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match="Unknown import format"):
        get_layout("howto100m")


def test_custom_layout_file(tmp_path: Path) -> None:
    layout = tmp_path / "layout.json"
    layout.write_text(
        json.dumps(
            {
                "name": "mine",
                "languages": ["en", "pt"],
                "feature_keys": {"2d": "clip"},
                "train_caption_keys": ["text_{code}"],
                "eval_caption_keys": ["text_{code}"],
            }
        )
    )
    rng = np.random.default_rng(0)
    items = [{"id": "a", "clip": features(rng, 4), "text_en": "hello", "text_pt-br": "olá"}]
    import_release(
        get_layout(layout),
        "2d",
        {"train": write_pickle(tmp_path / "m.pkl", items)},
        tmp_path / "o",
        progress=False,
    )
    data = VideoTextDataset(tmp_path / "o").split("train", training=True)
    assert data.captions == {"en": [["hello"]], "pt": [["olá"]]}

"""A video's real length, from its file to every answer: `c2kd extract` records what the file states, and
`index build`, `search --json` and `moments` report it (50.07 s, not the 51 s of "last sample + one step")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from searchkit import FEATURE_DIM, random_checkpoint, synthetic_data  # noqa: F401 - fixtures
from typer.testing import CliRunner
from videokit import colour, make_pool_project_onnx, onnx_cli_args, write_video

from c2kd.cli import app
from c2kd.data.features import FeatureStore

#: 1502 frames at 30 frame/s: 50.0667 s, the kind of length a phone records; 73 frames at 10 frame/s: 7.3 s
LENGTHS = {"odd": (1502, 30), "short": (73, 10)}


def run(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, random_checkpoint) -> tuple[Path, Path]:  # noqa: F811 - fixture
    """Two real files extracted by the CLI (decode workers in other processes) and indexed: (store, index)."""
    tmp = tmp_path_factory.mktemp("lengths")
    (tmp / "videos").mkdir()
    for name, (frames, rate) in LENGTHS.items():
        write_video(tmp / "videos" / f"{name}.mp4", [i / rate for i in range(frames)],
                    [colour(i // rate) for i in range(frames)], rate=rate)
    weight = np.random.default_rng(2).normal(size=(3, FEATURE_DIM))
    model = make_pool_project_onnx(tmp / "pool16.onnx", weight)
    run("extract", tmp / "videos", "--out", tmp / "store", *onnx_cli_args(model), "--workers", "1", "--no-progress")
    run("index", "build", "--checkpoint", random_checkpoint, "--features", tmp / "store", "--out", tmp / "index",
        "--videos", tmp / "videos")
    return tmp / "store", tmp / "index"


def test_the_store_keeps_each_files_length(extracted):
    store = FeatureStore(extracted[0])
    for name, (frames, rate) in LENGTHS.items():
        assert store.duration(name) == pytest.approx(frames / rate, abs=0.5 / rate)  # within half a frame
        assert len(store[name]) == int(frames / rate) + 1  # rows at 0, 1, ..., 50 s: the old estimate said 51


def test_search_and_moments_answer_with_the_real_length(extracted):
    _, index = extracted
    payload = json.loads(run("search", index, "a red screen", "-k", "2", "--json"))
    hits = {hit["video_id"]: hit for hit in payload["results"]}
    assert set(hits) == set(LENGTHS)
    assert hits["odd"]["metadata"]["duration"] == pytest.approx(50.067, abs=0.001)
    assert hits["short"]["metadata"]["duration"] == pytest.approx(7.3, abs=0.001)
    assert hits["odd"]["moments"]  # longer than a whole clip: indexed as moment windows, none past the end
    assert all(0 <= m["start"] < m["end"] <= 50.067 + 1e-3 for m in hits["odd"]["moments"])
    for name, (frames, rate) in LENGTHS.items():
        # the index's moment entries (odd), or windows of the store's rows (short, a whole clip in the index)
        moments = json.loads(run("moments", name, "a red screen", "--index", index, "-k", "50", "--json"))
        assert moments["duration"] == pytest.approx(frames / rate, abs=0.001)
        ends = [m["end"] for m in moments["moments"]]
        assert ends and max(ends) == pytest.approx(frames / rate, abs=0.001)  # the last window ends at the end
    assert "(0:50.1 video)" in run("moments", "odd", "a red screen", "--index", index)

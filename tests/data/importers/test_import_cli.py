"""`c2kd import-data` imports a release and reports missing videos; a malicious file exits with status 2."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
from release_files import features, write_pickle
from typer.testing import CliRunner

from c2kd.cli import app
from c2kd.data.dataset import VideoTextDataset

CODES = ["en", "de", "fr", "cz", "zh", "ru", "vi", "ja", "es"]


def test_import_data_command(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = [
        {"id": f"c{i}", "3d_full": features(rng, 6), "caption": [f"step {i}"]}
        | {f"caption_{c}": [f"{c} {i}"] for c in CODES[1:]}
        for i in range(3)
    ]
    test = [dict(train[0], id="e0"), dict(train[1], id="e1")]
    csv = tmp_path / "test.csv"
    csv.write_text("video_id,sentence\ne0,step 0\ne1,step 1\ne2,step 2\n")
    out = tmp_path / "yc"
    result = CliRunner().invoke(
        app,
        ["import-data", "--format", "youcook2", "--features", "3d",
         f"train={write_pickle(tmp_path / 't.pkl', train)}", f"test={write_pickle(tmp_path / 'e.pkl', test)}",
         "--test-csv", str(csv), "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "| test | e.pkl | 2 | 1 |" in result.output
    assert "counted as misses at evaluation: {'test': 1}" in result.output
    data = VideoTextDataset(out).split("test", ["en", "cs"])
    assert data.missing_video_ids == ["e2"] and data.captions["cs"] == [["cz 0"], ["cz 1"]]


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_file_exits_with_a_message(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps([{"id": "x", "2d": np.zeros((1, 4)), "caption_en": _Payload(str(marker))}]))
    proc = subprocess.run(
        [sys.executable, "-c", "from c2kd.cli import main; main()", "import-data", "--format", "msrvtt",
         f"train={bad}", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"error: {bad}: refusing to load the global posix.system" in proc.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()

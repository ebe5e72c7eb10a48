"""The restricted unpickler loads numpy data from any pickle protocol and refuses code without running it."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from c2kd.data.importers import UnsafePickleError, load_pickle
from c2kd.errors import DataError


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_numpy_payload_round_trips(tmp_path: Path, protocol: int) -> None:
    from collections import OrderedDict

    rng = np.random.default_rng(0)
    items = [
        {
            "id": "video1",
            "2d": rng.standard_normal((3, 8)).astype(np.float32),
            "3d": rng.standard_normal((2, 4)).astype(np.float16),
            "caption_en": ["a", "b"],
            "eval_caption_zh": "视频",
            "n": np.int64(7),
            "dur": np.float32(1.5),
            "t": (1, 2.0, None),
            "s": {1, 2},
            "o": OrderedDict(a=1),
            "obj": np.array(["x", "y"], dtype=object),
            "b": b"\x00\xff",
        }
    ]
    path = tmp_path / "split.pkl"
    path.write_bytes(pickle.dumps(items, protocol=protocol))
    loaded = load_pickle(path)
    assert loaded[0].keys() == items[0].keys()
    for key in ("2d", "3d", "obj"):
        np.testing.assert_array_equal(loaded[0][key], items[0][key])
        assert loaded[0][key].dtype == items[0][key].dtype
    for key in ("caption_en", "eval_caption_zh", "n", "dur", "t", "s", "o", "b"):
        assert loaded[0][key] == items[0][key]


class _System:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('true')",))


def test_os_system_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"id": "v", "2d": np.zeros((1, 2)), "x": _System(f"touch {marker}")}]))
    # the payload is real: plain pickle would run it (checked in a child process)
    with pytest.raises(UnsafePickleError) as info:
        load_pickle(path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and "system" in message
    subprocess.run(
        [sys.executable, "-c", f"import pickle; pickle.load(open({str(path)!r}, 'rb'))"], check=True
    )
    assert marker.exists(), "control: the malicious pickle does run under plain pickle"


@pytest.mark.parametrize("payload", [_Eval(), np.ndarray.tofile, pickle.Pickler, Path("x")])
def test_other_globals_are_refused(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"x": payload}, protocol=4))
    with pytest.raises(UnsafePickleError, match="refusing to load the global"):
        load_pickle(path)


def test_corrupt_and_absent_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps([{"id": "v", "2d": np.zeros((4, 4))}])[:-10])
    with pytest.raises(DataError, match=r"cut\.pkl"):
        load_pickle(path)
    with pytest.raises(DataError, match=r"absent\.pkl"):
        load_pickle(tmp_path / "absent.pkl")

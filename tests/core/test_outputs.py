"""c2kd never deletes what it did not write: output folders are replaced only when they are empty or hold what
the same writer wrote there (c2kd.io.check_replaceable), and never overlap the command's inputs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c2kd.errors import OutputExistsError
from c2kd.io import atomic_path, check_output
from c2kd_testkit import assert_one_line_error, run_c2kd


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def users_folder(root: Path, name: str = "p") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "thesis.txt").write_text("x\n")
    return folder


def write_marked(path: Path, content: str = "new") -> None:
    with atomic_path(path, "marker.json") as tmp:
        tmp.mkdir()
        (tmp / "marker.json").write_text(content)


# -- the rule, on folders -----------------------------------------------------------------------------------------
def test_a_new_folder_an_empty_one_and_its_own_output_are_written(tmp_path):
    write_marked(tmp_path / "out")  # absent
    assert (tmp_path / "out" / "marker.json").read_text() == "new"
    write_marked(tmp_path / "out", "again")  # what the same writer wrote: replaced whole
    assert snapshot(tmp_path / "out") == {"marker.json": b"again"}
    (tmp_path / "empty").mkdir()
    write_marked(tmp_path / "empty")
    assert snapshot(tmp_path / "empty") == {"marker.json": b"new"}


def test_a_folder_of_the_users_is_refused_and_left_whole(tmp_path):
    folder = users_folder(tmp_path)
    before = snapshot(folder)
    with pytest.raises(OutputExistsError, match=r"p holds files c2kd did not write \(thesis.txt\).*--overwrite"):
        write_marked(folder)
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no temporary left beside it


def test_overwrite_replaces_a_folder_of_the_users(tmp_path):
    folder = users_folder(tmp_path)
    with atomic_path(folder, "marker.json", overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "marker.json").write_text("new")
    assert snapshot(folder) == {"marker.json": b"new"}


def test_a_file_is_never_replaced_by_a_folder_nor_a_folder_by_a_file(tmp_path):
    (tmp_path / "notes").write_text("mine")
    with pytest.raises(OutputExistsError, match="is a file"):
        write_marked(tmp_path / "notes")
    assert (tmp_path / "notes").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    with pytest.raises(OutputExistsError, match="is a folder"), atomic_path(tmp_path / "empty") as tmp:
        tmp.write_text("a file")
    assert (tmp_path / "empty").is_dir()


def test_a_link_to_a_folder_is_replaced_not_what_it_points_to(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "marker.json").write_text("old")
    (target / "kept.txt").write_text("kept")
    (tmp_path / "link").symlink_to(target)
    write_marked(tmp_path / "link")
    assert not (tmp_path / "link").is_symlink()
    assert snapshot(tmp_path / "link") == {"marker.json": b"new"}
    assert snapshot(target) == {"kept.txt": b"kept", "marker.json": b"old"}


@pytest.mark.parametrize("given_as", ["/", ".", ".."])
def test_the_root_and_the_working_folder_are_refused(tmp_path, given_as, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("1")
    monkeypatch.chdir(work)
    with pytest.raises(OutputExistsError):
        check_output(given_as, "marker.json")
    assert (work / "data.csv").read_text() == "1"


@pytest.mark.parametrize(("out", "where"), [("data", "is the input"), ("data/sub", "is inside the input"),
                                             (".", "holds the input")])
def test_an_output_that_overlaps_an_input_is_refused(tmp_path, monkeypatch, out, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    with pytest.raises(OutputExistsError, match=f"--out {out} {where} data"):
        check_output(out, "marker.json", inputs=["data"], overwrite=True)


names = st.text(alphabet="abcdefghij_-.", min_size=1, max_size=8).filter(lambda n: n not in (".", ".."))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.lists(names, min_size=1, max_size=3).map("/".join), st.binary(max_size=16),
                             min_size=1, max_size=5))
def test_any_folder_holding_a_file_of_the_users_is_left_whole_or_the_write_refused(tmp_path_factory, files):
    """The property of issue 33: whatever a user's folder holds (no c2kd marker), a writer leaves every file or
    refuses."""
    folder = tmp_path_factory.mktemp("users") / "out"
    folder.mkdir()
    for rel, data in files.items():
        path = folder / rel
        if any(parent.is_file() for parent in path.parents) or path.is_dir():
            continue  # the dictionary named a file and a folder alike
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    before = snapshot(folder)
    with contextlib.suppress(OutputExistsError):
        write_marked(folder)
    after = snapshot(folder)
    assert all(after.get(rel) == data for rel, data in before.items() if rel != "marker.json"), (before, after)


# -- every command that writes a folder ---------------------------------------------------------------------------
def writing_commands(data: Path, checkpoint: Path, out: Path) -> dict[str, list]:
    """Each folder-writing command of the CLI with ``out`` as its output."""
    return {
        "index build": ["index", "build", "--checkpoint", checkpoint, "--features", data, "--split", "val",
                        "--out", out],
        "model aligned": ["model", "aligned", "--text", "packaged-muse", "--frame-encoder", "packaged-muse",
                          "--out", out],
        "model fuse": ["model", "fuse", "--checkpoint", checkpoint, "--checkpoint", checkpoint, "--weights", "1,1",
                       "--out", out],
        "model random-text": ["model", "random-text", "--corpus", data, "--out", out],
        "data synthetic": ["data", "synthetic", "--out", out],
        "data concat-features": ["data", "concat-features", data, data, "--out", out],
        "import-data": ["import-data", "--format", "msrvtt", "train=x.pkl", "--out", out],
        "multi30k-proxy": ["multi30k-proxy", "--no-download", "--out", out],
        "extract": ["extract", data, "--out", out],
    }


@pytest.mark.parametrize("command", list(writing_commands(Path(), Path(), Path())))
def test_every_writing_command_refuses_a_folder_of_the_users(tmp_path, synthetic_data, random_checkpoint,
                                                               command):
    folder = users_folder(tmp_path)
    proc = run_c2kd(*writing_commands(synthetic_data, random_checkpoint, folder)[command])
    assert_one_line_error(proc, str(folder), "thesis.txt", "choose another path")
    assert snapshot(folder) == {"thesis.txt": b"x\n"}


@pytest.mark.parametrize("target", ["data", "checkpoint"])
def test_index_build_into_its_own_dataset_or_checkpoint_is_refused(tmp_path, synthetic_data, random_checkpoint,
                                                                   target):
    """The repro of issue 33: `--out syn` deleted the dataset, `--out v` the checkpoint it read."""
    inputs = {"data": synthetic_data, "checkpoint": random_checkpoint}
    before = snapshot(inputs[target])
    proc = run_c2kd(*writing_commands(synthetic_data, random_checkpoint, inputs[target])["index build"])
    assert_one_line_error(proc, "is the input", "choose another --out")
    assert snapshot(inputs[target]) == before


def test_index_build_replaces_an_index_and_with_overwrite_a_users_folder(tmp_path, synthetic_data,
                                                                        random_checkpoint):
    out = tmp_path / "idx"
    command = writing_commands(synthetic_data, random_checkpoint, out)["index build"]
    assert run_c2kd(*command).returncode == 0
    first = (out / "index.json").read_bytes()
    assert run_c2kd(*command).returncode == 0, "an index over an index"
    assert (out / "index.json").exists() and first
    folder = users_folder(tmp_path)
    proc = run_c2kd(*writing_commands(synthetic_data, random_checkpoint, folder)["index build"], "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert not (folder / "thesis.txt").exists() and (folder / "index.json").exists()


def test_training_refuses_a_best_folder_it_did_not_write(tmp_path, tiny_dataset, tiny_text_models):
    from c2kd.train.run import train
    from c2kd_testkit import tiny_config

    run = tmp_path / "run"
    users_folder(run, "best")
    with pytest.raises(OutputExistsError, match="best holds files c2kd did not write"):
        train(tiny_config(tiny_dataset, tiny_text_models["student"], run))
    assert snapshot(run) == {"best/thesis.txt": b"x\n"}
    with pytest.raises(OutputExistsError, match=r"out_dir .* is inside the input"):
        train(tiny_config(tiny_dataset, tiny_text_models["student"], tiny_dataset / "runs"))
    assert not (tiny_dataset / "runs").exists()
    assert os.listdir(run) == ["best"]

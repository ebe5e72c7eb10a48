"""A corpus of damaged files of every kind c2kd reads, run through every command that reads them.

Each case copies a good dataset, index or checkpoint, damages one file the way disks, copies and hands do (cut
short, garbage header, malformed JSON, a field of the wrong type, garbage parquet), and runs the commands that
read it through the real entry point. Every one must end in exit 2 with one ``error:`` line naming the damaged
file, no traceback, and nothing written outside the command's own output.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from searchkit import random_checkpoint, synthetic_data  # noqa: F401 - fixtures

from c2kd.errors import C2KDError


def _first(folder: Path, pattern: str) -> Path:
    return sorted(folder.glob(pattern))[0]


def truncate(path: Path, size: int = 1000) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(min(size, path.stat().st_size // 2))


def garbage_header(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.write(b"garbage!" * 8)


def garbage(path: Path) -> None:
    path.write_bytes(b"PAR1 this is not a table \x00\xff" * 10)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def text(content: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(content, "utf-8")


def field(name: str, value: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        import json

        data = json.loads(path.read_text("utf-8"))
        data[name] = value
        path.write_text(json.dumps(data), "utf-8")
    return damage


#: (case, what is copied, the file damaged inside it, how)
DATASET_CASES = [
    ("shard cut short", "features/shards/*.npy", truncate),
    ("shard garbage header", "features/shards/*.npy", garbage_header),
    ("shard index empty", "features/shards/*.index.parquet", empty),
    ("shard index garbage", "features/shards/*.index.parquet", garbage),
    ("store.json malformed", "features/store.json", text('{"format":')),
    ("store.json dim abc", "features/store.json", field("dim", "abc")),
    ("dataset.json malformed", "dataset.json", text("[1, 2")),
    ("captions garbage", "captions.parquet", garbage),
]
INDEX_CASES = [
    ("segment cut short", "segments/*.npy", truncate),
    ("segment garbage header", "segments/*.npy", garbage_header),
    ("index.json malformed", "index.json", text('{"format":')),
    ("index.json dim abc", "index.json", field("dim", "abc")),
    ("index.json segments wrong", "index.json", field("segments", "all of them")),
    ("entries garbage", "segments/*.entries.parquet", garbage),
    ("videos table garbage", "segments/seg-*[0-9a-f].parquet", garbage),
]
CHECKPOINT_CASES = [
    ("weights cut short", "model.safetensors", truncate),
    ("weights garbage header", "model.safetensors", garbage_header),
    ("config.yaml garbage", "config.yaml", text("model: [unclosed\n  - {")),
    ("checkpoint.json malformed", "checkpoint.json", text('{"format":')),
]


@pytest.fixture(scope="module")
def good(tmp_path_factory, synthetic_data, random_checkpoint):  # noqa: F811 - fixtures
    """A good dataset, checkpoint and index (built from them), copied by each case before it damages one."""
    from c2kd.search.building import build_index

    root = tmp_path_factory.mktemp("good")
    index = build_index(random_checkpoint, synthetic_data, root / "index", progress=False)
    return {"dataset": synthetic_data, "checkpoint": random_checkpoint, "index": index,
            "text": random_checkpoint.parent / "text"}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if not p.is_symlink()}


def c2kd(capsys, work: Path, *args, output: Path | None = None) -> tuple[int, str]:
    """Run ``c2kd ARGS`` through the real entry point; return (exit status, stderr). Checks that nothing in
    ``work`` changed but ``output`` (with its lock and staging files beside it)."""
    from c2kd.cli import main

    before = snapshot(work)
    argv = sys.argv
    sys.argv = ["c2kd", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    err = capsys.readouterr().err
    after = snapshot(work)
    own = (output.relative_to(work).as_posix(), f".{output.name}") if output is not None else ()
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p)
                     and not any(p == o or p.startswith(f"{o}/") or p.split("/")[0].startswith(o) for o in own))
    assert not changed, f"c2kd {' '.join(map(str, args))} changed {changed}"
    return code, err


def assert_refused(code: int, err: str, damaged: Path) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert str(damaged) in lines[0] or damaged.name in lines[0], lines[0]


def _damaged_copy(good: dict, kind: str, work: Path, pattern: str, damage) -> tuple[Path, Path]:
    copy = shutil.copytree(good[kind], work / kind)
    target = _first(copy, pattern)
    damage(target)
    return copy, target


@pytest.mark.parametrize("case,pattern,damage", DATASET_CASES, ids=[c[0] for c in DATASET_CASES])
def test_a_damaged_dataset_is_one_line_in_every_command_that_reads_it(good, tmp_path, capsys, case, pattern,
                                                                        damage):
    dataset, target = _damaged_copy(good, "dataset", tmp_path, pattern, damage)
    assert_refused(*c2kd(capsys, tmp_path, "data", "check", dataset), target)
    out = tmp_path / "built"
    assert_refused(*c2kd(capsys, tmp_path, "index", "build", "--checkpoint", good["checkpoint"], "--features",
                         dataset, "--out", out, output=out), target)
    assert not out.exists()
    run = tmp_path / "run"
    assert_refused(*c2kd(capsys, tmp_path, "--no-progress", "train", f"data.path={dataset}",
                         f"model.text.name={good['text']}", "model.text.embed_dim=32", "model.video.feature_dim=16",
                         "model.video.embed_dim=32", "model.video.layers=1", "epochs=1", "batch_size=16",
                         f"out_dir={run}", "tensorboard=false", output=run), target)


@pytest.mark.parametrize("case,pattern,damage", INDEX_CASES, ids=[c[0] for c in INDEX_CASES])
def test_a_damaged_index_is_one_line_in_every_command_that_reads_it(good, tmp_path, capsys, case, pattern, damage):
    from c2kd.serve.app import ServeSettings, create_app

    index, target = _damaged_copy(good, "index", tmp_path, pattern, damage)
    assert_refused(*c2kd(capsys, tmp_path, "search", index, "a dog runs"), target)
    assert_refused(*c2kd(capsys, tmp_path, "index", "info", index), target)
    queries = tmp_path / "queries.txt"
    queries.write_text("a dog\na cat\n", "utf-8")
    answers = tmp_path / "answers.jsonl"
    assert_refused(*c2kd(capsys, tmp_path, "search", index, "--queries", queries, "--out", answers,
                         output=answers), target)
    assert not answers.exists()
    with pytest.raises(C2KDError) as err:  # what `c2kd serve` loads before it listens
        create_app(ServeSettings(index=index))
    assert target.name in str(err.value)


@pytest.mark.parametrize("case,pattern,damage", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_damaged_checkpoint_is_one_line_in_every_command_that_reads_it(good, tmp_path, capsys, case, pattern,
                                                                           damage):
    checkpoint, target = _damaged_copy(good, "checkpoint", tmp_path, pattern, damage)
    out = tmp_path / "built"
    assert_refused(*c2kd(capsys, tmp_path, "index", "build", "--checkpoint", checkpoint, "--features",
                         good["dataset"], "--out", out, output=out), target)
    assert_refused(*c2kd(capsys, tmp_path, "search", good["index"], "a dog", "--checkpoint", checkpoint), target)
    results = tmp_path / "results.json"
    assert_refused(*c2kd(capsys, tmp_path, "evaluate", "--checkpoint", checkpoint, "--data", good["dataset"],
                         "--split", "test", "--json", results, output=results), target)


@pytest.mark.parametrize("damage", [garbage, empty, truncate], ids=["garbage", "empty", "cut short"])
def test_a_damaged_metadata_file_is_one_line(good, tmp_path, capsys, damage):
    import pyarrow as pa
    import pyarrow.parquet as pq

    metadata = tmp_path / "meta.parquet"
    pq.write_table(pa.table({"video_id": ["test00001"] * 200, "title": ["a title"] * 200}), metadata)
    damage(metadata)
    out = tmp_path / "built"
    assert_refused(*c2kd(capsys, tmp_path, "index", "build", "--checkpoint", good["checkpoint"], "--features",
                         good["dataset"], "--out", out, "--metadata", metadata, output=out), metadata)


def test_data_check_reports_every_damaged_shard(good, tmp_path, capsys):
    import pyarrow.parquet as pq

    from c2kd.data.features import FeatureStoreWriter

    dataset = shutil.copytree(good["dataset"], tmp_path / "dataset")
    shards = dataset / "features" / "shards"
    store = shards.parent
    table = pq.read_table(_first(shards, "*.index.parquet")).to_pydict()
    first = shutil.copy(_first(shards, "*.npy"), tmp_path / "first.npy")
    for name in ("a", "b"):  # two more shards, of copies of the videos under other ids
        import numpy as np

        with FeatureStoreWriter(store, dim=16, prefix=name) as writer:
            data = np.load(first)
            for vid, offset, length in list(zip(table["id"], table["offset"], table["length"]))[:3]:
                writer.add(f"{name}-{vid}", data[offset:offset + length])
    truncate(_first(shards, "a-*.npy"))
    empty(_first(shards, "b-*.index.parquet"))
    code, err = c2kd(capsys, tmp_path, "data", "check", dataset)
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 2 and _first(shards, "a-*.npy").name in err and _first(shards, "b-*.index.parquet").name in err


def test_the_corpus_covers_every_kind_of_file_c2kd_writes():
    kinds = {pattern.rsplit("/", 1)[-1] for _, pattern, _ in DATASET_CASES + INDEX_CASES + CHECKPOINT_CASES}
    assert {"*.npy", "*.index.parquet", "store.json", "dataset.json", "captions.parquet", "index.json",
            "*.entries.parquet", "seg-*[0-9a-f].parquet", "model.safetensors", "config.yaml",
            "checkpoint.json"} <= kinds
    assert os.path.basename(__file__).startswith("test_")


@pytest.mark.parametrize("case,pattern,damage", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_damaged_checkpoint_that_an_index_records_is_one_line_in_every_command_that_loads_it(
        good, tmp_path, capsys, case, pattern, damage):
    """The index names its checkpoint; commands that load it without --checkpoint say it is damaged, one line."""
    from c2kd.errors import C2KDError
    from c2kd.search.building import build_index
    from c2kd.serve.app import ServeSettings, create_app

    checkpoint = shutil.copytree(good["checkpoint"], tmp_path / "checkpoint")
    index = build_index(checkpoint, good["dataset"], tmp_path / "index", progress=False)
    target = _first(checkpoint, pattern)
    damage(target)
    assert_refused(*c2kd(capsys, tmp_path, "search", index, "a dog"), target)
    assert_refused(*c2kd(capsys, tmp_path, "moments", "test00001", "a dog", "--index", index), target)
    assert_refused(*c2kd(capsys, tmp_path, "index", "add", index, "--replace", "--id", "test00001"), target)
    with pytest.raises(C2KDError) as err:  # what `c2kd serve` loads before it listens
        create_app(ServeSettings(index=index))
    assert target.name in str(err.value)


@pytest.mark.parametrize("case,pattern,damage", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_damaged_member_or_teacher_is_one_line(good, tmp_path, capsys, case, pattern, damage):
    """`model fuse` members and `train`'s teachers are checkpoints too: a damaged one is named, nothing written."""
    member, target = _damaged_copy(good, "checkpoint", tmp_path, pattern, damage)
    fused = tmp_path / "fused"
    assert_refused(*c2kd(capsys, tmp_path, "model", "fuse", "--checkpoint", good["checkpoint"], "--checkpoint",
                         member, "--weights", "1,1", "--out", fused, output=fused), target)
    assert not fused.exists()
    run = tmp_path / "run"
    assert_refused(*c2kd(capsys, tmp_path, "train", "-c", good["checkpoint"] / "config.yaml", "stage=c2kd",
                         f"data.path={good['dataset']}", f"out_dir={run}", f"teachers.checkpoints=[{member}]",
                         "loss.alpha=0.5", "epochs=1", "device=cpu", output=run), target)

"""Declared settings (``--option name=value``): checked against their type and range, unknown names refused with the
known ones, before a model loads; the docs list exactly what the backends declare."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from c2kd.errors import ConfigError
from c2kd.index import VideoIndex, make_backend
from c2kd.index.options import Option, check_options, check_search_options, declared_options, split_options
from c2kd_testkit import assert_one_line_error, run_c2kd

DOCS = Path(__file__).resolve().parents[2] / "docs" / "search.md"


def test_an_option_takes_its_type_and_range():
    count = Option("count", int, "how many", low=1, high=10)
    assert count.check(3, "x") == 3 and count.check(3.0, "x") == 3 and count.check(10, "x") == 10
    for bad in (0, 11, -3, 2.5, "3", True, math.nan, math.inf, None):
        with pytest.raises(ConfigError, match=r"count=.* is not valid: count \(how many\) takes an integer from 1 to 10"):
            count.check(bad, "backend 'x'")
    ratio = Option("ratio", float, "a share", low=0)
    assert ratio.check(0, "x") == 0.0 and isinstance(ratio.check(2, "x"), float)
    with pytest.raises(ConfigError, match="a number >= 0"):
        ratio.check(-0.1, "x")
    kind = Option("kind", str, "the structure", choices=("a", "b"))
    assert kind.check("a", "x") == "a"
    for bad in ("c", "", 1):
        with pytest.raises(ConfigError, match="takes one of a, b"):
            kind.check(bad, "x")
    with pytest.raises(ConfigError, match="has no option 'bogus'; its options: count, kind"):
        check_options({"bogus": 1}, [kind, count], "backend 'x'")


@pytest.mark.parametrize("options,message", [
    ({"nprobe": 0}, "nprobe=0 is not valid"), ({"nprobe": -3}, "an integer >= 1"), ({"bogus": 1}, "no option 'bogus'"),
    ({"kind": "flat"}, "one of ivf, ivfpq, hnsw"), ({"nlist": 4, "nprobe": 5}, "use nprobe from 1 to 4"),
    ({"nbits": 17}, "from 1 to 16"), ({"M": 1}, ">= 2"),
])
def test_faiss_refuses_bad_options_when_made(options, message):
    with pytest.raises(ConfigError, match=message):
        make_backend("faiss", 8, options)


@pytest.mark.parametrize("options,message", [
    ({"uri": "milvus.db"}, "not a server address: give e.g. uri=http://localhost:19530"),
    ({"index_type": "HNSW"}, "one of FLAT, IVF_FLAT, AUTOINDEX"), ({"nprobe": 0}, "an integer >= 1"),
    ({"index_type": "IVF_FLAT", "nlist": 4, "nprobe": 5}, "use nprobe from 1 to 4"),
])
def test_milvus_refuses_bad_options_when_made(options, message):
    with pytest.raises(ConfigError, match=message):
        make_backend("milvus", 8, options)
    # the default nprobe (nlist/16, at least 8) is capped at nlist, not refused
    assert make_backend("milvus", 8, {"index_type": "IVF_FLAT", "nlist": 4}).options["nprobe"] == 4


def test_every_backend_and_the_index_refuse_unknown_names():
    for backend in ("exact", "faiss", "qdrant", "milvus"):
        with pytest.raises(ConfigError, match=rf"backend '{backend}' has no option 'bogus'; its options: .*candidates_per_hit"):
            split_options(backend, {"bogus": 1})
    assert split_options("exact", {"candidates_per_hit": 30, "chunk": 64}) == ({"candidates_per_hit": 30}, {"chunk": 64})
    with pytest.raises(ConfigError, match="candidates_per_hit=0 is not valid"):
        split_options("faiss", {"candidates_per_hit": 0})


def _faiss_index(root: Path, n: int = 60) -> VideoIndex:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = VideoIndex.create(root, 8, backend="faiss", options={"kind": "ivf", "nlist": 4})
    index.add([f"v{i}" for i in range(n)], x)
    return index


def test_search_options_are_checked_against_the_built_index(tmp_path):
    _faiss_index(tmp_path / "idx").close()
    check_search_options(tmp_path / "idx", {"nprobe": 4, "candidates_per_hit": 5})
    for options, message in (({"nprobe": 5}, "more cells than the index has \\(nlist=4\\)"),
                             ({"nlist": 8}, "nlist is part of the built index: set it with `c2kd index build"),
                             ({"nprobe": 0}, "nprobe=0"), ({"ef_serch": 3}, "no option 'ef_serch'")):
        with pytest.raises(ConfigError, match=message):
            check_search_options(tmp_path / "idx", options)
        with pytest.raises(ConfigError, match=message):
            VideoIndex.open(tmp_path / "idx", options=options)
    with VideoIndex.open(tmp_path / "idx", options={"nprobe": 2}) as index:
        assert index.backend.options["nprobe"] == 2 and len(index.search(np.eye(8, dtype=np.float32)[:1])[0]) == 10


def test_an_nprobe_given_before_the_cells_are_counted_is_refused_at_build(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    index = VideoIndex.create(tmp_path / "idx", 8, backend="faiss", options={"nprobe": 64})  # nlist: automatic
    with pytest.raises(ConfigError, match="nprobe=64 is more cells than the index has"):
        index.add([f"v{i}" for i in range(40)], x / np.linalg.norm(x, axis=1, keepdims=True))


def test_an_index_built_with_the_old_default_nprobe_still_opens(tmp_path):
    _faiss_index(tmp_path / "idx").close()
    manifest = json.loads((tmp_path / "idx" / "index.json").read_text())
    manifest["backend"]["options"]["nprobe"] = 8  # the default stored for fewer than 8 cells before 2026-12-03
    (tmp_path / "idx" / "index.json").write_text(json.dumps(manifest))
    with VideoIndex.open(tmp_path / "idx") as index:
        assert index.backend.options["nprobe"] == 4 and len(index.search(np.eye(8, dtype=np.float32)[:1])[0]) == 10


def test_the_docs_list_every_declared_option():
    docs = DOCS.read_text()
    for owner, options in declared_options().items():
        for option in options:
            when = "build or search" if option.at_search else "build"
            assert f"| `{option.name}` | {owner} | {when} | {option.accepts()} | {option.help} |" in docs, option.name


def test_the_help_names_every_declared_option_and_no_other():
    """The names the help lists (kept in c2kd.defaults so that --help imports no backend) are the declared ones."""
    from c2kd.defaults import INDEX_OPTION_NAMES

    declared = {owner: tuple(o.name for o in options) for owner, options in declared_options().items()}
    assert declared == INDEX_OPTION_NAMES
    help_text = run_c2kd("index", "build", "--help").stdout
    for names in INDEX_OPTION_NAMES.values():
        for name in names:
            assert name in help_text, name


def test_the_commands_refuse_bad_options_before_loading_a_model(tmp_path):
    _faiss_index(tmp_path / "idx").close()
    missing = tmp_path / "no-such-checkpoint"  # the option is refused first: this is never read
    assert_one_line_error(run_c2kd("search", tmp_path / "idx", "ein Hund", "--checkpoint", missing, "-O", "nprobe=0"),
                          "nprobe=0", "an integer >= 1")
    assert_one_line_error(run_c2kd("search", tmp_path / "idx", "ein Hund", "--checkpoint", missing, "--option",
                                   "nprobe=-3"), "nprobe=-3")
    assert_one_line_error(run_c2kd("serve", tmp_path / "idx", "--checkpoint", missing, "-O", "nprobe=0"), "nprobe=0")
    # serve, which writes nothing, still reads the old short name
    assert_one_line_error(run_c2kd("serve", tmp_path / "idx", "--checkpoint", missing, "-o", "bogus=1"),
                          "no option 'bogus'", "nprobe")
    assert_one_line_error(run_c2kd("index", "build", "--checkpoint", missing, "--features", tmp_path, "-o",
                                   tmp_path / "new", "--backend", "faiss", "-O", "kind=flat"), "kind='flat'", "ivfpq")


def test_o_is_the_output_in_every_command_and_an_old_setting_after_it_is_named():
    """Issue 36: `-o` was `--out` in extract and quickstart but `--option` in search and index build."""
    help_texts = {name: run_c2kd(*name.split(), "--help").stdout for name in
                  ("extract", "quickstart", "index build", "search", "multi30k-proxy")}
    for name, text in help_texts.items():
        assert re.search(r"--out\s+-o\b", text), name
    assert re.search(r"--option\s+-O\b", help_texts["search"]) and re.search(r"--option\s+-O\b",
                                                                           help_texts["index build"])
    proc = run_c2kd("index", "build", "--checkpoint", "x", "--features", "y", "--out", "idx", "-o", "nlist=4")
    assert_one_line_error(proc, "-o names the output in every command now", "--option nlist=4")

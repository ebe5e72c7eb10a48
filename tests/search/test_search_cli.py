"""The commands, end to end on the synthetic dataset: index build/add/remove/info, search, moments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from c2kd.checkpoint import load_checkpoint
from c2kd.cli import app
from c2kd.data.features import FeatureStore
from c2kd.errors import CheckpointError, DataError
from c2kd.search.query import QueryError
from c2kd_testkit import assert_one_line_error, needs_namespaces, own_tmpfs, run_c2kd

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory, trained_checkpoint, synthetic_data):
    out = tmp_path_factory.mktemp("cli") / "index"
    result = run("index", "build", "--checkpoint", trained_checkpoint, "--features", synthetic_data, "--out", out,
                 "--tag", "synthetic", "--tag", "source=generator")
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def test_build_embeds_every_video_with_the_video_tower(built, trained_checkpoint, synthetic_data):
    from c2kd.index import VideoIndex

    store = FeatureStore(synthetic_data / "features")
    model, _ = load_checkpoint(trained_checkpoint)
    model.eval()
    with VideoIndex.open(built) as index:
        assert sorted(index.ids) == sorted(store.ids)
        for vid in ("train00003", "test00010"):
            expected = model.embed_videos([store[vid]])[0].numpy()
            np.testing.assert_allclose(index.vector(vid), expected, atol=1e-5)
        meta = index.metadata("test00010")
        assert meta["split"] == "test" and meta["dataset"] == "synthetic" and meta["tags"] == ["synthetic"]
        assert meta["source"] == "generator" and meta["frames"] == len(store["test00010"])
    assert not (built.parent / ".index.building").exists()


def test_search_json_ranks_like_the_engine_and_finds_captions(built, captions):
    english = {v: t for v, s, lang, i, t in zip(captions["video_id"], captions["split"], captions["lang"],
                                                  captions["caption_index"], captions["text"])
               if s == "test" and lang == "en" and i == 0}
    hits_at_10 = 0
    sample = sorted(english)[:12]
    for vid in sample:
        result = run("search", built, english[vid], "-k", "10", "--filter", "split=test", "--json")
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output)
        assert payload["query"] == english[vid] and len(payload["results"]) == 10
        assert all(r["metadata"]["split"] == "test" for r in payload["results"])
        scores = [r["score"] for r in payload["results"]]
        assert scores == sorted(scores, reverse=True)
        hits_at_10 += vid in [r["video_id"] for r in payload["results"]]
    assert hits_at_10 >= 9, f"the captioned video was in the top 10 for {hits_at_10} of {len(sample)} captions"


def test_search_table_batch_and_languages(built, tmp_path):
    result = run("search", built, "a dog runs", "--lang", "cz", "-k", "3")
    assert result.exit_code == 0 and "[cs]" in result.output and "rank" in result.output
    result = run("search", built, "犬が走る", "--lang", "ja", "-k", "2", "--json")  # unseen language and script
    assert result.exit_code == 0 and len(json.loads(result.output)["results"]) == 2
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"query": "a cat sleeps", "lang": "en"}\n{"query": "ein hund", "lang": "de"}\nplain one\n')
    result = run("search", built, "--queries", queries, "-k", "4", "--json")
    payload = json.loads(result.output)
    assert [p["lang"] for p in payload] == ["en", "de", None] and all(len(p["results"]) == 4 for p in payload)


def test_the_table_shows_what_each_result_is_cut_to_the_terminal(built):
    """Each row shows the result's first caption (the synthetic data's metadata), cut with an ellipsis to the
    terminal's width rather than wrapping or squeezing the other columns."""
    import os
    import subprocess
    import sys

    hits = json.loads(run("search", built, "a dog runs", "-k", "3", "--json").output)["results"]
    for width in (60, 120):
        proc = subprocess.run([sys.executable, "-c", "from c2kd.cli import main; main()", "search", str(built),
                               "a dog runs", "-k", "3"], capture_output=True, text=True, check=True,
                              env={**os.environ, "COLUMNS": str(width)})
        lines = proc.stdout.splitlines()
        assert all(len(line) <= width for line in lines), proc.stdout
        for hit in hits:
            row = next(line for line in lines if hit["video_id"] in line)
            shown, caption = row.split("│")[-2].strip(), hit["metadata"]["captions"][0]
            assert shown == caption or (shown.endswith("…") and caption.startswith(shown[:-1])), (shown, caption)


def test_batch_search_skips_bad_lines_prints_no_controls_and_times_each_query(built, tmp_path):
    queries = tmp_path / "queries.txt"
    lines = ["a cat sleeps", '{"query": ""}', "\x1b[31mred\x1b[0m dog\x07", "two men cook", "a car", "people dance"]
    queries.write_text("\n".join(lines) + "\n", "utf-8")
    proc = run_c2kd("search", built, "--queries", queries, "-k", "2")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: skipped {queries}:2: the query is empty" in proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "[31mred [0m dog" in proc.stdout
    payload = json.loads(run_c2kd("search", built, "--queries", queries, "-k", "2", "--json").stdout)
    assert [p["query"] for p in payload] == ["a cat sleeps", "[31mred [0m dog", "two men cook", "a car",
                                             "people dance"]
    assert all(p["took_ms"] > 0 for p in payload)  # each query timed (its speed is measured in bench/, not here)
    # each query of the batch is searched on its own: its answer is the one it gets when asked alone
    from c2kd.search.engine import SearchEngine

    engine = SearchEngine.open(built, moments=False)
    try:
        for p in payload:
            alone = engine.search(p["query"], k=2).to_dict()["results"]
            assert [r["video_id"] for r in p["results"]] == [r["video_id"] for r in alone]
            assert [r["score"] for r in p["results"]] == pytest.approx([r["score"] for r in alone], abs=1e-5)
    finally:
        engine.close()


@pytest.mark.parametrize("args,error,message", [
    (["a dog", "--lang", "xx"], QueryError, "Unknown language code 'xx'"),
    (["   "], QueryError, "empty"),
    (["word " * 200], QueryError, "limit is"),
    (["a dog", "-k", "0"], QueryError, "k must be"),
    ([], QueryError, "either a QUERY"),
])
def test_search_rejects_bad_queries(built, args, error, message):
    result = run("search", built, *args)
    assert result.exit_code != 0 and isinstance(result.exception, error) and message in str(result.exception)


def test_index_add_remove_info(tmp_path, random_checkpoint, synthetic_data):
    out = tmp_path / "idx"
    store = FeatureStore(synthetic_data / "features")
    ids = store.ids
    ids_file = tmp_path / "first.txt"
    ids_file.write_text("\n".join(ids[:30]))
    from c2kd.search.building import build_index

    build_index(random_checkpoint, synthetic_data, out, ids=ids[:30], progress=False)
    result = run("index", "add", out, "--id", ids[30], "--id", ids[31], "--tag", "late")
    assert result.exit_code == 0 and "added 2" in result.output, result.output
    result = run("index", "add", out, "--id", ids[30])
    assert isinstance(result.exception, DataError) and "--replace" in str(result.exception)
    assert run("index", "add", out, "--id", ids[30], "--replace").exit_code == 0
    result = run("index", "remove", out, ids[0], ids[1])
    assert result.exit_code == 0 and "removed 2" in result.output and "30 remain" in result.output
    result = run("index", "info", out, "--json")
    info = json.loads(result.output)
    assert info["videos"] == 30 and info["backend"] == "exact" and info["dim"] == 32
    result = run("index", "add", out)  # everything the index lacks
    assert "added" in result.output and json.loads(run("index", "info", out, "--json").output)["videos"] == len(ids)


def test_faiss_build_and_checkpoint_mismatch(tmp_path, random_checkpoint, trained_checkpoint, synthetic_data):
    out = tmp_path / "faiss"
    result = run("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data / "features",
                 "--out", out, "--backend", "faiss", "-O", "nlist=4", "-O", "nprobe=4")
    assert result.exit_code == 0, result.output
    info = json.loads(run("index", "info", out, "--json").output)
    assert info["backend"] == "faiss" and info["nlist"] == 4
    result = run("search", out, "a dog", "--checkpoint", trained_checkpoint)
    assert isinstance(result.exception, CheckpointError) and "rebuild the index" in str(result.exception)


def test_a_damaged_index_checkpoint_is_called_damaged_not_other_weights(tmp_path, random_checkpoint,
                                                                          synthetic_data):
    import shutil

    ckpt = shutil.copytree(random_checkpoint, tmp_path / "ckpt")
    out = tmp_path / "index"
    result = run("index", "build", "--checkpoint", ckpt, "--features", synthetic_data / "features", "--out", out)
    assert result.exit_code == 0, result.output
    weights = ckpt / "model.safetensors"
    with open(weights, "r+b") as fh:  # `truncate -s 50%`
        fh.truncate(weights.stat().st_size // 2)
    for args in (("search", out, "a dog"), ("search", out, "a dog", "--checkpoint", ckpt)):
        result = run(*args)
        message = str(result.exception)
        assert isinstance(result.exception, CheckpointError), repr(result.exception)
        assert "damaged" in message and str(weights) in message and "restore" in message
        assert "other weights" not in message and "rebuild" not in message


def test_json_output_is_strict_a_nan_score_is_null(built, tmp_path):
    import shutil

    copy = shutil.copytree(built, tmp_path / "index")
    for segment in (copy / "segments").glob("*.npy"):  # a damaged row: every entry's vector NaN
        vectors = np.load(segment, mmap_mode="r+")
        vectors[:] = np.nan
        vectors.flush()
        del vectors

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    result = run("search", copy, "a dog runs", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output, parse_constant=refuse)
    assert [r["score"] for r in payload["results"]] == [None] * len(payload["results"]) != []


def test_moments_command(trained_checkpoint, synthetic_data, tmp_path):
    store = FeatureStore(synthetic_data / "features")
    vid = store.ids[5]
    result = run("moments", vid, "a dog runs", "--checkpoint", trained_checkpoint, "--features", synthetic_data,
                 "-k", "3", "--lengths", "2,4", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["video_id"] == vid and 1 <= len(payload["moments"]) <= 3
    assert payload["duration"] == pytest.approx(len(store[vid]))
    assert all(0 <= m["start"] < m["end"] <= payload["duration"] for m in payload["moments"])
    result = run("moments", "no-such-id", "a dog", "--checkpoint", trained_checkpoint, "--features", synthetic_data)
    assert isinstance(result.exception, QueryError) and "no-such-id" in str(result.exception)
    result = run("moments", "no-such-id", "a dog", "--checkpoint", trained_checkpoint)
    assert isinstance(result.exception, DataError) and "--features" in str(result.exception)
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"not a video")
    result = run("moments", fake, "a dog", "--checkpoint", trained_checkpoint)
    # a 16-d synthetic model has no frame encoder, so a video file is refused with a clear message
    assert isinstance(result.exception, DataError) and "--encoder" in str(result.exception)


@needs_namespaces
def test_index_build_into_a_read_only_folder(tmp_path, random_checkpoint, synthetic_data):
    disk = tmp_path / "disk"
    proc = run_c2kd("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data,
                    "--out", disk / "index", wrapper=own_tmpfs(disk, "ro"))
    line = assert_one_line_error(proc, f"cannot write {disk}/", "Read-only file system")
    assert ".index.building" not in line  # the output (or its lock beside it), not the staging folder


def test_index_build_onto_a_full_disk_is_one_line_and_a_rerun_with_room_completes(tmp_path, random_checkpoint,
                                                                                     synthetic_data):
    disk = tmp_path / "disk"
    proc = run_c2kd("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data,
                    "--out", disk / "index", wrapper=own_tmpfs(disk, "size=48k"))
    assert_one_line_error(proc, f"cannot write {disk}/", "No space left on device")
    assert not (disk / "index").exists()  # the tmpfs is gone with its namespace; here: nothing was published
    done = run_c2kd("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data,
                    "--out", tmp_path / "roomy" / "index")
    assert done.returncode == 0, done.stderr
    assert "indexed" in done.stdout


def test_wrong_feature_size_bad_fps_and_port_are_one_line(tmp_path, random_checkpoint, synthetic_data):
    from c2kd.data.features import FeatureStoreWriter
    from c2kd.search.building import build_index

    index = build_index(random_checkpoint, synthetic_data, tmp_path / "index", ids=FeatureStore(
        synthetic_data / "features").ids[:4], progress=False)
    small = tmp_path / "small-store"  # 8-d features of new videos, with no encoder recorded
    with FeatureStoreWriter(small, dim=8) as writer:
        writer.add("new-video", np.ones((3, 8), np.float32))
    assert_one_line_error(run_c2kd("index", "add", index, "--features", small),
                          f"{small} holds 8-d frame features", "reads 16-d ones")
    indexed = tmp_path / "indexed-store"  # 8-d features of videos the index already holds: nothing to add
    with FeatureStoreWriter(indexed, dim=8) as writer:
        for video_id in FeatureStore(synthetic_data / "features").ids[:2]:
            writer.add(video_id, np.ones((3, 8), np.float32))
    assert_one_line_error(run_c2kd("index", "add", index, "--features", indexed),
                          f"{indexed} holds 8-d frame features", "reads 16-d ones")
    assert_one_line_error(run_c2kd("moments", "train00001", "a dog", "--checkpoint", random_checkpoint,
                                   "--features", synthetic_data, "--fps", "0"), "--fps 0", "positive")
    assert_one_line_error(run_c2kd("serve", index, "--port", "70000"), "--port 70000", "from 1 to 65535")


@pytest.mark.slow  # loads the packaged ONNX ViT (tens of seconds on a busy 2-core machine)
def test_moments_of_a_video_file(tmp_path, synthetic_data):
    """A video file is decoded and encoded with the ingestion extractor (the 384-d packaged ViT)."""
    pytest.importorskip("c2kd.features.encoders", reason="needs the ingestion package c2kd.features")
    from searchkit import _model_and_config, write_video

    from c2kd.checkpoint import save_checkpoint

    video = write_video(tmp_path / "clip.webm", seconds=4, fps=2)
    _model, config = _model_and_config(tmp_path, synthetic_data)
    from c2kd.encoders.video import VideoEncoderConfig
    from c2kd.model import build_model

    config.model.video = VideoEncoderConfig(feature_dim=384, embed_dim=32, layers=1, heads=2)
    ckpt = save_checkpoint(tmp_path / "ckpt384", build_model(config.model), config)
    result = run("moments", video, "a dog runs", "--checkpoint", ckpt, "--lengths", "1,2", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    payload = json.loads(result.output)
    assert payload["video_id"] == "clip" and payload["duration"] == pytest.approx(4.0)
    assert payload["moments"] and all(0 <= m["start"] < m["end"] <= 4.0 for m in payload["moments"])


def test_build_one_split_of_a_dataset(tmp_path, random_checkpoint, synthetic_data, captions):
    out = tmp_path / "test-only"
    result = run("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data, "--out", out,
                 "--split", "test", "--split", "val")
    assert result.exit_code == 0, result.output + repr(result.exception)
    wanted = {v for v, s in zip(captions["video_id"], captions["split"]) if s in ("test", "val")}
    from c2kd.index import VideoIndex

    with VideoIndex.open(out) as index:
        assert set(index.ids) == wanted and set(index.fields()["split"]) == {"test", "val"}
    wrong = run("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data, "--out",
                tmp_path / "x", "--split", "tset")
    assert isinstance(wrong.exception, DataError) and "'tset'" in str(wrong.exception)
    assert "test, train, val" in str(wrong.exception) and not (tmp_path / "x").exists()
    store_only = run("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data / "features",
                     "--out", tmp_path / "y", "--split", "test")
    assert isinstance(store_only.exception, DataError) and "dataset folder" in str(store_only.exception)


def test_poster_stills_follow_index_add_and_remove(tmp_path, random_checkpoint, synthetic_data):
    from searchkit import write_video

    from c2kd.search.building import build_index
    from c2kd.search.posters import MAX_POSTERS, poster_at, poster_folder

    ids = FeatureStore(synthetic_data / "features").ids[:3]
    videos = tmp_path / "videos"
    write_video(videos / f"{ids[0]}.webm", seconds=3)
    write_video(videos / f"{ids[1]}.webm", seconds=4)
    write_video(videos / "more" / f"{ids[2]}.webm", seconds=MAX_POSTERS * 2)  # long: stills spread over it
    out = build_index(random_checkpoint, synthetic_data, tmp_path / "idx", ids=ids[:2], video_roots=[videos],
                      progress=False)
    assert sorted(p.name for p in poster_folder(out, ids[0]).iterdir()) == ["000000000.jpg", "000001000.jpg",
                                                                           "000002000.jpg"]
    assert poster_at(out, ids[1], 2.5).name == "000002000.jpg" and poster_at(out, ids[1], 99).name == "000003000.jpg"
    assert run("index", "add", out, "--id", ids[2]).exit_code == 0
    long = sorted(poster_folder(out, ids[2]).iterdir())
    assert len(long) == MAX_POSTERS and long[1].name == "000002000.jpg"  # one still every 2 s
    assert run("index", "remove", out, ids[0]).exit_code == 0
    assert not poster_folder(out, ids[0]).exists() and poster_folder(out, ids[1]).is_dir()


@pytest.mark.parametrize("given,missing", [([], "--checkpoint"), (["--checkpoint", "CKPT"], "--features")])
def test_index_add_to_an_index_that_records_no_checkpoint_or_store_asks_for_them(tmp_path, random_checkpoint,
                                                                                  synthetic_data, given, missing):
    from c2kd.index import VideoIndex

    VideoIndex.build(tmp_path / "idx", ["v0", "v1"], np.eye(2, 32, dtype=np.float32))  # the library API: no info
    given = [str(random_checkpoint) if a == "CKPT" else a for a in given]
    result = run("index", "add", str(tmp_path / "idx"), *given)
    assert isinstance(result.exception, DataError) and f"pass {missing}" in str(result.exception)  # exit code 2


def test_index_add_of_a_long_video_while_serving_is_seen_by_the_next_search(tmp_path, random_checkpoint,
                                                                             synthetic_data):
    """A server keeps its index open; `c2kd index add` in another process commits a long video (moments), and
    the server's next search, moments and video list include it."""
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from c2kd.data.features import FeatureStoreWriter
    from c2kd.search.building import build_index
    from c2kd.search.moments import Windows
    from c2kd.serve.app import ServeSettings, create_app

    source = FeatureStore(synthetic_data / "features")
    ids = source.ids[:6]
    out = build_index(random_checkpoint, synthetic_data, tmp_path / "idx", ids=ids, progress=False,
                      windows=Windows((4.0, 8.0), 0.5, whole_up_to=0))
    store = tmp_path / "long-store"
    meta = source.meta
    extra = {k: v for k, v in meta.items() if k not in ("format", "version", "dim", "dtype", "encoder", "fps")}
    rows = np.concatenate([np.asarray(source[v], np.float32) for v in source.ids[6:16]])  # ~10 clips end to end
    with FeatureStoreWriter(store, source.dim, encoder=meta.get("encoder"), fps=meta.get("fps"), extra=extra) as w:
        w.add("long-video", rows, np.arange(len(rows), dtype=np.float64))
    with TestClient(create_app(ServeSettings(index=out, features=synthetic_data))) as client:
        before = client.get("/api/search", params={"q": "a dog", "k": 50, "group": "false"}).json()["results"]
        assert "long-video" not in {r["video_id"] for r in before}
        added = subprocess.run([sys.executable, "-c", "from c2kd.cli import main; main()", "index", "add", str(out),
                                "--features", str(store)], check=False, capture_output=True, text=True,
                               timeout=300)
        assert added.returncode == 0, added.stderr
        after = client.get("/api/search", params={"q": "a dog", "k": 50}).json()["results"]
        hit = next(r for r in after if r["video_id"] == "long-video")
        assert hit["moment"] is not None and 0 <= hit["moment"]["start"] < hit["moment"]["end"] <= len(rows)
        assert client.get("/api/health").json()["videos"] == len(ids) + 1
        moments = client.get("/api/moments", params={"video_id": "long-video", "q": "a dog", "k": 3}).json()
        assert moments["moments"] and moments["moments"][0]["score"] <= hit["score"] + 1e-6


def test_a_build_writes_progress_lines_not_bar_refreshes_to_a_log(tmp_path, random_checkpoint, synthetic_data):
    proc = run_c2kd("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data,
                    "--out", tmp_path / "index")  # stderr is a pipe, as when the output goes to a file
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr
    assert "embedding videos: done" in proc.stderr and len(proc.stderr) < 2000, proc.stderr
    quiet = run_c2kd("--no-progress", "index", "build", "--checkpoint", random_checkpoint, "--features",
                     synthetic_data, "--out", tmp_path / "quiet")
    assert quiet.returncode == 0 and "embedding videos" not in quiet.stderr, quiet.stderr
    assert "indexed" in quiet.stdout  # the result is still said


def test_the_quickstarts_next_commands_run(tmp_path, trained_checkpoint, synthetic_data):
    """The commands the quickstart ends with work as printed (here on the synthetic data and a trained model)."""
    import shlex

    from c2kd.encoders.text.presets import TEXT_PRESETS
    from c2kd.quickstart import next_commands

    lines = next_commands(trained_checkpoint, synthetic_data, tmp_path / "index")
    build, search, serve = (shlex.split(line.strip()) for line in lines[1:4])
    # then the best pair for real videos: a text preset and the frame preset it is aligned with
    aligned = shlex.split(next(line for line in lines[4:] if "model aligned" in line).strip())
    text, frames = aligned[aligned.index("--text") + 1], aligned[aligned.index("--frame-encoder") + 1]
    assert TEXT_PRESETS[text].aligned_frames == frames and "siglip2" in frames
    assert build[:3] == ["c2kd", "index", "build"] and serve[:2] == ["c2kd", "serve"]
    for command in (build, search):
        proc = run_c2kd(*command[1:])
        assert proc.returncode == 0, proc.stderr
    assert "ein Hund rennt über eine Wiese" in proc.stdout and "score" in proc.stdout  # a ranked table


def test_metadata_keyed_by_another_column(tmp_path, random_checkpoint, synthetic_data):
    """MSR-VTT's files name a video by ``clip_name``: ``--id-column`` reads them; without it the error names the
    fields the row has and the option."""
    ids = FeatureStore(synthetic_data / "features").ids[:3]
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps({"clip_name": v, "caption": f"clip {n}"}) + "\n" for n, v in enumerate(ids)))
    out = tmp_path / "idx"
    result = run("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data, "--out", out,
                 "--metadata", meta)
    assert isinstance(result.exception, DataError)
    assert "no 'video_id' field (its fields: 'clip_name', 'caption')" in str(result.exception)
    assert "--id-column clip_name" in str(result.exception) and not out.exists()
    result = run("index", "build", "--checkpoint", random_checkpoint, "--features", synthetic_data, "--out", out,
                 "--metadata", meta, "--id-column", "clip_name")
    assert result.exit_code == 0, result.output + repr(result.exception)
    info = json.loads(run("index", "info", out, "--json").output)
    from c2kd.index import VideoIndex

    with VideoIndex.open(out) as index:
        assert [index.metadata(v).get("caption") for v in ids] == ["clip 0", "clip 1", "clip 2"]
        assert "clip_name" not in index.metadata(ids[0]) and info["videos"] == len(FeatureStore(synthetic_data / "features").ids)


def test_the_table_shows_no_empty_moment_column_and_a_typo_in_a_filter_is_named(built):
    """Issue 36: the `moment` column was empty for every clip; `-f split=tset` gave a one-cell table cut off
    instead of "no results" and the split's values."""
    result = run("search", built, "a dog runs", "-k", "3")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "rank" in line)
    assert "moment" not in header and "score" in header  # clips indexed whole have no moment to show
    typo = run("search", built, "a dog runs", "-f", "split=tset")
    assert typo.exit_code == 0, typo.output
    assert "no results (no video matches the filters)" in typo.output
    assert "warning: no indexed video has split=tset; its values: test, train" in typo.output


def test_a_result_is_described_by_its_text_never_by_key_value_lists():
    """Issue 36: with MSR-VTT's metadata the CLI's title column printed `duration=14.014, tags=[...], caption=...`."""
    from c2kd.commands.search import _moments_text, describe
    from c2kd.search.moments import Moment

    msrvtt = {"duration": 14.014, "tags": ["a", "b"], "caption": "a man is  talking", "retrieval_key": "ret9770"}
    assert describe(msrvtt) == "a man is talking"
    assert describe({"title": "Harbour tour", "caption": "boats"}) == "Harbour tour"
    assert describe({"captions": ["a cat swims"], "duration": 4.0}) == "a cat swims"
    assert describe({"duration": 4.0, "tags": ["x"]}) == ""
    moments = [Moment(40.0, 48.0, 0.3, rank=1), Moment(2.0, 4.0, 0.2, rank=2), Moment(9.0, 11.0, 0.1, rank=3)]
    assert _moments_text(moments) == "0:40.0-0:48.0 (+2 more moments)"
    assert _moments_text(moments[:2]) == "0:40.0-0:48.0 (+1 more moment)"


def test_moments_prints_times_as_search_does(trained_checkpoint, synthetic_data):
    """Issue 36: `moments` printed `40.0` where `search` prints `0:40.0`."""
    vid = FeatureStore(synthetic_data / "features").ids[5]
    result = run("moments", vid, "a dog runs", "--checkpoint", trained_checkpoint, "--features", synthetic_data,
                 "-k", "2", "--lengths", "2,4")
    assert result.exit_code == 0, result.output
    rows = [line.split("│") for line in result.output.splitlines() if line.startswith("│")]
    assert rows and all(cell.strip().startswith("0:") for row in rows for cell in row[2:4]), result.output

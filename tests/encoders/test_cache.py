"""The on-disk embedding cache of frozen backbones (frozen-backbone mode)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from c2kd.encoders.text.cache import CachedTextBackbone, EmbeddingCache, text_key
from c2kd.encoders.text.hf import HFTextBackbone
from c2kd.errors import ConfigError, DataError

TEXTS = ["a dog runs on the beach", "two men repair a car", "people sit at a table", "a dog runs on the beach"]


class CountingBackbone(HFTextBackbone):
    """A real Hugging Face backbone that counts how many texts its forward pass has embedded."""

    calls = 0

    def forward(self, inputs):
        type(self).calls += int(inputs["input_ids"].shape[0])
        return super().forward(inputs)


def _backbone(path) -> CountingBackbone:
    plain = HFTextBackbone.from_pretrained(str(path))
    return CountingBackbone(plain.model, plain.tokenizer, name=str(path)).eval()


def _direct(backbone, texts, max_tokens):
    with torch.no_grad():
        return HFTextBackbone.forward(backbone, backbone.prepare(texts, max_tokens)).numpy()


def test_round_trip_matches_the_backbone_and_a_second_call_does_not_run_it(tmp_path, tiny_hf):
    backbone = _backbone(tiny_hf)
    cached = CachedTextBackbone(backbone, tmp_path / "cache")
    CountingBackbone.calls = 0
    first = cached(cached.prepare(TEXTS, 35)).numpy()
    assert first.shape == (4, backbone.dim) and first.dtype == np.float32
    assert CountingBackbone.calls == 3  # the repeated text is computed once
    np.testing.assert_allclose(first, _direct(backbone, TEXTS, 35), atol=2e-3, rtol=2e-3)  # float16 storage
    again = cached(cached.prepare(TEXTS[::-1], 35)).numpy()
    assert CountingBackbone.calls == 3
    np.testing.assert_array_equal(again, first[::-1])
    cached.flush()
    reopened = CachedTextBackbone(_backbone(tiny_hf), tmp_path / "cache")  # a new process: read from disk
    np.testing.assert_array_equal(reopened.embed(TEXTS, 40), first)  # short texts: one entry for 35 and 40
    assert CountingBackbone.calls == 3 and reopened.computed == 0


def test_truncated_texts_are_kept_per_token_limit(tmp_path, tiny_hf):
    long = "a very long caption " + " ".join(f"word{i}" for i in range(40))
    backbone = _backbone(tiny_hf)
    cached = CachedTextBackbone(backbone, tmp_path / "cache")
    short_limit, long_limit = cached.embed([long], 8), cached.embed([long], 30)
    np.testing.assert_allclose(short_limit, _direct(backbone, [long], 8), atol=2e-3, rtol=2e-3)
    np.testing.assert_allclose(long_limit, _direct(backbone, [long], 30), atol=2e-3, rtol=2e-3)
    assert not np.allclose(short_limit, long_limit)


def test_other_weights_use_another_cache(tmp_path, tiny_hf):
    a = CachedTextBackbone(_backbone(tiny_hf), tmp_path / "cache")
    other = _backbone(tiny_hf)
    with torch.no_grad():
        first = next(other.parameters())
        first.add_(torch.randn_like(first))  # (a constant shift would vanish in the embedding LayerNorm)
    b = CachedTextBackbone(other, tmp_path / "cache")
    assert a.cache.root != b.cache.root
    assert not np.allclose(a.embed(TEXTS[:1], 35), b.embed(TEXTS[:1], 35))


def test_a_killed_writer_leaves_no_half_shard(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", dim=3, model="m", fingerprint="f" * 40)
    cache.add([text_key("x")], ["x"], np.ones((1, 3)))
    cache.flush()
    # what a kill between the data file and the keys file leaves behind, plus a stray temporary
    np.save(cache.shard_dir / "part-orphan.npy", np.zeros((5, 3), np.float16))
    (cache.shard_dir / ".part-x.keys.tmp").write_bytes(b"garbage")
    reopened = EmbeddingCache(tmp_path / "c", dim=3, model="m", fingerprint="f" * 40)
    rows, found = reopened.lookup([text_key("x"), text_key("y")])
    assert found.tolist() == [True, False] and rows[0].tolist() == [1, 1, 1]
    with pytest.raises(DataError, match=r"belongs to another model \(dim 3,.*delete .* or choose another cache_dir"):
        EmbeddingCache(tmp_path / "c", dim=4, model="m", fingerprint="f" * 40)


@pytest.mark.parametrize("which", ["*.npy", "*.keys.parquet", "cache.json"])
@pytest.mark.parametrize("damage", ["cut short", "garbage"])
def test_a_damaged_cache_file_is_named_with_its_fix(tmp_path, which, damage):
    """A cache is c2kd's own and can be recomputed: a damaged file is one error saying which file to delete."""
    from c2kd.errors import DamagedFileError

    cache = EmbeddingCache(tmp_path / "c", dim=3, model="m", fingerprint="f" * 40)
    cache.add([text_key(t) for t in "xyz"], list("xyz"), np.ones((3, 3)))
    cache.flush()
    target = next((tmp_path / "c").rglob(which))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage == "cut short" else b"\x00garbage" * 40)
    with pytest.raises(DamagedFileError) as err:
        EmbeddingCache(tmp_path / "c", dim=3, model="m", fingerprint="f" * 40)
    assert str(target) in str(err.value) and "delete" in str(err.value)


def test_pending_rows_are_flushed_when_the_cache_is_dropped(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", dim=2, model="m", fingerprint="g" * 40)
    cache.add([text_key("a")], ["a"], np.array([[0.5, 2.0]]))
    del cache  # the finalizer writes the shard
    rows, found = EmbeddingCache(tmp_path / "c", dim=2, model="m", fingerprint="g" * 40).lookup([text_key("a")])
    assert found.all() and rows[0].tolist() == [0.5, 2.0]


def test_compaction_keeps_every_entry(tmp_path, monkeypatch):
    import c2kd.encoders.text.cache as cache_module

    cache = EmbeddingCache(tmp_path / "c", dim=2, model="m", fingerprint="h" * 40)
    for i in range(5):
        cache.add([text_key(str(i))], [str(i)], np.full((1, 2), i))
        cache.flush()
    monkeypatch.setattr(cache_module, "COMPACT_ABOVE", 2)
    merged = EmbeddingCache(tmp_path / "c", dim=2, model="m", fingerprint="h" * 40)
    assert len(list(merged.shard_dir.glob("*.npy"))) == 1
    rows, found = merged.lookup([text_key(str(i)) for i in range(5)])
    assert found.all() and rows[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_frozen_cached_model_checkpoint_round_trip(tmp_path, tiny_hf):
    from c2kd.checkpoint import load_checkpoint, save_checkpoint
    from c2kd.model import ModelConfig, build_model
    from c2kd.train.config import DataConfig, TrainConfig

    model_config = ModelConfig.model_validate({
        "text": {"name": str(tiny_hf), "trainable": False, "cache_dir": str(tmp_path / "cache"), "embed_dim": 16},
        "video": {"feature_dim": 8, "embed_dim": 16},
    })
    model = build_model(model_config).eval()
    assert isinstance(model.text.backbone, CachedTextBackbone)
    assert all(not k.startswith("text.backbone") for k in model.state_dict())  # frozen weights rebuilt by name
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("text.head.", "video")) for n in trained)
    config = TrainConfig(data=DataConfig(path=str(tmp_path)), model=model_config)
    save_checkpoint(tmp_path / "ckpt", model, config)
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    loaded.eval()
    torch.testing.assert_close(loaded.embed_texts(TEXTS), model.embed_texts(TEXTS))


def test_caching_a_fine_tuned_backbone_is_refused(tmp_path, tiny_hf):
    from c2kd.model import ModelConfig, build_model

    config = ModelConfig.model_validate({"text": {"name": str(tiny_hf), "cache_dir": str(tmp_path), "embed_dim": 16},
                                         "video": {"feature_dim": 8, "embed_dim": 16}})
    with pytest.raises(ConfigError, match="trainable"):
        build_model(config)


def test_warm_precomputes_a_corpus_once(tmp_path, tiny_hf):
    backbone = _backbone(tiny_hf)
    cached = CachedTextBackbone(backbone, tmp_path / "cache", batch_size=2, flush_every=2)
    CountingBackbone.calls = 0
    assert cached.warm(TEXTS, 35) == 3 and CountingBackbone.calls == 3
    assert len(list(cached.cache.shard_dir.glob("*.keys.parquet"))) == 2  # flushed as it went (2 + 1 rows)
    assert cached.warm(TEXTS, 35) == 0
    reopened = CachedTextBackbone(_backbone(tiny_hf), tmp_path / "cache")
    np.testing.assert_array_equal(reopened.embed(TEXTS, 35), cached.embed(TEXTS, 35))
    assert CountingBackbone.calls == 3


@pytest.fixture(scope="module")
def quickstart_like_run(tmp_path_factory, tiny_hf):
    """A run made the way `c2kd quickstart` makes one: cache_dir and out_dir relative to the folder it ran in
    (``work``), a warmed caption cache, and an index of its videos."""
    import os

    from c2kd.checkpoint import save_checkpoint
    from c2kd.data.synthetic import SyntheticConfig, generate_synthetic
    from c2kd.model import ModelConfig, build_model
    from c2kd.search.building import build_index
    from c2kd.train.config import DataConfig, TrainConfig

    work = tmp_path_factory.mktemp("work")
    data = generate_synthetic(work / "data", SyntheticConfig(n_train=8, n_val=4, n_test=8, feature_dim=8, seed=1))
    model_config = ModelConfig.model_validate({
        "text": {"name": str(tiny_hf), "trainable": False, "cache_dir": "runs/demo/cache", "embed_dim": 16},
        "video": {"feature_dim": 8, "embed_dim": 16},
    })
    before = os.getcwd()
    os.chdir(work)  # where the run was started: its relative paths mean work/...
    try:
        model = build_model(model_config).eval()
        model.text.backbone.warm(TEXTS)
        config = TrainConfig(data=DataConfig(path=str(data)), model=model_config, out_dir="runs/demo/run")
        checkpoint = save_checkpoint(work / "runs" / "demo" / "run" / "best", model, config)
    finally:
        os.chdir(before)
    index = build_index(checkpoint, data, work / "index", progress=False)
    return work, index, work / "runs" / "demo" / "cache"


def _shards(cache_root) -> list[str]:
    return sorted(p.name for p in cache_root.glob("*/shards/*"))


def test_search_finds_the_runs_cache_from_anywhere_and_stores_no_query(quickstart_like_run, tmp_path):
    from c2kd.checkpoint import load_checkpoint
    from c2kd_testkit import run_c2kd

    work, index, cache_root = quickstart_like_run
    shards = _shards(cache_root)
    assert shards, "the run's caption cache was written where the run started"
    loaded, _ = load_checkpoint(work / "runs" / "demo" / "run")  # the run folder resolves its cache
    assert loaded.text.backbone.cache_root == cache_root
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    queries = elsewhere / "queries.txt"
    queries.write_text("\n".join(f"query number {i} about a dog" for i in range(20)) + "\n")
    proc = run_c2kd("search", index, "--queries", queries, "-k", "2", "--json", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 20
    assert run_c2kd("search", index, TEXTS[0], cwd=elsewhere).returncode == 0  # a cached caption
    assert sorted(p.name for p in elsewhere.iterdir()) == ["queries.txt"]  # no runs/demo/cache made here
    assert _shards(cache_root) == shards  # and no query written to the run's cache


def test_the_server_stores_no_query(quickstart_like_run, tmp_path):
    import subprocess
    import sys
    import urllib.parse
    import urllib.request

    from searchkit import announced_port

    _, index, cache_root = quickstart_like_run
    shards = _shards(cache_root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = subprocess.Popen([sys.executable, "-c", "from c2kd.cli import main; main()", "serve", str(index),
                               "--port", "0"], cwd=elsewhere, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{announced_port(server)}"  # listening: requests wait in its backlog
        for i in range(20):
            url = f"{base}/api/search?" + urllib.parse.urlencode({"q": f"query number {i}", "k": 2})
            assert len(json.loads(urllib.request.urlopen(url, timeout=30).read())["results"]) == 2
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert list(elsewhere.iterdir()) == []
    assert _shards(cache_root) == shards


def test_warm_in_two_processes_fills_the_cache_with_the_backbones_vectors(tmp_path, tiny_hf):
    backbone = HFTextBackbone.from_pretrained(str(tiny_hf))
    texts = [f"a dog number {i} runs on the beach" for i in range(24)] + TEXTS
    cached = CachedTextBackbone(backbone, tmp_path / "cache", batch_size=2)
    assert cached.warm(texts, 35, processes=2) == len(set(texts))
    assert len(list(cached.cache.shard_dir.glob("*.keys.parquet"))) == 2  # one shard per process
    rows = cached.embed(texts, 35)
    assert cached.computed == 0  # every text came from the processes
    np.testing.assert_allclose(rows, _direct(backbone, texts, 35), atol=2e-3)  # float16 on disk
    assert cached.warm(texts, 35, processes=2) == 0

"""Shared fixtures and helpers of the search, serve and index tests (tests/ is on sys.path: pyproject)."""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from c2kd.checkpoint import save_checkpoint
from c2kd.data.synthetic import SyntheticConfig, generate_synthetic
from c2kd.encoders.random_hf import make_random_text_model
from c2kd.encoders.text.tower import TextEncoderConfig
from c2kd.encoders.video import VideoEncoderConfig
from c2kd.model import ModelConfig, build_model
from c2kd.train.config import TrainConfig

FEATURE_DIM = 16
EMBED_DIM = 32


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A small synthetic dataset (English + 3 languages) with per-second frame features."""
    root = tmp_path_factory.mktemp("synthetic") / "data"
    return generate_synthetic(root, SyntheticConfig(n_train=320, n_val=20, n_test=60, feature_dim=FEATURE_DIM,
                                                    frame_noise=0.3, seed=3))


def _captions(root: Path) -> dict[str, list]:
    import pyarrow.parquet as pq

    return pq.read_table(root / "captions.parquet").to_pydict()


def _model_and_config(tmp: Path, data: Path):
    corpus = _captions(data)["text"] + ["unseen words here"]
    text_dir = make_random_text_model(tmp / "text", corpus, hidden=32, layers=1, heads=2, seed=0)
    model_cfg = ModelConfig(text=TextEncoderConfig(name=str(text_dir), embed_dim=EMBED_DIM),
                            video=VideoEncoderConfig(feature_dim=FEATURE_DIM, embed_dim=EMBED_DIM, layers=1, heads=2,
                                                     dropout=0.0))
    torch.manual_seed(0)
    model = build_model(model_cfg)
    return model, TrainConfig(data={"path": str(data)}, model=model_cfg)


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory, synthetic_data) -> Path:
    """An untrained checkpoint (random text + video towers) matching the synthetic features."""
    tmp = tmp_path_factory.mktemp("random-ckpt")
    model, config = _model_and_config(tmp, synthetic_data)
    return save_checkpoint(tmp / "ckpt", model, config)


def train_quickly(model, data: Path, steps: int = 250, batch: int = 32, seed: int = 0):
    """A few NCE steps on English captions of the training split: enough for the towers to align concepts."""
    from c2kd.data.features import FeatureStore

    caps = _captions(data)
    store = FeatureStore(data / "features")
    by_video: dict[str, list[str]] = {}
    for vid, split, lang, text in zip(caps["video_id"], caps["split"], caps["lang"], caps["text"]):
        if split == "train" and lang == "en":
            by_video.setdefault(vid, []).append(text)
    ids = sorted(by_video)
    rng = np.random.default_rng(seed)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is several times faster than two fighting
    try:
        _train_steps(model, store, by_video, ids, rng, optim, steps, batch)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model


def _train_steps(model, store, by_video, ids, rng, optim, steps: int, batch: int) -> None:
    from c2kd.data.batching import pad_frames
    from c2kd.losses.nce import nce_loss

    for _ in range(steps):
        pick = rng.choice(len(ids), batch, replace=False)
        texts = [by_video[ids[i]][rng.integers(len(by_video[ids[i]]))] for i in pick]
        frames, mask = pad_frames([store[ids[i]] for i in pick], model.config.video.max_frames)
        t = model.encode_text(model.text.prepare(texts, 16))
        v = model.encode_video(frames, mask)
        loss = nce_loss(t @ v.T, temperature=0.1)
        optim.zero_grad()
        loss.backward()
        optim.step()


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, synthetic_data) -> Path:
    """A checkpoint trained for a few seconds on the synthetic data (its retrieval is far above chance)."""
    tmp = tmp_path_factory.mktemp("trained-ckpt")
    model, config = _model_and_config(tmp, synthetic_data)
    train_quickly(model, synthetic_data)
    return save_checkpoint(tmp / "ckpt", model, config)


@pytest.fixture(scope="session")
def captions(synthetic_data) -> dict[str, list]:
    return _captions(synthetic_data)


def make_index_dataset(tmp: Path, data: Path, checkpoint: Path, backend: str = "exact", options=None,
                       video_roots=()) -> Path:
    """Build an index of the synthetic dataset's videos with ``checkpoint`` (through the real builder)."""
    from c2kd.search.building import build_index

    return build_index(checkpoint, data, tmp / f"index-{backend}", backend=backend, options=options,
                       video_roots=video_roots, progress=False)


def clustered_corpus(n: int, dim: int, clusters: int, seed: int = 0, spread: float = 0.35):
    """Unit vectors drawn around random cluster centres, like embeddings of videos on a few hundred topics.

    Shape:
        -> vectors [n, dim] float32, queries [64, dim] float32 (perturbed copies of corpus vectors)
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(clusters, size=n)] + spread * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim) * 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(n, 64, replace=False)] + 0.3 * rng.standard_normal((64, dim)).astype(np.float32) / np.sqrt(dim) * 3
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x.astype(np.float32), q.astype(np.float32)


def brute_force(vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int, keep=None) -> list[tuple[str, float]]:
    """The plain reference: score every (kept) video, sort by score then id order, take k."""
    scored = [(float(np.dot(vectors[i].astype(np.float64), query.astype(np.float64))), i)
              for i in range(len(ids)) if keep is None or keep(i)]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(ids[i], s) for s, i in scored[:k]]

def write_video(path: Path, seconds: int = 6, fps: int = 2, size=(64, 48), frames: int | None = None) -> Path:
    """A real, small VP8 WebM file (frames change colour every second): ``seconds * fps`` frames, or ``frames``
    (e.g. 1502 at 30 frame/s: a 50.07 s video)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=fps, options={"deadline": "realtime", "cpu-used": "8"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(seconds * fps if frames is None else frames):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            img[..., i // fps % 3] = 200
            img[: size[1] // 2, : (i % fps + 1) * size[0] // fps] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def announced_port(proc: subprocess.Popen, timeout: float = 120) -> int:
    """The port a ``c2kd serve --port 0`` started as ``proc`` (stderr a text pipe) listens on, read from its
    ``serving ... open http://HOST:PORT/`` line; the rest of its stderr is drained in the background (a full pipe
    would block the server). Fails naming what it printed if it exits, or prints no such line in ``timeout`` s."""
    assert proc.stderr is not None, "start the server with stderr=subprocess.PIPE, text=True"
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    said: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"the server said no port in {timeout:.0f} s: {''.join(said)[-2000:]}") from None
        if line is None:
            raise AssertionError(f"the server exited ({proc.wait()}) before serving: {''.join(said)[-2000:]}")
        said.append(line)
        found = re.search(r"^serving .*: open http://(?:\[[^\]]*\]|[^:/\s]+):(\d+)/", line)
        if found:
            return int(found.group(1))


@contextmanager
def serving(app) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on loopback, in a background thread; yields its base URL.

    The server accepts on a socket already listening on a port the OS chose (no other process can take it)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def served_ids(store) -> tuple[list[str], list[str]]:
    """The served index's videos with a file (24 of the test split), and all its videos (+ 40 of train)."""
    with_files = sorted(v for v in store.ids if v.startswith("test"))[:24]
    return with_files, with_files + sorted(v for v in store.ids if v.startswith("train"))[:40]

"""Frozen-backbone mode: each caption's backbone embedding is computed once and kept on disk.

With a frozen text backbone (``TextEncoderConfig(trainable=False, cache_dir=...)``) only the LayerNorm and the
gated projection of the text tower are trained, so the backbone's output for a caption never changes: it is
looked up instead of recomputed. This makes teachers and students train in minutes on a CPU, and works for any
backbone (Hugging Face or a packaged engine).

Layout of a cache directory (one sub-folder per model and weights)::

    <cache_dir>/<model-slug>-<fingerprint[:12]>/
        cache.json                    {"format": "c2kd-text-cache", "model", "fingerprint", "dim", "dtype"}
        shards/<part>.npy             float16 [rows, dim]
        shards/<part>.keys.parquet    key (sha1 hex of the text), text

A shard counts once its keys file exists; both files are written by rename (data first), so a killed run loses
at most the unflushed embeddings and never leaves a half shard. Several processes can add to one cache at once
(every flush writes a new uniquely named shard; a key stored twice is harmless).

Keys are the sha1 of the text. For backbones that truncate at ``max_tokens`` (Hugging Face ones), a text that
is cut at the limit gets a key that also names the limit, so its 35-token (training) and 40-token (evaluation)
embeddings are kept apart, while the usual short caption is stored once for both.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from c2kd.encoders.text.base import TextBackbone, saved_kind, write_record
from c2kd.errors import DataError
from c2kd.io import commit_shard, write_json
from c2kd.reading import read_json, read_npy, read_parquet

FORMAT = "c2kd-text-cache"
CACHE_FILE = "cache.json"
KEYS_SUFFIX = ".keys.parquet"
#: merge a cache's shards into one when it is opened with more than this many
COMPACT_ABOVE = 32


def text_key(text: str, max_tokens: int | None = None) -> str:
    """sha1 of ``text`` (UTF-8); with ``max_tokens`` for a text that the backbone truncates."""
    raw = text if max_tokens is None else f"{text}\x00max_tokens={max_tokens}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()


def backbone_fingerprint(backbone: TextBackbone) -> str:
    """A short hash that changes when the backbone's weights change (so a cache never serves stale vectors).

    Packaged engines name their package version (``backbone.fingerprint``); torch backbones hash their class,
    name, size and the first 4,096 values of every parameter.
    """
    given = getattr(backbone, "fingerprint", None)
    digest = hashlib.sha1(f"{type(backbone).__name__}|{backbone.name}|{backbone.dim}".encode())
    if isinstance(given, str):
        digest.update(given.encode())
    else:
        for name, param in backbone.state_dict().items():
            digest.update(name.encode())
            digest.update(str(tuple(param.shape)).encode())
            digest.update(param.detach().reshape(-1)[:4096].float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _slug(name: str) -> str:
    tail = Path(name).name or name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip("-")[:60] or "model"


class EmbeddingCache:
    """One model's embeddings on disk: text key -> float16 vector, loaded into memory when opened.

    Shape:
        lookup(keys: N) -> [N, dim] float32 rows (NaN rows for misses) and a [N] bool mask of hits
    """

    def __init__(self, root: str | os.PathLike, dim: int, model: str, fingerprint: str, flush_every: int = 4096,
                 persist: bool = True):
        self.root = Path(root)
        self.dim = int(dim)
        self.model = model
        self.fingerprint = fingerprint
        self.flush_every = flush_every
        #: False: read what is on disk and never write (search keeps users' queries off the disk)
        self.persist = persist
        meta_path = self.root / CACHE_FILE
        if meta_path.exists():
            meta = read_json(meta_path, f"delete {self.root} (a cache: its embeddings are computed again)")
            if meta.get("format") != FORMAT or int(meta.get("dim", -1)) != self.dim \
                    or meta.get("fingerprint") != fingerprint:
                raise DataError(
                    f"{meta_path} belongs to another model (dim {meta.get('dim')}, fingerprint "
                    f"{str(meta.get('fingerprint'))[:12]}), not {model!r} ({self.dim}-d, {fingerprint[:12]}); "
                    f"delete {self.root} or choose another cache_dir"
                )
        elif persist:
            self.root.mkdir(parents=True, exist_ok=True)
            write_json(meta_path, {"format": FORMAT, "version": 1, "model": model, "fingerprint": fingerprint,
                                   "dim": self.dim, "dtype": "float16"})
        self.shard_dir = self.root / "shards"
        if persist:
            self.shard_dir.mkdir(exist_ok=True)
        self._blocks: list[np.ndarray] = []
        self._index: dict[str, tuple[int, int]] = {}
        self._seen_shards: set[str] = set()
        self._pending_keys: list[str] = []
        self._pending_texts: list[str] = []
        self._pending_rows: list[np.ndarray] = []
        self.refresh()
        if persist and len(self._seen_shards) > COMPACT_ABOVE:
            self.compact()
        # flush what is left when the cache is garbage-collected or the interpreter exits
        self._finalizer = weakref.finalize(self, EmbeddingCache._flush_pending, self.shard_dir,
                                           self._pending_keys, self._pending_texts, self._pending_rows)

    # -- reading -------------------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Load shards written since the last call (by this or another process). Returns how many were new."""
        new = 0
        for keys_path in sorted(self.shard_dir.glob(f"*{KEYS_SUFFIX}")):
            stem = keys_path.name[: -len(KEYS_SUFFIX)]
            if stem in self._seen_shards:
                continue
            data_path = self.shard_dir / f"{stem}.npy"
            fix = f"delete {data_path} and {keys_path} (a cache: their embeddings are computed again)"
            try:
                keys = read_parquet(keys_path, fix, columns=["key"]).column("key").to_pylist()
                block = read_npy(data_path, fix, mmap=False, ndim=2)
            except FileNotFoundError:  # removed by a concurrent compaction: its rows live in the new shard
                continue
            if block.shape != (len(keys), self.dim):
                raise DataError(f"{data_path}: shape {block.shape} does not match {len(keys)} keys x {self.dim}; "
                                f"delete {data_path} and {keys_path}")
            b = len(self._blocks)
            self._blocks.append(block)
            for row, key in enumerate(keys):
                self._index.setdefault(key, (b, row))
            self._seen_shards.add(stem)
            new += 1
        return new

    def __len__(self) -> int:
        return len(self._index) + len(self._pending_keys)

    def __contains__(self, key: object) -> bool:
        return key in self._index or key in self._pending_lookup()

    def _pending_lookup(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self._pending_keys)}

    def lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for ``keys`` (float32) and which of them were found."""
        out = np.full((len(keys), self.dim), np.nan, np.float32)
        found = np.zeros(len(keys), bool)
        pending = self._pending_lookup() if self._pending_keys else {}
        for i, key in enumerate(keys):
            loc = self._index.get(key)
            if loc is not None:
                out[i] = self._blocks[loc[0]][loc[1]]
                found[i] = True
            elif key in pending:
                out[i] = self._pending_rows[pending[key]]
                found[i] = True
        return out, found

    # -- writing -------------------------------------------------------------------------------------------
    def add(self, keys: Sequence[str], texts: Sequence[str], embeddings: np.ndarray) -> None:
        """Queue new rows; written as one shard every ``flush_every`` rows and by :meth:`flush` (a cache that does
        not persist keeps nothing new).

        Shape:
            embeddings: [N, dim] for N keys
        """
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.shape != (len(keys), self.dim):
            raise ValueError(f"embeddings of shape {embeddings.shape} for {len(keys)} keys of a {self.dim}-d cache")
        if not np.isfinite(embeddings).all():
            raise DataError(f"{self.model}: the backbone returned NaN or inf embeddings; nothing was cached")
        if not self.persist:
            return
        self._pending_keys.extend(keys)
        self._pending_texts.extend(texts)
        self._pending_rows.extend(embeddings.astype(np.float16))
        if len(self._pending_keys) >= self.flush_every:
            self.flush()

    @staticmethod
    def _flush_pending(shard_dir: Path, keys: list[str], texts: list[str], rows: list[np.ndarray]) -> str | None:
        if not keys:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        stem = f"part-{uuid.uuid4().hex[:16]}"
        table = pa.table({"key": pa.array(keys, pa.string()), "text": pa.array(texts, pa.string())})
        commit_shard(shard_dir, stem, np.stack(rows).astype(np.float16), f"{stem}{KEYS_SUFFIX}",
                     lambda path: pq.write_table(table, path))
        keys.clear()
        texts.clear()
        rows.clear()
        return stem

    def flush(self) -> None:
        """Write queued rows as one shard (atomically) and make them part of the loaded cache."""
        if not self._pending_keys:
            return
        block = np.stack(self._pending_rows).astype(np.float16)
        keys = list(self._pending_keys)
        stem = self._flush_pending(self.shard_dir, self._pending_keys, self._pending_texts, self._pending_rows)
        b = len(self._blocks)
        self._blocks.append(block)
        for row, key in enumerate(keys):
            self._index.setdefault(key, (b, row))
        self._seen_shards.add(str(stem))

    def compact(self) -> None:
        """Merge every shard into one (new shard first, old ones removed after: a kill leaves duplicates only)."""
        self.flush()
        old = sorted(self._seen_shards)
        if len(old) <= 1:
            return
        texts_by_key: dict[str, str] = {}
        for stem in old:
            keys_path = self.shard_dir / f"{stem}{KEYS_SUFFIX}"
            table = read_parquet(keys_path, f"delete it and {stem}.npy (a cache: their embeddings are computed "
                                 "again)", columns=["key", "text"]).to_pydict()
            for key, text in zip(table["key"], table["text"]):
                texts_by_key.setdefault(key, text)
        keys = [k for k in self._index if k in texts_by_key]
        rows = [self._blocks[self._index[k][0]][self._index[k][1]] for k in keys]
        merged = self._flush_pending(self.shard_dir, keys[:], [texts_by_key[k] for k in keys], rows)
        for s in old:
            (self.shard_dir / f"{s}{KEYS_SUFFIX}").unlink(missing_ok=True)  # keys first: no orphan shard counts
            (self.shard_dir / f"{s}.npy").unlink(missing_ok=True)
        self._blocks, self._index, self._seen_shards = [], {}, set()
        self.refresh()
        assert merged in self._seen_shards


@saved_kind
class CachedTextBackbone(TextBackbone):
    """A frozen backbone behind an on-disk embedding cache: ``prepare`` looks captions up, computing misses once.

    The wrapped backbone is deliberately *not* a registered sub-module: its frozen pretrained weights are not
    trained, not in ``parameters()`` and not saved in checkpoints; a checkpoint rebuilds it by name
    (``rebuild_text_backbone``) and the model wraps it again (``build_model`` with ``text.cache_dir``).
    ``.to(device)`` still moves it, so misses are computed on the accelerator.

    Shape:
        prepare(texts: B strings) -> {"embeddings": [B, dim] float32}; forward -> [B, dim]

    Example:
        >>> cached = CachedTextBackbone(build_text_backbone("packaged-e5-small"), "cache/text")  # doctest: +SKIP
        >>> cached.warm(all_captions)                       # doctest: +SKIP
    """

    supports_training = False
    uses_max_tokens = False
    kind = "cached"

    def __init__(self, backbone: TextBackbone, cache_dir: str | os.PathLike, batch_size: int | None = None,
                 progress_above: int = 1024, flush_every: int = 4096, persist: bool = True):
        super().__init__()
        if isinstance(backbone, CachedTextBackbone):
            raise ValueError("the backbone is already cached")
        backbone.requires_grad_(False)
        backbone.eval()
        object.__setattr__(self, "inner", backbone)  # not a sub-module: see the class docstring
        self.name = backbone.name
        self.dim = backbone.dim
        # packaged engines know their best batch size (e5: 16, USE: 256); torch models gain up to ~128 on a CPU
        self.batch_size = batch_size or int(getattr(backbone, "batch_size", 128))
        self.progress_above = progress_above
        self.fingerprint = backbone_fingerprint(backbone)
        self.cache_root = Path(cache_dir)
        self.cache = EmbeddingCache(self.cache_root / f"{_slug(self.name)}-{self.fingerprint[:12]}", self.dim,
                                    self.name, self.fingerprint, flush_every=flush_every, persist=persist)
        #: how many texts the wrapped backbone has embedded through this object (misses)
        self.computed = 0

    inner: TextBackbone

    def _apply(self, fn, recurse: bool = True):  # .to(), .cuda(), .half() also reach the wrapped backbone
        super()._apply(fn, recurse)
        self.inner._apply(fn, recurse)
        return self

    def _keys(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        """One key per text; texts the backbone truncates at ``max_tokens`` get a key naming the limit."""
        if not getattr(self.inner, "uses_max_tokens", True) or not texts:
            return [text_key(t) for t in texts]
        unique = list(dict.fromkeys(texts))
        mask = self.inner.prepare(unique, max_tokens).get("attention_mask")
        if mask is None:
            return [text_key(t, max_tokens) for t in texts]
        cut = {t: bool(n >= max_tokens) for t, n in zip(unique, mask.sum(dim=1).tolist())}
        return [text_key(t, max_tokens if cut[t] else None) for t in texts]

    @torch.no_grad()
    def _compute(self, texts: list[str], max_tokens: int, bar=None) -> np.ndarray:
        """Run the wrapped backbone on ``texts`` in batches (a progress bar when there are many)."""
        from c2kd.progress import progress_bar

        device = next((p.device for p in self.inner.parameters()), torch.device("cpu"))
        own_bar = bar is None
        if own_bar:
            bar = progress_bar(total=len(texts), desc=f"embedding captions with {self.name}", unit="text",
                               disable=len(texts) < self.progress_above)
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            inputs = {k: v.to(device) for k, v in self.inner.prepare(batch, max_tokens).items()}
            out.append(self.inner(inputs).float().cpu().numpy())
            bar.update(len(batch))
        if own_bar:
            bar.close()
        self.computed += len(texts)
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed(self, texts: Sequence[str], max_tokens: int) -> np.ndarray:
        """Cached backbone embeddings of ``texts``; misses are computed in batches and stored.

        Shape:
            texts: N strings -> [N, dim] float32
        """
        texts = list(texts)
        keys = self._keys(texts, max_tokens)
        rows, found = self.cache.lookup(keys)
        if not found.all() and self.cache.refresh():  # another process may have added them meanwhile
            rows, found = self.cache.lookup(keys)
        if not found.all():
            missing = list(dict.fromkeys((keys[i], texts[i]) for i in np.flatnonzero(~found)))
            # rounded to the stored precision: a text's vector is the same whether it was a hit or a miss
            new = self._compute([t for _, t in missing], max_tokens).astype(np.float16).astype(np.float32)
            self.cache.add([k for k, _ in missing], [t for _, t in missing], new)
            position = {k: j for j, (k, _) in enumerate(missing)}
            for i in np.flatnonzero(~found):
                rows[i] = new[position[keys[i]]]
        return rows

    def warm(self, texts: Sequence[str], max_tokens: int = 40, processes: int = 1, bar_position: int = 0,
             label: str = "") -> int:
        """Precompute a whole corpus (e.g. every caption of a dataset), flushing to disk as it goes.

        ``processes > 1`` splits the missing texts between that many single-thread processes, each rebuilding the
        backbone by its name (a preset, a folder or a hub id): on 2 cores two single-thread e5 engines embedded the
        quickstart's 13,998 captions in 320-381 s, one engine with two threads in 408 s. Returns how many texts had to
        be computed. Interrupting it keeps every flushed shard: a rerun resumes. ``label`` ends the progress line's label
        (which process this is, when there are several).
        """
        from c2kd.progress import progress_bar

        unique = list(dict.fromkeys(texts))
        keys = self._keys(unique, max_tokens)
        _, found = self.cache.lookup(keys)
        missing = list(dict.fromkeys((k, t) for k, t, hit in zip(keys, unique, found) if not hit))
        if processes > 1 and len(missing) >= processes * self.batch_size:
            _warm_in_processes(self.name, self.cache_root, [t for _, t in missing], max_tokens, processes)
            self.cache.refresh()
            return len(missing)
        chunk = max(self.cache.flush_every, self.batch_size)
        with progress_bar(total=len(missing), desc=f"embedding captions with {self.name}{label}", unit="text",
                          position=bar_position, disable=len(missing) < self.progress_above) as bar:
            for start in range(0, len(missing), chunk):
                part = missing[start:start + chunk]
                new = self._compute([t for _, t in part], max_tokens, bar=bar)
                self.cache.add([k for k, _ in part], [t for _, t in part], new)
                self.cache.flush()
        return len(missing)

    def flush(self) -> None:
        self.cache.flush()

    def prepare(self, texts: Sequence[str], max_tokens: int) -> dict[str, Tensor]:
        return {"embeddings": torch.from_numpy(self.embed(texts, max_tokens))}

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return inputs["embeddings"]

    def save_architecture(self, directory: Path) -> None:
        """The record only: the frozen backbone is rebuilt by name, its weights are not saved."""
        write_record(directory, {**self.record(), "fingerprint": self.fingerprint, "inner": self.inner.record()})

    @classmethod
    def from_architecture(cls, directory: Path, name: str, record: dict[str, Any]) -> TextBackbone:
        """The wrapped backbone, rebuilt by its name (``build_model`` wraps it in the cache again)."""
        from c2kd.encoders.text.loading import build_text_backbone

        return build_text_backbone(name)


def _warm_part(name: str, cache_root: str, texts: list[str], max_tokens: int, position: int) -> int:
    """One process of :meth:`CachedTextBackbone.warm`: one thread, the backbone rebuilt by name."""
    from c2kd.encoders.text.loading import build_text_backbone
    from c2kd.runtime import set_cpu_threads

    set_cpu_threads(1)
    return CachedTextBackbone(build_text_backbone(name), cache_root).warm(texts, max_tokens, bar_position=position,
                                                                          label=f" (process {position + 1})")


def _warm_in_processes(name: str, cache_root: Path, texts: list[str], max_tokens: int, processes: int) -> None:
    """Embed ``texts`` into the cache at ``cache_root`` in ``processes`` spawned processes (every k-th text each;
    the cache takes concurrent writers)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    parts = [texts[k::processes] for k in range(processes)]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_warm_part, [name] * processes, [str(cache_root)] * processes, parts, [max_tokens] * processes,
                      range(processes)))  # re-raises a worker's error

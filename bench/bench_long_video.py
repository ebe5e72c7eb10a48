"""Search inside long videos: the moment index against one vector per video, on real multilingual text.

Long "videos" are joined end to end from the items of a dataset split (the Multi30K proxy of `c2kd quickstart`:
each item is 4 feature rows), after a seeded shuffle, ``--items`` per video (default 10, 50 and 100). Two
layouts: fixed scenes (each row held 1 s, so an item lasts 4 s) and varied scenes (each item's rows held 1-4 s,
drawn per item, so items last 4-16 s). Queries: each item's caption in every language of the split; the answer
is the long video holding the item, and the item's own span inside it.

Every index goes through the product: a feature store of the long videos, ``build_index`` (the checkpoint's
video tower over every window, or over the whole video for the video-level index), ``VideoIndex.search``
(videos ranked by their best moment). Reported per language:

- video R@1 / R@5: the right long video first / in the top 5;
- moment R@1 at IoU 0.3 / 0.5 / 0.7: the first hit is the right video and its best moment overlaps the item's
  span by at least that IoU (the video-level index finds no moment);
- beside them the clip-level t2v R@1 of the same model on the same items (each item its own clip, ranked among
  the split's items): what the moment index should keep;
- a perfect cut: video R@1 when each long video is cut exactly at its items (each embedded as its clip, a video
  scored by its best item), what an index that knew the items would find. With few items per video it is barely
  above the clip-level R@1: a caption that prefers another item of the same video is the only error it forgives
  (windows can still do a little better where part of an item matches a caption better than the whole);
- entries, build time (median over the layouts), index size, and the search time of one query (p50 / p99,
  the query already embedded).

Window settings and the length prior of a moment's extent are chosen on ``val`` (the mean moment R@1 at IoU 0.5
over languages and layouts), then every setting is reported on ``test`` once.

Usage:
    python bench/bench_long_video.py --checkpoint runs/quickstart/runs/c2kd-off-the-shelf-alpha0.2 \\
        --data runs/quickstart/data [--items 10,50,100] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from c2kd.data.features import FeatureStore, FeatureStoreWriter, store_root
from c2kd.index import VideoIndex
from c2kd.search.building import build_index
from c2kd.search.model import load_search_model
from c2kd.search.windows import Windows

#: window settings tried (name -> windows); "video-level" is one entry per long video, as before moments
SETTINGS: dict[str, Windows] = {
    "video-level": Windows(()),
    "4,8/0.5": Windows((4.0, 8.0), 0.5),
    "2,4,8/0.5": Windows((2.0, 4.0, 8.0), 0.5),
    "4,8,16/0.5": Windows((4.0, 8.0, 16.0), 0.5),
    "2,4,8,16/0.5": Windows((2.0, 4.0, 8.0, 16.0), 0.5),
    "4,8,16,32/0.5": Windows((4.0, 8.0, 16.0, 32.0), 0.5),
}
IOUS = (0.3, 0.5, 0.7)
#: length priors tried for choosing a moment's extent around its peak (c2kd.index.spans.LENGTH_PRIOR)
PRIORS = (0.0, 0.03, 0.05, 0.08, 0.1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Split:
    """The items of one split: their feature rows and one caption per language."""

    ids: list[str]
    features: dict[str, np.ndarray]
    captions: dict[str, dict[str, str]]  # lang -> item -> caption

    @classmethod
    def read(cls, data: Path, split: str) -> Split:
        import pyarrow.parquet as pq

        table = pq.read_table(data / "captions.parquet").to_pydict()
        captions: dict[str, dict[str, str]] = {}
        ids: dict[str, None] = {}
        for vid, sp, lang, text in zip(table["video_id"], table["split"], table["lang"], table["text"]):
            if sp == split:
                captions.setdefault(lang, {}).setdefault(vid, text)
                ids[vid] = None
        store = FeatureStore(store_root(data))
        return cls(list(ids), {v: np.asarray(store[v], np.float32) for v in ids}, captions)


@dataclass
class Layout:
    """Items joined into long videos: which video holds each item, and its span there (seconds)."""

    name: str
    videos: dict[str, tuple[np.ndarray, np.ndarray]]  # long video id -> (features [T, F], times [T])
    where: dict[str, tuple[str, float, float]]  # item -> (long video, start, end)


def join(split: Split, per_video: int, varied: bool, seed: int) -> Layout:
    rng = np.random.default_rng(seed)
    order = [split.ids[i] for i in rng.permutation(len(split.ids))]
    videos, where = {}, {}
    for n, first in enumerate(range(0, len(order), per_video)):
        vid = f"long{n:04d}"
        rows, t = [], 0
        for item in order[first:first + per_video]:
            hold = int(rng.integers(1, 5)) if varied else 1
            feats = np.repeat(split.features[item], hold, axis=0)
            where[item] = (vid, float(t), float(t + len(feats)))
            rows.append(feats)
            t += len(feats)
        features = np.concatenate(rows)
        videos[vid] = (features, np.arange(len(features), dtype=np.float64))
    scenes = "varied 1-4 s" if varied else "fixed 1 s"
    return Layout(f"{per_video} items/video, {scenes}", videos, where)


def write_store(layout: Layout, source: FeatureStore, root: Path) -> Path:
    dim = next(iter(layout.videos.values()))[0].shape[1]
    meta = source.meta
    extra = {k: v for k, v in meta.items() if k not in ("format", "version", "dim", "dtype", "encoder", "fps")}
    with FeatureStoreWriter(root, dim, encoder=meta.get("encoder"), fps=meta.get("fps"), extra=extra) as writer:
        for vid, (features, times) in layout.videos.items():
            writer.add(vid, features, times)
    return root


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def clip_scores(model, split: Split) -> dict[str, tuple[list[str], np.ndarray]]:
    """Each language's captions against the split's items as clips: (items with a caption, cosines [Q, N])."""
    videos = model.embed_videos([split.features[v] for v in split.ids]).numpy()
    out = {}
    for lang, by_item in split.captions.items():
        items = [v for v in split.ids if v in by_item]
        out[lang] = (items, model.embed_texts([by_item[v] for v in items]).numpy() @ videos.T)
    return out


def clip_level_r1(split: Split, scores: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, float]:
    """t2v R@1 of each caption against the split's items as clips (ties counted against the item)."""
    out = {}
    for lang, (items, s) in scores.items():
        right = s[np.arange(len(items)), [split.ids.index(v) for v in items]]
        out[lang] = 100.0 * float(np.mean((s > right[:, None]).sum(1) == 0))
    return out


def perfect_cut_r1(split: Split, scores: dict[str, tuple[list[str], np.ndarray]],
                         layout: Layout) -> dict[str, float]:
    """Video R@1 when every long video is cut exactly at its items' spans (each embedded as its clip, a video
    scored by its best item); ties counted against the item."""
    videos = sorted({vid for vid, _, _ in layout.where.values()})
    holder = np.searchsorted(videos, [layout.where[v][0] for v in split.ids])  # [N] long video of each item
    out = {}
    for lang, (items, s) in scores.items():
        best = np.full((len(items), len(videos)), -np.inf)
        for k in range(len(videos)):
            best[:, k] = s[:, holder == k].max(1)
        truth = holder[[split.ids.index(v) for v in items]]
        right = best[np.arange(len(items)), truth]
        out[lang] = 100.0 * float(np.mean((best > right[:, None]).sum(1) == 0))
    return out


def evaluate(index: VideoIndex, layout: Layout, queries: dict[str, tuple[list[str], np.ndarray]],
             prior: float) -> dict:
    """Video R@1/R@5 and moment R@1 per language, the moment chosen with this length prior."""
    per_lang = {}
    for lang, (items, vectors) in queries.items():
        hits = index.search(vectors, k=5, moments=1, length_prior=prior)
        r1 = r5 = 0
        moment = dict.fromkeys(IOUS, 0)
        for item, found in zip(items, hits):
            vid, start, end = layout.where[item]
            ranked = [h.video_id for h in found]
            r1 += ranked[:1] == [vid]
            r5 += vid in ranked
            if ranked[:1] == [vid] and found[0].moment is not None:
                overlap = iou((found[0].moment.start, found[0].moment.end), (start, end))
                for t in IOUS:
                    moment[t] += overlap >= t
        n = len(items)
        per_lang[lang] = {"video_r1": 100 * r1 / n, "video_r5": 100 * r5 / n,
                          **{f"moment_r1@{t}": 100 * moment[t] / n for t in IOUS}}
    return per_lang


def query_times(index: VideoIndex, queries: dict[str, tuple[list[str], np.ndarray]], timed: int = 200) -> dict:
    """p50 / p99 of one search of the top 10 videos (query embedded), over ``timed`` queries."""
    sample = next(iter(queries.values()))[1][:timed]
    index.search(sample[:1])  # warm
    times = []
    for q in sample:
        start = time.perf_counter()
        index.search(q[None], k=10)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def run_split(checkpoint: Path, data: Path, split_name: str, items: list[int], seed: int, work: Path,
              settings: dict[str, Windows], priors: tuple[float, ...]) -> tuple[dict, dict[str, float], dict]:
    """results[prior][layout][setting] = {languages: {...}, entries, build_s, size_mb, p50_ms, p99_ms}; the
    clip-level R@1 per language; the perfect cut's video R@1 [layout][language]."""
    split = Split.read(data, split_name)
    model = load_search_model(checkpoint)
    scores = clip_scores(model, split)
    clip = clip_level_r1(split, scores)
    queries = {}
    for lang, by_item in split.captions.items():
        order = [v for v in split.ids if v in by_item]
        queries[lang] = (order, model.embed_texts([by_item[v] for v in order]).numpy().astype(np.float32))
    source = FeatureStore(store_root(data))
    results: dict = {}
    perfect_cut: dict[str, dict[str, float]] = {}
    for per_video in items:
        for varied in (False, True):
            layout = join(split, per_video, varied, seed)
            perfect_cut[layout.name] = perfect_cut_r1(split, scores, layout)
            store = write_store(layout, source, work / f"{split_name}-{per_video}-{varied}")
            for name, windows in settings.items():
                out = work / f"index-{split_name}-{per_video}-{varied}-{name.replace('/', '_').replace(',', '-')}"
                started = time.perf_counter()
                build_index(checkpoint, store, out, windows=windows, progress=False, posters=False)
                seconds = time.perf_counter() - started
                with VideoIndex.open(out) as index:
                    common = {**query_times(index, queries), "entries": index.entries, "build_s": seconds,
                              "size_mb": folder_mb(out)}
                    for prior in priors:
                        row = {"languages": evaluate(index, layout, queries, prior), **common}
                        results.setdefault(prior, {}).setdefault(layout.name, {})[name] = row
                        log(f"{split_name} | {layout.name} | {name} | prior {prior}: {index.entries} entries, "
                            f"{seconds:.1f} s, " + " ".join(f"{lang} {v['video_r1']:.1f}/{v['moment_r1@0.5']:.1f}"
                                                             for lang, v in row["languages"].items()))
                shutil.rmtree(out)
            shutil.rmtree(store)
    return results, clip, perfect_cut


def choose(results: dict) -> tuple[tuple[float, str], dict[tuple[float, str], float]]:
    """The (length prior, window setting) of the best mean moment R@1 at IoU 0.5 over layouts and languages."""
    means: dict[tuple[float, str], list[float]] = {}
    for prior, by_layout in results.items():
        for by_setting in by_layout.values():
            for name, row in by_setting.items():
                if name != "video-level":
                    means.setdefault((prior, name), []).extend(v["moment_r1@0.5"] for v in row["languages"].values())
    scored = {key: float(np.mean(v)) for key, v in means.items()}
    return max(scored, key=lambda key: (scored[key], -key[0])), scored


def tables(results: dict, clip: dict[str, float], perfect_cut: dict[str, dict[str, float]], chosen: str,
           langs: list[str]) -> str:
    lines = ["| layout | index | " + " | ".join(f"video R@1 {lang}" for lang in langs) + " | "
             + " | ".join(f"moment R@1 {lang} (IoU .5)" for lang in langs)
             + " | entries | build s | MB | p50 ms | p99 ms |",
             "| --- | --- | " + " | ".join("---:" for _ in range(2 * len(langs) + 5)) + " |"]
    lines.append("| (the same items as clips) | clip-level t2v R@1 | " + " | ".join(f"{clip[lang]:.1f}" for lang in langs)
                 + " | " + " | ".join("" for _ in langs) + " | | | | | |")
    for layout, by_setting in results.items():
        lines.append(f"| {layout} | the items' own spans (a perfect cut) | "
                     + " | ".join(f"{perfect_cut[layout][lang]:.1f}" for lang in langs) + " | "
                     + " | ".join("" for _ in langs) + " | | | | | |")
        for name, row in by_setting.items():
            v = row["languages"]
            mark = f"**{name}** (chosen on val)" if name == chosen else name
            moments = ["-" if name == "video-level" else f"{v[lang]['moment_r1@0.5']:.1f}" for lang in langs]
            lines.append(f"| {layout} | {mark} | " + " | ".join(f"{v[lang]['video_r1']:.1f}" for lang in langs)
                         + " | " + " | ".join(moments)
                         + f" | {row['entries']} | {row['build_s']:.1f} | {row['size_mb']:.1f} | {row['p50_ms']:.2f}"
                           f" | {row['p99_ms']:.2f} |")
    detail = ["", f"Chosen setting {chosen}, per language (test): video R@1 / R@5, moment R@1 at IoU 0.3 / 0.5 / 0.7",
              "", "| layout | lang | video R@1 | video R@5 | moment R@1 .3 | .5 | .7 | clip-level R@1 "
              "| perfect cut video R@1 |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for layout, by_setting in results.items():
        for lang in langs:
            v = by_setting[chosen]["languages"][lang]
            detail.append(f"| {layout} | {lang} | {v['video_r1']:.1f} | {v['video_r5']:.1f} | {v['moment_r1@0.3']:.1f} "
                          f"| {v['moment_r1@0.5']:.1f} | {v['moment_r1@0.7']:.1f} | {clip[lang]:.1f} "
                          f"| {perfect_cut[layout][lang]:.1f} |")
    return "\n".join(lines + detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/quickstart/runs/c2kd-off-the-shelf-alpha0.2"))
    parser.add_argument("--data", type=Path, default=Path("runs/quickstart/data"),
                        help="dataset folder (the quickstart's Multi30K proxy)")
    parser.add_argument("--items", default="10,50,100", help="items per long video, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="window settings to try")
    parser.add_argument("--priors", default=",".join(str(p) for p in PRIORS), help="length priors to try")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args(argv)
    items = [int(x) for x in args.items.split(",")]
    settings = {name: SETTINGS[name] for name in args.settings}
    priors = tuple(float(x) for x in args.priors.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-long-") as tmp:
        work = Path(tmp)
        val, val_clip, _ = run_split(args.checkpoint, args.data, "val", items, args.seed, work, settings, priors)
        (prior, chosen), scores = choose(val)
        test, clip, perfect_cut = run_split(args.checkpoint, args.data, "test", items, args.seed + 1, work, settings,
                               (prior,))
    langs = sorted(clip)
    print(f"## Long videos, test split ({args.checkpoint})\n")
    print("Val (choice; clip-level R@1 on val " + ", ".join(f"{lang} {val_clip[lang]:.1f}" for lang in langs)
          + "): mean moment R@1 at IoU 0.5 over layouts and languages, best first:\n")
    print("| length prior | windows | val moment R@1 (IoU .5) |\n| ---: | --- | ---: |")
    for (p, name), value in sorted(scores.items(), key=lambda kv: -kv[1]):
        print(f"| {p:g} | {name} | {value:.1f} |")
    print(f"\nTest, every window setting at the chosen length prior {prior:g}:\n")
    print(tables(test[prior], clip, perfect_cut, chosen, langs))
    builds = [row["build_s"] for by in test[prior].values() for name, row in by.items() if name == chosen]
    print(f"\nmedian build time of the chosen setting: {statistics.median(builds):.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"val": {str(k): v for k, v in val.items()},
                                         "test": {str(k): v for k, v in test.items()}, "clip_r1": clip,
                                         "perfect_cut_r1": perfect_cut,
                                         "val_clip_r1": val_clip, "chosen": [prior, chosen],
                                         "val_scores": {f"{k[0]}|{k[1]}": v for k, v in scores.items()}},
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
